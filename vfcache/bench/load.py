"""`vfcache bench load`: how fast clips come out of the cache, against the alternatives.

All figures are ratios of clips/s measured side by side on the same clips (see
`../shared/docs/performance.md`):

- shard / zstd bound: `ClipDataset` reads (pread + decompress + checks) in shuffled order
  against decompressing the same frames from memory. Target >= 0.85.
- shard / on-the-fly: against opening the source video and decoding the clip per sample,
  with PyAV and with decord. Target >= 30.
- warm cache / shard: the decoded-clip cache on its second epoch against shard reads. Target >= 5.
- vs LitData: against `litdata.optimize(compression="zstd:<the cache's level>")` +
  `StreamingDataset` on the same clips, in random and in sequential order (target >= 1.0 for
  both), bytes on disk (target <= 1.05), and, each reader in a fresh process (LitData with an
  empty chunk cache, as on a new node): the time to the first shuffled batch (target: at most
  half of LitData's) and the resident memory the reader adds to the process (target: at most
  LitData's).
- loader workers 2 / 1: clips/s through a torch DataLoader with two worker processes against one.

The clips come from a corpus of `vfcache bench extract` (natural by default, or synthetic; made
once under `<root>/bench/<corpus>/`), cut with the R(2+1)D preset, several clips per video.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from vfcache.bench.extract import (
    FPS_CORPUS,
    _bench_config,
    _link_user_videos,
    _make_corpus,
    bench_fps_spec,
    corpus_folder,
)
from vfcache.cache_tools.shards import ShardReader, decode_clip
from vfcache.layout import DataRoot
from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import ClipRecord, split_entry_from_clip
from vfcache.manifests.split_files import write_split_file
from vfcache.pipelines.decode import probe_video, read_frames
from vfcache.pipelines.extract import extract_clips
from vfcache.pipelines.probe import build_manifest
from vfcache.trainers.dataset import ClipDataset, collate_clips, open_decode_cache

TARGETS = {
    "shard_over_zstd_bound": (">=", 0.85),
    "shard_over_on_the_fly_pyav": (">=", 30.0),
    "shard_over_on_the_fly_decord": (">=", 30.0),
    "warm_cache_over_shard": (">=", 5.0),
    "over_litdata_random": (">=", 1.0),
    "over_litdata_sequential": (">=", 1.0),
    "bytes_over_litdata": ("<=", 1.05),
    "first_batch_over_litdata": ("<=", 0.5),
    "reader_rss_over_litdata": ("<=", 1.0),
}
PROBE_BATCH = 8  # clips per batch in the first-batch / memory probes


def _clips_per_s(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def _timed(fn: Callable[[], int], repeats: int) -> float:
    """Best clips/s over `repeats` runs of `fn` (which returns how many clips it read)."""
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        count = fn()
        best = max(best, _clips_per_s(count, time.perf_counter() - started))
    return best


def build_bench_cache(root: DataRoot, videos_dir: Optional[Path] = None,
                      corpus: str = "natural") -> tuple[Path, Path, list[ClipRecord]]:
    """Extract the benchmark clips once (from a built-in corpus, or from `videos_dir`);
    returns (split JSONL over all clips, raw folder, clips)."""
    bench = corpus_folder(root, videos_dir, corpus)
    if videos_dir is None:
        raw, name = _make_corpus(bench / "corpus_fps", FPS_CORPUS, corpus), "bench_fps"
    else:
        raw, name = _link_user_videos(Path(videos_dir), bench / "user_videos"), "bench_user"
    spec = bench_fps_spec()
    broot = DataRoot(bench / "root")
    config = _bench_config(name, raw, spec)
    build_manifest(config, broot, spec, client=None, progress=False)
    extract_clips(config, broot, spec, client=None, progress=False, max_failed=None)
    cache = broot.cache_dir(config.name, spec.name)
    clips = read_records(cache.clips_parquet, ClipRecord)
    split_file = cache.split_file("bench", "train")
    write_split_file(split_file, [split_entry_from_clip(c) for c in clips])
    return split_file, raw, clips


def _litdata_clip(args: tuple[str, int, int]) -> dict:
    shard, offset, nbytes = args
    return {"clip": np.array(ShardReader(shard).read(offset, nbytes))}


def _status_bytes(field: str) -> int:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in bytes; 0 where there is none."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _reset_peak_rss() -> bool:
    """Make VmHWM (the peak) restart from the current RSS (Linux >= 4.0); False where refused."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def reader_probe(kind: str, source: str, batch: int = PROBE_BATCH, seed: int = 0) -> dict:
    """Run in a fresh process (`_probe_reader`): seconds from creating the reader to its first
    shuffled batch of `batch` clips, then one epoch; the peak resident memory of the process
    over its resident memory after the imports (the peak is reset there, so import-time peaks do
    not count) is what the reader adds."""
    if kind == "litdata":
        import litdata
    if not _reset_peak_rss():
        raise RuntimeError("cannot reset the peak RSS (/proc/self/clear_refs): reader memory is measured on Linux only")
    baseline = _status_bytes("VmRSS")
    started = time.perf_counter()
    if kind == "vfcache":
        generator = torch.Generator().manual_seed(seed)
        loader = DataLoader(ClipDataset(source), batch_size=batch, shuffle=True, generator=generator,
                            collate_fn=collate_clips, num_workers=0)
    elif kind == "litdata":
        cache_dir = tempfile.mkdtemp(prefix="vfcache-litdata-cache-")  # empty: a first epoch on a new node
        stream = litdata.StreamingDataset(source, shuffle=True, seed=seed, cache_dir=cache_dir)
        loader = litdata.StreamingDataLoader(stream, batch_size=batch, num_workers=0)
    else:
        raise ValueError(f"unknown reader {kind!r}")
    batches = iter(loader)
    first = next(batches)
    first_batch_s = time.perf_counter() - started
    clips = len(first["clip"]) + sum(len(b["clip"]) for b in batches)
    peak = _status_bytes("VmHWM")
    return {"first_batch_s": first_batch_s, "reader_rss_bytes": max(0, peak - baseline), "clips": clips}


