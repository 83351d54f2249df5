"""`vfcache bench load`: how fast clips come out of the cache, against the alternatives.

All figures are ratios of clips/s measured side by side on the same clips (see
`../shared/docs/performance.md`):

- shard / zstd bound: `ClipDataset` reads (pread + decompress + checks) in shuffled order
  against decompressing the same frames from memory. Target >= 0.85.
- shard / on-the-fly: against opening the source video and decoding the clip per sample,
  with PyAV and with decord. Target >= 30.
- warm cache / shard: the decoded-clip cache on its second epoch against shard reads. Target >= 5.
- vs LitData (`vfcache.bench.readers`): against `litdata.optimize(compression="zstd:<the
  cache's level>")` + `StreamingDataset` on the same clips, in LitData's default wrap (256
  clips per zstd frame) and with `compression_level="sample"` (one frame per clip, like our
  shards): random and sequential order (target >= 1.0), bytes on disk (target <= 1.05), and,
  each reader in a fresh process (LitData with an empty chunk cache, as on a new node): the time
  to the first shuffled batch (target: at most half of LitData's) and the resident memory the
  reader adds to the process (target: at most LitData's). The targets are the sample mode's.
- yuv420 (`vfcache.bench.yuv`): the same clips cut as `pixels: yuv420` planes, read beside
  the RGB ones; and the yuv420 reader against LitData holding the RGB clips.
- loader workers 2 / 1: clips/s through a torch DataLoader with two worker processes against one.

The clips come from a corpus of `vfcache bench extract` (natural by default, or synthetic; made
once under `<root>/bench/<corpus>/`), cut with the R(2+1)D preset, several clips per video.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from vfcache.bench import yuv as bench_yuv
from vfcache.bench.extract import (
    FPS_CORPUS,
    _bench_config,
    _link_user_videos,
    _make_corpus,
    bench_fps_spec,
    bench_spec,
    corpus_folder,
    yuv420_twin,
)
from vfcache.bench.readers import (
    LITDATA_MODES,
    PROBE_BATCH,
    cache_readers,
    clips_per_s,
    in_memory_frames,
    litdata_comparison,
    litdata_reader,
    probe_reader,
    timed,
    timed_side_by_side,
)
from vfcache.config import ClipSpec
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
    "over_litdata_sample_random": (">=", 1.0),
    "over_litdata_sample_sequential": (">=", 1.0),
    "bytes_over_litdata_sample": ("<=", 1.05),
    "first_batch_over_litdata_sample": ("<=", 0.5),
    "reader_rss_over_litdata_sample": ("<=", 1.0),
    **bench_yuv.TARGETS,
    # the same table for the yuv420 reader against LitData holding the RGB clips
    "yuv420_over_litdata_sample_random": (">=", 1.0),
    "yuv420_over_litdata_sample_sequential": (">=", 1.0),
    "yuv420_bytes_over_litdata_sample": ("<=", 1.05),
    "yuv420_first_batch_over_litdata_sample": ("<=", 0.5),
    "yuv420_reader_rss_over_litdata_sample": ("<=", 1.0),
}
# printed and written without a target: LitData's default wrap, and the CPU conversion
REPORTED = (
    "over_litdata_random",
    "over_litdata_sequential",
    "bytes_over_litdata",
    "first_batch_over_litdata",
    "reader_rss_over_litdata",
    "yuv420_over_litdata_random",
    "yuv420_over_litdata_sequential",
    "yuv420_bytes_over_litdata",
    "yuv420_first_batch_over_litdata",
    "yuv420_reader_rss_over_litdata",
    "bytes_over_raw_rgb",
    "yuv420_bytes_over_rgb_bytes",
    "yuv420_to_rgb_share_of_cpu_read",
    "yuv420_rgb_form_over_rgb_reads",
    "loader_workers2_over_workers1",
)


def build_bench_cache(
    root: DataRoot,
    videos_dir: Optional[Path] = None,
    corpus: str = "natural",
    pixels: str = "rgb24",
    spec: Optional[ClipSpec] = None,
) -> tuple[Path, Path, list[ClipRecord]]:
    """Extract the benchmark clips once (from a built-in corpus, or from `videos_dir`) with
    `spec` (default the R(2+1)D card's 24x224; several clips per video, `bench_spec`), stored
    as `pixels`; returns (split JSONL over all clips, raw folder, clips). A second call with
    the same spec reuses the cache folder."""
    bench = corpus_folder(root, videos_dir, corpus)
    if videos_dir is None:
        raw, name = _make_corpus(bench / "corpus_fps", FPS_CORPUS, corpus), "bench_fps"
    else:
        raw, name = _link_user_videos(Path(videos_dir), bench / "user_videos"), "bench_user"
    spec = bench_fps_spec() if spec is None else bench_spec(spec)
    spec = spec if pixels == "rgb24" else yuv420_twin(spec)
    broot = DataRoot(bench / "root")
    config = _bench_config(name, raw, spec)
    build_manifest(config, broot, spec, client=None, progress=False)
    extract_clips(config, broot, spec, client=None, progress=False, max_failed=None)
    cache = broot.cache_dir(config.name, spec.name)
    clips = read_records(cache.clips_parquet, ClipRecord)
    split_file = cache.split_file("bench", "train")
    write_split_file(split_file, [split_entry_from_clip(c) for c in clips])
    return split_file, raw, clips


def loader_clips_per_s(
    split_file: Path, workers: int, *, passes: int = 4, batch: int = 4, seed: int = 0
) -> float:
    """Clips/s through a DataLoader with `workers` processes over `passes` shuffled passes of
    the split, timed after the first batch (the workers have started)."""
    dataset = ClipDataset(split_file)
    rng = np.random.default_rng(seed)
    order = [int(i) for _ in range(passes) for i in rng.permutation(len(dataset))]
    torch.manual_seed(seed)
    loader = DataLoader(
        dataset,
        batch_size=batch,
        sampler=order,
        collate_fn=collate_clips,
        num_workers=workers,
        prefetch_factor=4 if workers else None,
    )
    batches = iter(loader)
    next(batches)
    started = time.perf_counter()
    count = sum(len(b["clip"]) for b in batches)
    return clips_per_s(count, time.perf_counter() - started)


def _on_the_fly(
    raw: Path, clips: Sequence[ClipRecord], reader: str, height: int, width: int
) -> int:
    for clip in clips:
        path = raw / clip.relpath
        info = probe_video(path)
        read_frames(path, clip.frame_indices, info=info, height=height, width=width, reader=reader)
    return len(clips)


def _our_reader(
    figures: dict, split_file: Path, repeats: int, prefix: str = ""
) -> dict[str, float]:
    """Our side of the LitData table for one form: the rates and bytes measured in `figures`
    (names with `prefix`) and the fresh-process probe of its split file."""
    return {
        "random_clips_per_s": figures[f"{prefix}shard_clips_per_s"],
        "sequential_clips_per_s": figures[f"{prefix}shard_sequential_clips_per_s"],
        "bytes": figures[f"{prefix}shard_bytes"],
        **probe_reader("vfcache", str(split_file), repeats),
    }


def _litdata_figures(
    figures: dict,
    dataset: ClipDataset,
    clips: Sequence[ClipRecord],
    work: Path,
    repeats: int,
    split_files: dict[str, Path],
) -> dict:
    """LitData in each wrap mode holding the RGB clips, our RGB and yuv420 readers, and their
    ratios."""
    level = dataset.sources[0].cache_dir.shard_level()
    inputs = [
        (str(dataset.sources[0].cache_dir.resolve_shard(c.shard)), c.offset, c.nbytes)
        for c in clips
    ]
    theirs = {mode: litdata_reader(inputs, work, level, mode, repeats) for mode in LITDATA_MODES}
    ours = {
        prefix: _our_reader(figures, split_files[prefix], repeats, prefix) for prefix in split_files
    }
    out: dict = {"zstd_level": level}
    for prefix, reader in ours.items():
        out.update(
            {
                f"{prefix}first_batch_s": reader["first_batch_s"],
                f"{prefix}reader_rss_bytes": reader["reader_rss_bytes"],
            }
        )
        out.update(litdata_comparison(reader, theirs, prefix))
    for mode, suffix in LITDATA_MODES.items():
        out.update({f"litdata{suffix}_{name}": value for name, value in theirs[mode].items()})
    return out


def run_load_benchmark(
    root: DataRoot,
    *,
    repeats: int = 3,
    on_the_fly_clips: int = 6,
    with_litdata: bool = True,
    seed: int = 0,
    videos_dir: Optional[Path] = None,
    corpus: str = "natural",
) -> dict:
    split_file, raw, clips = build_bench_cache(root, videos_dir, corpus)
    yuv_split, _, _ = build_bench_cache(root, videos_dir, corpus, pixels="yuv420")
    dataset, planes = ClipDataset(split_file), ClipDataset(yuv_split)
    order = [int(i) for i in np.random.default_rng(seed).permutation(len(dataset))]
    yuv_order = [int(i) for i in np.random.default_rng(seed).permutation(len(planes))]
    frames, yuv_frames = in_memory_frames(dataset), in_memory_frames(planes)
    figures: dict = {
        "clips": len(dataset),
        "clip_shape": list(dataset.clip_shape),
        "repeats": repeats,
        "cpu_count": os.cpu_count(),
        "shard_bytes": sum(map(len, frames)),
        "yuv420_clips": len(planes),
        "yuv420_clip_shape": list(planes.clip_shape),
        "yuv420_shard_bytes": sum(map(len, yuv_frames)),
    }
    readers = {
        **cache_readers(dataset, frames, order),
        **cache_readers(planes, yuv_frames, yuv_order, "yuv420_"),
        **bench_yuv.conversion_readers(planes, ClipDataset(yuv_split, form="rgb"), yuv_order),
    }
    figures.update(
        {f"{name}_clips_per_s": rate for name, rate in timed_side_by_side(readers, repeats).items()}
    )
    subset = [clips[i] for i in order[:on_the_fly_clips]]
    height, width = dataset.clip_shape[1], dataset.clip_shape[2]
    for reader in ("pyav", "decord"):
        figures[f"on_the_fly_{reader}_clips_per_s"] = timed(
            lambda reader=reader: _on_the_fly(raw, subset, reader, height, width), repeats
        )
    with tempfile.TemporaryDirectory(prefix="vfcache-bench-") as work:
        work_path = Path(work)
        budget = int(np.prod(dataset.clip_shape)) * len(dataset) + (1 << 20) * len(dataset)
        warm = ClipDataset(split_file)
        open_decode_cache(warm, work_path, budget)
        for i in order:  # the first epoch fills the slots
            warm[i]

        def warm_reads() -> int:
            for i in order:
                warm[i]
            return len(order)

        figures["warm_cache_clips_per_s"] = timed(warm_reads, repeats)
        if with_litdata:
            figures.update(
                _litdata_figures(
                    figures,
                    dataset,
                    clips,
                    work_path,
                    repeats,
                    {"": split_file, "yuv420_": yuv_split},
                )
            )
    for workers in (1, 2):
        figures[f"loader_workers{workers}_clips_per_s"] = max(
            loader_clips_per_s(split_file, workers) for _ in range(repeats)
        )
    figures["loader_workers2_over_workers1"] = (
        figures["loader_workers2_clips_per_s"] / figures["loader_workers1_clips_per_s"]
    )
    shard = figures["shard_clips_per_s"]
    figures["shard_over_zstd_bound"] = shard / figures["zstd_bound_clips_per_s"]
    figures["shard_over_on_the_fly_pyav"] = shard / figures["on_the_fly_pyav_clips_per_s"]
    figures["shard_over_on_the_fly_decord"] = shard / figures["on_the_fly_decord_clips_per_s"]
    figures["warm_cache_over_shard"] = figures["warm_cache_clips_per_s"] / shard
    figures.update(bench_yuv.yuv420_figures(figures, dataset.clip_shape))
    figures["targets"] = {k: f"{op} {t}" for k, (op, t) in TARGETS.items() if k in figures}
    figures["meets_targets"] = {
        k: (figures[k] <= t if op == "<=" else figures[k] >= t)
        for k, (op, t) in TARGETS.items()
        if k in figures
    }
    return {"benchmark": "load", "corpus": str(videos_dir) if videos_dir else corpus, **figures}


def format_load_table(result: dict) -> str:
    lines = [
        f"corpus {result.get('corpus', '?')}: {result['clips']} clips of "
        f"{'x'.join(map(str, result['clip_shape']))} uint8 (yuv420: "
        f"{'x'.join(map(str, result['yuv420_clip_shape']))}), shuffled order, best of "
        f"{result['repeats']}; "
        "LitData holds the RGB clips",
        f"{'figure':<40}{'value':>9}  {'target':<8}ok",
    ]
    for key in (*TARGETS, *REPORTED):
        if key not in result:
            continue
        if key in TARGETS:
            ok = "yes" if result["meets_targets"][key] else "NO"
            lines.append(f"{key:<40}{result[key]:>9.2f}  {result['targets'][key]:<8}{ok}")
        else:
            lines.append(f"{key:<40}{result[key]:>9.2f}  {'':<8}reported")
    rates = [k for k in result if k.endswith("_clips_per_s")]
    lines.append("clips/s: " + ", ".join(f"{k[:-12]} {result[k]:.1f}" for k in rates))
    if "first_batch_s" in result:
        lines.append(
            f"first batch of {PROBE_BATCH} (fresh process): ours {result['first_batch_s']:.3f} s "
            f"(yuv420 {result['yuv420_first_batch_s']:.3f} s), LitData sample "
            f"{result['litdata_sample_first_batch_s']:.3f} s, default "
            f"{result['litdata_first_batch_s']:.3f} s; "
            f"reader memory: ours {result['reader_rss_bytes'] / 1e6:.0f} MB (yuv420 "
            f"{result['yuv420_reader_rss_bytes'] / 1e6:.0f} MB), LitData sample "
            f"{result['litdata_sample_reader_rss_bytes'] / 1e6:.0f} MB, default "
            f"{result['litdata_reader_rss_bytes'] / 1e6:.0f} MB; zstd level {result['zstd_level']} "
            f"for all"
        )
    return "\n".join(lines)
