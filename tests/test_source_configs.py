"""The six dataset configs: they load, their sources validate every key, and their split presets
give the model card's sizes (AEGIS 436 -> 50/50/336, DVF 1004 -> 200/200/604, GenVideo 2971 ->
200/200/2571,
10 real + 10 fake support clips per domain)."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from vfcache.manifests.records import ClipRecord
from vfcache.pipelines.sources.base import SOURCE_KINDS, get_source
from vfcache.pipelines.split import SplitSizeError, official_parts

from tests.source_pipeline import config_for
from vfcache.config import load_dataset_config, parse_split_sizes
from vfcache.errors import ConfigError

DATASETS = ("aegis", "aegis_keyframes", "dvf", "genvideo_val", "genvideo100k", "ffpp", "webvid")


@pytest.mark.parametrize("name", DATASETS)
def test_each_config_loads_and_builds_its_source(name):
    config = load_dataset_config(name)
    source = get_source(config)
    assert config.kind in SOURCE_KINDS and config.terms and config.description
    assert source.expected_size and source.describe()


@pytest.mark.parametrize(
    "name, source, field, value",
    [
        ("aegis", {"colour": "red"}, "source.colour", "red"),
        ("aegis", {"repo": "AEGIS"}, "source.repo", "AEGIS"),
        ("aegis", {"allow_patterns": [3]}, "source.allow_patterns", [3]),
        ("aegis", {"endpoint": "huggingface.co"}, "source.endpoint", "huggingface.co"),
        (
            "aegis_keyframes",
            {"fake_values": ["ai"], "real_values": ["ai"]},
            "source.real_values",
            ["ai"],
        ),
        ("aegis_keyframes", {"label_key": ""}, "source.label_key", ""),
        ("dvf", {"keep_archives": "no"}, "source.keep_archives", "no"),
        ("dvf", {"test_classes": ["sora", "sora"]}, "source.test_classes", ["sora", "sora"]),
        ("genvideo_val", {"concurrency": 0}, "source.concurrency", 0),
        ("genvideo100k", {"folder_layout": "flat"}, "source.folder_layout", "flat"),
        (
            "genvideo_val",
            {"url_template": "{base_url}/{name}"},
            "source.url_template",
            "{base_url}/{name}",
        ),
        (
            "genvideo_val",
            {"checksums": {"GenVideo-Val.zip": "abc"}},
            "source.checksums.GenVideo-Val.zip",
            "abc",
        ),
        ("ffpp", {"compression": "c0"}, "source.compression", "c0"),
        ("webvid", {"max_videos": -1}, "source.max_videos", -1),
    ],
)
def test_invalid_source_fails_with_file_field_and_value(name, source, field, value):
    with pytest.raises(ConfigError) as err:
        get_source(config_for(name, **source))
    assert (err.value.field, err.value.value) == (field, value)
    assert err.value.source.endswith(f"configs/datasets/{name}.yaml")


def test_official_sizes_parse():
    assert parse_split_sizes("official", "x") == (
        ("train", "official"),
        ("val", "official"),
        ("test", "official"),
    )
    assert parse_split_sizes({"train": "official", "val": "official"}, "x")[1] == (
        "val",
        "official",
    )
    with pytest.raises(ConfigError, match="'official' for every part or for none"):
        parse_split_sizes("train=official,val=10,test=rest", "x")


def synthetic_clips(domain: str, composition: dict[tuple[int, str], int]) -> list[ClipRecord]:
    """One clip per video, `count` videos per (label, generator)."""
    clips = []
    for (label, generator), count in composition.items():
        for index in range(count):
            video_id = hashlib.sha256(f"{domain}/{generator}/{index}".encode()).hexdigest()
            clips.append(
                ClipRecord(
                    clip_id=video_id[:24],
                    video_id=video_id,
                    clip_index=0,
                    frame_indices=(0,),
                    timestamps_s=(0.0,),
                    padded_frames=0,
                    short_policy="none",
                    shard="shards/s.npy.zst",
                    offset=0,
                    nbytes=1,
                    dataset=domain,
                    domain=domain,
                    relpath=f"{generator}/{index}.mp4",
                    label=label,
                    generator=generator,
                    group=f"{generator}/{index}",
                    source_split=None,
                )
            )
    return clips


def test_official_parts_follow_source_split_and_refuse_a_leak():
    clips = synthetic_clips("ffpp", {(0, "youtube"): 4, (1, "Deepfakes"): 4})
    splits = ["train", "train", "val", None]
    clips = [dataclasses.replace(c, source_split=splits[i % 4]) for i, c in enumerate(clips)]
    parts = official_parts(clips, ["train", "val", "test"])
    assert [len(parts[p]) for p in ("train", "val", "test")] == [4, 2, 0]
    leaking = [dataclasses.replace(c, group="same") for c in clips]
    with pytest.raises(SplitSizeError, match="groups have clips in two official parts"):
        official_parts(leaking, ["train", "val", "test"])
    with pytest.raises(SplitSizeError, match="has no official split"):
        official_parts(synthetic_clips("x", {(0, "a"): 2}), ["train", "val", "test"])