def _probe_reader(kind: str, source: str, repeats: int) -> dict:
    """`reader_probe` in `repeats` fresh processes; the best of each figure."""
    code = ("import json, sys; from vfcache.bench.load import reader_probe; "
            "print(json.dumps(reader_probe(sys.argv[1], sys.argv[2])))")
    runs = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, "-c", code, kind, source], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the {kind} reader probe failed:\n{done.stderr[-2000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {"first_batch_s": min(r["first_batch_s"] for r in runs),
            "reader_rss_bytes": min(r["reader_rss_bytes"] for r in runs)}


def loader_clips_per_s(split_file: Path, workers: int, *, passes: int = 4, batch: int = 4, seed: int = 0) -> float:
    """Clips/s through a DataLoader with `workers` processes over `passes` shuffled passes of
    the split, timed after the first batch (the workers have started)."""
    dataset = ClipDataset(split_file)
    rng = np.random.default_rng(seed)
    order = [int(i) for _ in range(passes) for i in rng.permutation(len(dataset))]
    torch.manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch, sampler=order, collate_fn=collate_clips, num_workers=workers,
                        prefetch_factor=4 if workers else None)
    batches = iter(loader)
    next(batches)
    started = time.perf_counter()
    count = sum(len(b["clip"]) for b in batches)
    return _clips_per_s(count, time.perf_counter() - started)


def _litdata_figures(dataset: ClipDataset, clips: Sequence[ClipRecord], work: Path, repeats: int,
                     split_file: Path) -> dict:
    import litdata

    cache = dataset.sources[0].cache_dir
    cache_root = Path(cache.path)
    level = cache.shard_level()
    inputs = [(str(cache_root / c.shard), c.offset, c.nbytes) for c in clips]
    out = work / "litdata"
    litdata.optimize(fn=_litdata_clip, inputs=inputs, output_dir=str(out), chunk_bytes="128MB",
                     compression=f"zstd:{level}", num_workers=1, verbose=False, mode="overwrite")
    litdata_bytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.suffix != ".json")

    def read_streaming(shuffle: bool) -> int:
        stream = litdata.StreamingDataset(str(out), shuffle=shuffle, cache_dir=str(work / "litdata_cache"))
        count = 0
        for sample in stream:
            count += int(sample["clip"].shape[0] > 0)
        return count

    ours, theirs = _probe_reader("vfcache", str(split_file), repeats), _probe_reader("litdata", str(out), repeats)
    return {
        "zstd_level": level,
        "litdata_random_clips_per_s": _timed(lambda: read_streaming(True), repeats),
        "litdata_sequential_clips_per_s": _timed(lambda: read_streaming(False), repeats),
        "litdata_bytes": litdata_bytes,
        "first_batch_s": ours["first_batch_s"], "litdata_first_batch_s": theirs["first_batch_s"],
        "reader_rss_bytes": ours["reader_rss_bytes"], "litdata_reader_rss_bytes": theirs["reader_rss_bytes"],
    }


def _on_the_fly(raw: Path, clips: Sequence[ClipRecord], reader: str, height: int, width: int) -> int:
    for clip in clips:
        path = raw / clip.relpath
        info = probe_video(path)
        read_frames(path, clip.frame_indices, info=info, height=height, width=width, reader=reader)
    return len(clips)


