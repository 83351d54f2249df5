"""The embedded `sample` dataset: a few dozen synthetic videos generated on the machine.

``generate_sample(raw_dir)`` writes ``raw_dir/<domain>/<label>/<generator>/<name>.<ext>``
(domains ``studio`` and ``street``; real sources ``camera`` and ``phone``; fake generators
``diffgen`` (over-smoothed), ``warpnet`` (warped) and ``flickr3`` (flicker)) and
``raw_dir/truth.json`` with the :class:`~vfcache.pipelines.sources.synthetic.VideoTruth` of every
file. The set covers what the pipeline must handle: H.264, MPEG-4 and VP9 in mp4, mkv, avi
and webm; 24, 25, 29.97 and 30 fps and one variable-frame-rate video; 160-720 px wide, one
portrait and one with 90-degree rotation metadata; plus three deliberately broken files
(too short for the 8-frames-at-8-fps sample spec, truncated, not a video). Everything is
fixed by seeds in :func:`sample_plan`, so every machine generates the same videos.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from tqdm import tqdm
from vfcache.pipelines.sources.synthetic import (
    TEMP_MARK,
    VideoTruth,
    make_video,
    truncate_copy,
    write_bytes_atomic,
    write_not_a_video,
)

from vfcache.atomic import remove_stale_temp_files

log = logging.getLogger(__name__)

TRUTH_FILE = "truth.json"
TRUTH_VERSION = 1
DOMAINS = ("studio", "street")
REAL_SOURCES = {"camera": 6, "phone": 6}  # source -> videos per domain
FAKE_GENERATORS = {"diffgen": "smooth", "warpnet": "warp", "flickr3": "flicker"}
FAKES_PER_GENERATOR = 4
_CODEC_CYCLE = ("h264", "mpeg4", "vp9")
_FPS_CYCLE = (Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30))
_SIZE_CYCLE = (
    (320, 240),
    (160, 120),
    (426, 240),
    (640, 360),
    (240, 180),
    (480, 270),
    (720, 404),
    (512, 288),
    (720, 480),
)
_DURATION_CYCLE_S = (2.0, 3.0, 2.5, 2.0, 4.0)
_GOP_CYCLE = (250, 12, 30, 48)


@dataclass(frozen=True)
class SampleVideo:
    """One planned file of the sample dataset (``defect`` names what is wrong with it)."""

    relpath: str
    domain: str
    label: str  # "real" or "fake"
    generator: str
    width: int  # displayed
    height: int
    num_frames: int
    fps: Fraction
    codec: str
    artifact: str | None
    seed: int
    scene: str
    quality: int
    rotation_deg: int = 0
    pts_s: tuple[float, ...] | None = None
    gop: int | None = None
    defect: str | None = None  # None, "too_short", "truncated" or "not_a_video"
    reason: str | None = None


@dataclass(frozen=True)
class SampleEntry:
    """One file of a generated sample dataset, as recorded in truth.json."""

    relpath: str
    domain: str
    label: str
    generator: str
    bytes: int
    defect: str | None
    reason: str | None
    truth: VideoTruth | None  # None for the file that is not a video

    @property
    def usable(self) -> bool:
        return self.defect is None


@dataclass(frozen=True)
class SampleReport:
    raw_dir: Path
    truth_path: Path
    num_files: int
    num_usable: int
    num_broken: int
    num_written: int  # files written by this run (0 when the folder was already complete)
    elapsed_s: float


def _suffix(codec: str, position: int) -> str:
    if codec == "vp9":
        return ".webm"
    if codec == "mpeg4":
        return ".avi" if position % 2 == 0 else ".mp4"
    return ".mkv" if position % 4 == 3 else ".mp4"


def _vfr_pts_s(num_frames: int, seed: int) -> tuple[float, ...]:
    """Frame times with gaps of 1/30, 1/20 and 1/15 s in a fixed pseudo-random order."""
    gaps_ms = (33.333, 50.0, 66.667)
    times, now = [], 0.0
    for index in range(num_frames):
        times.append(round(now, 3))
        now += gaps_ms[(index * 7 + seed) % 3] / 1000.0
    return tuple(times)


def _usable_videos() -> list[SampleVideo]:
    roles = [("real", source, None, count) for source, count in REAL_SOURCES.items()]
    roles += [
        ("fake", name, artifact, FAKES_PER_GENERATOR) for name, artifact in FAKE_GENERATORS.items()
    ]
    videos, position = [], 0
    for domain_index, domain in enumerate(DOMAINS):
        for label, generator, artifact, count in roles:
            for k in range(count):
                codec = _CODEC_CYCLE[(position + domain_index) % len(_CODEC_CYCLE)]
                fps = _FPS_CYCLE[position % len(_FPS_CYCLE)]
                width, height = _SIZE_CYCLE[(position * 5) % len(_SIZE_CYCLE)]
                duration_s = _DURATION_CYCLE_S[position % len(_DURATION_CYCLE_S)]
                name = f"{generator}_{domain}_{k:02d}"
                videos.append(
                    SampleVideo(
                        relpath=f"{domain}/{label}/{generator}/{name}{_suffix(codec, position)}",
                        domain=domain,
                        label=label,
                        generator=generator,
                        width=width,
                        height=height,
                        num_frames=round(duration_s * fps),
                        fps=fps,
                        codec=codec,
                        artifact=artifact,
                        seed=1000 + position,
                        scene=domain,
                        quality=20 + (position * 3) % 9,
                        gop=_GOP_CYCLE[position % len(_GOP_CYCLE)],
                    )
                )
                position += 1
    return videos


def _with_special(video: SampleVideo, **changes) -> SampleVideo:
    return SampleVideo(**{**asdict(video), **changes})


def sample_plan() -> tuple[SampleVideo, ...]:
    """Every file of the sample dataset, in a fixed order (pure: no I/O, no randomness)."""
    videos = _usable_videos()
    by_name = {Path(v.relpath).stem: i for i, v in enumerate(videos)}
    # one rotated phone video (stored landscape, shown portrait), one plain portrait fake,
    # one variable-frame-rate phone video; all H.264 in containers that carry them
    rotated = videos[by_name["phone_street_00"]]
    videos[by_name["phone_street_00"]] = _with_special(
        rotated,
        width=360,
        height=640,
        codec="h264",
        rotation_deg=90,
        relpath=rotated.relpath.rsplit(".", 1)[0] + ".mp4",
    )
    portrait = videos[by_name["diffgen_studio_01"]]
    videos[by_name["diffgen_studio_01"]] = _with_special(
        portrait,
        width=270,
        height=480,
        codec="h264",
        relpath=portrait.relpath.rsplit(".", 1)[0] + ".mp4",
    )
    vfr = videos[by_name["phone_studio_01"]]
    videos[by_name["phone_studio_01"]] = _with_special(
        vfr,
        codec="h264",
        fps=Fraction(20),
        num_frames=70,
        pts_s=_vfr_pts_s(70, vfr.seed),
        relpath=vfr.relpath.rsplit(".", 1)[0] + ".mkv",
    )
    broken_common = dict(
        width=320,
        height=240,
        fps=Fraction(25),
        codec="h264",
        artifact=None,
        scene="studio",
        quality=23,
    )
    videos += [
        SampleVideo(
            relpath="studio/real/camera/too_short.mp4",
            domain="studio",
            label="real",
            generator="camera",
            num_frames=3,
            seed=901,
            defect="too_short",
            reason="3 frames (0.12 s): shorter than one 8-frames-at-8-fps clip",
            **broken_common,
        ),
        SampleVideo(
            relpath="street/real/camera/truncated.mp4",
            domain="street",
            label="real",
            generator="camera",
            num_frames=75,
            seed=902,
            gop=12,
            defect="truncated",
            reason="valid header (faststart mp4), bytes cut at 50%",
            **broken_common,
        ),
        SampleVideo(
            relpath="studio/fake/flickr3/not_a_video.mp4",
            domain="studio",
            label="fake",
            generator="flickr3",
            num_frames=0,
            seed=903,
            defect="not_a_video",
            reason="text bytes with an .mp4 name",
            **broken_common,
        ),
    ]
    return tuple(videos)


def _generate_one(video: SampleVideo, raw_dir: Path) -> SampleEntry:
    """Write one planned file (atomically) and return its truth entry."""
    path = raw_dir / video.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    truth = None
    if video.defect == "not_a_video":
        write_not_a_video(path)
    else:
        target = path
        if video.defect == "truncated":  # the intact video is a temporary file
            target = path.with_name(f"{path.name}{TEMP_MARK}source{path.suffix}")
        truth = make_video(
            target,
            width=video.width,
            height=video.height,
            num_frames=video.num_frames,
            fps=video.fps,
            codec=video.codec,
            artifact=video.artifact,
            seed=video.seed,
            rotation_deg=video.rotation_deg,
            pts_s=video.pts_s,
            gop=video.gop,
            scene=video.scene,
            quality=video.quality,
            threads=1,
        )
        if video.defect == "truncated":
            truncate_copy(target, path, keep_fraction=0.5)
            target.unlink()
    return SampleEntry(
        relpath=video.relpath,
        domain=video.domain,
        label=video.label,
        generator=video.generator,
        bytes=path.stat().st_size,
        defect=video.defect,
        reason=video.reason,
        truth=truth,
    )


def _entry_to_json(entry: SampleEntry) -> dict:
    return {**asdict(entry), "truth": asdict(entry.truth) if entry.truth else None}


def read_truth(raw_dir: Path) -> tuple[SampleEntry, ...]:
    """The entries of ``raw_dir/truth.json``; raises ``ValueError`` on a foreign file."""
    path = Path(raw_dir) / TRUTH_FILE
    document = json.loads(path.read_text(encoding="utf-8"))
    if document.get("version") != TRUTH_VERSION:
        raise ValueError(
            f"{path}: truth version {document.get('version')!r}, "
            f"expected {TRUTH_VERSION}; delete the folder to regenerate it"
        )
    return tuple(
        SampleEntry(**{**row, "truth": row["truth"] and VideoTruth.from_json(row["truth"])})
        for row in document["files"]
    )


def _intact_entries(raw_dir: Path, plan: tuple[SampleVideo, ...]) -> dict[str, SampleEntry]:
    """Entries of an earlier run whose file is still there with its recorded size."""
    try:
        entries = read_truth(raw_dir)
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.info("no usable %s in %s (%s): generating every file", TRUTH_FILE, raw_dir, err)
        return {}
    planned = {v.relpath for v in plan}
    return {
        e.relpath: e
        for e in entries
        if e.relpath in planned
        and (raw_dir / e.relpath).is_file()
        and (raw_dir / e.relpath).stat().st_size == e.bytes
    }


def generate_sample(raw_dir: Path, *, workers: int = 2, progress: bool = True) -> SampleReport:
    """Generate the sample dataset into ``raw_dir``; a no-op when it is already complete.

    Files are written to temporary names and renamed; ``truth.json`` is written last. A
    later run regenerates only the files that are missing or whose size differs from
    truth.json (all of them when truth.json is missing), and removes stale temporary files.
    """
    started = time.perf_counter()
    raw_dir = Path(raw_dir)
    plan = sample_plan()
    intact = _intact_entries(raw_dir, plan)
    missing = [video for video in plan if video.relpath not in intact]
    if missing:
        raw_dir.mkdir(parents=True, exist_ok=True)
        for stale in remove_stale_temp_files(raw_dir):
            log.info("removed stale temporary file %s", stale)
        # biggest first, so the pool does not end waiting on one large video
        missing.sort(key=lambda v: -v.width * v.height * v.num_frames)
        intact.update((e.relpath, e) for e in _run_pool(missing, raw_dir, workers, progress))
        document = {
            "version": TRUTH_VERSION,
            "files": [_entry_to_json(intact[v.relpath]) for v in plan],
        }
        write_bytes_atomic(raw_dir / TRUTH_FILE, (json.dumps(document, indent=1) + "\n").encode())
    entries = [intact[v.relpath] for v in plan]
    elapsed_s = time.perf_counter() - started
    usable = sum(e.usable for e in entries)
    log.info(
        "sample dataset at %s: %d files (%d usable), %d written in %.1f s",
        raw_dir,
        len(entries),
        usable,
        len(missing),
        elapsed_s,
    )
    return SampleReport(
        raw_dir=raw_dir,
        truth_path=raw_dir / TRUTH_FILE,
        num_files=len(entries),
        num_usable=usable,
        num_broken=len(entries) - usable,
        num_written=len(missing),
        elapsed_s=elapsed_s,
    )


def _run_pool(
    order: list[SampleVideo], raw_dir: Path, workers: int, progress: bool
) -> list[SampleEntry]:
    if workers < 1:
        raise ValueError(f"workers={workers}; expected >= 1")
    bar = tqdm(total=len(order), desc="sample videos", unit="video", disable=not progress)
    with bar:
        if workers == 1:
            return [_tick(bar, _generate_one(video, raw_dir)) for video in order]
        # spawn: the caller may hold threads (torch, dask) that fork would copy mid-state
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_generate_one, video, raw_dir) for video in order]
            return [_tick(bar, future.result()) for future in futures]


def _tick(bar: tqdm, entry: SampleEntry) -> SampleEntry:
    bar.update(1)
    return entry
