"""One extraction task, as a dask worker runs it: a fixed batch of videos -> its own shards.

Task `<writer>` owns `shards/shard-<writer>-<n>.npy.zst`, their indexes
`shard-<writer>-<n>.index.parquet` and `task-<writer>.done.json`; nothing else writes them.
Per clip the work is plan -> `read_frames` -> compress (`encode_clip`) ->
`ShardWriter.append_frame`.
With `compress_thread`, a clip is compressed on a second thread as soon as its last frame is
decoded, while the decoder goes on with the next clip or video (FFmpeg and zstd both release
the GIL); clips are still appended in the same order, so the bytes do not change. A shard rolls
over as soon as its bytes reach the target, so the shard boundaries depend only on the clips,
never on timing: a resumed task reproduces the shards of an uninterrupted run byte for byte.

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
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from vfcache.cache_tools.remote import RemoteFolder, staging_folder
from vfcache.cache_tools.shards import ShardWriter, encode_clip, new_compressor
from vfcache.manifests.parquet_io import read_records, write_records
from vfcache.manifests.records import (
    ClipRecord,
    FailureRecord,
    VideoRecord,
    make_clip_id,
    record_from_dict,
)
from vfcache.pipelines.decode import REASON_DECODE_ERROR, VideoReadError
from vfcache.pipelines.decode.frames import POLICY_NONE, ClipPlan, VideoTooShort, plan_clips
from vfcache.pipelines.decode.gasbench import read_gasbench_clip
from vfcache.pipelines.decode.media import (
    is_keyframe_row,
    media_stat,
    probe_media,
    read_media_frames,
)
from vfcache.pipelines.probe import read_error_reason

from vfcache.atomic import TEMP_MARK, write_json_atomic
from vfcache.config import ClipSpec
from vfcache.layout import (
    DEFAULT_ZSTD_LEVEL,
    INDEX_NAME,
    INDEX_SUFFIX,
    SHARD_NAME,
    done_name,
    index_name,
    shard_name,
)

log = logging.getLogger(__name__)

REASON_TOO_SHORT = "too_short"
REASON_CHANGED = "changed"


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
    # compress on a second thread while decoding goes on (when the worker has a spare core)
    compress_thread: bool = False
    zstd_level: int = DEFAULT_ZSTD_LEVEL
    # the cache folder's home on object storage (see pipelines/remote_cache.py): the task stages
    # its shards on this worker's disk and uploads each as it commits; `cache_path` is not used
    remote_url: Optional[str] = None


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
    """Delete `writer`'s temp files and its shards that have no index (crash before the commit
    point)."""
    removed = []
    indexed = set(final_shards(shards_dir, writer))
    for path in sorted(shards_dir.glob(f"*-{writer}*")):
        shard = SHARD_NAME.match(path.name)
        is_orphan = (
            shard is not None and shard["writer"] == writer and int(shard["n"]) not in indexed
        )
        is_temp = TEMP_MARK in path.name and (
            path.name.startswith(f"shard-{writer}-") or path.name.startswith(f"task-{writer}.")
        )
        if is_orphan or is_temp:
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("task %s: removed %d leftover file(s) of an interrupted run", writer, len(removed))
    return removed


class ShardRoller:
    """Appends clips to `shard-<writer>-<n>`, committing shard and index whenever the target is
    reached."""

    def __init__(
        self,
        cache_path: Path,
        writer: str,
        first_n: int,
        target_bytes: int,
        remote: Optional[RemoteFolder] = None,
    ):
        self.cache_path = cache_path
        self.shards_dir = cache_path / "shards"
        self.writer_id = writer
        self.n = first_n
        self.target_bytes = target_bytes
        self._writer: ShardWriter | None = None
        self._records: list[ClipRecord] = []
        self.committed_shards = 0
        self.committed_bytes = 0
        self.remote = remote  # upload each committed shard, then its index, and drop the local copy

    def append(
        self,
        video: VideoRecord,
        clip_id: str,
        plan: ClipPlan,
        frame: bytes,
        colour: Optional[dict] = None,
    ) -> None:
        """Append one clip, compressed by `encode_clip`; `colour` (matrix, range) for yuv420
        clips."""
        if self._writer is None:
            self._writer = ShardWriter(self.shards_dir / shard_name(self.writer_id, self.n))
        entry = self._writer.append_frame(frame)
        self._records.append(
            ClipRecord(
                clip_id=clip_id,
                video_id=video.video_id,
                clip_index=plan.clip_index,
                frame_indices=tuple(plan.frame_indices),
                timestamps_s=tuple(plan.timestamps_s),
                padded_frames=plan.padded_frames,
                short_policy=plan.short_policy,
                shard=f"shards/{shard_name(self.writer_id, self.n)}",
                offset=entry.offset,
                nbytes=entry.nbytes,
                dataset=video.dataset,
                domain=video.domain,
                relpath=video.relpath,
                label=video.label,
                generator=video.generator,
                group=video.group,
                source_split=video.source_split,
                color_matrix=colour["matrix"] if colour else None,
                color_range=colour["range"] if colour else None,
            )
        )
        if self._writer.bytes_written >= self.target_bytes:
            self.commit()

    def commit(self) -> None:
        if self._writer is None:
            return
        shard = self._writer.commit()
        index = write_records(
            self.shards_dir / index_name(self.writer_id, self.n), self._records, ClipRecord
        )
        if self.remote is not None:
            self.remote.push(shard, f"shards/{shard.name}")
            self.remote.push(index, f"shards/{index.name}")  # the commit point, remotely too
            shard.unlink()
        self.committed_shards += 1
        self.committed_bytes += self._writer.bytes_written
        self._writer, self._records = None, []
        self.n += 1

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer, self._records = None, []


class ClipEncoder:
    """Compresses clips into shard frames (`encode_clip`, the shard writer's settings).

    With `background`, on one thread of its own (`worker`, which also converts the decoded
    frames: see `read_frames`), queued as soon as a clip is submitted, so it overlaps the
    decoding of the next clip; otherwise on the caller's thread when the frame is asked for.
    `submit` returns a function that gives the frame (waiting for it if needed).
    """

    def __init__(self, background: bool, level: int = DEFAULT_ZSTD_LEVEL):
        self._compressor = new_compressor(
            level
        )  # used by one thread only: the pool's, or the caller's
        self._pool = (
            ThreadPoolExecutor(1, thread_name_prefix="vfcache-convert") if background else None
        )

    @property
    def worker(self) -> Optional[ThreadPoolExecutor]:
        return self._pool

    def submit(self, clip: np.ndarray) -> Callable[[], bytes]:
        if self._pool is None:
            return partial(encode_clip, clip, self._compressor)
        return self._pool.submit(encode_clip, clip, self._compressor).result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def cut_clips(
    task: ExtractTask,
    video: VideoRecord,
    skip: frozenset[int],
    on_clip: Optional[Callable[[int, np.ndarray], None]] = None,
    worker: Optional[ThreadPoolExecutor] = None,
    colour: Optional[dict] = None,
) -> list[tuple[ClipPlan, np.ndarray]]:
    """Every clip of `video` whose index is not in `skip`, decoded; raises VideoReadError /
    VideoTooShort.

    `on_clip(k, clip)` is called for the k-th returned clip as soon as all its frames are decoded
    (while later clips of the video still decode), for every clip, in order, before returning;
    on `worker`'s thread when given (see `read_frames`)."""
    path = Path(task.raw_dir) / video.relpath  # a file, or a keyframe row `<table>.parquet#<row>`
    try:
        size = media_stat(task.raw_dir, video.relpath)[0]
    except OSError:
        size = None
    if size != video.bytes:
        found = "is missing" if size is None else f"is {size} bytes"
        raise SourceChanged(
            f"{path} {found}, the manifest says {video.bytes} bytes; run build-manifest again"
        )
    if task.spec.sampling == "gasbench":
        return _cut_gasbench_clip(task, path, video, skip, on_clip)
    info = probe_media(task.raw_dir, video.relpath)
    plans = plan_clips(info.pts_s, task.spec, seed=start_seed(video.video_id))
    wanted = [plan for plan in plans if plan.clip_index not in skip]
    if not wanted:
        return []
    ends = np.cumsum([len(plan.frame_indices) for plan in wanted])
    announced = 0

    def ready(frames: np.ndarray, final_rows: int) -> None:
        nonlocal announced
        while announced < len(wanted) and ends[announced] <= final_rows:
            start = ends[announced - 1] if announced else 0
            on_clip(announced, frames[start : ends[announced]])
            announced += 1

    # One read for all clips of the video: the container is opened and sought once, and frames
    # shared by overlapping windows are decoded once.
    frames = read_media_frames(
        task.raw_dir,
        video.relpath,
        [i for plan in wanted for i in plan.frame_indices],
        info=info,
        height=task.spec.height,
        width=task.spec.width,
        resize=task.spec.resize,
        reader=task.reader,
        decoder_threads=task.decoder_threads,
        on_ready=ready if on_clip is not None else None,
        worker=worker,
        pixels=task.spec.pixels,
        colour=colour,
    )
    return list(zip(wanted, np.split(frames, ends[:-1])))


def _cut_gasbench_clip(
    task: ExtractTask,
    path: Path,
    video: VideoRecord,
    skip: frozenset[int],
    on_clip: Optional[Callable[[int, np.ndarray], None]],
) -> list[tuple[ClipPlan, np.ndarray]]:
    """The one clip of a `sampling: gasbench` spec: GASBench's decoder chooses and decodes in one
    pass (its frame choice follows decode order and the stream's average rate, not timestamps)."""
    if 0 in skip:
        return []
    if is_keyframe_row(video.relpath):
        raise VideoReadError(
            REASON_DECODE_ERROR,
            "a keyframe row has no video stream for GASBench's decoder",
            path=str(path),
        )
    spec = task.spec
    clip, indices, padded = read_gasbench_clip(
        path, num_frames=spec.frames, frame_rate=spec.fps, height=spec.height, width=spec.width
    )
    pts = probe_media(task.raw_dir, video.relpath).pts_s
    plan = ClipPlan(
        clip_index=0,
        frame_indices=tuple(indices),
        timestamps_s=tuple(pts[i] if i < len(pts) else float("nan") for i in indices),
        padded_frames=padded,
        short_policy="pad_last" if padded else POLICY_NONE,
    )
    if on_clip is not None:
        on_clip(0, clip)
    return [(plan, clip)]


def failure(video: VideoRecord, reason: str) -> FailureRecord:
    return FailureRecord(
        video_id=video.video_id, relpath=video.relpath, stage="extract", reason=reason
    )


def load_done(path: Path) -> dict:
    payload = json.loads(path.read_text(encoding="utf-8"))
    payload["failures"] = [record_from_dict(FailureRecord, row) for row in payload["failures"]]
    return payload


def outcome_from_done(writer: str, payload: dict) -> TaskOutcome:
    return TaskOutcome(
        writer=writer,
        already_done=True,
        clips=payload["clips"],
        clips_written=0,
        shards=payload["shards"],
        shard_bytes=payload["shard_bytes"],
        failures=tuple(payload["failures"]),
        decode_s=0.0,
        write_s=0.0,
    )


@dataclass(frozen=True)
class FinalState:
    """What earlier runs of a task left final: clip indexes per video, and the next shard number."""

    clip_indices: dict[str, frozenset[int]]
    clips: int
    shards: int
    shard_bytes: int
    next_shard: int


def load_final_state(
    shards_dir: Path, task: ExtractTask, sizes: Optional[dict[str, int]] = None
) -> FinalState:
    """`sizes`: {shard name: bytes} when the shards are not here (a remote cache folder)."""
    numbers = final_shards(shards_dir, task.writer)
    indices: dict[str, set[int]] = {}
    clips = shard_bytes = 0
    for n in numbers:
        for rec in read_records(shards_dir / index_name(task.writer, n), ClipRecord):
            indices.setdefault(rec.video_id, set()).add(rec.clip_index)
            clips += 1
        name = shard_name(task.writer, n)
        shard_bytes += sizes[name] if sizes is not None else (shards_dir / name).stat().st_size
    foreign = set(indices) - {video.video_id for video in task.videos} - set(task.planned_ids)
    if foreign:  # the driver checks this first; a task must never mix two manifests either
        raise RuntimeError(
            f"shards of task {task.writer} in {shards_dir} hold clips of {len(foreign)} videos "
            f"outside "
            "the task; the manifest changed since they were written"
        )
    return FinalState(
        clip_indices={video_id: frozenset(found) for video_id, found in indices.items()},
        clips=clips,
        shards=len(numbers),
        shard_bytes=shard_bytes,
        next_shard=numbers[-1] + 1 if numbers else 0,
    )


def extract_videos(
    task: ExtractTask, final: FinalState, roller: ShardRoller, encoder: ClipEncoder
) -> tuple[list[FailureRecord], int, float, float]:
    """Decode and append every clip not yet final; returns (failures, clips written, decode s,
    write s).

    A video's clips are appended once the whole video has decoded, after the next video has
    (so the compression of its last clip overlaps that decoding), always in the task's order."""
    failures: list[FailureRecord] = []
    written = 0
    decode_s = write_s = 0.0
    pending: list[tuple[VideoRecord, ClipPlan, Callable[[], bytes], Optional[dict]]] = []

    def append_pending() -> None:
        nonlocal written
        for video, plan, frame, colour in pending:
            roller.append(
                video,
                make_clip_id(video.video_id, task.spec.spec_hash, plan.clip_index),
                plan,
                frame(),
                colour,
            )
            written += 1
        pending.clear()

    for video in task.videos:
        tic = time.perf_counter()
        frames: dict[int, Callable[[], bytes]] = {}
        colour: Optional[dict] = {} if task.spec.pixels == "yuv420" else None
        try:
            clips = cut_clips(
                task,
                video,
                final.clip_indices.get(video.video_id, frozenset()),
                on_clip=lambda k, clip: frames.__setitem__(k, encoder.submit(clip)),
                worker=encoder.worker,
                colour=colour,
            )
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
        append_pending()
        pending.extend((video, plan, frames[k], colour) for k, (plan, _) in enumerate(clips))
        write_s += time.perf_counter() - tic
    tic = time.perf_counter()
    append_pending()
    roller.commit()
    return failures, written, decode_s, write_s + time.perf_counter() - tic


def remote_task_state(
    remote: RemoteFolder, shards_dir: Path, writer: str
) -> Optional[dict[str, int]]:
    """Make the staging folder hold exactly the task's final indexes of the remote folder (the
    truth): local files of the task go, remote shards without index are deleted, indexes are
    pulled. Returns {shard name: bytes} of its final shards, or None when its done file is there
    (then pulled too)."""
    listing = remote.listing("shards")
    for path in shards_dir.glob(f"*-{writer}*"):
        if path.name.startswith((f"shard-{writer}-", f"task-{writer}.")):
            path.unlink()
    if done_name(writer) in listing:
        remote.pull(f"shards/{done_name(writer)}", shards_dir / done_name(writer))
        return None
    sizes = {}
    for name in sorted(listing):
        shard = SHARD_NAME.match(name)
        if shard and shard["writer"] == writer:
            if index_name(writer, int(shard["n"])) in listing:
                sizes[name] = listing[name]
            else:
                remote.delete(f"shards/{name}")
        index = INDEX_NAME.match(name)
        if index and index["writer"] == writer:
            remote.pull(f"shards/{name}", shards_dir / name)
    return sizes


def run_extract_task(task: ExtractTask) -> TaskOutcome:
    """Extract the task's videos into its shards; resumable, and a no-op once the done file
    exists."""
    remote = RemoteFolder(task.remote_url) if task.remote_url else None
    folder = staging_folder(task.remote_url) if task.remote_url else Path(task.cache_path)
    shards_dir = folder / "shards"
    shards_dir.mkdir(parents=True, exist_ok=True)
    done_path = shards_dir / done_name(task.writer)
    sizes = remote_task_state(remote, shards_dir, task.writer) if remote is not None else None
    if done_path.exists():
        return outcome_from_done(task.writer, load_done(done_path))
    remove_leftovers(shards_dir, task.writer)
    final = load_final_state(shards_dir, task, sizes)
    roller = ShardRoller(folder, task.writer, final.next_shard, task.shard_target_bytes, remote)
    encoder = ClipEncoder(background=task.compress_thread, level=task.zstd_level)
    try:
        failures, written, decode_s, write_s = extract_videos(task, final, roller, encoder)
    except BaseException:
        roller.abort()
        raise
    finally:
        encoder.close()
    outcome = TaskOutcome(
        writer=task.writer,
        already_done=False,
        clips=final.clips + written,
        clips_written=written,
        shards=final.shards + roller.committed_shards,
        shard_bytes=final.shard_bytes + roller.committed_bytes,
        failures=tuple(failures),
        decode_s=decode_s,
        write_s=write_s,
    )
    write_json_atomic(
        done_path,
        {
            "writer": task.writer,
            "spec_hash": task.spec.spec_hash,
            "video_ids": [video.video_id for video in task.videos],
            "clips": outcome.clips,
            "shards": outcome.shards,
            "shard_bytes": outcome.shard_bytes,
            "failures": [asdict(rec) for rec in failures],
        },
    )
    if remote is not None:
        remote.push(done_path, f"shards/{done_path.name}")
    log.debug(
        "task %s: %d clips (%d new) in %d shards, %d failures, decode %.1fs write %.1fs",
        task.writer,
        outcome.clips,
        written,
        outcome.shards,
        len(failures),
        decode_s,
        write_s,
    )
    return outcome