def run_load_benchmark(root: DataRoot, *, repeats: int = 3, on_the_fly_clips: int = 6,
                       with_litdata: bool = True, seed: int = 0, videos_dir: Optional[Path] = None,
                       corpus: str = "natural") -> dict:
    split_file, raw, clips = build_bench_cache(root, videos_dir, corpus)
    dataset = ClipDataset(split_file)
    order = np.random.default_rng(seed).permutation(len(dataset))
    cache_root = Path(dataset.sources[0].cache_dir.path)
    in_memory = []
    for entry in dataset.entries:
        with open(cache_root / entry.shard, "rb") as handle:
            handle.seek(entry.offset)
            in_memory.append(handle.read(entry.nbytes))
    shard_bytes = sum(len(frame) for frame in in_memory)

    def zstd_bound() -> int:
        for i in order:
            decode_clip(in_memory[i])
        return len(order)

    def shard_reads() -> int:
        for i in order:
            dataset[int(i)]
        return len(order)

    figures: dict = {"clips": len(dataset), "clip_shape": list(dataset.clip_shape), "repeats": repeats,
                     "cpu_count": os.cpu_count(), "shard_bytes": shard_bytes}
    figures["zstd_bound_clips_per_s"] = _timed(zstd_bound, repeats)
    figures["shard_clips_per_s"] = _timed(shard_reads, repeats)
    subset = [clips[int(i)] for i in order[:on_the_fly_clips]]
    height, width = dataset.clip_shape[1], dataset.clip_shape[2]
    for reader in ("pyav", "decord"):
        figures[f"on_the_fly_{reader}_clips_per_s"] = _timed(
            lambda reader=reader: _on_the_fly(raw, subset, reader, height, width), repeats)
    with tempfile.TemporaryDirectory(prefix="vfcache-bench-") as work:
        work_path = Path(work)
        budget = int(np.prod(dataset.clip_shape)) * len(dataset) + (1 << 20) * len(dataset)
        warm = ClipDataset(split_file)
        open_decode_cache(warm, work_path, budget)
        for i in order:  # the first epoch fills the slots
            warm[int(i)]

        def warm_reads() -> int:
            for i in order:
                warm[int(i)]
            return len(order)

        figures["warm_cache_clips_per_s"] = _timed(warm_reads, repeats)
        if with_litdata:
            figures.update(_litdata_figures(dataset, clips, work_path, repeats, split_file))
    seq_order = np.arange(len(dataset))

    def shard_sequential() -> int:
        for i in seq_order:
            dataset[int(i)]
        return len(seq_order)

    figures["shard_sequential_clips_per_s"] = _timed(shard_sequential, repeats)
    for workers in (1, 2):
        figures[f"loader_workers{workers}_clips_per_s"] = max(
            loader_clips_per_s(split_file, workers) for _ in range(repeats))
    figures["loader_workers2_over_workers1"] = (figures["loader_workers2_clips_per_s"]
                                                / figures["loader_workers1_clips_per_s"])
    shard = figures["shard_clips_per_s"]
    figures["shard_over_zstd_bound"] = shard / figures["zstd_bound_clips_per_s"]
    figures["shard_over_on_the_fly_pyav"] = shard / figures["on_the_fly_pyav_clips_per_s"]
    figures["shard_over_on_the_fly_decord"] = shard / figures["on_the_fly_decord_clips_per_s"]
    figures["warm_cache_over_shard"] = figures["warm_cache_clips_per_s"] / shard
    if with_litdata:
        figures["over_litdata_random"] = shard / figures["litdata_random_clips_per_s"]
        figures["over_litdata_sequential"] = (figures["shard_sequential_clips_per_s"]
                                              / figures["litdata_sequential_clips_per_s"])
        figures["bytes_over_litdata"] = shard_bytes / figures["litdata_bytes"]
        figures["first_batch_over_litdata"] = figures["first_batch_s"] / figures["litdata_first_batch_s"]
        figures["reader_rss_over_litdata"] = (figures["reader_rss_bytes"]
                                              / max(1, figures["litdata_reader_rss_bytes"]))
    figures["targets"] = {k: f"{op} {t}" for k, (op, t) in TARGETS.items() if k in figures}
    figures["meets_targets"] = {k: (figures[k] <= t if op == "<=" else figures[k] >= t)
                                for k, (op, t) in TARGETS.items() if k in figures}
    return {"benchmark": "load", "corpus": str(videos_dir) if videos_dir else corpus, **figures}


def format_load_table(result: dict) -> str:
    lines = [f"corpus {result.get('corpus', '?')}: {result['clips']} clips of "
             f"{'x'.join(map(str, result['clip_shape']))} uint8, shuffled order, best of {result['repeats']}",
             f"{'figure':<30}{'value':>9}  {'target':<8}ok"]
    for key in TARGETS:
        if key in result:
            ok = "yes" if result["meets_targets"][key] else "NO"
            lines.append(f"{key:<30}{result[key]:>9.2f}  {result['targets'][key]:<8}{ok}")
    if "loader_workers2_over_workers1" in result:
        lines.append(f"{'loader_workers2_over_workers1':<30}{result['loader_workers2_over_workers1']:>9.2f}")
    rates = [k for k in result if k.endswith("_clips_per_s")]
    lines.append("clips/s: " + ", ".join(f"{k[:-12]} {result[k]:.1f}" for k in rates))
    if "first_batch_s" in result:
        lines.append(f"first batch of {PROBE_BATCH} (fresh process): ours {result['first_batch_s']:.3f} s, LitData "
                     f"{result['litdata_first_batch_s']:.3f} s; reader memory: ours "
                     f"{result['reader_rss_bytes'] / 1e6:.0f} MB, LitData {result['litdata_reader_rss_bytes'] / 1e6:.0f} MB; "
                     f"zstd level {result['zstd_level']} for both")
    return "\n".join(lines)
