"""Config loading: clip specs (`configs/clips/*.yaml`) and dataset configs
(`configs/datasets/*.yaml`).

Configs are validated here, at the boundary: an unknown key, a wrong type or a value out of
range fails at load with the file, the field, the value and what would be accepted.
Everything downstream receives frozen dataclasses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from vfcache.errors import ConfigError
from vfcache.pixels import DEFAULT_PIXELS, PIXELS, odd_size_problem, stored_shape
from vfcache.validation import check_keys, choice, load_yaml, typed

Sampling = Literal["fps", "uniform", "gasbench"]
ResizeMode = Literal["short_side_crop", "squash", "center_crop_linear"]
ShortPolicy = Literal["pad_last", "loop", "skip"]
StartPolicy = Literal["start", "center", "random"]

# `gasbench`: GASBench's decoder (vfcache.pipelines.decode.gasbench): the first `frames` decoded
# frames,
# or every round(average fps / `fps`)-th with `fps` set; it goes with `center_crop_linear`
# (crop to the aspect ratio, then OpenCV's linear resize), and only with it
SAMPLINGS = ("fps", "uniform", "gasbench")
RESIZE_MODES = ("short_side_crop", "squash", "center_crop_linear")
SHORT_POLICIES = ("pad_last", "loop", "skip")
START_POLICIES = ("start", "center", "random")


def configs_dir() -> Path:
    """`$VFCACHE_CONFIGS`, else the built-in configs: inside the installed package (a wheel),
    or the `configs/` folder of the source checkout vfcache runs from."""
    env = os.environ.get("VFCACHE_CONFIGS")
    if env:
        return Path(env)
    package = Path(__file__).resolve().parent
    installed = package / "configs"
    return installed if installed.is_dir() else package.parent / "configs"


@dataclass(frozen=True)
class ClipSpec:
    """How clips are cut from a video. Normalisation is not here: the cache stores uint8."""

    name: str
    frames: int
    sampling: str  # fps | uniform
    height: int
    width: int
    fps: Optional[float] = None  # target frame rate for sampling == fps
    resize: str = "short_side_crop"
    short_policy: str = "pad_last"
    start: str = "start"  # where the first clip starts for sampling == fps
    clips_per_video: int = 1
    description: str = ""
    # how clips are stored (vfcache.pixels): rgb24, or yuv420 planes made RGB on the way to
    # the model. Left out of the hash and of spec.json at its default, so the specs and clip
    # ids from before it existed do not change.
    pixels: str = DEFAULT_PIXELS

    def __post_init__(self) -> None:
        """The one place a clip spec is validated: a ConfigError names the field and the value
        (`parse_clip_spec` puts the file in front)."""
        where = f"clip spec {self.name!r}"
        for key in ("height", "width"):
            typed(where, key, getattr(self, key), int, minimum=8)
        typed(where, "frames", self.frames, int, minimum=1)
        typed(where, "clips_per_video", self.clips_per_video, int, minimum=1)
        choice(where, "sampling", self.sampling, SAMPLINGS)
        choice(where, "resize", self.resize, RESIZE_MODES)
        choice(where, "short_policy", self.short_policy, SHORT_POLICIES)
        choice(where, "start", self.start, START_POLICIES)
        choice(where, "pixels", self.pixels, PIXELS)
        problem = odd_size_problem(self.height, self.width) if self.pixels == "yuv420" else None
        if problem:
            raise ConfigError(where, "size", [self.height, self.width], f"even sizes: {problem}")
        if self.sampling == "gasbench" or self.resize == "center_crop_linear":
            self._check_gasbench(where)
        elif self.sampling == "fps":
            if self.fps is None:
                raise ConfigError(where, "fps", None, "a target frame rate when sampling is 'fps'")
            typed(where, "fps", self.fps, float, minimum=0.1)
        elif self.fps is not None:
            raise ConfigError(
                where,
                "fps",
                self.fps,
                "no fps when sampling is 'uniform' (frames spread over the video)",
            )
        if self.sampling == "uniform" and self.clips_per_video != 1:
            raise ConfigError(
                where, "clips_per_video", self.clips_per_video, "1 for uniform sampling"
            )

    def _check_gasbench(self, where: str) -> None:
        """GASBench's frames come with GASBench's resize, one padded clip from the first frame."""
        if self.sampling != "gasbench" or self.resize != "center_crop_linear":
            raise ConfigError(
                where,
                "sampling",
                self.sampling,
                "sampling 'gasbench' together with resize 'center_crop_linear' (GASBench's frames)",
            )
        for key, default in (
            ("short_policy", "pad_last"),
            ("start", "start"),
            ("clips_per_video", 1),
        ):
            if getattr(self, key) != default:
                raise ConfigError(
                    where,
                    key,
                    getattr(self, key),
                    f"{default!r} with sampling 'gasbench' (as GASBench does)",
                )
        if self.fps is not None:  # GASBench's optional preprocessing.frame_rate
            typed(where, "fps", self.fps, float, minimum=0.001)

    def _fields(self) -> dict:
        values = dataclasses.asdict(self)
        if values["pixels"] == DEFAULT_PIXELS:
            del values["pixels"]
        return values

    @property
    def spec_hash(self) -> str:
        """Hash of everything that changes the pixels (not the name or description)."""
        payload = {k: v for k, v in self._fields().items() if k not in ("name", "description")}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def clip_shape(self) -> tuple[int, int, int, int]:
        """The RGB clip the model sees, (T, H, W, 3), whatever the stored form."""
        return (self.frames, self.height, self.width, 3)

    @property
    def stored_shape(self) -> tuple[int, ...]:
        """The uint8 array one clip is stored as in the shards (see `vfcache.pixels`)."""
        return stored_shape(self.frames, self.height, self.width, self.pixels)

    def to_json(self) -> dict:
        return {**self._fields(), "spec_hash": self.spec_hash}


@dataclass(frozen=True)
class LayoutRule:
    """How label, generator, domain and group come from a video's path below the raw folder.

    `pattern` names path components: `{label}/{generator}/{name}` or
    `{domain}/{label}/{generator}/{name}`;
    `{*}` matches and ignores one component, `{**}` any number (only at the start).
    `real` and `fake` list the folder names that mean label 0 and 1.
    """

    pattern: str = "{label}/{generator}/{name}"
    real: tuple[str, ...] = ("real",)
    fake: tuple[str, ...] = ("fake",)
    domain: Optional[str] = None  # fixed domain when the pattern has no {domain}
    group: str = "{name}"  # template over the pattern's fields
    real_generator: Optional[str] = None  # generator name for real videos when the pattern has none


@dataclass(frozen=True)
class SplitPreset:
    sizes: tuple[tuple[str, str], ...] = (("train", "0.5"), ("val", "0.25"), ("test", "rest"))
    seed: int = 0
    support: int = 0  # N real + N fake per domain, taken from train
    stratify: tuple[str, ...] = ("label", "generator")
    name: str = "default"
    unit: str = "videos"  # what sizes count: videos (records, as the cards count) or clips
    subset: Optional[int] = None  # a seeded, stratified subset of N records taken before the split


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    kind: str
    domain: str
    clip_spec: str
    layout: LayoutRule
    splits: SplitPreset
    source: dict = field(default_factory=dict, hash=False, compare=False)  # validated by the source
    description: str = ""
    terms: str = ""
    # The dataset's license as a Hub card `license:` id (apache-2.0, cc-by-4.0, other, unknown).
    license: str = "unknown"
    # Whether its terms let a user redistribute clips cut from the videos (`vfcache publish
    # --with-shards`): allowed, forbidden (FF++, WebVid), or unknown, which publishing treats as
    # forbidden until someone who read the terms sets it.
    redistribution: str = "unknown"
    path: Optional[str] = None  # where the config was loaded from


def _source_name(path: Path | str) -> str:
    return str(path)


def parse_clip_spec(data: dict, source: str) -> ClipSpec:
    allowed = {f.name for f in dataclasses.fields(ClipSpec)} | {"size"}
    check_keys(source, "", data, allowed, {"name", "frames", "sampling"})
    values = dict(data)
    if "size" in values:
        size = values.pop("size")
        if isinstance(size, int):
            size = [size, size]
        if not (
            isinstance(size, list)
            and len(size) == 2
            and all(isinstance(s, int) and s > 0 for s in size)
        ):
            raise ConfigError(source, "size", size, "an int or [height, width] of positive ints")
        values["height"], values["width"] = size
    for key in ("height", "width"):
        if key not in values:
            raise ConfigError(source, key, None, "a value (or give `size`)")
    if isinstance(values.get("fps"), int) and not isinstance(values.get("fps"), bool):
        values["fps"] = float(values["fps"])  # YAML's `fps: 24`
    try:
        return ClipSpec(**values)
    except ConfigError as err:  # the spec's own check, with the file in front
        raise ConfigError(source, err.field, err.value, err.expected) from err


def gasbench_clip_spec(
    *,
    num_frames: int,
    height: int,
    width: int,
    frame_rate: Optional[float] = None,
    name: Optional[str] = None,
) -> ClipSpec:
    """The clip spec of a GASBench model directory's preprocessing (num_frames, resize,
    frame_rate)."""
    rate = "" if frame_rate is None else f"_{frame_rate:g}fps"
    values = {
        "name": name or f"gasbench_{num_frames}x{height}x{width}{rate}",
        "frames": num_frames,
        "sampling": "gasbench",
        "height": height,
        "width": width,
        "fps": frame_rate,
        "resize": "center_crop_linear",
        "description": "GASBench's frames: its decoder's frame choice and padding, crop to aspect, "
        "cv2 INTER_LINEAR resize",
    }
    return parse_clip_spec(values, "<gasbench model directory>")


def load_clip_spec(name_or_path: str | os.PathLike) -> ClipSpec:
    """A preset name from `configs/clips/` or a path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = configs_dir() / "clips" / f"{name_or_path}.yaml"
        if not path.exists():
            known = sorted(p.stem for p in (configs_dir() / "clips").glob("*.yaml"))
            raise ConfigError(
                "--spec", "spec", str(name_or_path), f"a preset among {known} or a YAML path"
            )
    return parse_clip_spec(load_yaml(path), str(path))


