"""GASBench's dataset YAML (BitMind-AI/gasbench `dataset/config.py`), read strictly.

Three shapes are accepted, as GASBench's `load_benchmark_datasets_from_yaml` does:

- the bundled split files (`real_videos.yaml`, `synthetic_videos.yaml`): `datasets:` entries
  that each name their `modality`;
- the legacy single file with `image:` / `video:` / `audio:` lists (the list names the modality);
- a single-modality `datasets:` file whose entries leave `modality` out (it then comes from a
  top-level `modality:` key, else from the file name: `*video*` means video).

An entry's fields are `BenchmarkDatasetConfig`'s. Keys GASBench does not know are reported
(one warning line per file naming them) instead of dropped silently; entries that are not
videos are counted and skipped. A broken entry (missing or mistyped field, a bad media type)
is a `ConfigError` naming the file, the entry and the field.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vfcache.manifests.records import LABEL_FAKE, LABEL_REAL

from vfcache.errors import ConfigError
from vfcache.validation import load_yaml

log = logging.getLogger(__name__)

MODALITIES = ("image", "video", "audio")
MEDIA_TYPES = ("real", "synthetic", "semisynthetic")
ENTRY_KEYS = {
    "name",
    "path",
    "modality",
    "media_type",
    "source_format",
    "source",
    "media_per_archive",
    "archives_per_dataset",
    "include_paths",
    "exclude_paths",
    "data_columns",
    "filter_column",
    "filter_value",
    "generator_family",
    "content_category",
    "notes",
    "original_name",
}
TOP_KEYS = {"datasets", "modality", *MODALITIES}
SOURCE_FORMATS = ("", "mp4", "avi", "mov", "zip", "tar", "tar.gz", "tgz", "parquet")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class GasbenchEntry:
    """One video dataset of a GASBench YAML."""

    name: str
    path: str  # Hub dataset repo id
    media_type: str
    source_format: str = ""
    source: str = "huggingface"
    media_per_archive: int = 100
    archives_per_dataset: int = 5
    include_paths: tuple[str, ...] = ()
    exclude_paths: tuple[str, ...] = ()
    data_columns: tuple[str, ...] = ()
    filter_column: str | None = None
    filter_value: str | None = None
    generator_family: str = ""
    content_category: str = ""
    notes: str = ""

    @property
    def label(self) -> int:
        return LABEL_REAL if self.media_type == "real" else LABEL_FAKE

    @property
    def generator(self) -> str:
        """`generator_family` (else the name); semisynthetic ones carry their media type, so
        they never merge with a synthetic generator of the same family."""
        base = self.generator_family or self.name
        return f"semisynthetic:{base}" if self.media_type == "semisynthetic" else base

    def wants(self, relpath: str) -> bool:
        """GASBench's path filters: a substring of include_paths (if any), none of exclude_paths."""
        if self.include_paths and not any(p in relpath for p in self.include_paths):
            return False
        return not any(p in relpath for p in self.exclude_paths)


@dataclass(frozen=True)
class GasbenchYaml:
    entries: tuple[GasbenchEntry, ...]
    skipped: dict[str, int]  # modality -> entries skipped (not video)
    unknown_keys: tuple[str, ...]


