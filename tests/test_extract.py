"""The extract stage: clips hold exactly the planned frames, shards round-trip, resume is
byte-identical."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from distributed import Client, LocalCluster
from vfcache.cache_tools.shards import ShardReader, iter_shard
from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import ClipRecord, FailureRecord, VideoRecord, make_clip_id
from vfcache.pipelines.decode.frames import plan_clips
from vfcache.pipelines.extract import TooManyFailures, auto_videos_per_task, extract_clips
from vfcache.pipelines.extract.plan import plan_batches
from vfcache.pipelines.extract.task import start_seed
from vfcache.pipelines.probe import build_manifest
from vfcache.pipelines.sources.synthetic import make_video, read_code
from video_corpus import (
    GOOD_VIDEOS,
    NOT_A_VIDEO,
    SHARD_TARGET_BYTES,
    TOO_SHORT,
    TRUNCATED,
    VIDEOS_PER_TASK,
    cache_snapshot,
    copy_corpus,
    small_spec,
    temp_files,
)

from vfcache.errors import StageError
from vfcache.layout import DataRoot

REPO = Path(__file__).resolve().parents[1]


def run_extract(corpus, root: DataRoot, spec=None, *, client=None, max_failed=None, **options):
    spec = spec or small_spec()
    if not root.cache_dir("corpus", spec.name).videos_parquet.exists():
        build_manifest(corpus.config(), root, spec, client=None, progress=False)
    options = {
        "shard_target_bytes": SHARD_TARGET_BYTES,
        "videos_per_task": VIDEOS_PER_TASK,
        **options,
    }
    return extract_clips(
        corpus.config(), root, spec, client=client, progress=False, max_failed=max_failed, **options
    )


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    """An uninterrupted in-process extraction: (root, report, snapshot)."""
    root = DataRoot(tmp_path_factory.mktemp("reference"))
    report = run_extract(corpus, root)
    return root, report, cache_snapshot(root.cache_dir("corpus", small_spec().name).path)


def test_clips_hold_exactly_the_planned_frames(corpus, reference):
    root, report, _ = reference
    spec = small_spec()
    cache = root.cache_dir("corpus", spec.name)
    videos = {v.relpath: v for v in read_records(cache.videos_parquet, VideoRecord)}
    clips = read_records(cache.clips_parquet, ClipRecord)
    assert [(c.relpath, c.clip_index) for c in clips] == sorted(
        (c.relpath, c.clip_index) for c in clips
    )
    assert {c.relpath for c in clips} == set(GOOD_VIDEOS)
    assert len(clips) == 2 * len(GOOD_VIDEOS)
    for clip in clips:
        video, truth = videos[clip.relpath], corpus.truths[clip.relpath]
        plan = plan_clips(truth.pts_s, spec, seed=start_seed(video.video_id))[clip.clip_index]
        assert clip.clip_id == make_clip_id(video.video_id, spec.spec_hash, clip.clip_index)
        assert clip.frame_indices == plan.frame_indices and clip.padded_frames == plan.padded_frames
        assert clip.timestamps_s == pytest.approx(
            [truth.pts_s[i] for i in clip.frame_indices], abs=1e-3
        )
        assert (clip.label, clip.domain, clip.generator, clip.group) == (
            video.label,
            video.domain,
            video.generator,
            video.group,
        )
        with ShardReader(cache.resolve_shard(clip.shard)) as reader:
            pixels = reader.read(clip.offset, clip.nbytes, clip.clip_id)
        assert pixels.shape == spec.clip_shape
        assert [read_code(frame) for frame in pixels] == [
            truth.frame_codes[i] for i in clip.frame_indices
        ], clip.relpath
    # random starts differ between videos but the two clips of a video never overlap in order
    assert len({c.frame_indices[0] for c in clips}) > 3


def test_shards_round_trip_and_rollover(reference):
    root, report, snapshot = reference
    cache = root.cache_dir("corpus", small_spec().name)
    clips = read_records(cache.clips_parquet, ClipRecord)
    by_shard: dict[str, list[ClipRecord]] = {}
    for clip in clips:
        by_shard.setdefault(clip.shard, []).append(clip)
    assert report.shards == len(by_shard) > 3
    assert report.clips == len(clips) and report.shard_bytes == sum(
        len(v) for k, v in snapshot.items() if k.endswith(".zst")
    )
    for shard, members in by_shard.items():
        walked = list(iter_shard(cache.resolve_shard(shard)))
        assert [(e.offset, e.nbytes) for e, _ in walked] == sorted(
            (c.offset, c.nbytes) for c in members
        )
        index = read_records(
            cache.resolve_shard(shard).with_name(
                Path(shard).name.replace(".npy.zst", ".index.parquet")
            ),
            ClipRecord,
        )
        assert sorted(index, key=lambda c: c.offset) == sorted(members, key=lambda c: c.offset)
        # rollover: every shard but the last of its task stops at the first clip that reaches the
        # target
        size = cache.resolve_shard(shard).stat().st_size
        assert size - max(c.nbytes for c in members) < SHARD_TARGET_BYTES
    assert not temp_files(cache.path)
    done = sorted(p.name for p in cache.shards_dir.glob("task-*.done.json"))
    assert done == [f"task-{k:04d}.done.json" for k in range(report.tasks_total)]


def test_failures_and_report(corpus, reference):
    root, report, _ = reference
    cache = root.cache_dir("corpus", small_spec().name)
    failures = {f.relpath: f for f in read_records(cache.failures_parquet, FailureRecord)}
    assert set(failures) == {NOT_A_VIDEO, TRUNCATED, TOO_SHORT}
    assert failures[NOT_A_VIDEO].stage == "probe"
    assert failures[TOO_SHORT].stage == "extract" and failures[TOO_SHORT].reason.startswith(
        "too_short: "
    )
    assert failures[TRUNCATED].reason.split(":")[0] in {"truncated", "decode_error", "zero_frames"}
    assert (
        report.videos_total,
        report.videos_with_clips,
        report.videos_failed,
        report.videos_skipped,
    ) == (11, 8, 2, 1)
    assert (
        report.failures_by_reason["too_short"] == 1 and sum(report.failures_by_reason.values()) == 3
    )
    ok = sum(
        v.status == "ok" for v in read_records(cache.videos_parquet, VideoRecord)
    )  # the truncated file may pass probe
    assert ok in (9, 10) and report.tasks_run == report.tasks_total == -(-ok // VIDEOS_PER_TASK)


def test_rerun_is_a_no_op(corpus, reference):
    root, _, snapshot = reference
    again = run_extract(corpus, root)
    assert (again.tasks_run, again.clips_written, again.clips) == (0, 0, 2 * len(GOOD_VIDEOS))
    assert cache_snapshot(root.cache_dir("corpus", small_spec().name).path) == snapshot


def test_crash_states_resume_identically(corpus, reference, tmp_path):
    """Each state a crash can leave: temp files, a shard without index, an unfinished task."""
    _, _, snapshot = reference
    root = DataRoot(tmp_path)
    run_extract(corpus, root)
    shards_dir = root.cache_dir("corpus", small_spec().name).shards_dir
    (shards_dir / "task-0001.done.json").unlink()  # task 1 unfinished ...
    last = sorted(shards_dir.glob("shard-0001-*.index.parquet"))[-1]
    last.unlink()  # ... with its last shard final but not indexed (orphan)
    first_index = sorted(shards_dir.glob("shard-0002-*.index.parquet"))[0]
    (shards_dir / "task-0002.done.json").unlink()  # task 2 crashed after its first shard
    for later in sorted(shards_dir.glob("shard-0002-*"))[2:]:
        later.unlink()
    assert first_index.exists()
    (shards_dir / "shard-0002-0001.npy.zst.tmp-999-deadbeef").write_bytes(b"half a shard")
    (root.cache_dir("corpus", small_spec().name).path / "clips.parquet.tmp-1-x").write_bytes(
        b"junk"
    )
    resumed = run_extract(corpus, root)
    assert resumed.tasks_run == 2 and 0 < resumed.clips_written < resumed.clips
    assert cache_snapshot(shards_dir.parent) == snapshot
    assert not temp_files(shards_dir.parent)


SCRIPT = """
import json, sys
from pathlib import Path
from vfcache.layout import DataRoot
from vfcache.pipelines.extract import extract_clips
from vfcache.config import ClipSpec
sys.path.insert(0, "tests")
from video_corpus import local_config
args = json.loads(sys.argv[1])
extract_clips(local_config(Path(args["raw"])), DataRoot(Path(args["root"])),
ClipSpec(**args["spec"]),
              client=None, shard_target_bytes=args["target"], videos_per_task=args["per_task"],
              progress=False, max_failed=None)