def clip_spec_from_json(payload: dict) -> ClipSpec:
    # `shards` (how the shards are compressed) is recorded beside the spec, not part of it
    values = {k: v for k, v in payload.items() if k not in ("spec_hash", "shards")}
    return ClipSpec(**values)


def _parse_layout(data: Any, source: str) -> LayoutRule:
    if data is None:
        return LayoutRule()
    if not isinstance(data, dict):
        raise ConfigError(source, "layout", data, "a mapping")
    allowed = {f.name for f in dataclasses.fields(LayoutRule)}
    check_keys(source, "layout.", data, allowed, set())
    values = dict(data)
    for key in ("real", "fake"):
        if key in values:
            names = values[key]
            if isinstance(names, str):
                names = [names]
            if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
                raise ConfigError(
                    source, f"layout.{key}", values[key], "a folder name or a list of them"
                )
            values[key] = tuple(names)
    pattern = values.get("pattern", LayoutRule.pattern)
    if "{name}" not in pattern:
        raise ConfigError(source, "layout.pattern", pattern, "a pattern that ends with {name}")
    return LayoutRule(**values)


# A part of size "official" holds the clips whose source_split names it (the dataset's own split).
OFFICIAL_SIZE = "official"
SPLIT_PART_NAMES = ("train", "val", "test")
SPLIT_UNITS = ("videos", "clips")


