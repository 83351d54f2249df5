"""The probe stage (`vfcache build-manifest`): every raw video -> one row of `videos.parquet`.

The source lists and labels the videos; dask tasks of a few files each hash every file
(`video_id` = sha256 of its bytes) and probe it (codec, size, rotation, fps, frame count,
duration). A file that cannot be read gets a row with status `failed` and the reason
(`<slug>: <detail>`, the slug from `VideoReadError.reason`); a second file with the same bytes
as an earlier one is `skipped` (its clips would share clip ids and leak across splits).

What was probed is remembered per dataset in `cache/<dataset>/probe_state.parquet` (relpath,
size, mtime and the probe facts), so a re-run, or the manifest of a second clip spec, only
probes files that are new or changed. Labels always come fresh from the source.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from vfcache.cache_tools.writer_lock import writer_lock
from vfcache.manifests.parquet_io import read_records, write_records
from vfcache.manifests.records import STATUS_FAILED, STATUS_OK, STATUS_SKIPPED, VideoRecord
from vfcache.pipelines.decode import VideoReadError
from vfcache.pipelines.decode.media import media_sha256, media_stat, probe_media
from vfcache.pipelines.ignored import IGNORED_FILES_NAME, IgnoredFiles, find_ignored, write_ignored
from vfcache.pipelines.runner import run_tasks
from vfcache.pipelines.sources.base import VideoCandidate, get_source

from vfcache.config import ClipSpec, DatasetConfig
from vfcache.errors import StageError
from vfcache.layout import VIDEOS_PARQUET_NAME, DataRoot

log = logging.getLogger(__name__)

PROBE_STATE_NAME = "probe_state.parquet"


@dataclass(frozen=True)
class ProbedFile:
    """What probing one file found; independent of labels and of the clip spec."""

    relpath: str
    bytes: int
    mtime_ns: int
    video_id: str
    codec: Optional[str]
    width: Optional[int]
    height: Optional[int]
    rotation: int
    fps: Optional[float]
    num_frames: Optional[int]
    duration_s: Optional[float]
    status: str  # ok / failed
    reason: Optional[str]


@dataclass(frozen=True)
class ProbeTask:
    raw_dir: str
    relpaths: tuple[str, ...]


@dataclass(frozen=True)
class ManifestReport:
    dataset: str
    videos_parquet: str
    videos_total: int
    videos_ok: int
    videos_failed: int
    videos_skipped: int
    probed: int  # files probed by this run
    reused: int  # files unchanged since an earlier probe
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    ignored: IgnoredFiles = field(default_factory=IgnoredFiles)
    ignored_path: str = ""


def read_error_reason(err: Exception) -> str:
    """`<slug>: <detail>` for a VideoReadError (its own fields, never parsed back from the
    message)."""
    return f"{getattr(err, 'reason', 'decode_error')}: {getattr(err, 'detail', str(err))}"


def probe_file(raw_dir: Path, relpath: str) -> ProbedFile:
    """Hash and probe one file; an unreadable file becomes a `failed` row, never an exception."""
    try:  # a video file, or a keyframe row of a parquet table (see vfcache.pipelines.decode.media)
        size, mtime_ns = media_stat(raw_dir, relpath)
        video_id = media_sha256(raw_dir, relpath)
    except (OSError, VideoReadError) as err:
        # No bytes to hash: an id from the path keeps the failure row addressable.
        if isinstance(err, VideoReadError):
            reason = read_error_reason(err)
        else:
            reason = f"unreadable: {err.strerror or err}"
        return ProbedFile(
            relpath=relpath,
            bytes=0,
            mtime_ns=0,
            video_id="unreadable-" + hashlib.sha256(relpath.encode()).hexdigest(),
            codec=None,
            width=None,
            height=None,
            rotation=0,
            fps=None,
            num_frames=None,
            duration_s=None,
            status=STATUS_FAILED,
            reason=reason,
        )
    common = dict(relpath=relpath, bytes=size, mtime_ns=mtime_ns, video_id=video_id)
    try:
        info = probe_media(raw_dir, relpath)
    except VideoReadError as err:
        return ProbedFile(
            **common,
            codec=None,
            width=None,
            height=None,
            rotation=0,
            fps=None,
            num_frames=None,
            duration_s=None,
            status=STATUS_FAILED,
            reason=read_error_reason(err),
        )
    return ProbedFile(
        **common,
        codec=info.codec,
        width=info.width,
        height=info.height,
        rotation=info.rotation,
        fps=info.fps,
        num_frames=info.num_frames,
        duration_s=info.duration_s,
        status=STATUS_OK,
        reason=None,
    )


def probe_batch(task: ProbeTask) -> list[ProbedFile]:
    """One dask task: probe a few files."""
    raw_dir = Path(task.raw_dir)
    return [probe_file(raw_dir, relpath) for relpath in task.relpaths]


def load_probe_state(path: Path) -> dict[str, ProbedFile]:
    if not path.exists():
        return {}
    try:
        return {row.relpath: row for row in read_records(path, ProbedFile)}
    except (ValueError, OSError) as err:
        log.warning("ignoring unreadable probe state %s (%s); probing every file again", path, err)
        return {}


def files_per_task(num_files: int, num_workers: int) -> int:
    """About four tasks per worker for balance, at most 32 files per task."""
    return max(1, min(32, math.ceil(num_files / max(1, 4 * num_workers))))


def _worker_count(client) -> int:
    return 1 if client is None else max(1, sum(client.nthreads().values()))


def _unchanged(previous: Optional[ProbedFile], raw_dir: Path, relpath: str) -> bool:
    if previous is None:
        return False
    try:
        size, mtime_ns = media_stat(raw_dir, relpath)
    except (OSError, VideoReadError):
        return False
    return size == previous.bytes and mtime_ns == previous.mtime_ns


def video_record(dataset: str, candidate: VideoCandidate, probed: ProbedFile) -> VideoRecord:
    return VideoRecord(
        video_id=probed.video_id,
        dataset=dataset,
        domain=candidate.domain,
        relpath=candidate.relpath,
        label=candidate.label,
        generator=candidate.generator,
        group=candidate.group,
        source_split=candidate.source_split,
        bytes=probed.bytes,
        codec=probed.codec,
        width=probed.width,
        height=probed.height,
        rotation=probed.rotation,
        fps=probed.fps,
        num_frames=probed.num_frames,
        duration_s=probed.duration_s,
        status=probed.status,
        reason=probed.reason,
    )


def mark_duplicates(records: list[VideoRecord]) -> list[VideoRecord]:
    """Keep the first file (by relpath) of each set of byte-identical files; skip the others."""
    first_of: dict[str, str] = {}
    result = []
    for rec in records:
        if rec.status == STATUS_OK and rec.video_id in first_of:
            rec = dataclasses.replace(
                rec,
                status=STATUS_SKIPPED,
                reason=f"duplicate: same bytes as {first_of[rec.video_id]}",
            )
        elif rec.status == STATUS_OK:
            first_of[rec.video_id] = rec.relpath
        result.append(rec)
    return result


def reason_counts(reasons: list[str]) -> dict[str, int]:
    """Failures by slug (the part of the reason before the first colon)."""
    return dict(sorted(collections.Counter(r.split(":", 1)[0] for r in reasons).items()))


def build_manifest(
    config: DatasetConfig,
    root: DataRoot,
    spec: Optional[ClipSpec] = None,
    *,
    client,
    progress: bool = True,
    force: bool = False,
    wait: bool = True,
) -> ManifestReport:
    """Probe every video of `config`'s dataset into `cache/<dataset>/videos.parquet`.

    One manifest per dataset, whatever clip specs are extracted from it: probing does not depend
    on the spec (`spec` is accepted for callers that have one, and unused). `client` is a dask
    `Client` (see `vfcache.pipelines.runner.open_cluster`) or None to probe in this process. `force`
    probes every file again even when it is unchanged.
    """
    started = time.perf_counter()
    source = get_source(config)
    raw_dir = Path(source.raw_dir(root))
    if not raw_dir.is_dir():
        raise StageError(
            f"raw folder {raw_dir} of dataset {config.name!r} is missing; run `vfcache fetch "
            f"{config.name}`"
        )
    candidates = source.list_videos(root)
    if not candidates:
        raise StageError(f"dataset {config.name!r} has no videos below {raw_dir}")
    folder = root.dataset_dir(config.name)
    with writer_lock(folder, f"build-manifest of {config.name}", wait=wait):
        return _probe_locked(
            config,
            folder,
            raw_dir,
            candidates,
            client=client,
            progress=progress,
            force=force,
            started=started,
        )


def _probe_locked(
    config: DatasetConfig,
    folder: Path,
    raw_dir: Path,
    candidates: list[VideoCandidate],
    *,
    client,
    progress: bool,
    force: bool,
    started: float,
) -> ManifestReport:
    videos_parquet = folder / VIDEOS_PARQUET_NAME
    state_path = folder / PROBE_STATE_NAME
    previous = {} if force else load_probe_state(state_path)

    probed: dict[str, ProbedFile] = {}
    to_probe = []
    for candidate in candidates:
        old = previous.get(candidate.relpath)
        if _unchanged(old, raw_dir, candidate.relpath):
            probed[candidate.relpath] = old
        else:
            to_probe.append(candidate.relpath)
    reused = len(probed)
    batch = files_per_task(len(to_probe), _worker_count(client))
    tasks = [
        ProbeTask(str(raw_dir), tuple(to_probe[i : i + batch]))
        for i in range(0, len(to_probe), batch)
    ]
    for results in run_tasks(client, probe_batch, tasks, f"probe {config.name}", progress=progress):
        for row in results:
            probed[row.relpath] = row

    records = mark_duplicates([video_record(config.name, c, probed[c.relpath]) for c in candidates])
    records.sort(key=lambda rec: rec.relpath)
    write_records(videos_parquet, records, VideoRecord)
    ignored = find_ignored(raw_dir, (c.relpath for c in candidates))
    ignored_path = write_ignored(folder / IGNORED_FILES_NAME, ignored)
    # Keep state for files of other listings too (a changed layout must not force re-hashing).
    merged_state = {**previous, **probed}
    write_records(
        state_path, sorted(merged_state.values(), key=lambda row: row.relpath), ProbedFile
    )

    counts = collections.Counter(rec.status for rec in records)
    failures = reason_counts([rec.reason for rec in records if rec.status != STATUS_OK])
    report = ManifestReport(
        dataset=config.name,
        videos_parquet=str(videos_parquet),
        videos_total=len(records),
        videos_ok=counts[STATUS_OK],
        videos_failed=counts[STATUS_FAILED],
        videos_skipped=counts[STATUS_SKIPPED],
        probed=len(to_probe),
        reused=reused,
        failures_by_reason=failures,
        seconds=time.perf_counter() - started,
        ignored=ignored,
        ignored_path=str(ignored_path),
    )
    log.info(
        "manifest %s: %d videos, %d ok, %d failed, %d skipped (probed %d, reused %d)",
        videos_parquet,
        report.videos_total,
        report.videos_ok,
        report.videos_failed,
        report.videos_skipped,
        report.probed,
        report.reused,
    )
    if ignored.total:
        log.info("%s: %s (see %s)", raw_dir, ignored.describe(), ignored_path)
    if failures:
        log.warning(
            "probe failures by reason: %s", ", ".join(f"{k}={v}" for k, v in failures.items())
        )
    return report