def _strings(where: str, field: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(where, field, value, "a list of non-empty strings")
    return tuple(value)


def _int(where: str, field: str, value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or (value < 1 and value != -1):
        raise ConfigError(where, field, value, "a positive integer, or -1 for all")
    return value


def _text(where: str, field: str, value: Any, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ConfigError(where, field, value, "a non-empty string" if required else "a string")
    return value


def parse_entry(where: str, raw: Any, modality: str | None) -> tuple[GasbenchEntry | None, str]:
    """(entry or None when it is not a video, its modality) from one YAML mapping."""
    if not isinstance(raw, dict):
        raise ConfigError(where, "<entry>", raw, "a mapping with name, path, media_type")
    name = _text(where, "name", raw.get("name"), required=True)
    at = f"{where} [{name}]"
    if not _SAFE_NAME.match(name):
        raise ConfigError(at, "name", name, "letters, digits, '.', '_' or '-' (a folder name)")
    entry_modality = raw.get("modality", modality)
    if entry_modality not in MODALITIES:
        raise ConfigError(at, "modality", entry_modality, f"one of {list(MODALITIES)}")
    if entry_modality != "video":
        return None, entry_modality
    path = _text(at, "path", raw.get("path"), required=True)
    if path.count("/") != 1 or path.startswith("/") or path.endswith("/"):
        raise ConfigError(at, "path", path, "a Hub dataset repo id owner/name")
    media_type = raw.get("media_type")
    if media_type not in MEDIA_TYPES:
        raise ConfigError(at, "media_type", media_type, f"one of {list(MEDIA_TYPES)}")
    source_format = _text(at, "source_format", raw.get("source_format")).lower().lstrip(".")
    if source_format not in SOURCE_FORMATS:
        raise ConfigError(at, "source_format", source_format, f"one of {list(SOURCE_FORMATS)}")
    filter_value = raw.get("filter_value")
    entry = GasbenchEntry(
        name=name,
        path=path,
        media_type=media_type,
        source_format=source_format,
        source=_text(at, "source", raw.get("source")) or "huggingface",
        media_per_archive=_int(at, "media_per_archive", raw.get("media_per_archive"), 100),
        archives_per_dataset=_int(at, "archives_per_dataset", raw.get("archives_per_dataset"), 5),
        include_paths=_strings(at, "include_paths", raw.get("include_paths")),
        exclude_paths=_strings(at, "exclude_paths", raw.get("exclude_paths")),
        data_columns=_strings(at, "data_columns", raw.get("data_columns")),
        filter_column=_text(at, "filter_column", raw.get("filter_column")) or None,
        filter_value=None if filter_value is None else str(filter_value),
        generator_family=_text(at, "generator_family", raw.get("generator_family")),
        content_category=_text(at, "content_category", raw.get("content_category")),
        notes=_text(at, "notes", raw.get("notes")),
    )
    if (entry.filter_column is None) != (entry.filter_value is None):
        raise ConfigError(at, "filter_value", filter_value, "set together with filter_column")
    return entry, "video"


def _raw_entries(path: Path, data: dict) -> list[tuple[Any, str | None]]:
    """(entry mapping, modality the file's shape implies) for every entry of one file."""
    where = str(path)
    found: list[tuple[Any, str | None]] = []
    for modality in MODALITIES:
        items = data.get(modality)
        if items is None:
            continue
        if not isinstance(items, list):
            raise ConfigError(where, modality, type(items).__name__, "a list of dataset entries")
        found.extend((item, modality) for item in items)
    if "datasets" in data:
        items = data["datasets"]
        if not isinstance(items, list):
            raise ConfigError(where, "datasets", type(items).__name__, "a list of entries")
        implied = data.get("modality")
        if implied is not None and implied not in MODALITIES:
            raise ConfigError(where, "modality", implied, f"one of {list(MODALITIES)}")
        if implied is None:
            implied = next((m for m in MODALITIES if m in path.stem.lower()), None)
        found.extend((item, implied) for item in items)
    if not found and not any(k in data for k in ("datasets", *MODALITIES)):
        raise ConfigError(where, "<file>", sorted(data), "a `datasets:` or `video:` list")
    return found


def read_gasbench_yaml(paths: list[Path]) -> GasbenchYaml:
    """Every video entry of the GASBench YAML files `paths`, in file order."""
    entries: list[GasbenchEntry] = []
    skipped: Counter[str] = Counter()
    unknown: set[str] = set()
    for path in paths:
        data = load_yaml(path)
        extra_top = sorted(set(data) - TOP_KEYS)
        file_unknown = {f"<top>.{k}" for k in extra_top}
        for index, (raw, modality) in enumerate(_raw_entries(path, data)):
            entry, kind = parse_entry(f"{path} entry {index}", raw, modality)
            file_unknown |= set(raw) - ENTRY_KEYS
            if entry is None:
                skipped[kind] += 1
                continue
            if any(e.name == entry.name for e in entries):
                raise ConfigError(str(path), "name", entry.name, "a name used by one entry only")
            entries.append(entry)
        if file_unknown:
            log.warning(
                "%s: keys GASBench does not read, ignored: %s",
                path,
                ", ".join(sorted(file_unknown)),
            )
        unknown |= file_unknown
    if not entries:
        raise ConfigError(
            ", ".join(map(str, paths)), "<file>", dict(skipped), "at least one video entry"
        )
    return GasbenchYaml(tuple(entries), dict(skipped), tuple(sorted(unknown)))