"""


def kill_when(condition, args: dict) -> None:
    """Start an extraction in a subprocess and SIGKILL it as soon as `condition()` holds."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, json.dumps(args)], cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 120
        while not condition():
            assert proc.poll() is None, (
                f"the extraction ended (exit {proc.returncode}) before the kill point"
            )
            assert time.monotonic() < deadline, "kill point never reached"
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["first_temp_shard", "first_index", "first_done", "second_done"])
def test_kill_and_resume(corpus, reference, tmp_path, moment):
    _, _, snapshot = reference
    spec = small_spec()
    root = DataRoot(tmp_path)
    build_manifest(corpus.config(), root, spec, client=None, progress=False)
    shards_dir = root.cache_dir("corpus", spec.name).shards_dir
    conditions = {
        "first_temp_shard": lambda: any(".npy.zst.tmp-" in p.name for p in _listing(shards_dir)),
        "first_index": lambda: any(p.name.endswith(".index.parquet") for p in _listing(shards_dir)),
        "first_done": lambda: any(p.name.endswith(".done.json") for p in _listing(shards_dir)),
        "second_done": lambda: (
            sum(p.name.endswith(".done.json") for p in _listing(shards_dir)) >= 2
        ),
    }
    args = {
        "raw": str(corpus.raw_dir),
        "root": str(root.path),
        "spec": spec.__dict__,
        "target": SHARD_TARGET_BYTES,
        "per_task": VIDEOS_PER_TASK,
    }
    kill_when(conditions[moment], args)
    resumed = run_extract(corpus, root)
    assert resumed.tasks_run >= 1  # the kill left work to do
    if moment != "first_temp_shard":
        assert resumed.clips_written < resumed.clips  # and work that the resumed run kept
    assert cache_snapshot(shards_dir.parent) == snapshot
    assert not temp_files(shards_dir.parent)