def parse_split_sizes(
    text_or_mapping: Any, source: str, fieldname: str = "splits.sizes"
) -> tuple[tuple[str, str], ...]:
    """`train=50,val=50,test=rest` or a mapping; each size a count, a fraction in (0,1] or `rest`.

    `official` (alone, or as the size of every part) takes the dataset's official split instead.
    """
    if text_or_mapping == OFFICIAL_SIZE:
        return tuple((part, OFFICIAL_SIZE) for part in SPLIT_PART_NAMES)
    if isinstance(text_or_mapping, str):
        pairs = []
        for item in text_or_mapping.split(","):
            if "=" not in item:
                raise ConfigError(
                    source,
                    fieldname,
                    text_or_mapping,
                    "comma-separated part=size, e.g. train=50,val=50,test=rest",
                )
            part, size = item.split("=", 1)
            pairs.append((part.strip(), size.strip()))
    elif isinstance(text_or_mapping, dict):
        pairs = [(str(k), str(v)) for k, v in text_or_mapping.items()]
    else:
        raise ConfigError(source, fieldname, text_or_mapping, "a mapping or part=size text")
    seen = set()
    rest_count = 0
    official = [part for part, size in pairs if size == OFFICIAL_SIZE]
    if official and len(official) != len(pairs):
        raise ConfigError(
            source, fieldname, text_or_mapping, "'official' for every part or for none"
        )
    for part, size in pairs:
        if part not in SPLIT_PART_NAMES:
            raise ConfigError(source, fieldname, part, "parts among train, val, test")
        if part in seen:
            raise ConfigError(source, fieldname, part, "each part once")
        seen.add(part)
        if size == OFFICIAL_SIZE:
            continue
        if size == "rest":
            rest_count += 1
            continue
        try:
            number = float(size)
        except ValueError as err:
            raise ConfigError(source, fieldname, size, "a count, a fraction or 'rest'") from err
        if number <= 0 or (number != int(number) and number > 1):
            raise ConfigError(source, fieldname, size, "a positive count, or a fraction in (0, 1]")
    if rest_count > 1:
        raise ConfigError(source, fieldname, text_or_mapping, "at most one part of size 'rest'")
    return tuple(pairs)


