"""Source kind `local`: a folder of videos already on disk, labelled by the config's layout rule.

    kind: local
    source:
      path: /data/my_videos          # absolute, or relative to the current directory
      extensions: [.mp4, .webm]      # optional; default: every common video extension

Nothing is downloaded; `fetch` only checks that the folder is there.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vfcache.pipelines.sources.base import VideoCandidate
from vfcache.pipelines.sources.labels import VIDEO_EXTENSIONS, candidates_from_layout
from vfcache.pipelines.sources.plan import FetchPlan

from vfcache.config import DatasetConfig
from vfcache.errors import ConfigError, StageError
from vfcache.layout import DataRoot

log = logging.getLogger(__name__)

LOCAL_SOURCE_KEYS = {"path", "extensions"}


def parse_extensions(value: object, source: str) -> tuple[str, ...]:
    if value is None:
        return VIDEO_EXTENSIONS
    if isinstance(value, str):
        value = [value]
    if not (
        isinstance(value, list) and value and all(isinstance(ext, str) and ext for ext in value)
    ):
        raise ConfigError(
            source, "source.extensions", value, "a list of file extensions such as [.mp4, .webm]"
        )
    return tuple(ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in value)


class LocalSource:
    """Videos in a local folder; label, generator, domain and group come from `config.layout`."""

    def __init__(self, config: DatasetConfig):
        where = config.path or config.name
        unknown = set(config.source) - LOCAL_SOURCE_KEYS
        if unknown:
            key = sorted(unknown)[0]
            raise ConfigError(
                where,
                f"source.{key}",
                config.source[key],
                f"only the keys {sorted(LOCAL_SOURCE_KEYS)}",
            )
        path = config.source.get("path")
        if not isinstance(path, str) or not path:
            raise ConfigError(
                where, "source.path", path, "the folder holding the videos (kind: local)"
            )
        self.config = config
        self.folder = Path(path).expanduser()
        self.extensions = parse_extensions(config.source.get("extensions"), where)

    def raw_dir(self, root: DataRoot) -> Path:
        return self.folder

    def plan_fetch(self, root: DataRoot) -> FetchPlan:
        return FetchPlan(
            self.config.name,
            f"local folder {self.folder}",
            self.config.terms,
            "",
            (),
            ("nothing is downloaded: the videos stay where they are",),
        )

    def fetch(self, root: DataRoot, *, progress: bool = True) -> None:
        if not self.folder.is_dir():
            raise StageError(
                f"dataset {self.config.name!r} (kind local) expects its videos in {self.folder}, "
                "which is not a folder; fix source.path in the dataset config"
            )
        log.info("local dataset %s: videos stay in %s", self.config.name, self.folder)

    def list_videos(self, root: DataRoot) -> list[VideoCandidate]:
        return candidates_from_layout(
            self.raw_dir(root),
            self.config.layout,
            dataset=self.config.name,
            default_domain=self.config.domain,
            extensions=self.extensions,
        )
