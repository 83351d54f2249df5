"""What every dataset source provides: where its raw files live, how to fetch them, and the
list of videos with label, generator, domain, group and official split.

One module per dataset in `pipelines/sources/` implements `Source`; `get_source()` picks
it by the config's `kind`. The probe stage only sees `VideoCandidate`s.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Protocol

from vfcache.config import DatasetConfig
from vfcache.errors import ConfigError, StageError
from vfcache.layout import DataRoot

if TYPE_CHECKING:
    from vfcache.pipelines.sources.plan import FetchPlan


@dataclass(frozen=True)
class VideoCandidate:
    """One video found on disk, labelled but not yet probed."""

    relpath: str  # relative to the source's raw folder, '/'-separated
    label: int
    generator: str
    domain: str
    group: str
    source_split: Optional[str] = None


class Source(Protocol):
    config: DatasetConfig

    def raw_dir(self, root: DataRoot) -> Path:
        """Folder holding the raw videos (usually root/raw/<dataset>)."""

    def fetch(self, root: DataRoot, *, progress: bool = True) -> None:
        """Bring the raw data to `raw_dir`, skipping what is already there and intact."""

    def list_videos(self, root: DataRoot) -> list[VideoCandidate]:
        """Every video of the dataset, labelled, sorted by relpath."""

    def plan_fetch(self, root: DataRoot) -> FetchPlan:
        """What `fetch` would download (vfcache.pipelines.sources.plan), without writing
        anything."""


class RawDirUnderRoot:
    """`raw_dir` for a source whose raw files live in root/raw/<dataset> (most of them)."""

    config: DatasetConfig

    def raw_dir(self, root: DataRoot) -> Path:
        return root.raw_dir(self.config.name)


def require_raw_dir(raw_dir: Path, dataset: str) -> None:
    """Stop a listing whose raw folder was never fetched, saying which command fetches it."""
    if not raw_dir.is_dir():
        raise StageError(
            f"raw folder {raw_dir} does not exist; run `vfcache fetch {dataset}` first"
        )


# kind -> "module:class"; modules are imported lazily so a source's dependencies load only when
# used.
SOURCE_KINDS: dict[str, str] = {
    "sample": "vfcache.pipelines.sources.sample_source:SampleSource",
    "local": "vfcache.pipelines.sources.local:LocalSource",
    "huggingface": "vfcache.pipelines.sources.huggingface:HuggingFaceSource",
    "aegis_keyframes": "vfcache.pipelines.sources.aegis_keyframes:AegisKeyframesSource",
    "dvf": "vfcache.pipelines.sources.dvf:DvfSource",
    "genvideo": "vfcache.pipelines.sources.genvideo:GenVideoSource",
    "ffpp": "vfcache.pipelines.sources.ffpp:FfppSource",
    "webvid": "vfcache.pipelines.sources.webvid:WebVidSource",
    "gasbench": "vfcache.pipelines.sources.gasbench:GasbenchSource",
}


def get_source(config: DatasetConfig) -> Source:
    target = SOURCE_KINDS.get(config.kind)
    if target is None:
        raise ConfigError(
            config.path or config.name, "kind", config.kind, f"one of {sorted(SOURCE_KINDS)}"
        )
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(config)