def _listing(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except FileNotFoundError:
        return []


def test_same_output_on_a_dask_cluster(corpus, reference, tmp_path):
    _, _, snapshot = reference
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        report = run_extract(corpus, DataRoot(tmp_path), client=client)
    assert report.tasks_run == report.tasks_total
    assert (
        cache_snapshot(DataRoot(tmp_path).cache_dir("corpus", small_spec().name).path) == snapshot
    )


def test_max_failed(corpus, tmp_path):
    root = DataRoot(tmp_path)
    with pytest.raises(TooManyFailures) as err:
        run_extract(corpus, root, max_failed=0.05)
    assert "2 of 11 videos" in str(err.value) and isinstance(err.value, StageError)
    assert err.value.report.videos_failed == 2 and err.value.report.clips == 2 * len(GOOD_VIDEOS)
    cache = root.cache_dir("corpus", small_spec().name)
    assert pq.read_table(cache.clips_parquet).num_rows == 2 * len(
        GOOD_VIDEOS
    )  # written before raising
    assert pq.read_table(cache.failures_parquet).num_rows == 3
    assert run_extract(corpus, root, max_failed=0.2).videos_failed == 2  # 2/11 = 18% is allowed
    with pytest.raises(ValueError, match="max_failed"):
        run_extract(corpus, root, max_failed=5)


@pytest.mark.parametrize("policy", ["pad_last", "loop"])
def test_short_video_policies(corpus, tmp_path, policy):
    spec = small_spec(
        name=f"short_{policy}", short_policy=policy, frames=6, clips_per_video=1, start="start"
    )
    root = DataRoot(tmp_path)
    run_extract(corpus, root, spec)
    cache = root.cache_dir("corpus", spec.name)
    clip = next(c for c in read_records(cache.clips_parquet, ClipRecord) if c.relpath == TOO_SHORT)
    assert clip.short_policy == policy and clip.padded_frames > 0
    with ShardReader(cache.resolve_shard(clip.shard)) as reader:
        pixels = reader.read(clip.offset, clip.nbytes)
    assert [read_code(frame) for frame in pixels] == list(clip.frame_indices)
    assert TOO_SHORT not in {f.relpath for f in read_records(cache.failures_parquet, FailureRecord)}


def _pixels_by_clip(cache) -> dict[str, bytes]:
    found = {}
    for clip in read_records(cache.clips_parquet, ClipRecord):
        with ShardReader(cache.resolve_shard(clip.shard)) as reader:
            found[clip.clip_id] = reader.read(clip.offset, clip.nbytes, clip.clip_id).tobytes()
    return found


def _shard_bytes(cache) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes() for p in cache.shards_dir.iterdir() if p.name.endswith(".npy.zst")
    }


