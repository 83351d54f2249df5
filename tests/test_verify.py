"""verify_cache: intact caches pass; flipped bytes, truncation, stray bytes and missing shards are
named."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from cache_fixtures import VideoPlan, build_cache, tiny_spec
from vfcache.cache_tools.shards import ShardWriter
from vfcache.cache_tools.verify import coverage_problems, verify_cache
from vfcache.manifests.parquet_io import write_records
from vfcache.manifests.records import ClipRecord

from vfcache.errors import StageError
from vfcache.layout import shard_path_problem

PLANS = [
    VideoPlan("d", label, "youtube" if label == 0 else "sora", f"v{label}{i}", clips=2)
    for label in (0, 1)
    for i in range(3)
]  # 12 clips, 3 shards of 4


@pytest.fixture()
def cache(tmp_path: Path):
    return build_cache(tmp_path / "cache", PLANS, clips_per_shard=4)


def test_an_intact_cache_passes(cache):
    report = verify_cache(cache.cache_dir, progress=False)
    assert report.ok, report.summary()
    assert (report.clips_checked, report.shards_checked) == (12, 3)
    assert report.clip_shape == (4, 16, 16, 3)
    assert report.bytes_checked == sum(
        p.stat().st_size for p in cache.cache_dir.shards_dir.iterdir()
    )
    assert report.summary().endswith("verify passed")
    assert json.loads(json.dumps(report.to_json()))["ok"] is True


def test_a_flipped_byte_names_the_clip_and_its_shard(cache):
    victim = cache.clips[5]
    path = cache.cache_dir.resolve_shard(victim.shard)
    data = bytearray(path.read_bytes())
    data[victim.offset + victim.nbytes // 2] ^= 0x40
    path.write_bytes(bytes(data))
    report = verify_cache(cache.cache_dir, progress=False)
    assert not report.ok
    assert [(c.clip_id, c.shard, c.offset) for c in report.bad_clips] == [
        (victim.clip_id, victim.shard, victim.offset)
    ]
    assert report.bad_shards == ()
    assert f"BAD CLIP {victim.clip_id} in {victim.shard}" in report.summary()


def test_a_truncated_shard_names_its_last_clip(cache):
    last = max((c for c in cache.clips if c.shard == cache.clips[0].shard), key=lambda c: c.offset)
    path = cache.cache_dir.resolve_shard(last.shard)
    path.write_bytes(path.read_bytes()[:-10])
    report = verify_cache(cache.cache_dir, progress=False)
    assert [c.clip_id for c in report.bad_clips] == [last.clip_id]
    assert "truncated" in report.bad_clips[0].reason
    assert [(s.shard, "truncated" in s.reason) for s in report.bad_shards] == [(last.shard, True)]


def test_stray_bytes_and_unindexed_clips_are_reported(cache):
    cache_dir = cache.cache_dir
    first_shard = cache.clips[0].shard
    path = cache_dir.resolve_shard(first_shard)
    size = path.stat().st_size
    with open(path, "ab") as handle:
        handle.write(b"garbage!")
    dropped = min(
        (c for c in cache.clips if c.shard == cache.clips[4].shard), key=lambda c: c.offset
    )
    write_records(cache_dir.clips_parquet, [c for c in cache.clips if c != dropped], ClipRecord)
    report = verify_cache(cache_dir, progress=False)
    assert report.bad_clips == ()
    assert [(s.shard, s.reason) for s in report.bad_shards] == [
        (first_shard, f"8 stray bytes after the last clip (offsets {size}..{size + 8})"),
        (dropped.shard, f"{dropped.nbytes} bytes at offsets 0..{dropped.nbytes} belong to no clip"),
    ]


def test_missing_orphan_and_temporary_shards(cache):
    cache_dir = cache.cache_dir
    missing = cache.clips[-1].shard
    cache_dir.resolve_shard(missing).unlink()
    with ShardWriter(cache_dir.shards_dir / "shard-9999-0000.npy.zst") as writer:
        writer.append(np.zeros((4, 16, 16, 3), np.uint8))
    (cache_dir.shards_dir / "shard-9999-0001.npy.zst.tmp-1-abc").write_bytes(b"partial")
    report = verify_cache(cache_dir, progress=False)
    assert {c.clip_id for c in report.bad_clips} == {
        c.clip_id for c in cache.clips if c.shard == missing
    }
    assert all(c.reason == "its shard is missing" for c in report.bad_clips)
    assert [s.shard for s in report.bad_shards] == [missing, "shards/shard-9999-0000.npy.zst"]
    assert "does not index" in report.bad_shards[1].reason
    assert report.stale_temp_files == ("shards/shard-9999-0001.npy.zst.tmp-1-abc",)


def test_clips_of_the_wrong_shape_are_named(cache):
    spec = tiny_spec(frames=5)
    cache.cache_dir.spec_json.write_text(json.dumps(spec.to_json()))
    report = verify_cache(cache.cache_dir, progress=False)
    assert len(report.bad_clips) == 12
    assert report.bad_clips[0].reason == "uint8 (4, 16, 16, 3), the spec says uint8 (5, 16, 16, 3)"


def test_a_folder_without_spec_or_manifest_is_refused(tmp_path: Path, cache):
    with pytest.raises(StageError, match="spec.json does not exist"):
        verify_cache(tmp_path / "nothing", progress=False)
    cache.cache_dir.clips_parquet.unlink()
    with pytest.raises(StageError, match="clips.parquet does not exist"):
        verify_cache(cache.cache_dir, progress=False)


@pytest.mark.parametrize(
    "entries,size,expected",
    [
        ([(0, 5, "a"), (5, 5, "b")], 10, []),
        (
            [(0, 5, "a"), (4, 5, "b")],
            9,
            ["clip b at offset 4 overlaps the clip before it (ends at 5)"],
        ),
        ([(2, 3, "a")], 5, ["2 bytes at offsets 0..2 belong to no clip"]),
        ([(0, 5, "a")], 3, ["the index reaches byte 5 but the shard has 3 bytes (truncated)"]),
        ([], 4, ["4 stray bytes after the last clip (offsets 0..4)"]),
    ],
)
def test_coverage_problems(entries, size, expected):
    assert coverage_problems(entries, size) == expected


@pytest.mark.parametrize(
    "rel,problem",
    [
        ("shards/shard-0000-0000.npy.zst", None),
        ("../other/shard.npy.zst", "a shard path must stay inside the cache folder"),
        ("/abs/shard.npy.zst", "a shard path must stay inside the cache folder"),
        (
            "shards/shard-0000-0000.npy.zst.tmp-12-abcd",
            "not a final shard name (final shards end with .npy.zst)",
        ),
        ("shards/shard.parquet", "not a final shard name (final shards end with .npy.zst)"),
    ],
)
def test_shard_path_problem(rel, problem):
    assert shard_path_problem(rel) == problem


def test_clips_listed_in_a_temporary_shard_are_bad(cache):
    clips = [
        dataclasses.replace(c, shard=c.shard + ".tmp-1-abcd") if i == 0 else c
        for i, c in enumerate(cache.clips)
    ]
    write_records(cache.cache_dir.clips_parquet, clips, ClipRecord)
    report = verify_cache(cache.cache_dir, progress=False)
    assert [c.clip_id for c in report.bad_clips] == [cache.clips[0].clip_id]
    assert report.bad_clips[0].reason.startswith(
        "its shard path is invalid: not a final shard name"
    )
