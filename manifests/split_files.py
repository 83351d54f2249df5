"""Split files: `splits/<name>/<part>.jsonl` (one `SplitEntry` per line) and `split.json` beside
them.

A split JSONL line is self-contained (clip_id, shard path relative to the cache folder,
offset, nbytes, label, domain, generator, group, video_id, dataset, clip_index), so training
needs only the JSONL and the shards. Lines are written with sorted keys and compact
separators, so the same entries in the same order always give byte-identical files.
`split.json` records how the split was made (`SplitMeta`): seed, sizes asked and obtained,
stratification, support bank size, the spec hash and the sha256 of the clips.parquet it was
made from, and counts per label / generator / domain.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from vfcache.manifests.records import SplitEntry

from vfcache.atomic import atomic_write, write_json_atomic
from vfcache.errors import VfcacheError

SPLIT_META_NAME = "split.json"
# 2: sizes count `unit` (videos by default, as the cards do; version 1 counted clips), each part
# records its target/obtained in its unit plus clips/videos/groups, and a `subset` taken before
# the split is recorded. Version 1 files still read (as unit "clips").
SPLIT_FORMAT_VERSION = 2
SIZE_UNITS = ("videos", "clips")


class SplitFileError(VfcacheError, ValueError):
    """A split JSONL or split.json that cannot be read: names the file and the line."""


_SORTED_FIELDS = tuple(sorted(f.name for f in dataclasses.fields(SplitEntry)))


def entry_line(entry: SplitEntry) -> str:
    """The canonical JSONL line of one entry (sorted keys, compact, UTF-8, trailing newline)."""
    row = {name: getattr(entry, name) for name in _SORTED_FIELDS}  # asdict copies deeply: slow
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def write_split_file(path: str | os.PathLike, entries: Iterable[SplitEntry]) -> Path:
    """Write entries in the order given (callers sort them) through a temporary file and a
    rename."""
    seen: set[str] = set()
    lines = []
    for entry in entries:
        if not isinstance(entry, SplitEntry):
            raise TypeError(f"expected SplitEntry, got {type(entry).__name__}")
        if entry.clip_id in seen:
            raise ValueError(f"clip {entry.clip_id} appears twice in {path}")
        seen.add(entry.clip_id)
        lines.append(entry_line(entry))
    with atomic_write(path, "wb") as handle:
        handle.write("".join(lines).encode("utf-8"))
    return Path(path)


_ENTRY_HINTS = typing.get_type_hints(SplitEntry)
_ENTRY_FIELDS = tuple(f.name for f in dataclasses.fields(SplitEntry))


def _entry_from_row(row: object, where: str) -> SplitEntry:
    if not isinstance(row, dict):
        raise SplitFileError(f"{where}: expected a JSON object, got {type(row).__name__}")
    unknown = sorted(set(row) - set(_ENTRY_FIELDS))
    missing = [name for name in _ENTRY_FIELDS if name not in row]
    if unknown or missing:
        raise SplitFileError(f"{where}: unknown fields {unknown}, missing fields {missing}")
    for name in _ENTRY_FIELDS:
        value, kind = row[name], _ENTRY_HINTS[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise SplitFileError(f"{where}: field {name!r} = {value!r} should be a {kind.__name__}")
    for name in ("offset", "nbytes", "clip_index"):
        if row[name] < 0:
            raise SplitFileError(f"{where}: field {name!r} = {row[name]} should be >= 0")
    return SplitEntry(**row)


def read_split(path: str | os.PathLike) -> list[SplitEntry]:
    """Every entry of a split JSONL file, in file order; errors name the file and the line
    number."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise SplitFileError(
            f"split file {path} does not exist (run `vfcache split` first)"
        ) from err
    except UnicodeDecodeError as err:
        raise SplitFileError(f"split file {path} is not UTF-8 text: {err}") from err
    if text and not text.endswith("\n"):
        raise SplitFileError(f"{path}: the last line has no newline (truncated write?)")
    entries: list[SplitEntry] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{path}:{number}"
        if not line.strip():
            raise SplitFileError(f"{where}: empty line")
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise SplitFileError(
                f"{where}: not valid JSON ({err.msg} at column {err.colno})"
            ) from err
        entry = _entry_from_row(row, where)
        if entry.clip_id in seen:
            raise SplitFileError(
                f"{where}: clip {entry.clip_id} already listed on line {seen[entry.clip_id]}"
            )
        seen[entry.clip_id] = number
        entries.append(entry)
    return entries


@dataclass(frozen=True)
class PartSummary:
    """What was asked for one part and what it got, counted in `unit` (videos or clips)."""

    part: str  # train / val / test / support / unassigned
    asked: str  # "50", "0.25", "rest", "10 per class per domain"
    unit: str  # what `target` and `obtained` count: videos or clips (the support bank: clips)
    target: int
    obtained: int
    clips: int
    groups: int
    videos: int


@dataclass(frozen=True)
class SubsetInfo:
    """A seeded, stratified, group-aware subset of the records, taken before the split."""

    asked: int  # records asked, in the split's unit
    obtained: int
    of: int  # records available before the subset
    seed: int
    stratify: tuple[str, ...]