def test_a_dataset_that_grows_shrinks_and_changes(corpus, tmp_path):
    """Videos added, removed and changed: only what is new is extracted, no shard is rewritten,
    removed videos leave clips.parquet, and every clip equals a from-scratch run's, pixel for
    pixel."""
    mine = copy_corpus(corpus, tmp_path / "raw")
    held_back = ["studio/real/camera/r7.mp4", "street/fake/warpnet/f1.mp4"]
    stash = tmp_path / "stash"
    for relpath in held_back:
        (stash / relpath).parent.mkdir(parents=True, exist_ok=True)
        os.replace(mine.raw_dir / relpath, stash / relpath)
    root = DataRoot(tmp_path / "grown")
    first = run_extract(mine, root)
    cache = root.cache_dir("corpus", small_spec().name)
    before = _shard_bytes(cache)
    assert first.clips == 2 * (len(GOOD_VIDEOS) - 2)

    # grow: the two videos come back; remove one, and change another's bytes
    for relpath in held_back:
        os.replace(stash / relpath, mine.raw_dir / relpath)
    removed, changed = "street/real/phone/r3.mp4", "studio/fake/diffgen/f5.mp4"
    assert {removed, changed} <= set(GOOD_VIDEOS)
    (mine.raw_dir / removed).unlink()
    make_video(
        mine.raw_dir / changed, **{**GOOD_VIDEOS[changed], "seed": 99}, threads=1
    )  # new bytes
    build_manifest(mine.config(), root, small_spec(), client=None, progress=False)
    grown = run_extract(mine, root)
    assert grown.tasks_run == 1 and grown.clips_written == 2 * 3  # two added, one changed
    after = _shard_bytes(cache)
    assert {name: after[name] for name in before} == before  # nothing rewritten
    clips = read_records(cache.clips_parquet, ClipRecord)
    assert removed not in {c.relpath for c in clips}
    assert sorted(p.name for p in cache.shards_dir.glob("plan-*.json")) == [
        "plan-0000.json",
        "plan-0001.json",
    ]

    scratch = DataRoot(tmp_path / "scratch")
    run_extract(mine, scratch)
    assert _pixels_by_clip(cache) == _pixels_by_clip(scratch.cache_dir("corpus", small_spec().name))
    again = run_extract(mine, root)
    assert (again.tasks_run, again.clips_written) == (0, 0)


def test_gc_frees_the_shards_no_manifest_or_split_names(corpus, tmp_path):
    from vfcache.pipelines.extract.gc import collect_garbage, referenced_shards
    from vfcache.pipelines.split import write_split

    from vfcache.layout import SPLIT_PARTS

    mine = copy_corpus(corpus, tmp_path / "raw")
    root = DataRoot(tmp_path / "root")
    run_extract(
        mine, root, shard_target_bytes=1
    )  # one clip per shard: removed videos own whole shards
    cache = root.cache_dir("corpus", small_spec().name)
    write_split(cache, sizes="train=0.5,test=rest", seed=0, name="old")  # made before the removal
    removed = "street/real/phone/r3.mp4"
    removed_shards = {
        c.shard for c in read_records(cache.clips_parquet, ClipRecord) if c.relpath == removed
    }
    (mine.raw_dir / removed).unlink()
    build_manifest(mine.config(), root, small_spec(), client=None, progress=False)
    run_extract(mine, root, shard_target_bytes=1)
    assert collect_garbage(cache, dry_run=True).shards == ()  # the old split still trains from them
    for part in SPLIT_PARTS:
        cache.split_file("old", part).unlink()
    dry = collect_garbage(cache, dry_run=True)
    assert set(dry.shards) == removed_shards and dry.bytes > 0 and not dry.deleted
    assert all((cache.path / s).exists() for s in removed_shards)
    done = collect_garbage(cache)
    assert done.shards == dry.shards and not any((cache.path / s).exists() for s in removed_shards)
    assert referenced_shards(cache) <= {
        f"shards/{p.name}" for p in cache.shards_dir.glob("*.npy.zst")
    }
    assert set(_pixels_by_clip(cache))  # every listed clip still reads
    # the video comes back: its clips were collected, so it is extracted again
    shutil.copyfile(corpus.raw_dir / removed, mine.raw_dir / removed)
    build_manifest(mine.config(), root, small_spec(), client=None, progress=False)
    back = run_extract(mine, root, shard_target_bytes=1)
    assert back.clips_written == 2 and removed in {
        c.relpath for c in read_records(cache.clips_parquet, ClipRecord)
    }


