"""AEGIS keyframe parquet: rows read as videos (exact frames), schema checks, and every stage."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from vfcache.cache_tools.shards import ShardReader
from vfcache.manifests.audit import format_table
from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import ClipRecord, VideoRecord
from vfcache.pipelines.decode import VideoReadError
from vfcache.pipelines.decode.keyframes import (
    KEYFRAMES_FPS,
    KeyframeSchemaError,
    check_schema,
    parse_row_address,
    probe_keyframes,
    read_keyframes,
    row_address,
)
from vfcache.pipelines.decode.media import media_sha256, media_stat, probe_media
from vfcache.pipelines.extract import extract_clips
from vfcache.pipelines.probe import build_manifest
from vfcache.pipelines.sources.base import get_source
from vfcache.pipelines.sources.synthetic import read_code

from tests.source_pipeline import KEYFRAME_SPEC, config_for, part_counts, run_cache
from tests.standins.layouts import AEGIS_ROWS, build_aegis_parquet, keyframe_table
from vfcache.errors import StageError
from vfcache.layout import DataRoot

REPO = "Clarifiedfish/AEGIS"


@pytest.fixture(scope="module")
def table_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("kf") / "t.parquet"
    pq.write_table(keyframe_table([("ai", "sora", 8), ("real", "dvf", 3)]), path, row_group_size=1)
    return path


def test_row_addresses_sort_in_row_order():
    addresses = [row_address("data/x.parquet", row) for row in (2, 10, 0)]
    assert sorted(addresses) == [row_address("data/x.parquet", r) for r in (0, 2, 10)]
    assert parse_row_address(addresses[1]) == ("data/x.parquet", 10)
    assert (
        parse_row_address("videos/a#1.mp4") is None and parse_row_address("data/x.parquet") is None
    )


def test_probe_describes_a_row_as_a_video_at_the_nominal_rate(table_path):
    info = probe_keyframes(table_path, 0)
    assert (info.num_frames, info.width, info.height, info.rotation) == (8, 64, 48, 0)
    assert info.pts_s == tuple(k / KEYFRAMES_FPS for k in range(8))
    assert info.codec == "mjpeg" and info.duration_s == 8 / KEYFRAMES_FPS


def test_read_gives_the_requested_keyframes_in_order(table_path):
    clip = read_keyframes(table_path, 0, [7, 0, 3, 3], height=48, width=48)
    assert clip.shape == (4, 48, 48, 3) and clip.dtype == np.uint8
    assert [read_code(frame) for frame in clip] == [7, 0, 3, 3]
    second = read_keyframes(table_path, 1, [2, 0], height=40, width=56, resize="squash")
    assert [read_code(frame) for frame in second] == [2, 0]
    with pytest.raises(ValueError, match="has 3 keyframes"):
        read_keyframes(table_path, 1, [3], height=48, width=48)


def test_media_dispatch_uses_the_row(table_path):
    raw_dir, name = table_path.parent, table_path.name
    address = row_address(name, 1)
    size, _ = media_stat(raw_dir, address)
    assert size == sum(len(f["bytes"]) for f in pq.read_table(table_path)["keyframes"][1].as_py())
    assert media_sha256(raw_dir, address) != media_sha256(raw_dir, row_address(name, 0))
    assert probe_media(raw_dir, address).num_frames == 3


@pytest.mark.parametrize(
    "schema, complaint",
    [
        (pa.schema([("meta_data", pa.string())]), "no 'keyframes' column"),
        (
            pa.schema([("meta_data", pa.string()), ("keyframes", pa.list_(pa.string()))]),
            "'keyframes' is list<item: string>",
        ),
        (
            pa.schema([("meta_data", pa.int64()), ("keyframes", pa.list_(pa.binary()))]),
            "expected a JSON string",
        ),
        (pa.schema([("frames", pa.list_(pa.binary()))]), "no 'meta_data' column"),
    ],
)
def test_schema_that_differs_fails_clearly(schema, complaint):
    with pytest.raises(KeyframeSchemaError, match="t.parquet") as err:
        check_schema(schema, "data/t.parquet")
    assert complaint in str(err.value)


def test_plain_binary_frames_and_a_broken_jpeg(tmp_path):
    table = keyframe_table([("ai", "kling", 4)], image_struct=False)
    frames = table["keyframes"].to_pylist()
    frames[0][2] = b"not a jpeg"
    table = table.set_column(1, "keyframes", pa.array(frames, pa.list_(pa.binary())))
    pq.write_table(table, tmp_path / "b.parquet")
    assert [
        read_code(f) for f in read_keyframes(tmp_path / "b.parquet", 0, [0, 3], height=48, width=48)
    ] == [0, 3]
    with pytest.raises(VideoReadError, match="keyframe 2 is not a decodable image") as err:
        probe_keyframes(tmp_path / "b.parquet", 0)
    assert err.value.reason == "decode_error"


@pytest.mark.network
def test_make_cache_aegis_keyframes(hf_hub, tmp_path):
    build_aegis_parquet(tmp_path / "repo")
    hf_hub.add_commit(REPO, tmp_path / "repo")
    root = DataRoot(tmp_path / "data")
    config = config_for(
        "aegis_keyframes",
        splits={"sizes": (("train", "4"), ("val", "2"), ("test", "rest")), "support": 1},
    )
    run = run_cache(config, root, KEYFRAME_SPEC)
    assert run.manifest.videos_ok == len(AEGIS_ROWS) == run.extract.clips
    cache = root.cache_dir("aegis_keyframes", KEYFRAME_SPEC.name)
    videos = {v.relpath: v for v in read_records(cache.videos_parquet, VideoRecord)}
    table = "data/hard_test_set-00000-of-00001.parquet"
    for row, (truth, generator, count) in enumerate(AEGIS_ROWS):
        video = videos[row_address(table, row)]
        assert (video.label, video.generator, video.num_frames) == (
            int(truth == "ai"),
            generator,
            count,
        )
    assert {v.generator for v in videos.values() if v.label == 0} == {"camera"}
    assert run.manifest.ignored.total == 0  # every fetched file is a table whose rows are videos
    reader_cache = {}
    for clip in read_records(cache.clips_parquet, ClipRecord):
        row = parse_row_address(clip.relpath)[1]
        expected = (
            [0, 2, 5, 7] if AEGIS_ROWS[row][2] == 8 else [0, 1, 2, 2]
        )  # uniform; 3 keyframes padded
        assert list(clip.frame_indices) == expected
        assert clip.padded_frames == (1 if AEGIS_ROWS[row][2] == 3 else 0)
        reader = reader_cache.setdefault(clip.shard, ShardReader(cache.resolve_shard(clip.shard)))
        pixels = reader.read(clip.offset, clip.nbytes, clip.clip_id)
        assert [read_code(frame) for frame in pixels] == expected
    assert part_counts(run) == {"train": 4, "val": 2, "test": 6, "support": 2}
    assert run.audit.ok, format_table(run.audit)
    assert {(s.short_policy, s.clips) for s in run.audit.short_clips} == {("pad_last", 2)}


@pytest.mark.network
def test_unknown_label_value_stops_the_listing(hf_hub, tmp_path):
    (tmp_path / "repo" / "data").mkdir(parents=True)
    table = keyframe_table([("ai", "sora", 2), ("human", "youtube", 2)])
    pq.write_table(table, tmp_path / "repo" / "data" / "t.parquet")
    hf_hub.add_commit(REPO, tmp_path / "repo")
    root = DataRoot(tmp_path / "data")
    source = get_source(config_for("aegis_keyframes"))
    source.fetch(root, progress=False)
    with pytest.raises(StageError, match=r"neither fake \['ai'\] nor real \['real'\].*'human'"):
        source.list_videos(root)
    relaxed = get_source(config_for("aegis_keyframes", real_values=["real", "human"]))
    assert [c.label for c in relaxed.list_videos(root)] == [1, 0]


@pytest.mark.network
def test_fetch_rejects_a_release_whose_schema_changed(hf_hub, tmp_path):
    (tmp_path / "repo" / "data").mkdir(parents=True)
    pq.write_table(
        pa.table({"meta_data": [json.dumps({"ground_truth": "ai"})], "video": [b"mp4"]}),
        tmp_path / "repo" / "data" / "t.parquet",
    )
    hf_hub.add_commit(REPO, tmp_path / "repo")
    with pytest.raises(
        KeyframeSchemaError,
        match=r"t.parquet: not an AEGIS keyframe table \(no 'keyframes' column\)",
    ):
        get_source(config_for("aegis_keyframes")).fetch(DataRoot(tmp_path / "data"), progress=False)


def test_a_broken_row_becomes_a_failed_record(tmp_path):
    root = DataRoot(tmp_path)
    table = keyframe_table([("ai", "sora", 4), ("real", "dvf", 4), ("ai", "kling", 0)])
    frames = table["keyframes"].to_pylist()
    frames[0][1]["bytes"] = b"\xff\xd8 truncated"
    table = table.set_column(1, "keyframes", pa.array(frames, table.schema.field("keyframes").type))
    (root.raw_dir("aegis_keyframes") / "data").mkdir(parents=True)
    pq.write_table(table, root.raw_dir("aegis_keyframes") / "data" / "t.parquet")
    config = config_for("aegis_keyframes")
    report = build_manifest(config, root, KEYFRAME_SPEC, client=None, progress=False)
    assert (report.videos_ok, report.videos_failed) == (1, 2)
    assert report.failures_by_reason == {"decode_error": 1, "zero_frames": 1}
    extracted = extract_clips(
        config, root, KEYFRAME_SPEC, client=None, progress=False, max_failed=None
    )
    assert extracted.clips == 1 and extracted.videos_failed == 2
