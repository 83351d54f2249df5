"""Which extraction tasks a cache folder has, so that a dataset can grow, shrink or change.

Tasks are planned in generations and the plan is kept: `shards/plan-<g>.json` lists, for
generation g, every task (`writer`) with the video ids it was given, the spec hash and the
batch size. A plan is written before its tasks run and never changes, so a task's identity
is fixed when it is planned and never depends on where its videos sit in a later manifest.

A run of `extract`:
1. resumes the tasks of earlier plans that have no done file (a crash, a kill), with the videos
   of theirs that the manifest still has;
2. plans a new generation for the ok videos that no task covers: videos added since, or whose
   bytes changed (a new video id). A done task covers the videos that have clips in its
   indexes or a failure in its done file, so a video whose shards were garbage-collected is
   extracted again if it comes back;
3. merges the indexes of every task into `clips.parquet`, keeping only the clips of videos in
   the current manifest: a removed video's clips leave the manifest, its shards stay on disk
   until `vfcache gc` (no existing shard is ever rewritten).

Generation 0 keeps the names of caches made before plans existed (`0000`, `0001`, ...); such a
cache's done files count as generation 0. Later generations are named `<g:03d><k:04d>`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from vfcache.manifests.records import VideoRecord
from vfcache.pipelines.extract.task import load_done

from vfcache.atomic import write_json_atomic
from vfcache.errors import StageError
from vfcache.layout import DONE_NAME, INDEX_NAME, PLAN_NAME, done_name, plan_name


@dataclass(frozen=True)
class PlannedTask:
    writer: str
    video_ids: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    generation: int
    spec_hash: str
    videos_per_task: int
    tasks: tuple[PlannedTask, ...]


def plan_path(shards_dir: Path, generation: int) -> Path:
    return shards_dir / plan_name(generation)


def writer_name(generation: int, k: int) -> str:
    return f"{k:04d}" if generation == 0 else f"{generation:03d}{k:04d}"


def plan_batches(
    videos: list[VideoRecord], videos_per_task: int, generation: int = 0
) -> list[tuple[str, tuple[VideoRecord, ...]]]:
    """(writer, videos) per task of one generation: ok videos by relpath, in fixed batches."""
    if videos_per_task < 1:
        raise ValueError(f"videos_per_task must be >= 1, got {videos_per_task}")
    ok = sorted((v for v in videos if v.status == "ok"), key=lambda v: v.relpath)
    batches = [tuple(ok[i : i + videos_per_task]) for i in range(0, len(ok), videos_per_task)]
    return [(writer_name(generation, k), batch) for k, batch in enumerate(batches)]


def write_plan(shards_dir: Path, plan: Plan) -> Path:
    path = plan_path(shards_dir, plan.generation)
    write_json_atomic(
        path,
        {
            "generation": plan.generation,
            "spec_hash": plan.spec_hash,
            "videos_per_task": plan.videos_per_task,
            "tasks": {task.writer: list(task.video_ids) for task in plan.tasks},
        },
    )
    return path


def read_plans(shards_dir: Path, spec_hash: str) -> list[Plan]:
    """Every kept plan, by generation, plus generation 0 rebuilt from the done files of a cache
    made before plans existed. A plan or done file of another spec stops the run."""
    plans = []
    names = sorted(p.name for p in shards_dir.iterdir()) if shards_dir.is_dir() else []
    for name in names:
        if PLAN_NAME.match(name):
            payload = json.loads((shards_dir / name).read_text(encoding="utf-8"))
            if payload["spec_hash"] != spec_hash:
                raise StageError(
                    f"{shards_dir / name} was planned for another clip spec "
                    f"({payload['spec_hash']}, not {spec_hash}); this folder belongs to it"
                )
            plans.append(
                Plan(
                    payload["generation"],
                    payload["spec_hash"],
                    payload["videos_per_task"],
                    tuple(PlannedTask(w, tuple(ids)) for w, ids in payload["tasks"].items()),
                )
            )
    planned = {task.writer for plan in plans for task in plan.tasks}
    legacy = []
    for name in names:
        match = DONE_NAME.match(name)
        if match and match["writer"] not in planned:
            done = load_done(shards_dir / name)
            if done["spec_hash"] != spec_hash:
                raise StageError(f"{shards_dir / name} was written for another clip spec")
            legacy.append(PlannedTask(match["writer"], tuple(done["video_ids"])))
        index = INDEX_NAME.match(name)
        if index and index["writer"] not in planned and done_name(index["writer"]) not in names:
            raise StageError(
                f"{shards_dir / name} belongs to an unfinished task of an extraction made by an "
                f"older "
                f"vfcache, which kept no plan; finish it with that version, or remove {shards_dir} "
                f"to "
                "extract again"
            )
    if legacy:
        if any(plan.generation == 0 for plan in plans):
            raise StageError(
                f"{shards_dir} has done files that no plan lists; the folder was "
                "changed outside vfcache"
            )
        plans.insert(0, Plan(0, spec_hash, 0, tuple(legacy)))
    return sorted(plans, key=lambda plan: plan.generation)


def covered_video_ids(shards_dir: Path, plans: list[Plan]) -> set[str]:
    """Videos that need no new task: those of unfinished tasks (they will run), and those of done
    tasks that have clips in the task's indexes or a failure in its done file."""
    covered: set[str] = set()
    indexed_by_writer: dict[str, set[str]] = {}
    for path in shards_dir.glob("shard-*.index.parquet") if shards_dir.is_dir() else []:
        match = INDEX_NAME.match(path.name)
        if match:
            ids = pq.read_table(path, columns=["video_id"])["video_id"].to_pylist()
            indexed_by_writer.setdefault(match["writer"], set()).update(ids)
    for plan in plans:
        for task in plan.tasks:
            done_path = shards_dir / done_name(task.writer)
            if not done_path.exists():
                covered.update(task.video_ids)
                continue
            covered.update(indexed_by_writer.get(task.writer, ()))
            covered.update(rec.video_id for rec in load_done(done_path)["failures"])
    return covered