def test_a_grown_extraction_killed_midway_resumes_its_plan(corpus, tmp_path):
    mine = copy_corpus(corpus, tmp_path / "raw")
    root = DataRoot(tmp_path / "root")
    run_extract(mine, root)
    cache = root.cache_dir("corpus", small_spec().name)
    plan = json.loads((cache.shards_dir / "plan-0000.json").read_text())
    assert sorted(plan["tasks"]) == sorted(
        p.name[5:9] for p in cache.shards_dir.glob("task-*.done.json")
    )
    # a task lost its done file and its last shards: it resumes from its own plan entry
    writer = sorted(plan["tasks"])[1]
    (cache.shards_dir / f"task-{writer}.done.json").unlink()
    for index in sorted(cache.shards_dir.glob(f"shard-{writer}-*.index.parquet"))[1:]:
        index.unlink()
    snapshot = cache_snapshot(cache.path)
    resumed = run_extract(mine, root)
    assert resumed.tasks_run == 1 and resumed.clips_written > 0
    assert {k: v for k, v in cache_snapshot(cache.path).items() if k in snapshot} == snapshot


def test_extract_needs_a_manifest(corpus, tmp_path):
    with pytest.raises(StageError, match="build-manifest corpus"):
        extract_clips(
            corpus.config(), DataRoot(tmp_path), small_spec(), client=None, progress=False
        )


def test_batches_depend_on_manifest_spec_and_target_only():
    spec = (
        small_spec()
    )  # 2 clips of 4x96x96x3 per video: ~110 kB per video at the assumed 2x compression
    assert auto_videos_per_task(10, spec, 128 << 20) == 1  # small dataset: one video per task
    assert auto_videos_per_task(1000, spec, 128 << 20) == 32  # ~32 tasks
    assert auto_videos_per_task(100_000, spec, 1_000_000) == 9  # capped at about one shard per task
    videos = [
        VideoRecord(
            video_id=f"{k:064x}",
            dataset="d",
            domain="d",
            relpath=f"v{k:03d}.mp4",
            label=0,
            generator="g",
            group=str(k),
            source_split=None,
            bytes=1,
            codec="h264",
            width=8,
            height=8,
            rotation=0,
            fps=25.0,
            num_frames=9,
            duration_s=0.36,
            status="failed" if k == 3 else "ok",
            reason=None,
        )
        for k in range(10, -1, -1)
    ]
    batches = plan_batches(videos, 4)
    assert [writer for writer, _ in batches] == ["0000", "0001", "0002"]
    assert [[v.relpath for v in batch] for _, batch in batches][0] == [
        "v000.mp4",
        "v001.mp4",
        "v002.mp4",
        "v004.mp4",
    ]
    assert sum(len(batch) for _, batch in batches) == 10


def _clips_with_pixels(cache_path: Path) -> dict:
    clips = read_records(cache_path / "clips.parquet", ClipRecord)
    out = {}
    for clip in clips:
        with ShardReader(cache_path / clip.shard) as reader:
            out[clip.clip_id] = (clip, reader.read(clip.offset, clip.nbytes, clip.clip_id))
    return out


