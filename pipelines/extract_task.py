"""One extraction task, as a dask worker runs it: a fixed batch of videos -> its own shards.

Task `<writer>` owns `shards/shard-<writer>-<n>.npy.zst`, their indexes
`shard-<writer>-<n>.index.parquet` and `task-<writer>.done.json`; nothing else writes them.
Per clip the work is plan -> `read_frames` -> `ShardWriter.append`. A shard rolls over as soon
as its bytes reach the target, so the shard boundaries depend only on the clips, never on
timing: a resumed task reproduces the shards of an uninterrupted run byte for byte.

Commit order makes crashes harmless: the shard is fsynced and renamed, then its index is
written (the index is the commit point), then the next shard starts; the done file comes
last. On (re)start the task removes its own temp files and a final shard without index
(an orphan), skips every clip already listed in its indexes and numbers on from there.
All clips of a video are decoded before any is written, so a video that fails mid-way
leaves no clips behind.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cache_tools.atomic import TEMP_MARK, write_json_atomic
from cache_tools.shards import SHARD_SUFFIX, ShardWriter
from manifests.parquet_io import read_records, write_records
from manifests.records import ClipRecord, FailureRecord, VideoRecord, make_clip_id, record_from_dict
from pipelines.decode import VideoReadError
from pipelines.frames import ClipPlan, VideoTooShort, plan_clips
from pipelines.media import media_stat, probe_media, read_media_frames
from pipelines.probe import read_error_reason
from vfcache.config import ClipSpec

log = logging.getLogger(__name__)

INDEX_SUFFIX = ".index.parquet"
SHARD_NAME = re.compile(r"^shard-(?P<writer>\d+)-(?P<n>\d+)" + re.escape(SHARD_SUFFIX) + "$")
INDEX_NAME = re.compile(r"^shard-(?P<writer>\d+)-(?P<n>\d+)" + re.escape(INDEX_SUFFIX) + "$")
DONE_NAME = re.compile(r"^task-(?P<writer>\d+)\.done\.json$")
REASON_TOO_SHORT = "too_short"
REASON_CHANGED = "changed"


def shard_name(writer: str, n: int) -> str:
    return f"shard-{writer}-{n:04d}{SHARD_SUFFIX}"


def index_name(writer: str, n: int) -> str:
    return f"shard-{writer}-{n:04d}{INDEX_SUFFIX}"


def done_name(writer: str) -> str:
    return f"task-{writer}.done.json"


def start_seed(video_id: str) -> int:
    """The random-start seed of a video: from its content, so every run picks the same clips."""
    return int(hashlib.sha256(video_id.encode()).hexdigest()[:16], 16)


class SourceChanged(RuntimeError):
    """The video file is not the one the manifest describes."""


@dataclass(frozen=True)
class ExtractTask:
    writer: str
    cache_path: str
    raw_dir: str
    spec: ClipSpec
    videos: tuple[VideoRecord, ...]
    reader: str
    shard_target_bytes: int
    decoder_threads: int = 1
    # the video ids the plan gave the task; `videos` may be fewer when some left the manifest
    # since (their clips from an earlier, interrupted run stay in the task's indexes)
    planned_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskOutcome:
    writer: str
    already_done: bool  # the done file was there before this run
    clips: int  # clips of the task in final shards
    clips_written: int  # of which this run wrote
    shards: int
    shard_bytes: int
    failures: tuple[FailureRecord, ...]
    decode_s: float
    write_s: float


def final_shards(shards_dir: Path, writer: str) -> list[int]:
    """Shard numbers of `writer` whose index exists (final), sorted."""
    numbers = []
    for path in shards_dir.glob(f"shard-{writer}-*{INDEX_SUFFIX}"):
        match = INDEX_NAME.match(path.name)
        if match and match["writer"] == writer:
            numbers.append(int(match["n"]))
    return sorted(numbers)


def remove_leftovers(shards_dir: Path, writer: str) -> list[Path]:
    """Delete `writer`'s temp files and its shards that have no index (crash before the commit point)."""
    removed = []
    indexed = set(final_shards(shards_dir, writer))
    for path in sorted(shards_dir.glob(f"*-{writer}*")):
        shard = SHARD_NAME.match(path.name)
        is_orphan = shard is not None and shard["writer"] == writer and int(shard["n"]) not in indexed
        is_temp = TEMP_MARK in path.name and (path.name.startswith(f"shard-{writer}-") or path.name.startswith(f"task-{writer}."))
        if is_orphan or is_temp:
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("task %s: removed %d leftover file(s) of an interrupted run", writer, len(removed))
    return removed


