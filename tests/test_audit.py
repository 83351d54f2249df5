"""Audit: exact figures on a hand-built cache and split, and each check failing when its rule is
broken."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from cache_fixtures import STATUS_FAILED, STATUS_SKIPPED, VideoPlan, build_cache
from vfcache.manifests.audit import ShortClipCount, audit, format_table
from vfcache.manifests.parquet_io import read_records, write_records
from vfcache.manifests.records import ClipRecord, split_entry_from_clip
from vfcache.manifests.split_files import (
    PartSummary,
    SplitMeta,
    entry_line,
    read_split,
    write_split_file,
    write_split_meta,
)
from vfcache.pipelines.split import write_split

from vfcache.checksums import sha256_file
from vfcache.errors import StageError
from vfcache.layout import SPLIT_PARTS, CacheDir

PLANS = (
    [
        VideoPlan("aegis", 0, "youtube", f"r{i}", short_policy="pad_last" if i == 5 else "none")
        for i in range(6)
    ]
    + [VideoPlan("aegis", 1, "sora", f"s{i}") for i in range(4)]
    + [VideoPlan("aegis", 1, "pika", f"p{i}", clips=2) for i in range(2)]
    + [
        VideoPlan("aegis", 0, "youtube", "pair-7", name="pair-real"),
        VideoPlan("aegis", 1, "sora", "pair-7", name="pair-fake"),
    ]
    + [
        VideoPlan(
            "aegis",
            1,
            "sora",
            "bad",
            status=STATUS_FAILED,
            reason="unreadable: moov atom not found",
        ),
        VideoPlan(
            "aegis", 0, "youtube", "short", status=STATUS_SKIPPED, reason="too short: 3 frames < 4"
        ),
    ]
)
# video name -> part; p0 and p1 have two clips each
HAND_SPLIT = {
    "train": ["r0", "r1", "s0", "p0"],
    "val": ["r2", "s1"],
    "test": ["r3", "r4", "r5", "s2", "s3", "p1", "pair-real", "pair-fake"],
    "support": ["r0", "s0"],
}


def video_name(clip: ClipRecord) -> str:
    return Path(clip.relpath).stem


def write_hand_split(
    cache: CacheDir, split: dict[str, list[str]], clips, support_per_class: int = 1
) -> None:
    parts = {
        part: sorted((c for c in clips if video_name(c) in names), key=lambda c: c.clip_id)
        for part, names in split.items()
    }
    for part in SPLIT_PARTS:
        write_split_file(
            cache.split_file("default", part), [split_entry_from_clip(c) for c in parts[part]]
        )
    summaries = tuple(
        PartSummary(
            part,
            asked,
            "clips",
            len(parts[part]),
            len(parts[part]),
            len(parts[part]),
            len({c.group for c in parts[part]}),
            len({c.video_id for c in parts[part]}),
        )
        for part, asked in (
            ("train", "5"),
            ("val", "2"),
            ("test", "rest"),
            ("support", "1 per class per domain"),
        )
    )
    meta = SplitMeta(
        name="default",
        seed=0,
        sizes=(("train", "5"), ("val", "2"), ("test", "rest")),
        stratify=("label", "generator"),
        support_per_class=support_per_class,
        spec_hash=json.loads(cache.spec_json.read_text())["spec_hash"],
        clips_parquet_sha256=sha256_file(cache.clips_parquet),
        clips_total=len(clips),
        parts=summaries,
        unit="clips",
    )
    write_split_meta(cache.split_dir("default"), meta)


@pytest.fixture()
def hand_cache(tmp_path: Path):
    fixture = build_cache(tmp_path / "aegis", PLANS, dataset="aegis", clips_per_shard=5)
    write_hand_split(fixture.cache_dir, HAND_SPLIT, fixture.clips)
    return fixture


def failed(report) -> set[str]:
    return {check.name for check in report.checks if not check.passed}


def test_figures_are_exact_on_a_hand_built_cache(hand_cache):
    report = audit([("aegis", hand_cache.cache_dir)])
    assert report.ok, format_table(report)
    expected = {  # part -> (all, real, fake, sora, pika)
        "total": (16, 7, 9, 5, 4),
        "train": (5, 2, 3, 1, 2),
        "val": (2, 1, 1, 1, 0),
        "test": (9, 4, 5, 3, 2),
        "support": (2, 1, 1, 1, 0),
    }
    for part, (total, real, fake, sora, pika) in expected.items():
        assert report.count(dataset="aegis", part=part) == total
        assert report.count(dataset="aegis", part=part, label=0) == real
        assert report.count(dataset="aegis", part=part, label=1) == fake
        assert report.count(dataset="aegis", part=part, label=1, generator="sora") == sora
        assert report.count(dataset="aegis", part=part, label=1, generator="pika") == pika
    pika_train = [c for c in report.cells if c.part == "train" and c.generator == "pika"]
    assert [(c.clips, c.videos) for c in pika_train] == [(2, 1)]
    assert report.short_clips == (ShortClipCount("aegis", "aegis", "pad_last", 1, 2),)
    # each failed video once: failures.parquet already carries the probe failures of videos.parquet
    assert [(f.source, f.reason, f.videos) for f in report.failures] == [
        ("failures.parquet:extract", "too short: 3 frames < 4", 1),
        ("failures.parquet:probe", "unreadable: moov atom not found", 1),
    ]
    assert [c.name for c in report.checks] == [
        "split_present",
        "split_current",
        "partition",
        "no_group_across_splits",
        "clips_in_final_shards",
        "support_in_train",
        "sizes_as_asked",
        "support_per_class",
        "no_video_across_splits",
    ]
    table = format_table(report).splitlines()
    assert table[0] == "aegis / aegis"
    assert table[1].split() == ["total", "train", "val", "test", "support"]
    assert table[2].split() == ["all", "16", "5", "2", "9", "2"]
    assert table[3].split() == ["real", "7", "2", "1", "4", "1"]
    assert table[4].split() == ["youtube", "7", "2", "1", "4", "1"]
    assert table[5].split() == ["fake", "9", "3", "1", "5", "1"]
    assert table[6].split() == ["pika", "4", "2", "0", "2", "0"]
    assert table[7].split() == ["sora", "5", "1", "1", "3", "1"]
    assert table[-1] == "audit passed"
    assert json.loads(json.dumps(report.to_json()))["ok"] is True


def test_a_group_in_two_parts_fails(hand_cache):
    leaked = {
        **HAND_SPLIT,
        "train": ["r0", "pair-fake", "s0", "p0"],
        "test": ["r3", "r4", "r5", "s2", "s3", "p1", "pair-real", "r1"],
    }
    write_hand_split(hand_cache.cache_dir, leaked, hand_cache.clips)
    report = audit([("aegis", hand_cache.cache_dir)])
    assert failed(report) == {"no_group_across_splits"}
    assert "group 'pair-7' in ['test', 'train']" in format_table(report)
    assert format_table(report).endswith("audit FAILED (1 checks)")


def test_a_video_in_two_datasets_parts_fails(hand_cache, tmp_path: Path):
    other = build_cache(tmp_path / "dvf", PLANS, dataset="dvf")
    swapped = {
        **HAND_SPLIT,
        "train": ["r2", "r1", "s0", "p0"],
        "val": ["r0", "s1"],
        "support": ["r2", "s0"],
    }
    write_hand_split(other.cache_dir, swapped, other.clips)
    report = audit([("aegis", hand_cache.cache_dir), ("dvf", other.cache_dir)])
    assert failed(report) == {"no_video_across_splits"}
    detail = next(c.detail for c in report.checks if c.name == "no_video_across_splits")
    assert (
        detail.startswith("2: ")
        and "'aegis/train', 'dvf/val'" in detail
        and "'aegis/val', 'dvf/train'" in detail
    )


def test_a_deleted_shard_fails(hand_cache):
    shard = read_split(hand_cache.cache_dir.split_file("default", "val"))[0].shard
    hand_cache.cache_dir.resolve_shard(shard).unlink()
    report = audit([("aegis", hand_cache.cache_dir)])
    assert failed(report) == {"clips_in_final_shards"}
    assert f"shard {shard} does not exist" in next(c.detail for c in report.checks if not c.passed)


def rewrite_lines(path: Path, edit) -> None:
    entries = read_split(path)
    path.write_text("".join(entry_line(e) for e in edit(entries)), encoding="utf-8")


def test_entries_that_disagree_with_the_manifest_or_lie_outside_the_shard_fail(hand_cache):
    cache = hand_cache.cache_dir
    rewrite_lines(
        cache.split_file("default", "test"),
        lambda es: [dataclasses.replace(es[0], offset=es[0].offset + 10**6)] + es[1:],
    )
    rewrite_lines(
        cache.split_file("default", "val"),
        lambda es: [dataclasses.replace(es[0], clip_id="0" * 24)] + es[1:],
    )
    report = audit([("aegis", cache)])
    assert failed(report) == {"clips_in_final_shards", "partition"}
    detail = next(c.detail for c in report.checks if c.name == "clips_in_final_shards")
    assert "differs from its clips.parquet row" in detail and "lie beyond the end" in detail
    assert f"val.jsonl clip {'0' * 24} is not in clips.parquet" in detail


def test_a_missing_line_fails_the_counts(hand_cache):
    rewrite_lines(hand_cache.cache_dir.split_file("default", "val"), lambda es: es[1:])
    report = audit([("aegis", hand_cache.cache_dir)])
    assert failed(report) == {"sizes_as_asked", "partition"}
    assert "val.jsonl has 1 clips (1 clips), split.json says 2 (2 clips)" in format_table(report)


def test_a_short_support_bank_and_support_outside_train_fail(hand_cache):
    support = hand_cache.cache_dir.split_file("default", "support")
    rewrite_lines(support, lambda es: es[:1])
    report = audit([("aegis", hand_cache.cache_dir)])
    assert failed(report) == {"sizes_as_asked", "support_per_class"}
    write_hand_split(
        hand_cache.cache_dir, {**HAND_SPLIT, "support": ["r2", "s0"]}, hand_cache.clips
    )
    assert failed(audit([("aegis", hand_cache.cache_dir)])) == {"support_in_train"}


def test_a_split_older_than_clips_parquet_fails(hand_cache):
    cache = hand_cache.cache_dir
    clips = read_records(cache.clips_parquet, ClipRecord)
    write_records(cache.clips_parquet, list(reversed(clips)), ClipRecord)
    assert failed(audit([("aegis", cache)])) == {"split_current"}


def test_sizes_in_clips_not_met_because_videos_are_large_fail(tmp_path: Path):
    plans = [
        VideoPlan("d", label, "youtube" if label == 0 else "sora", f"v{label}{i}", clips=3)
        for label in (0, 1)
        for i in range(3)
    ]
    cache = build_cache(tmp_path / "c", plans).cache_dir
    split = write_split(cache, sizes="train=4,val=6,test=rest", seed=0, support=0, unit="clips")
    assert not split.exact
    report = audit([("ds", cache)])
    assert failed(report) == {"sizes_as_asked"}
    assert "train: asked 4 = 4 clips, got 3" in format_table(report)


def test_sizes_in_videos_are_reached_with_several_clips_per_video(tmp_path: Path):
    """The issue's case: 4 clips per video, 0.5 / 0.25 / rest of the videos, audit passes."""
    plans = [
        VideoPlan("d", label, "youtube" if label == 0 else "sora", f"v{label}{i}", clips=4)
        for label in (0, 1)
        for i in range(3)
    ]
    cache = build_cache(tmp_path / "c", plans).cache_dir
    split = write_split(cache, sizes="train=0.5,val=0.25,test=rest", seed=0, support=0)
    assert split.exact and split.meta.unit == "videos"
    assert [(p.part, p.obtained, p.clips) for p in split.meta.parts] == [
        ("train", 3, 12),
        ("val", 2, 8),
        ("test", 1, 4),
        ("support", 0, 0),
    ]
    report = audit([("ds", cache)])
    assert report.ok, format_table(report)
    assert "videos: train 3, val 2, test 1" in format_table(report)
    # a part file that loses one clip of a video still counts the video but fails the clip count
    train = cache.split_file("default", "train")
    lines = train.read_text().splitlines(keepends=True)
    train.write_text("".join(lines[1:]))
    assert "sizes_as_asked" in failed(audit([("ds", cache)]))


def test_written_split_passes_and_missing_split_fails(hand_cache, tmp_path: Path):
    cache = hand_cache.cache_dir
    write_split(cache, sizes="train=8,val=4,test=rest", seed=1, support=2, name="written")
    assert audit([("aegis", cache)], split_name="written").ok
    shutil.rmtree(cache.split_dir("written"))
    report = audit([("aegis", cache)], split_name="written")
    assert failed(report) == {"split_present"}
    assert report.count(dataset="aegis", part="total") == 16
    with pytest.raises(StageError, match="extract the dataset"):
        audit([("none", CacheDir(tmp_path / "none"))])


def test_before_extraction_failures_come_from_videos_parquet(hand_cache):
    hand_cache.cache_dir.failures_parquet.unlink()
    report = audit([("aegis", hand_cache.cache_dir)])
    assert [(f.source, f.reason, f.videos) for f in report.failures] == [
        ("videos.parquet:failed", "unreadable: moov atom not found", 1),
        ("videos.parquet:skipped", "too short: 3 frames < 4", 1),
    ]