def _parse_splits(data: Any, source: str) -> SplitPreset:
    if data is None:
        return SplitPreset()
    if not isinstance(data, dict):
        raise ConfigError(source, "splits", data, "a mapping")
    check_keys(
        source,
        "splits.",
        data,
        {"sizes", "seed", "support", "stratify", "name", "unit", "subset"},
        set(),
    )
    values: dict[str, Any] = {}
    if "sizes" in data:
        values["sizes"] = parse_split_sizes(data["sizes"], source)
    if "seed" in data:
        values["seed"] = typed(source, "splits.seed", data["seed"], int, minimum=0)
    if "support" in data:
        values["support"] = typed(source, "splits.support", data["support"], int, minimum=0)
    if "stratify" in data:
        strat = data["stratify"]
        if not (
            isinstance(strat, list) and all(s in ("label", "generator", "domain") for s in strat)
        ):
            raise ConfigError(
                source, "splits.stratify", strat, "a list among label, generator, domain"
            )
        values["stratify"] = tuple(strat)
    if "name" in data:
        values["name"] = typed(source, "splits.name", data["name"], str)
    if "unit" in data:
        values["unit"] = choice(source, "splits.unit", data["unit"], SPLIT_UNITS)
    if data.get("subset") is not None:
        values["subset"] = typed(source, "splits.subset", data["subset"], int, minimum=1)
    return SplitPreset(**values)


DATASET_KEYS = {
    "name",
    "kind",
    "domain",
    "clip_spec",
    "layout",
    "splits",
    "source",
    "description",
    "terms",
    "license",
    "redistribution",
}
REDISTRIBUTION = ("allowed", "forbidden", "unknown")


def parse_dataset_config(data: dict, source: str) -> DatasetConfig:
    check_keys(source, "", data, DATASET_KEYS, {"name", "kind"})
    name = typed(source, "name", data["name"], str)
    kind = typed(source, "kind", data["kind"], str)
    src = data.get("source") or {}
    if not isinstance(src, dict):
        raise ConfigError(source, "source", src, "a mapping")
    return DatasetConfig(
        name=name,
        kind=kind,
        domain=typed(source, "domain", data.get("domain", name), str),
        clip_spec=typed(source, "clip_spec", data.get("clip_spec", "sample_8x112"), str),
        layout=_parse_layout(data.get("layout"), source),
        splits=_parse_splits(data.get("splits"), source),
        source=src,
        description=str(data.get("description", "")),
        terms=str(data.get("terms", "")),
        license=typed(source, "license", data.get("license", "unknown"), str),
        redistribution=choice(
            source, "redistribution", data.get("redistribution", "unknown"), REDISTRIBUTION
        ),
        path=source,
    )


def load_dataset_config(name: str, config_file: str | os.PathLike | None = None) -> DatasetConfig:
    """The dataset named `name` from `configs/datasets/`, or the file given with `--config`."""
    if config_file is not None:
        path = Path(config_file)
    else:
        path = configs_dir() / "datasets" / f"{name}.yaml"
        if not path.exists():
            raise ConfigError(
                "<dataset>",
                "name",
                name,
                f"a dataset among {list_dataset_names()} or --config FILE",
            )
    config = parse_dataset_config(load_yaml(path), str(path))
    if config.name != name:
        expected = (
            f"{name!r} (the file name)"
            if config_file is None
            else f"{name!r}, the dataset named on the command line"
        )
        raise ConfigError(str(path), "name", config.name, expected)
    return config


def list_dataset_names() -> list[str]:
    return sorted(p.stem for p in (configs_dir() / "datasets").glob("*.yaml"))
