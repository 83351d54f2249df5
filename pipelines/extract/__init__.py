"""The extract stage (`vfcache extract`): the videos of a manifest -> clips in shards +
`clips.parquet`.

The driver plans tasks in kept generations (`vfcache.pipelines.extract.plan`): the ok videos that no
task covers yet (all of them on a first run; the added or changed ones later) are sorted by
relpath and cut into fixed batches of `videos_per_task` (by default about `TARGET_TASKS`
batches, none expected to write more than one shard target), written as `plan-<g>.json`
before any task runs. The batches depend only on the manifest, the spec and the shard target,
never on the number of workers, so a re-run on another cluster resumes the same tasks. The
heaviest tasks are submitted first, so fewer workers idle at the end; that changes no output.

Each task owns its shard files (see `vfcache.pipelines.extract.task`); the driver never writes a
shard. At start the driver removes temp files and orphan shards (final name, no index);
tasks with a done file are skipped. At the end it merges the shard indexes into
`clips.parquet` (the clips of the manifest's current videos, sorted by relpath, clip_index)
and every failure (probe rows that are not ok + extraction failures of current videos) into
`failures.parquet`. Clips of videos that left the manifest stay in their shards until
`vfcache gc`.

A resumed extraction ends with exactly the shards and manifest of an uninterrupted one. One
writer per cache folder at a time (`vfcache.cache_tools.writer_lock`): a second driver would delete
the
first one's temp files, so it waits for the lock, or stops with one line naming the holder.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from vfcache.cache_tools.remote import RemoteFolder
from vfcache.cache_tools.writer_lock import writer_lock
from vfcache.manifests.parquet_io import read_records, read_table, write_records
from vfcache.manifests.records import (
    STATUS_FAILED,
    STATUS_OK,
    ClipRecord,
    FailureRecord,
    VideoRecord,
    arrow_schema,
    drop_empty_optional,
)
from vfcache.pipelines.extract.plan import (
    Plan,
    PlannedTask,
    covered_video_ids,
    plan_batches,
    read_plans,
    write_plan,
)
from vfcache.pipelines.extract.remote_cache import push_files, remote_home, sync_down
from vfcache.pipelines.extract.task import (
    INDEX_NAME,
    REASON_TOO_SHORT,
    SHARD_NAME,
    ExtractTask,
    TaskOutcome,
    done_name,
    index_name,
    load_done,
    run_extract_task,
    shard_name,
)
from vfcache.pipelines.probe import reason_counts
from vfcache.pipelines.runner import run_tasks, spare_core_per_task
from vfcache.pipelines.sources.base import get_source

from vfcache.atomic import atomic_write, remove_stale_temp_files
from vfcache.config import ClipSpec, DatasetConfig
from vfcache.errors import StageError
from vfcache.layout import DEFAULT_ZSTD_LEVEL, VIDEOS_PARQUET_NAME, CacheDir, DataRoot

log = logging.getLogger(__name__)

DEFAULT_SHARD_TARGET_BYTES = 128 << 20
TARGET_TASKS = 32  # enough tasks to balance a few dozen workers on a small dataset
ASSUMED_COMPRESSION = 2.0  # zstd level 3 shrinks clips 1.3-4x; only sizes the batches
STAGE_PROBE = "probe"


@dataclass(frozen=True)
class ExtractReport:
    dataset: str
    spec_name: str
    clips_parquet: str
    failures_parquet: str
    videos_total: int
    videos_with_clips: int
    videos_failed: int  # unreadable, broken or undecodable (counts against max_failed)
    videos_skipped: int  # by policy: too short under `skip`, duplicate bytes
    clips: int
    shards: int
    shard_bytes: int
    tasks_total: int
    tasks_run: int  # the rest were already done by an earlier run
    clips_written: int  # by this run
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    decode_s: float = 0.0  # summed over tasks of this run
    write_s: float = 0.0
    seconds: float = 0.0

    @property
    def failed_fraction(self) -> float:
        return self.videos_failed / self.videos_total if self.videos_total else 0.0


class TooManyFailures(StageError):
    """More videos failed than `max_failed` allows; everything was written, `report` says what."""

    def __init__(self, message: str, report: ExtractReport):
        super().__init__(message)
        self.report = report


def auto_videos_per_task(num_videos: int, spec: ClipSpec, shard_target_bytes: int) -> int:
    """About TARGET_TASKS batches, but no batch expected to write more than one shard target."""
    video_bytes = spec.clips_per_video * math.prod(spec.stored_shape) / ASSUMED_COMPRESSION
    by_bytes = max(1, int(shard_target_bytes // video_bytes))
    by_balance = max(1, -(-num_videos // TARGET_TASKS))
    return min(by_bytes, by_balance)


def task_cost(batch: tuple[VideoRecord, ...]) -> int:
    """Relative decoding work of a batch (pixels of the source frames), to submit heavy tasks
    first."""
    return sum((video.width or 0) * (video.height or 0) for video in batch)


def clean_shards_dir(cache: CacheDir, remote_shards: Optional[dict[str, int]] = None) -> int:
    """Remove temp files and orphan shards; an index whose shard is gone is an error. Returns files
    removed.

    `remote_shards`: the shards of the remote home, which the local mirror does not hold."""
    removed = len(remove_stale_temp_files(cache.path))
    shards_dir = cache.shards_dir
    if not shards_dir.is_dir():
        return removed
    names = {path.name for path in shards_dir.iterdir()} | set(remote_shards or ())
    for name in sorted(names):
        shard = SHARD_NAME.match(name)
        if shard and index_name(shard["writer"], int(shard["n"])) not in names:
            (shards_dir / name).unlink(missing_ok=True)
            removed += 1
        index = INDEX_NAME.match(name)
        if index and shard_name(index["writer"], int(index["n"])) not in names:
            raise StageError(
                f"{shards_dir / name} lists clips of a shard that no longer exists; the cache was "
                f"damaged outside vfcache: remove the index and the task's done file "
                f"({done_name(index['writer'])}) "
                "to extract that task again"
            )
    if removed:
        log.info(
            "removed %d temp/orphan file(s) left by an interrupted extraction in %s",
            removed,
            cache.path,
        )
    return removed


def merge_clip_indexes(cache: CacheDir, video_ids: set[str]) -> pa.Table:
    """The final shard indexes -> one table of the clips of `video_ids` (the current manifest's ok
    videos), sorted by (relpath, clip_index), written as clips.parquet."""
    schema = arrow_schema(ClipRecord)
    paths = (
        sorted(p for p in cache.shards_dir.glob("*") if INDEX_NAME.match(p.name))
        if cache.shards_dir.is_dir()
        else []
    )
    tables = [read_table(path, ClipRecord).cast(schema) for path in paths]
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    table = table.filter(
        pc.is_in(table["video_id"], value_set=pa.array(sorted(video_ids), pa.string()))
    )
    table = table.sort_by([("relpath", "ascending"), ("clip_index", "ascending")])
    if pc.count_distinct(table["clip_id"]).as_py() != table.num_rows:
        raise StageError(
            f"shard indexes in {cache.shards_dir} list a clip id twice; remove the shards folder "
            f"and extract again"
        )
    with atomic_write(cache.clips_parquet, "wb") as handle:
        pq.write_table(drop_empty_optional(table, ClipRecord), handle, compression="zstd")
    return table


def collect_failures(
    videos: list[VideoRecord], cache: CacheDir, writers: list[str]
) -> list[FailureRecord]:
    """Probe failures of the manifest, and the extraction failures of its current videos."""
    failures = [
        FailureRecord(
            video_id=v.video_id, relpath=v.relpath, stage=STAGE_PROBE, reason=v.reason or v.status
        )
        for v in videos
        if v.status != STATUS_OK
    ]
    current = {v.video_id for v in videos if v.status == STATUS_OK}
    for writer in writers:
        done = cache.shards_dir / done_name(writer)
        if done.exists():
            failures.extend(f for f in load_done(done)["failures"] if f.video_id in current)
    return sorted(failures, key=lambda rec: (rec.relpath, rec.stage))


def is_skip(failure: FailureRecord, status_of: dict[str, str]) -> bool:
    """Skips follow a policy (too short under `skip`, duplicate bytes) and do not count as
    failed."""
    if failure.stage == STAGE_PROBE:
        return status_of.get(failure.relpath) != STATUS_FAILED
    return failure.reason.startswith(REASON_TOO_SHORT + ":")


def shard_level_for(cache: CacheDir, asked: Optional[int]) -> int:
    """The zstd level of this extraction: the one spec.json records (a grown cache keeps one
    level), else `asked`, else the default; a different `asked` is a StageError."""
    recorded = cache.shard_level()
    if recorded is None:
        return DEFAULT_ZSTD_LEVEL if asked is None else asked
    if asked is not None and asked != recorded:
        raise StageError(
            f"the shards of {cache.path} are compressed at zstd level {recorded} (spec.json); "
            f"new clips are added at that level: drop --zstd-level {asked}, or extract into a new "
            f"spec name"
        )
    return recorded


def load_manifest(
    cache: CacheDir, spec: ClipSpec, dataset: str, zstd_level: int = DEFAULT_ZSTD_LEVEL
) -> list[VideoRecord]:
    """The dataset's videos; the spec folder is created with its spec.json (the spec and the
    shards' zstd level) on first use. The caller has checked an existing spec.json
    (`check_spec`)."""
    if not cache.videos_parquet.exists():
        old = cache.path / VIDEOS_PARQUET_NAME
        hint = (
            f" (this cache predates one manifest per dataset: {old} is the old one)"
            if old.exists()
            else ""
        )
        raise StageError(
            f"{cache.videos_parquet} is missing; run `vfcache build-manifest {dataset}` first{hint}"
        )
    if not cache.spec_json.exists():
        cache.write_spec(spec, zstd_level)
    return read_records(cache.videos_parquet, VideoRecord)


def extract_clips(
    config: DatasetConfig,
    root: DataRoot,
    spec: ClipSpec,
    *,
    client,
    reader: str = "pyav",
    shard_target_bytes: int = DEFAULT_SHARD_TARGET_BYTES,
    videos_per_task: Optional[int] = None,
    decoder_threads: int = 1,
    progress: bool = True,
    max_failed: Optional[float] = 0.05,
    wait: bool = True,
    compress_thread: Optional[bool] = None,
    zstd_level: Optional[int] = None,
    cache_url: Optional[str] = None,
) -> ExtractReport:
    """Cut every ok video of the manifest into clips; resumable. `client=None` runs in this process.

    One writer per cache folder (`vfcache.cache_tools.writer_lock`): a second extraction of the same
    folder waits for the first, or raises `CacheBusy` naming it when `wait` is False.

    `videos_per_task` None picks it from the manifest size and the shard target (see
    `auto_videos_per_task`); a resumed run must use the same value as the first one.

    `compress_thread`: compress each clip on a second thread while the next one decodes (see
    `extract_task`); None turns it on when every task slot has a spare core
    (`runner.spare_core_per_task`: one worker on a 2-core machine, not two). Output bytes do
    not depend on it.

    `zstd_level`: for a new cache folder (default `DEFAULT_ZSTD_LEVEL`), recorded in spec.json;
    a cache folder keeps its level, and asking another one is a StageError.

    `cache_url` (`s3://bucket/prefix`, or another obstore URL): the cache folder's home is
    `<cache_url>/cache/<dataset>/<spec>/`, and the local one is its mirror without shards (see
    `vfcache.pipelines.extract.remote_cache`); recorded in the mirror's remote.json, so later runs
    need not repeat it.

    Raises `TooManyFailures` (a `StageError`), after writing clips.parquet and failures.parquet,
    when the fraction of failed videos exceeds `max_failed` (None: never).
    """
    started = time.perf_counter()
    if shard_target_bytes < 1:
        raise ValueError(f"shard_target_bytes must be positive, got {shard_target_bytes}")
    if max_failed is not None and not 0.0 <= max_failed <= 1.0:
        raise ValueError(f"max_failed must be a fraction in [0, 1], got {max_failed}")
    cache = root.cache_dir(config.name, spec.name)
    with writer_lock(cache.path, f"extraction of {config.name}/{spec.name}", wait=wait):
        return _extract_locked(
            config,
            root,
            spec,
            cache,
            client=client,
            reader=reader,
            shard_target_bytes=shard_target_bytes,
            videos_per_task=videos_per_task,
            decoder_threads=decoder_threads,
            progress=progress,
            max_failed=max_failed,
            started=started,
            compress_thread=compress_thread,
            zstd_level=zstd_level,
            cache_url=cache_url,
        )


def _extract_locked(
    config: DatasetConfig,
    root: DataRoot,
    spec: ClipSpec,
    cache: CacheDir,
    *,
    client,
    reader: str,
    shard_target_bytes: int,
    videos_per_task: Optional[int],
    decoder_threads: int,
    progress: bool,
    max_failed: Optional[float],
    started: float,
    compress_thread: Optional[bool],
    zstd_level: Optional[int],
    cache_url: Optional[str],
) -> ExtractReport:
    remote_url = remote_home(cache, cache_url)
    remote = RemoteFolder(remote_url) if remote_url else None
    if remote is not None and not cache.spec_json.exists() and "spec.json" in remote.listing(""):
        remote.pull("spec.json", cache.spec_json)  # a new mirror of an existing remote folder
    cache.check_spec(spec)
    level = shard_level_for(cache, zstd_level)
    videos = load_manifest(cache, spec, config.name, level)
    raw_dir = Path(get_source(config).raw_dir(root))
    remote_shards = sync_down(remote, cache) if remote is not None else None
    clean_shards_dir(cache, remote_shards)
    cache.shards_dir.mkdir(parents=True, exist_ok=True)
    plans = read_plans(cache.shards_dir, spec.spec_hash)
    ok = {video.video_id: video for video in videos if video.status == STATUS_OK}
    new_videos = [
        video
        for video_id, video in ok.items()
        if video_id not in covered_video_ids(cache.shards_dir, plans)
    ]
    if new_videos:
        per_task = videos_per_task or auto_videos_per_task(
            len(new_videos), spec, shard_target_bytes
        )
        generation = plans[-1].generation + 1 if plans else 0
        batches = plan_batches(new_videos, per_task, generation)
        plan = Plan(
            generation,
            spec.spec_hash,
            per_task,
            tuple(
                PlannedTask(writer, tuple(v.video_id for v in batch)) for writer, batch in batches
            ),
        )
        plan_file = write_plan(cache.shards_dir, plan)
        if remote is not None:
            push_files(remote, cache, [plan_file])
        plans.append(plan)
        log.info(
            "extract %s/%s: planned %d new videos in %d tasks (generation %d)",
            config.name,
            spec.name,
            len(new_videos),
            len(batches),
            generation,
        )
    tasks = [task for plan in plans for task in plan.tasks]
    if compress_thread is None:
        compress_thread = spare_core_per_task(client)
    pending = [
        ExtractTask(
            writer=task.writer,
            cache_path=str(cache.path),
            raw_dir=str(raw_dir),
            spec=spec,
            videos=tuple(ok[i] for i in task.video_ids if i in ok),
            reader=reader,
            shard_target_bytes=shard_target_bytes,
            decoder_threads=decoder_threads,
            planned_ids=task.video_ids,
            compress_thread=compress_thread,
            zstd_level=level,
            remote_url=remote_url,
        )
        for task in tasks
        if not (cache.shards_dir / done_name(task.writer)).exists()
    ]
    pending.sort(key=lambda task: -task_cost(task.videos))
    log.info(
        "extract %s/%s: %d tasks, %d already done",
        config.name,
        spec.name,
        len(tasks),
        len(tasks) - len(pending),
    )
    outcomes: list[TaskOutcome] = list(
        run_tasks(
            client,
            run_extract_task,
            pending,
            f"extract {config.name}",
            task_names=[task.writer for task in pending],
            progress=progress,
        )
    )

    if remote is not None:
        remote_shards = sync_down(remote, cache)
    clips = merge_clip_indexes(cache, set(ok))
    failures = collect_failures(videos, cache, [task.writer for task in tasks])
    write_records(cache.failures_parquet, failures, FailureRecord)
    if remote is not None:
        push_files(remote, cache, [cache.spec_json, cache.clips_parquet, cache.failures_parquet])
    report = summarize(
        config, spec, cache, videos, clips, failures, len(tasks), outcomes, started, remote_shards
    )
    if report.failures_by_reason:
        log.warning(
            "extract %s: failures by reason: %s (details in %s)",
            config.name,
            ", ".join(f"{k}={v}" for k, v in report.failures_by_reason.items()),
            cache.failures_parquet,
        )
    if max_failed is not None and report.failed_fraction > max_failed:
        raise TooManyFailures(
            f"{report.videos_failed} of {report.videos_total} videos of {config.name!r} failed "
            f"({report.failed_fraction:.1%} > max_failed {max_failed:.1%}); see "
            f"{cache.failures_parquet}",
            report,
        )
    return report


def summarize(
    config: DatasetConfig,
    spec: ClipSpec,
    cache: CacheDir,
    videos: list[VideoRecord],
    clips: pa.Table,
    failures: list[FailureRecord],
    tasks_total: int,
    outcomes: list[TaskOutcome],
    started: float,
    remote_shards: Optional[dict[str, int]] = None,
) -> ExtractReport:
    status_of = {v.relpath: v.status for v in videos}
    skipped = {f.relpath for f in failures if is_skip(f, status_of)}
    failed = {f.relpath for f in failures} - skipped
    shard_names = set(clips["shard"].to_pylist())
    if remote_shards is not None:
        shard_bytes = sum(remote_shards[Path(name).name] for name in shard_names)
    else:
        shard_bytes = sum(cache.resolve_shard(name).stat().st_size for name in shard_names)
    return ExtractReport(
        dataset=config.name,
        spec_name=spec.name,
        clips_parquet=str(cache.clips_parquet),
        failures_parquet=str(cache.failures_parquet),
        videos_total=len(videos),
        videos_with_clips=len(set(clips["video_id"].to_pylist())),
        videos_failed=len(failed),
        videos_skipped=len(skipped),
        clips=clips.num_rows,
        shards=len(shard_names),
        shard_bytes=shard_bytes,
        tasks_total=tasks_total,
        tasks_run=len(outcomes),
        clips_written=sum(o.clips_written for o in outcomes),
        failures_by_reason=reason_counts([f.reason for f in failures]),
        decode_s=sum(o.decode_s for o in outcomes),
        write_s=sum(o.write_s for o in outcomes),
        seconds=time.perf_counter() - started,
    )