@dataclass(frozen=True)
class JointInfo:
    """A split made together with other datasets' (`vfcache split A B ...`): videos shared with a
    dataset split before this one were pinned to the part their copy went to."""

    datasets: tuple[str, ...]  # split together, in this order
    after: tuple[str, ...]  # the datasets split before this one
    pinned_videos: int  # videos of this dataset pinned to the part of their copy


@dataclass(frozen=True)
class SplitMeta:
    """The content of split.json."""

    name: str
    seed: int
    sizes: tuple[tuple[str, str], ...]
    stratify: tuple[str, ...]
    support_per_class: int
    spec_hash: str
    clips_parquet_sha256: str
    clips_total: int
    parts: tuple[PartSummary, ...]
    # part -> {"label": {...}, "generator": {...}, "domain": {...}, "domain_label": {...}}
    counts: dict = field(default_factory=dict, hash=False, compare=False)
    unit: str = "videos"
    subset: Optional[SubsetInfo] = None
    format_version: int = SPLIT_FORMAT_VERSION
    joint: Optional[JointInfo] = None  # absent from split.json unless the split was joint

    def part(self, name: str) -> Optional[PartSummary]:
        for summary in self.parts:
            if summary.part == name:
                return summary
        return None

    def to_json(self) -> dict:
        payload = dataclasses.asdict(self)
        payload["sizes"] = [list(pair) for pair in self.sizes]
        payload["stratify"] = list(self.stratify)
        payload["parts"] = [dataclasses.asdict(p) for p in self.parts]
        if self.subset is not None:
            payload["subset"]["stratify"] = list(self.subset.stratify)
        if self.joint is None:
            del payload["joint"]  # the split.json of a split of one dataset is as it always was
        else:
            payload["joint"] = {
                key: list(value) if isinstance(value, tuple) else value
                for key, value in payload["joint"].items()
            }
        return payload


def write_split_meta(split_dir: str | os.PathLike, meta: SplitMeta) -> Path:
    path = Path(split_dir) / SPLIT_META_NAME
    write_json_atomic(path, meta.to_json())
    return path


def read_split_meta(split_dir: str | os.PathLike) -> SplitMeta:
    path = Path(split_dir) / SPLIT_META_NAME
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise SplitFileError(f"{path} does not exist (run `vfcache split` first)") from err
    except json.JSONDecodeError as err:
        raise SplitFileError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from err
    if not isinstance(payload, dict):
        raise SplitFileError(f"{path}: expected a JSON object")
    names = {f.name for f in dataclasses.fields(SplitMeta)}
    optional = {"counts", "format_version", "unit", "subset", "joint"}
    unknown, missing = sorted(set(payload) - names), sorted(names - set(payload) - optional)
    if unknown or missing:
        raise SplitFileError(f"{path}: unknown fields {unknown}, missing fields {missing}")
    version = payload.get("format_version", 1)
    if version not in (1, SPLIT_FORMAT_VERSION):
        raise SplitFileError(
            f"{path}: format_version {version} is not 1 or {SPLIT_FORMAT_VERSION} "
            "(written by a newer vfcache?)"
        )
    try:
        if version == 1:  # sizes counted clips; parts had target_clips / obtained_clips
            parts = tuple(_part_from_v1(p) for p in payload["parts"])
            unit, subset = "clips", None
        else:
            parts = tuple(PartSummary(**p) for p in payload["parts"])
            unit = str(payload.get("unit", "videos"))
            raw_subset = payload.get("subset")
            subset = (
                None
                if raw_subset is None
                else SubsetInfo(**{**raw_subset, "stratify": tuple(raw_subset["stratify"])})
            )
        if unit not in SIZE_UNITS:
            raise ValueError(f"unit {unit!r} is not one of {SIZE_UNITS}")
        return SplitMeta(
            name=str(payload["name"]),
            seed=int(payload["seed"]),
            sizes=tuple((str(part), str(size)) for part, size in payload["sizes"]),
            stratify=tuple(str(key) for key in payload["stratify"]),
            support_per_class=int(payload["support_per_class"]),
            spec_hash=str(payload["spec_hash"]),
            clips_parquet_sha256=str(payload["clips_parquet_sha256"]),
            clips_total=int(payload["clips_total"]),
            parts=parts,
            counts=dict(payload.get("counts", {})),
            unit=unit,
            subset=subset,
            format_version=version,
            joint=_joint(payload.get("joint")),
        )
    except (TypeError, ValueError, KeyError) as err:
        raise SplitFileError(f"{path}: malformed split metadata ({err})") from err


def _part_from_v1(part: dict) -> PartSummary:
    return PartSummary(
        part=part["part"],
        asked=part["asked"],
        unit="clips",
        target=part["target_clips"],
        obtained=part["obtained_clips"],
        clips=part["obtained_clips"],
        groups=part["groups"],
        videos=part["videos"],
    )


def _joint(raw: Optional[dict]) -> Optional[JointInfo]:
    if raw is None:
        return None
    return JointInfo(
        datasets=tuple(str(d) for d in raw["datasets"]),
        after=tuple(str(d) for d in raw["after"]),
        pinned_videos=int(raw["pinned_videos"]),
    )