def test_decord_reader_gives_the_same_clips(corpus, reference, tmp_path):
    """decord and PyAV pick the same frames (same clip rows, same frame codes); pixels differ only
    by the few levels of their YUV->RGB round trip (the decode layer documents the bound)."""
    pyav_root, _, _ = reference
    run_extract(corpus, DataRoot(tmp_path), reader="decord")
    spec_name = small_spec().name
    by_pyav = _clips_with_pixels(pyav_root.cache_dir("corpus", spec_name).path)
    by_decord = _clips_with_pixels(DataRoot(tmp_path).cache_dir("corpus", spec_name).path)
    assert by_pyav.keys() == by_decord.keys() and by_pyav
    for clip_id, (clip, pixels) in by_pyav.items():
        other_clip, other_pixels = by_decord[clip_id]
        assert (clip.frame_indices, clip.timestamps_s) == (
            other_clip.frame_indices,
            other_clip.timestamps_s,
        )
        assert [read_code(f) for f in pixels] == [read_code(f) for f in other_pixels]
        difference = np.abs(pixels.astype(np.int16) - other_pixels.astype(np.int16))
        assert difference.mean() < 2.0 and np.percentile(difference, 99) <= 30, clip.relpath


@pytest.mark.slow
def test_sample_dataset_end_to_end(tmp_path):
    """The embedded sample (29.97 fps, VFR, rotation, portrait, mpeg4/vp9, broken files) through
    both stages."""
    from vfcache.pipelines.sources.base import get_source
    from vfcache.pipelines.sources.sample import read_truth

    from vfcache.config import load_clip_spec, load_dataset_config

    config, spec, root = (
        load_dataset_config("sample"),
        load_clip_spec("sample_8x112"),
        DataRoot(tmp_path),
    )
    get_source(config).fetch(root, progress=False)
    manifest = build_manifest(config, root, spec, client=None, progress=False)
    report = extract_clips(config, root, spec, client=None, progress=False, max_failed=0.1)
    truth = {entry.relpath: entry for entry in read_truth(root.raw_dir("sample"))}
    assert manifest.videos_total == len(truth)
    cache = root.cache_dir("sample", spec.name)
    clips = read_records(cache.clips_parquet, ClipRecord)
    failed = {f.relpath for f in read_records(cache.failures_parquet, FailureRecord)}
    assert {c.relpath for c in clips} | failed == set(truth) and not {
        c.relpath for c in clips
    } & failed
    assert {
        rel for rel, entry in truth.items() if entry.defect in ("truncated", "not_a_video")
    } <= failed
    assert report.clips == len(clips) >= sum(entry.usable for entry in truth.values())
    for clip in clips:
        video_truth = truth[clip.relpath].truth
        with ShardReader(cache.resolve_shard(clip.shard)) as reader:
            pixels = reader.read(clip.offset, clip.nbytes, clip.clip_id)
        assert [read_code(frame) for frame in pixels] == [
            video_truth.frame_codes[i] for i in clip.frame_indices
        ], clip.relpath


def test_duplicate_files_are_skipped_not_failed(corpus, tmp_path):
    mine = copy_corpus(corpus, tmp_path / "raw")
    shutil.copyfile(
        mine.raw_dir / "street/fake/warpnet/f0.mp4",
        mine.raw_dir / "street/fake/warpnet/f0_copy.mp4",
    )
    root = DataRoot(tmp_path / "data")
    report = run_extract(mine, root)
    assert (report.videos_total, report.videos_failed, report.videos_skipped) == (
        12,
        2,
        2,
    )  # too short + duplicate
    failures = {
        f.relpath: f
        for f in read_records(
            root.cache_dir("corpus", small_spec().name).failures_parquet, FailureRecord
        )
    }
    copy = failures["street/fake/warpnet/f0_copy.mp4"]
    assert (copy.stage, copy.reason) == (
        "probe",
        "duplicate: same bytes as street/fake/warpnet/f0.mp4",
    )
    assert report.failures_by_reason["duplicate"] == 1


@pytest.mark.parametrize("compress_thread", [False, True])
def test_the_compression_thread_changes_no_byte(corpus, reference, tmp_path, compress_thread):
    _, _, snapshot = reference
    run_extract(corpus, DataRoot(tmp_path), compress_thread=compress_thread)
    assert (
        cache_snapshot(DataRoot(tmp_path).cache_dir("corpus", small_spec().name).path) == snapshot
    )


