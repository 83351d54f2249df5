"""Records and their parquet round trip; the Arrow schema is derived from the dataclasses."""

from __future__ import annotations

import dataclasses

import pyarrow.parquet as pq
import pytest
from vfcache.manifests.parquet_io import read_records, write_records
from vfcache.manifests.records import (
    ClipRecord,
    VideoRecord,
    arrow_schema,
    make_clip_id,
    record_from_dict,
)


def _clip(i: int) -> ClipRecord:
    return ClipRecord(
        clip_id=make_clip_id("v" * 64, "h" * 16, i),
        video_id="v" * 64,
        clip_index=i,
        frame_indices=(0, 1, 1),
        timestamps_s=(0.0, 0.04, 0.04),
        padded_frames=1,
        short_policy="pad_last",
        shard="shards/shard-0000-0000.npy.zst",
        offset=10 * i,
        nbytes=10,
        dataset="d",
        domain="dom",
        relpath="a/b.mp4",
        label=1,
        generator="g",
        group="b",
        source_split=None,
    )


def test_clip_round_trip(tmp_path):
    clips = [_clip(i) for i in range(3)]
    path = write_records(tmp_path / "clips.parquet", clips, ClipRecord)
    assert read_records(path, ClipRecord) == clips
    assert (
        pq.read_schema(path).field("frame_indices").type
        == arrow_schema(ClipRecord).field("frame_indices").type
    )


def test_video_nullable_fields(tmp_path):
    row = VideoRecord(
        video_id="x",
        dataset="d",
        domain="dom",
        relpath="r.mp4",
        label=0,
        generator="camera",
        group="r",
        source_split=None,
        bytes=3,
        codec=None,
        width=None,
        height=None,
        rotation=0,
        fps=None,
        num_frames=None,
        duration_s=None,
        status="failed",
        reason="not_a_video: invalid data",
    )
    path = write_records(tmp_path / "videos.parquet", [row], VideoRecord)
    assert read_records(path, VideoRecord) == [row]


def test_clip_id_depends_on_every_input():
    ids = {
        make_clip_id("a", "s", 0),
        make_clip_id("b", "s", 0),
        make_clip_id("a", "t", 0),
        make_clip_id("a", "s", 1),
    }
    assert len(ids) == 4 and make_clip_id("a", "s", 0) == make_clip_id("a", "s", 0)


def test_record_from_dict_rejects_unknown_and_missing():
    row = dataclasses.asdict(_clip(0))
    with pytest.raises(ValueError, match="unknown"):
        record_from_dict(ClipRecord, {**row, "extra": 1})
    row.pop("shard")
    with pytest.raises(ValueError, match="missing"):
        record_from_dict(ClipRecord, row)


def test_write_records_type_checked(tmp_path):
    with pytest.raises(TypeError):
        write_records(tmp_path / "x.parquet", [_clip(0)], VideoRecord)
