"""Strict reading of a dataset config's `source:` mapping, shared by the source modules.

`config.source` is free-form in `vfcache.config`; each source kind declares its keys and
reads them through `SourceOptions`, so an unknown key, a wrong type or a bad value fails
when the source is built, with a `ConfigError` naming the file, `source.<key>`, the value
and what would be accepted.
"""

from __future__ import annotations

from typing import Sequence

from vfcache.config import DatasetConfig
from vfcache.validation import Options


class SourceOptions(Options):
    """The `source:` mapping of one dataset config, checked against the keys of its kind."""

    def __init__(self, config: DatasetConfig, allowed: set[str], *, required: Sequence[str] = ()):
        super().__init__(
            config.path or config.name,
            "source.",
            config.source,
            allowed,
            required=required,
            owner=f"kind {config.kind!r}",
        )


def extensions_option(
    options: SourceOptions, key: str, default: tuple[str, ...]
) -> tuple[str, ...]:
    """Video file extensions, normalised to lower case with a leading dot."""
    values = options.strings(key, default)
    return tuple(ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in values)
