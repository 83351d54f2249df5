"""Config validation at the boundary: every bad value names the file, the field and the value."""

from __future__ import annotations

import pytest
import yaml

from vfcache.config import (
    list_dataset_names,
    load_clip_spec,
    load_dataset_config,
    parse_split_sizes,
)
from vfcache.errors import ConfigError

PRESETS = {
    "r2plus1d_24x224": (24, 224, 224, "fps", 24.0),
    "videomae_16x224": (16, 224, 224, "uniform", None),
    "clip_12x384": (12, 384, 384, "uniform", None),
    "timesformer_16x224": (16, 224, 224, "fps", 8.0),
    "sample_8x112": (8, 112, 112, "fps", 8.0),
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_load(name):
    spec = load_clip_spec(name)
    frames, height, width, sampling, fps = PRESETS[name]
    assert (spec.frames, spec.height, spec.width, spec.sampling, spec.fps) == (
        frames,
        height,
        width,
        sampling,
        fps,
    )
    assert spec.clip_shape == (frames, height, width, 3)
    assert len(spec.spec_hash) == 16


def test_spec_hash_ignores_name_but_not_pixels(tmp_path):
    base = {"name": "a", "frames": 8, "sampling": "fps", "fps": 8, "size": 112}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({**base, "name": "b", "description": "x"}))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**base, "name": "c", "fps": 12}))
    a, b, c = (load_clip_spec(tmp_path / f"{n}.yaml") for n in "abc")
    assert a.spec_hash == b.spec_hash != c.spec_hash


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"sampling": "random"}, "sampling"),
        ({"frames": 0}, "frames"),
        ({"frames": "8"}, "frames"),
        ({"short_policy": "wrap"}, "short_policy"),
        ({"colour": "yes"}, "colour"),
        ({"size": [112]}, "size"),
        ({"fps": None, "sampling": "fps"}, "fps"),
        ({"resize": "stretch"}, "resize"),
    ],
)
def test_bad_clip_specs_name_file_field_and_value(tmp_path, patch, field):
    data = {"name": "x", "frames": 8, "sampling": "fps", "fps": 8, "size": 112, **patch}
    data = {k: v for k, v in data.items() if v is not None}
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_clip_spec(path)
    assert info.value.field == field
    assert str(path) in str(info.value)


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ConfigError, match="sample_8x112"):
        load_clip_spec("no_such_preset")


def test_dataset_configs_in_repo_all_load():
    names = list_dataset_names()
    assert "sample" in names
    for name in names:
        config = load_dataset_config(name)
        assert config.name == name
        load_clip_spec(config.clip_spec)


def test_dataset_config_unknown_key(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"name": "mine", "kind": "local", "labels": "x"}))
    with pytest.raises(ConfigError) as info:
        load_dataset_config("mine", path)
    assert info.value.field == "labels"


def test_dataset_layout_validation(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        yaml.safe_dump(
            {"name": "mine", "kind": "local", "layout": {"pattern": "{label}/{generator}"}}
        )
    )
    with pytest.raises(ConfigError, match="layout.pattern"):
        load_dataset_config("mine", path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("train=50,val=50,test=rest", (("train", "50"), ("val", "50"), ("test", "rest"))),
        ("train=0.7, val=0.1, test=0.2", (("train", "0.7"), ("val", "0.1"), ("test", "0.2"))),
    ],
)
def test_split_sizes_parse(text, expected):
    assert parse_split_sizes(text, "--sizes") == expected


@pytest.mark.parametrize(
    "text",
    ["train=50,test", "train=rest,val=rest", "train=-1", "train=1.5", "holdout=3", "train=a"],
)
def test_split_sizes_reject(text):
    with pytest.raises(ConfigError):
        parse_split_sizes(text, "--sizes")
