"""The probe stage: videos.parquet rows, failures with reasons, reuse of unchanged files."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest
from distributed import Client, LocalCluster
from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import (
    LABEL_FAKE,
    LABEL_REAL,
    STATUS_FAILED,
    STATUS_OK,
    STATUS_SKIPPED,
    VideoRecord,
)
from vfcache.pipelines.probe import build_manifest
from video_corpus import (
    GOOD_VIDEOS,
    NOT_A_VIDEO,
    TOO_SHORT,
    TRUNCATED,
    copy_corpus,
    small_spec,
)

from vfcache.errors import StageError
from vfcache.layout import DataRoot

READ_ERROR_SLUGS = {
    "not_a_video",
    "no_video_stream",
    "truncated",
    "zero_frames",
    "unsupported_codec",
    "decode_error",
}


def rows_by_relpath(root: DataRoot, dataset: str, spec) -> dict[str, VideoRecord]:
    rows = read_records(root.cache_dir(dataset, spec.name).videos_parquet, VideoRecord)
    assert [r.relpath for r in rows] == sorted(r.relpath for r in rows)
    return {r.relpath: r for r in rows}


def test_manifest_rows(corpus, tmp_path):
    root, spec = DataRoot(tmp_path / "data"), small_spec()
    report = build_manifest(corpus.config(), root, spec, client=None, progress=False)
    rows = rows_by_relpath(root, "corpus", spec)
    assert set(rows) == set(corpus.truths)
    assert (
        report.videos_total == len(corpus.truths)
        and report.probed == len(corpus.truths)
        and report.reused == 0
    )
    for relpath in GOOD_VIDEOS:
        row, truth = rows[relpath], corpus.truths[relpath]
        assert row.status == STATUS_OK and row.reason is None, (relpath, row.reason)
        assert row.video_id == hashlib.sha256((corpus.raw_dir / relpath).read_bytes()).hexdigest()
        assert row.bytes == os.path.getsize(corpus.raw_dir / relpath)
        assert (row.width, row.height, row.rotation) == (
            truth.width,
            truth.height,
            truth.rotation_deg,
        ), relpath
        assert row.num_frames == truth.num_frames
        assert row.codec and row.fps and row.duration_s
        assert row.dataset == "corpus" and row.source_split is None
    f1 = rows["street/fake/warpnet/f1.mp4"]
    assert (f1.label, f1.generator, f1.domain, f1.group) == (
        LABEL_FAKE,
        "warpnet",
        "street",
        "street/warpnet/f1",
    )
    assert rows["studio/real/camera/r6.avi"].label == LABEL_REAL
    assert rows[TOO_SHORT].status == STATUS_OK  # a valid video; too short is the extractor's call
    bad = rows[NOT_A_VIDEO]
    assert (
        bad.status == STATUS_FAILED
        and bad.reason.split(":")[0] in READ_ERROR_SLUGS
        and bad.codec is None
    )
    assert bad.video_id == hashlib.sha256((corpus.raw_dir / NOT_A_VIDEO).read_bytes()).hexdigest()
    if rows[TRUNCATED].status == STATUS_FAILED:
        assert rows[TRUNCATED].reason.split(":")[0] in READ_ERROR_SLUGS
    assert report.videos_failed == sum(r.status == STATUS_FAILED for r in rows.values())
    assert sum(report.failures_by_reason.values()) == report.videos_failed
    # one manifest per dataset: probing writes no spec folder (extraction makes it)
    assert (
        root.cache_dir("corpus", spec.name).videos_parquet
        == root.dataset_dir("corpus") / "videos.parquet"
    )
    assert not root.cache_dir("corpus", spec.name).path.exists()


def test_rerun_reuses_unchanged_files_and_reprobes_changed(corpus, tmp_path):
    mine = copy_corpus(corpus, tmp_path / "raw")
    root, spec = DataRoot(tmp_path / "data"), small_spec()
    build_manifest(mine.config(), root, spec, client=None, progress=False)
    first = rows_by_relpath(root, "corpus", spec)
    again = build_manifest(mine.config(), root, spec, client=None, progress=False)
    assert (again.probed, again.reused) == (0, len(first))
    assert rows_by_relpath(root, "corpus", spec) == first
    # another spec of the same dataset has the same manifest: nothing to probe
    other = build_manifest(
        mine.config(), root, small_spec(name="other", frames=2), client=None, progress=False
    )
    assert other.probed == 0 and other.videos_parquet == again.videos_parquet
    # replace one video by another one's bytes: it is probed again, and is now a duplicate
    shutil.copyfile(
        mine.raw_dir / "studio/real/camera/r7.mp4", mine.raw_dir / "studio/real/camera/r6.avi"
    )
    changed = build_manifest(mine.config(), root, spec, client=None, progress=False)
    assert (changed.probed, changed.reused) == (1, len(first) - 1)
    rows = rows_by_relpath(root, "corpus", spec)
    assert rows["studio/real/camera/r6.avi"].video_id == rows["studio/real/camera/r7.mp4"].video_id
    assert rows["studio/real/camera/r6.avi"].status == STATUS_OK  # first by relpath is kept
    dup = rows["studio/real/camera/r7.mp4"]
    assert (
        dup.status == STATUS_SKIPPED
        and dup.reason == "duplicate: same bytes as studio/real/camera/r6.avi"
    )
    assert changed.videos_skipped == 1
    forced = build_manifest(mine.config(), root, spec, client=None, progress=False, force=True)
    assert forced.probed == len(first)


def test_labels_come_fresh_from_the_layout(corpus, tmp_path):
    root, spec = DataRoot(tmp_path / "data"), small_spec()
    build_manifest(corpus.config(), root, spec, client=None, progress=False)
    config = corpus.config()
    relabelled = type(config)(
        **{
            **config.__dict__,
            "layout": type(config.layout)(
                pattern=config.layout.pattern, group="{name}", real=("real",), fake=("fake",)
            ),
        }
    )
    report = build_manifest(relabelled, root, spec, client=None, progress=False)
    assert report.probed == 0
    assert rows_by_relpath(root, "corpus", spec)["street/fake/warpnet/f1.mp4"].group == "f1"


def test_same_rows_on_a_dask_cluster(corpus, tmp_path):
    spec = small_spec()
    build_manifest(corpus.config(), DataRoot(tmp_path / "a"), spec, client=None, progress=False)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        build_manifest(
            corpus.config(), DataRoot(tmp_path / "b"), spec, client=client, progress=False
        )
    assert rows_by_relpath(DataRoot(tmp_path / "a"), "corpus", spec) == rows_by_relpath(
        DataRoot(tmp_path / "b"), "corpus", spec
    )


def test_spec_change_under_the_same_name_is_refused(corpus, tmp_path):
    from vfcache.pipelines.extract import extract_clips

    root = DataRoot(tmp_path / "data")
    build_manifest(corpus.config(), root, client=None, progress=False)
    extract_clips(corpus.config(), root, small_spec(), client=None, progress=False, max_failed=None)
    with pytest.raises(StageError, match="different clip spec named 't4x96'"):
        extract_clips(corpus.config(), root, small_spec(frames=6), client=None, progress=False)


def test_missing_raw_folder_and_empty_dataset(corpus, tmp_path):
    from video_corpus import local_config

    with pytest.raises(StageError, match="vfcache fetch"):
        build_manifest(
            local_config(tmp_path / "missing"),
            DataRoot(tmp_path),
            small_spec(),
            client=None,
            progress=False,
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(StageError, match="no videos"):
        build_manifest(
            local_config(tmp_path / "empty"),
            DataRoot(tmp_path),
            small_spec(),
            client=None,
            progress=False,
        )
