"""`vfcache bench extract`: what extraction costs against the decode floor, the usual
decode-everything script, and one dask worker against two.

Every figure is a ratio of two measurements taken side by side in one run (the machines are
shared and noisy), as `../shared/docs/performance.md` defines them:

- extract / floor: full extraction on one worker (probe the timestamps, decode, convert,
  resize, compress, write, index; converting and compressing on the worker's second thread
  when the machine has a spare core, as `vfcache extract` does) against PyAV decoding only the
  frames the spec needs from the nearest keyframe with no conversion. Target <= 1.4 on natural
  footage (the natural corpus, or `--videos`), <= 1.25 on the synthetic corpus.
- decode-all / extract: the usual script (decode and convert every frame, then pick) against
  our extraction, uniform sampling on videos of 20 s or more. Target >= 3.
- yuv420 extract / floor: the same extraction into a `pixels: yuv420` cache (issue 18: the
  planes the decoder gave, resized in YUV, half the bytes to compress) against the same floor.
  Target <= 1.3 on natural footage, <= 1.25 on the synthetic corpus.
- 2 workers / 1 worker: speed-up of the dask extraction with two worker processes, each task on
  one thread (no compression thread on either side, so this is the processes' scaling). Target >=
  1.7.

Two corpora, each made once under `<root>/bench/<corpus>/`, deterministic:
- `natural` (the default): a real photograph panned and zoomed like a handheld camera, with
  sensor-like noise (pipelines/sources/_natural_frames.py), H.264 CRF 23 (a web bitrate) with a
  1 s keyframe interval, and one long-GOP video (10 s) among the uniform-sampling ones. Its
  clips compress under zstd about as camera footage does, so compression is costed honestly.
- `synthetic`: the painted test patterns of the sample dataset, same sizes and keyframes. They
  compress several times better than footage, which hides the cost of compressing.
`--videos DIR` measures a folder of your own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import pyarrow.parquet as pq

from vfcache.config import ClipSpec, DatasetConfig, LayoutRule, SplitPreset, load_clip_spec
from vfcache.errors import ConfigError
from vfcache.layout import DataRoot
from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import STATUS_OK, VideoRecord
from vfcache.pipelines.decode import decode_all_then_pick, decode_floor, probe_video
from vfcache.pipelines.decode.frames import plan_clips
from vfcache.pipelines.extract import extract_clips
from vfcache.pipelines.extract.task import start_seed
from vfcache.pipelines.probe import build_manifest
from vfcache.pipelines.runner import open_cluster, spare_core_per_task
from vfcache.pipelines.sources.labels import VIDEO_EXTENSIONS

log = logging.getLogger(__name__)

TARGETS = {
    "extract_over_floor": ("<=", 1.4),
    "yuv420_extract_over_floor": ("<=", 1.3),
    "decode_all_over_extract": (">=", 3.0),
    "workers2_over_workers1": (">=", 1.7),
}
# painted patterns compress so fast that extraction must come closer to the floor
SYNTHETIC_TARGETS = {
    **TARGETS,
    "extract_over_floor": ("<=", 1.25),
    "yuv420_extract_over_floor": ("<=", 1.25),
}


@dataclass(frozen=True)
class CorpusVideo:
    name: str
    width: int
    height: int
    num_frames: int
    fps: float
    gop: int


CORPORA = ("natural", "synthetic")
CORPUS_LABELS = {
    "natural": "natural (a photograph panned and zoomed, sensor noise; H.264 CRF 23, 1 s "
    "keyframes)",
    "synthetic": "synthetic (painted test patterns; H.264, 1 s keyframe interval)",
}


# fps-sampled clips: 720p and 480p, a few seconds each; uniform sampling: 24 s videos.
FPS_CORPUS = tuple(
    CorpusVideo(f"clip{i}", w, h, 150, 30.0, 30)
    for i, (w, h) in enumerate(
        [
            (1280, 720),
            (1280, 720),
            (854, 480),
            (854, 480),
            (1280, 720),
            (854, 480),
            (1280, 720),
            (854, 480),
        ]
    )
)
LONG_CORPUS = tuple(CorpusVideo(f"long{i}", 854, 480, 600, 25.0, 25) for i in range(3))
# the natural corpus has one long-GOP video among the long ones, as some uploads do
NATURAL_LONG_CORPUS = LONG_CORPUS[:2] + (dataclasses.replace(LONG_CORPUS[2], gop=250),)
CLIPS_PER_VIDEO = 4  # several clips per 5 s video, as a training cache would cut them


def bench_fps_spec(preset: str = "r2plus1d_24x224") -> ClipSpec:
    """The fps-sampled preset with several clips per video (shared with `vfcache bench load`)."""
    return bench_spec(load_clip_spec(preset))


def bench_spec(spec: ClipSpec) -> ClipSpec:
    """`spec` with several clips per video where it samples by fps (`uniform` cuts one clip
    spread over the video), named `bench_<name>`; a spec that differs from the
    preset of its name (one read from a cache folder's spec.json) gets its hash in the name too,
    so that each spec has a benchmark cache folder of its own."""
    try:
        preset = load_clip_spec(spec.name)
    except ConfigError:
        preset = None
    same = preset is not None and preset.spec_hash == spec.spec_hash
    name = f"bench_{spec.name}" if same else f"bench_{spec.name}_{spec.spec_hash[:8]}"
    per_video = CLIPS_PER_VIDEO if spec.sampling == "fps" else spec.clips_per_video
    return dataclasses.replace(spec, name=name, clips_per_video=per_video)


def yuv420_twin(spec: ClipSpec) -> ClipSpec:
    """The same spec storing yuv420 planes (a spec folder of its own beside the RGB one)."""
    return dataclasses.replace(spec, name=f"{spec.name}_yuv420", pixels="yuv420")


def _make_corpus(folder: Path, videos: Sequence[CorpusVideo], corpus: str = "synthetic") -> Path:
    """Videos under folder/real/<corpus>/, generated once (a marker file says the set is
    complete)."""
    from vfcache.pipelines.sources.natural_frames import natural_frames
    from vfcache.pipelines.sources.synthetic import encode_video, make_video

    if corpus not in CORPORA:
        raise ValueError(f"benchmark corpus {corpus!r} is not one of {CORPORA}")
    marker = folder / "corpus.done"
    target = folder / "real" / corpus
    if marker.exists():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    target.mkdir(parents=True)
    for seed, video in enumerate(videos):
        path = target / f"{video.name}.mp4"
        if corpus == "natural":
            encode_video(
                path,
                natural_frames(video.width, video.height, video.num_frames, seed=seed),
                codec="h264",
                fps=video.fps,
                gop=video.gop,
                quality=23,
            )
        else:
            make_video(
                path,
                width=video.width,
                height=video.height,
                num_frames=video.num_frames,
                fps=video.fps,
                codec="h264",
                seed=seed,
                gop=video.gop,
            )
    marker.write_text("complete\n")
    return folder


def corpus_videos(corpus: str) -> tuple[tuple[CorpusVideo, ...], tuple[CorpusVideo, ...]]:
    """(fps-sampled videos, long videos for uniform sampling) of a built-in corpus."""
    return (FPS_CORPUS, NATURAL_LONG_CORPUS if corpus == "natural" else LONG_CORPUS)


def _user_videos(videos_dir: Path) -> list[Path]:
    found = sorted(
        p
        for p in Path(videos_dir).rglob("*")
        if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()
    )
    if not found:
        raise FileNotFoundError(
            f"no video files ({', '.join(VIDEO_EXTENSIONS)}) below {videos_dir}"
        )
    return found


def corpus_folder(
    root: DataRoot, videos_dir: Optional[Path] = None, corpus: str = "natural"
) -> Path:
    """The working folder of one benchmark corpus: its raw folders and its own data root.

    Keyed by the corpus (a built-in one by name, or the files below `--videos DIR` with their
    sizes and modification times), so the benchmarks, run in any order, never share a cache folder.
    """
    bench = root.path / "bench"
    if videos_dir is None:
        if corpus not in CORPORA:
            raise ValueError(f"benchmark corpus {corpus!r} is not one of {CORPORA}")
        return bench / corpus
    listing = "\n".join(
        f"{p.resolve()}\0{p.stat().st_size}\0{p.stat().st_mtime_ns}"
        for p in _user_videos(videos_dir)
    )
    return bench / f"videos-{hashlib.sha256(listing.encode()).hexdigest()[:16]}"


def _link_user_videos(videos_dir: Path, folder: Path) -> Path:
    """A raw folder of symlinks `real/user/<file>` to every video below `videos_dir`."""
    target = folder / "real" / "user"
    if folder.exists():
        shutil.rmtree(folder)
    target.mkdir(parents=True)
    found = _user_videos(videos_dir)
    for number, path in enumerate(found):
        os.symlink(path.resolve(), target / f"{number:05d}_{path.name}")
    return folder


def _bench_config(name: str, raw: Path, spec: ClipSpec) -> DatasetConfig:
    return DatasetConfig(
        name=name,
        kind="local",
        domain="bench",
        clip_spec=spec.name,
        layout=LayoutRule(pattern="{label}/{generator}/{name}"),
        splits=SplitPreset(),
        source={"path": str(raw)},
    )


def _ok_videos(root: DataRoot, config: DatasetConfig, spec: ClipSpec) -> list[VideoRecord]:
    rows = read_records(root.cache_dir(config.name, spec.name).videos_parquet, VideoRecord)
    return [row for row in rows if row.status == STATUS_OK]


def _time_per_video(
    raw: Path, videos: Sequence[VideoRecord], spec: ClipSpec, read_video: Callable
) -> float:
    """Seconds to run `read_video(path, frame_indices, info)` once per video over the frames of all
    its planned clips (as extraction reads them), probing included."""
    started = time.perf_counter()
    for video in videos:
        path = raw / video.relpath
        info = probe_video(path)
        plans = plan_clips(info.pts_s, spec, seed=start_seed(video.video_id))
        read_video(path, [i for plan in plans for i in plan.frame_indices], info)
    return time.perf_counter() - started


def _floor(path: Path, frame_indices: list[int], info) -> None:
    decode_floor(path, frame_indices, info=info)


def _decode_all(spec: ClipSpec) -> Callable:
    def read_video(path: Path, frame_indices: list[int], info) -> None:
        decode_all_then_pick(
            path, frame_indices, info=info, height=spec.height, width=spec.width, resize=spec.resize
        )

    return read_video


def _time_extract(
    root: DataRoot,
    config: DatasetConfig,
    spec: ClipSpec,
    client,
    videos_per_task: Optional[int],
    compress_thread: Optional[bool] = None,
) -> float:
    cache = root.cache_dir(config.name, spec.name)
    if (
        cache.path.exists()
    ):  # the spec folder, spec.json (and its zstd level) included; the manifest stays
        shutil.rmtree(cache.path)
    started = time.perf_counter()
    extract_clips(
        config,
        root,
        spec,
        client=client,
        videos_per_task=videos_per_task,
        progress=False,
        max_failed=None,
        compress_thread=compress_thread,
    )
    return time.perf_counter() - started


def _warm_workers(client) -> None:
    """Import the decode stack in every worker before timing, so start-up is not measured."""

    def _load() -> bool:
        import vfcache.pipelines.extract.task  # noqa: F401

        return True

    client.run(_load)


ZSTD_LEVELS = (1, 2, 3, 5, 7, 9)


def zstd_levels(
    clips: Sequence, levels: Sequence[int] = ZSTD_LEVELS, repeats: int = 3
) -> list[dict]:
    """For each zstd level, as the shard writer compresses a clip (one frame per clip, checksum
    and content size): compress and decompress MB/s (of raw clip bytes, best of `repeats`, one
    thread) and the ratio raw / compressed, over the decoded `clips`."""
    import zstandard

    from vfcache.cache_tools.shards import encode_clip

    raw_bytes = sum(clip.nbytes for clip in clips)
    rows = []
    for level in levels:
        compressor = zstandard.ZstdCompressor(
            level=level, write_checksum=True, write_content_size=True
        )
        decompressor = zstandard.ZstdDecompressor()
        compress_s, decompress_s = float("inf"), float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            frames = [encode_clip(clip, compressor) for clip in clips]
            compress_s = min(compress_s, time.perf_counter() - started)
            started = time.perf_counter()
            for frame in frames:
                decompressor.decompress(frame)
            decompress_s = min(decompress_s, time.perf_counter() - started)
        stored = sum(len(frame) for frame in frames)
        rows.append(
            {
                "level": level,
                "compress_mb_s": raw_bytes / compress_s / 1e6,
                "decompress_mb_s": raw_bytes / decompress_s / 1e6,
                "ratio": raw_bytes / stored,
                "bytes": stored,
            }
        )
    return rows


def _decoded_clips(root: DataRoot, config: DatasetConfig, spec: ClipSpec) -> list:
    from vfcache.cache_tools.shards import ShardReader
    from vfcache.manifests.records import ClipRecord

    cache = root.cache_dir(config.name, spec.name)
    readers: dict[str, ShardReader] = {}  # one per shard, not one per clip
    clips = []
    try:
        for clip in read_records(cache.clips_parquet, ClipRecord):
            if clip.shard not in readers:
                readers[clip.shard] = ShardReader(cache.resolve_shard(clip.shard))
            clips.append(readers[clip.shard].read(clip.offset, clip.nbytes, clip.clip_id))
    finally:
        for reader in readers.values():
            reader.close()
    return clips


def _check(targets: dict, name: str, value: float) -> bool:
    op, target = targets[name]
    return value <= target if op == "<=" else value >= target


def run_extract_benchmark(
    root: DataRoot,
    *,
    videos_dir: Optional[Path] = None,
    repeats: int = 3,
    fps_spec: str = "r2plus1d_24x224",
    uniform_spec: str = "videomae_16x224",
    corpus: str = "natural",
) -> dict:
    """Measure the three extraction figures; returns a JSON-ready dict (figures, timings,
    targets)."""
    bench = corpus_folder(root, videos_dir, corpus)
    fps = bench_fps_spec(fps_spec)
    uniform = load_clip_spec(uniform_spec)
    if videos_dir is not None:
        raw_fps = raw_long = _link_user_videos(Path(videos_dir), bench / "user_videos")
        corpus_name = str(videos_dir)
    else:
        fps_videos_spec, long_videos_spec = corpus_videos(corpus)
        raw_fps = _make_corpus(bench / "corpus_fps", fps_videos_spec, corpus)
        raw_long = _make_corpus(bench / "corpus_long", long_videos_spec, corpus)
        corpus_name = CORPUS_LABELS[corpus]
    broot = DataRoot(bench / "root")
    cfg_fps = _bench_config("bench_fps", raw_fps, fps)
    cfg_long = _bench_config("bench_long", raw_long, uniform)
    yuv = yuv420_twin(fps)
    cfg_yuv = _bench_config("bench_fps", raw_fps, yuv)
    build_manifest(cfg_fps, broot, fps, client=None, progress=False)
    build_manifest(cfg_yuv, broot, yuv, client=None, progress=False)
    build_manifest(cfg_long, broot, uniform, client=None, progress=False)
    fps_videos, long_videos = _ok_videos(broot, cfg_fps, fps), _ok_videos(broot, cfg_long, uniform)
    if videos_dir is None:
        long_videos = [v for v in long_videos if (v.duration_s or 0) >= 20]
    timings: dict[str, list[float]] = {
        k: []
        for k in (
            "floor",
            "extract",
            "extract_yuv420",
            "decode_all",
            "extract_uniform",
            "workers1",
            "workers2",
        )
    }
    for _ in range(repeats):  # interleaved, so drifting machine load hits both sides alike
        timings["floor"].append(_time_per_video(raw_fps, fps_videos, fps, _floor))
        timings["extract"].append(_time_extract(broot, cfg_fps, fps, None, videos_per_task=None))
        timings["extract_yuv420"].append(
            _time_extract(broot, cfg_yuv, yuv, None, videos_per_task=None)
        )
        timings["decode_all"].append(
            _time_per_video(raw_long, long_videos, uniform, _decode_all(uniform))
        )
        timings["extract_uniform"].append(
            _time_extract(broot, cfg_long, uniform, None, videos_per_task=None)
        )
    for workers in (1, 2):
        with open_cluster(workers=workers) as client:
            _warm_workers(client)
            for _ in range(repeats):
                timings[f"workers{workers}"].append(
                    _time_extract(
                        broot, cfg_fps, fps, client, videos_per_task=1, compress_thread=False
                    )
                )
    best = {name: min(values) for name, values in timings.items()}
    figures = {
        "extract_over_floor": best["extract"] / best["floor"],
        "yuv420_extract_over_floor": best["extract_yuv420"] / best["floor"],
        "decode_all_over_extract": best["decode_all"] / best["extract_uniform"],
        "workers2_over_workers1": best["workers1"] / best["workers2"],
    }
    targets = SYNTHETIC_TARGETS if videos_dir is None and corpus == "synthetic" else TARGETS
    clips_fps = pq.read_metadata(broot.cache_dir(cfg_fps.name, fps.name).clips_parquet).num_rows
    levels = zstd_levels(_decoded_clips(broot, cfg_fps, fps), repeats=repeats)
    return {
        "zstd_levels": levels,
        "benchmark": "extract",
        "corpus": corpus_name,
        "videos_fps": len(fps_videos),
        "videos_uniform": len(long_videos),
        "clips_fps": clips_fps,
        "spec_fps": fps.name,
        "spec_uniform": uniform.name,
        "repeats": repeats,
        "cpu_count": os.cpu_count(),
        "seconds_best": best,
        "seconds_median": {name: statistics.median(values) for name, values in timings.items()},
        **figures,
        "compress_thread": spare_core_per_task(None),
        "zstd_level": broot.cache_dir(cfg_fps.name, fps.name).shard_level(),
        "targets": {name: f"{op} {target}" for name, (op, target) in targets.items()},
        "meets_targets": {name: _check(targets, name, value) for name, value in figures.items()},
    }


def format_extract_table(result: dict) -> str:
    rows = [
        ("extract / floor", "extract_over_floor", f"{result['spec_fps']}, 1 worker"),
        (
            "yuv420 extract / floor",
            "yuv420_extract_over_floor",
            f"{result['spec_fps']}_yuv420, 1 worker",
        ),
        (
            "decode-all / extract",
            "decode_all_over_extract",
            f"{result['spec_uniform']}, videos >= 20 s",
        ),
        ("2 workers / 1 worker", "workers2_over_workers1", f"{result['spec_fps']}, dask"),
    ]
    lines = [
        f"corpus: {result['corpus']}; {result['videos_fps']} videos ({result['clips_fps']} clips) "
        f"for "
        f"{result['spec_fps']}, {result['videos_uniform']} for {result['spec_uniform']}; "
        f"best of {result['repeats']}",
        f"{'figure':<24}{'value':>8}  {'target':<8}{'ok':<5}conditions",
    ]
    for label, key, conditions in rows:
        ok = "yes" if result["meets_targets"][key] else "NO"
        lines.append(
            f"{label:<24}{result[key]:>8.2f}  {result['targets'][key]:<8}{ok:<5}{conditions}"
        )
    secs = result["seconds_best"]
    lines.append("seconds (best): " + ", ".join(f"{k} {v:.2f}" for k, v in secs.items()))
    lines.append(
        f"shards at zstd level {result['zstd_level']}; extract converts and compresses on a second "
        f"thread: {'yes' if result['compress_thread'] else 'no (one core)'}"
    )
    if result.get("zstd_levels"):
        lines.append(
            f"zstd on the {result['clips_fps']} decoded clips (one thread, best of "
            f"{result['repeats']}):"
        )
        lines.append(f"  {'level':>5}{'compress MB/s':>15}{'decompress MB/s':>17}{'ratio':>7}")
        for row in result["zstd_levels"]:
            lines.append(
                f"  {row['level']:>5}{row['compress_mb_s']:>15.0f}{row['decompress_mb_s']:>17.0f}"
                f"{row['ratio']:>7.2f}"
            )
    return "\n".join(lines)
