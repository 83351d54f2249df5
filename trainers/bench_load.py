"""`vfcache bench load`: how fast clips come out of the cache, against the alternatives.

All figures are ratios of clips/s measured side by side on the same clips (see
`../shared/docs/performance.md`):

- shard / zstd bound: `ClipDataset` reads (pread + decompress + checks) in shuffled order
  against decompressing the same frames from memory. Target >= 0.8.
- shard / on-the-fly: against opening the source video and decoding the clip per sample,
  with PyAV and with decord. Target >= 30.
- warm cache / shard: the decoded-clip cache on its second epoch against shard reads. Target >= 5.
- vs LitData: against `litdata.optimize(compression="zstd")` + `StreamingDataset` on the same
  clips, in random and in sequential order (target >= 1.5 and >= 1.0), and bytes on disk
  (target <= 1.05).

The clips come from a corpus of `vfcache bench extract` (natural by default, or synthetic; made
once under `<root>/bench/<corpus>/`), cut with the R(2+1)D preset, several clips per video.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from cache_tools.shards import ShardReader, decode_clip
from manifests.layout import DataRoot
from manifests.parquet_io import read_records
from manifests.records import ClipRecord, split_entry_from_clip
from manifests.split_files import write_split_file
from pipelines.bench_extract import (
    FPS_CORPUS,
    _bench_config,
    _link_user_videos,
    _make_corpus,
    corpus_folder,
    bench_fps_spec,
)
from pipelines.decode import probe_video, read_frames
from pipelines.extract import extract_clips
from pipelines.probe import build_manifest
from trainers.dataset import ClipDataset, open_decode_cache

TARGETS = {
    "shard_over_zstd_bound": (">=", 0.8),
    "shard_over_on_the_fly_pyav": (">=", 30.0),
    "shard_over_on_the_fly_decord": (">=", 30.0),
    "warm_cache_over_shard": (">=", 5.0),
    "over_litdata_random": (">=", 1.5),
    "over_litdata_sequential": (">=", 1.0),
    "bytes_over_litdata": ("<=", 1.05),
}


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


def _litdata_figures(dataset: ClipDataset, clips: Sequence[ClipRecord], work: Path, repeats: int) -> dict:
    import litdata

    cache_root = Path(dataset.sources[0].cache_dir.path)
    inputs = [(str(cache_root / c.shard), c.offset, c.nbytes) for c in clips]
    out = work / "litdata"
    litdata.optimize(fn=_litdata_clip, inputs=inputs, output_dir=str(out), chunk_bytes="128MB",
                     compression="zstd", num_workers=1, verbose=False, mode="overwrite")
    litdata_bytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.suffix != ".json")

    def read_streaming(shuffle: bool) -> int:
        stream = litdata.StreamingDataset(str(out), shuffle=shuffle, cache_dir=str(work / "litdata_cache"))
        count = 0
        for sample in stream:
            count += int(sample["clip"].shape[0] > 0)
        return count

    return {
        "litdata_random_clips_per_s": _timed(lambda: read_streaming(True), repeats),
        "litdata_sequential_clips_per_s": _timed(lambda: read_streaming(False), repeats),
        "litdata_bytes": litdata_bytes,
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
            lambda reader=reader: _on_the_fly(raw, subset, reader, height, width), 1)
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
            figures.update(_litdata_figures(dataset, clips, work_path, repeats))
    seq_order = np.arange(len(dataset))

    def shard_sequential() -> int:
        for i in seq_order:
            dataset[int(i)]
        return len(seq_order)

    figures["shard_sequential_clips_per_s"] = _timed(shard_sequential, repeats)
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
    rates = [k for k in result if k.endswith("_clips_per_s")]
    lines.append("clips/s: " + ", ".join(f"{k[:-12]} {result[k]:.1f}" for k in rates))
    return "\n".join(lines)