def test_a_video_failing_on_the_conversion_thread_leaves_no_clip(
    corpus, reference, tmp_path, monkeypatch
):
    """The frame that fails is the last one of the video, after its first clip went to
    compression."""
    import vfcache.pipelines.decode as decode_module
    from vfcache.pipelines.decode import VideoReadError

    ref_root, _, _ = reference
    ref_cache = ref_root.cache_dir("corpus", small_spec().name)
    victim = sorted(GOOD_VIDEOS)[0]
    victim_clips = [
        c for c in read_records(ref_cache.clips_parquet, ClipRecord) if c.relpath == victim
    ]
    last_frame = max(i for c in victim_clips for i in c.frame_indices)
    real_fit = decode_module._fit

    def failing_fit(fitter, frame, rotation_applied, info, out, path, index):
        if path.endswith(victim) and index == last_frame:
            raise VideoReadError("decode_error", "injected on the conversion thread", path=path)
        return real_fit(fitter, frame, rotation_applied, info, out, path, index)

    monkeypatch.setattr(decode_module, "_fit", failing_fit)
    root = DataRoot(tmp_path)
    run_extract(corpus, root, compress_thread=True)
    cache = root.cache_dir("corpus", small_spec().name)
    failures = {f.relpath: f.reason for f in read_records(cache.failures_parquet, FailureRecord)}
    assert failures[victim].startswith("decode_error") and "injected" in failures[victim]
    expected = {
        k: v
        for k, v in _pixels_by_clip(ref_cache).items()
        if k not in {c.clip_id for c in victim_clips}
    }
    assert _pixels_by_clip(cache) == expected


def test_the_zstd_level_is_recorded_and_kept(corpus, reference, tmp_path):
    from vfcache.layout import DEFAULT_ZSTD_LEVEL

    ref_root, _, _ = reference
    ref_cache = ref_root.cache_dir("corpus", small_spec().name)
    assert json.loads(ref_cache.spec_json.read_text())["shards"] == {
        "compression": "zstd",
        "level": DEFAULT_ZSTD_LEVEL,
        "filter": None,
    }
    root = DataRoot(tmp_path)
    run_extract(corpus, root, zstd_level=9)
    cache = root.cache_dir("corpus", small_spec().name)
    assert json.loads(cache.spec_json.read_text())["shards"]["level"] == 9 == cache.shard_level()
    assert cache.read_spec() == small_spec()  # the level is beside the spec, not in it
    assert _pixels_by_clip(cache) == _pixels_by_clip(ref_cache)  # same clips and ids, other bytes
    assert _shard_bytes(cache) != _shard_bytes(ref_cache)
    with pytest.raises(StageError, match="compressed at zstd level 9"):
        run_extract(corpus, root, zstd_level=DEFAULT_ZSTD_LEVEL)
    assert run_extract(corpus, root, zstd_level=9).tasks_run == 0
    assert run_extract(corpus, root).tasks_run == 0  # no level asked: the recorded one


def test_a_cache_from_before_the_level_was_recorded_keeps_level_3(corpus, reference, tmp_path):
    ref_root, _, _ = reference
    root = DataRoot(tmp_path / "old")
    shutil.copytree(ref_root.path, root.path)
    cache = root.cache_dir("corpus", small_spec().name)
    payload = json.loads(cache.spec_json.read_text())
    del payload["shards"]
    cache.spec_json.write_text(json.dumps(payload))
    assert cache.shard_level() == 3
    with pytest.raises(StageError, match="compressed at zstd level 3"):
        run_extract(corpus, root, zstd_level=2)


def test_a_spare_core_turns_the_compression_thread_on(monkeypatch):
    from vfcache.pipelines import runner

    monkeypatch.setattr(runner, "usable_cores", lambda: 2)
    assert runner.spare_core_per_task(None)
    monkeypatch.setattr(runner, "usable_cores", lambda: 1)
    assert not runner.spare_core_per_task(None)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        monkeypatch.setattr(
            runner, "usable_cores", lambda: 4
        )  # in-process workers see the patch too
        assert runner.spare_core_per_task(client)
        monkeypatch.setattr(runner, "usable_cores", lambda: 3)
        assert not runner.spare_core_per_task(client)