class ShardRoller:
    """Appends clips to `shard-<writer>-<n>`, committing shard and index whenever the target is reached."""

    def __init__(self, cache_path: Path, writer: str, first_n: int, target_bytes: int):
        self.cache_path = cache_path
        self.shards_dir = cache_path / "shards"
        self.writer_id = writer
        self.n = first_n
        self.target_bytes = target_bytes
        self._writer: ShardWriter | None = None
        self._records: list[ClipRecord] = []
        self.committed_shards = 0
        self.committed_bytes = 0

    def append(self, video: VideoRecord, clip_id: str, plan: ClipPlan, clip: np.ndarray) -> None:
        if self._writer is None:
            self._writer = ShardWriter(self.shards_dir / shard_name(self.writer_id, self.n))
        entry = self._writer.append(clip)
        self._records.append(ClipRecord(
            clip_id=clip_id, video_id=video.video_id, clip_index=plan.clip_index,
            frame_indices=tuple(plan.frame_indices), timestamps_s=tuple(plan.timestamps_s),
            padded_frames=plan.padded_frames, short_policy=plan.short_policy,
            shard=f"shards/{shard_name(self.writer_id, self.n)}", offset=entry.offset, nbytes=entry.nbytes,
            dataset=video.dataset, domain=video.domain, relpath=video.relpath, label=video.label,
            generator=video.generator, group=video.group, source_split=video.source_split,
        ))
        if self._writer.bytes_written >= self.target_bytes:
            self.commit()

    def commit(self) -> None:
        if self._writer is None:
            return
        self._writer.commit()
        write_records(self.shards_dir / index_name(self.writer_id, self.n), self._records, ClipRecord)
        self.committed_shards += 1
        self.committed_bytes += self._writer.bytes_written
        self._writer, self._records = None, []
        self.n += 1

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer, self._records = None, []


def cut_clips(task: ExtractTask, video: VideoRecord, skip: frozenset[int]) -> list[tuple[ClipPlan, np.ndarray]]:
    """Every clip of `video` whose index is not in `skip`, decoded; raises VideoReadError / VideoTooShort."""
    path = Path(task.raw_dir) / video.relpath  # a file, or a keyframe row `<table>.parquet#<row>`
    try:
        size = media_stat(task.raw_dir, video.relpath)[0]
    except OSError:
        size = None
    if size != video.bytes:
        found = "is missing" if size is None else f"is {size} bytes"
        raise SourceChanged(f"{path} {found}, the manifest says {video.bytes} bytes; run build-manifest again")
    info = probe_media(task.raw_dir, video.relpath)
    plans = plan_clips(info.pts_s, task.spec, seed=start_seed(video.video_id))
    wanted = [plan for plan in plans if plan.clip_index not in skip]
    if not wanted:
        return []
    # One read for all clips of the video: the container is opened and sought once, and frames
    # shared by overlapping windows are decoded once.
    frames = read_media_frames(
        task.raw_dir, video.relpath, [i for plan in wanted for i in plan.frame_indices], info=info,
        height=task.spec.height, width=task.spec.width, resize=task.spec.resize, reader=task.reader,
        decoder_threads=task.decoder_threads,
    )
    bounds = np.cumsum([len(plan.frame_indices) for plan in wanted])[:-1]
    return list(zip(wanted, np.split(frames, bounds)))


def failure(video: VideoRecord, reason: str) -> FailureRecord:
    return FailureRecord(video_id=video.video_id, relpath=video.relpath, stage="extract", reason=reason)


def load_done(path: Path) -> dict:
    payload = json.loads(path.read_text(encoding="utf-8"))
    payload["failures"] = [record_from_dict(FailureRecord, row) for row in payload["failures"]]
    return payload


def outcome_from_done(writer: str, payload: dict) -> TaskOutcome:
    return TaskOutcome(
        writer=writer, already_done=True, clips=payload["clips"], clips_written=0, shards=payload["shards"],
        shard_bytes=payload["shard_bytes"], failures=tuple(payload["failures"]), decode_s=0.0, write_s=0.0,
    )


@dataclass(frozen=True)
class FinalState:
    """What earlier runs of a task left final: clip indexes per video, and the next shard number."""

    clip_indices: dict[str, frozenset[int]]
    clips: int
    shards: int
    shard_bytes: int
    next_shard: int


def load_final_state(shards_dir: Path, task: ExtractTask) -> FinalState:
    numbers = final_shards(shards_dir, task.writer)
    indices: dict[str, set[int]] = {}
    clips = shard_bytes = 0
    for n in numbers:
        for rec in read_records(shards_dir / index_name(task.writer, n), ClipRecord):
            indices.setdefault(rec.video_id, set()).add(rec.clip_index)
            clips += 1
        shard_bytes += (shards_dir / shard_name(task.writer, n)).stat().st_size
    foreign = set(indices) - {video.video_id for video in task.videos} - set(task.planned_ids)
    if foreign:  # the driver checks this first; a task must never mix two manifests either
        raise RuntimeError(
            f"shards of task {task.writer} in {shards_dir} hold clips of {len(foreign)} videos outside "
            "the task; the manifest changed since they were written"
        )
    return FinalState(
        clip_indices={video_id: frozenset(found) for video_id, found in indices.items()}, clips=clips,
        shards=len(numbers), shard_bytes=shard_bytes, next_shard=numbers[-1] + 1 if numbers else 0,
    )


def extract_videos(task: ExtractTask, final: FinalState, roller: ShardRoller) -> tuple[list[FailureRecord], int, float, float]:
    """Decode and append every clip not yet final; returns (failures, clips written, decode s, write s)."""
    failures: list[FailureRecord] = []
    written = 0
    decode_s = write_s = 0.0
    for video in task.videos:
        tic = time.perf_counter()
        try:
            clips = cut_clips(task, video, final.clip_indices.get(video.video_id, frozenset()))
        except VideoTooShort as err:
            failures.append(failure(video, f"{REASON_TOO_SHORT}: {err}"))
            continue
        except VideoReadError as err:
            failures.append(failure(video, read_error_reason(err)))
            continue
        except SourceChanged as err:
            failures.append(failure(video, f"{REASON_CHANGED}: {err}"))
            continue
        finally:
            decode_s += time.perf_counter() - tic
        tic = time.perf_counter()
        for plan, clip in clips:
            roller.append(video, make_clip_id(video.video_id, task.spec.spec_hash, plan.clip_index), plan, clip)
            written += 1
        write_s += time.perf_counter() - tic
    tic = time.perf_counter()
    roller.commit()
    return failures, written, decode_s, write_s + time.perf_counter() - tic


def run_extract_task(task: ExtractTask) -> TaskOutcome:
    """Extract the task's videos into its shards; resumable, and a no-op once the done file exists."""
    shards_dir = Path(task.cache_path) / "shards"
    shards_dir.mkdir(parents=True, exist_ok=True)
    done_path = shards_dir / done_name(task.writer)
    if done_path.exists():
        return outcome_from_done(task.writer, load_done(done_path))
    remove_leftovers(shards_dir, task.writer)
    final = load_final_state(shards_dir, task)
    roller = ShardRoller(Path(task.cache_path), task.writer, final.next_shard, task.shard_target_bytes)
    try:
        failures, written, decode_s, write_s = extract_videos(task, final, roller)
    except BaseException:
        roller.abort()
        raise
    outcome = TaskOutcome(
        writer=task.writer, already_done=False, clips=final.clips + written, clips_written=written,
        shards=final.shards + roller.committed_shards, shard_bytes=final.shard_bytes + roller.committed_bytes,
        failures=tuple(failures), decode_s=decode_s, write_s=write_s,
    )
    write_json_atomic(done_path, {
        "writer": task.writer, "spec_hash": task.spec.spec_hash,
        "video_ids": [video.video_id for video in task.videos],
        "clips": outcome.clips, "shards": outcome.shards, "shard_bytes": outcome.shard_bytes,
        "failures": [asdict(rec) for rec in failures],
    })
    log.debug("task %s: %d clips (%d new) in %d shards, %d failures, decode %.1fs write %.1fs",
              task.writer, outcome.clips, written, outcome.shards, len(failures), decode_s, write_s)
    return outcome
