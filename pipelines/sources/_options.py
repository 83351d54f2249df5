"""Strict reading of a dataset config's `source:` mapping, shared by the source modules.

`config.source` is free-form in `vfcache.config`; each source kind declares its keys and
reads them through `SourceOptions`, so an unknown key, a wrong type or a bad value fails
when the source is built, with a `ConfigError` naming the file, `source.<key>`, the value
and what would be accepted.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from vfcache.config import DatasetConfig
from vfcache.errors import ConfigError

_MISSING = object()


class SourceOptions:
    """The `source:` mapping of one dataset config, checked against the keys of its kind."""

    def __init__(self, config: DatasetConfig, allowed: set[str], *, required: Sequence[str] = ()):
        self.where = config.path or config.name
        self.values = dict(config.source)
        for key in sorted(self.values):
            if key not in allowed:
                raise ConfigError(
                    self.where,
                    f"source.{key}",
                    self.values[key],
                    f"one of the keys of kind {config.kind!r}: {sorted(allowed)}",
                )
        for key in required:
            if self.values.get(key) is None:
                raise ConfigError(
                    self.where, f"source.{key}", None, f"a value (required by kind {config.kind!r})"
                )

    def error(self, key: str, value: Any, expected: str) -> ConfigError:
        return ConfigError(self.where, f"source.{key}", value, expected)

    def _get(self, key: str, default: Any) -> Any:
        value = self.values.get(key, _MISSING)
        if value is _MISSING or value is None:
            if default is _MISSING:
                raise self.error(key, None, "a value (the key is required)")
            return default
        return value

    def string(
        self, key: str, default: Any = _MISSING, *, choices: Optional[Sequence[str]] = None
    ) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str) or not value:
            raise self.error(key, value, "a non-empty string")
        if choices is not None and value not in choices:
            raise self.error(key, value, f"one of {list(choices)}")
        return value

    def url(self, key: str, default: Any = _MISSING) -> Any:
        value = self.string(key, default)
        if value is default and default is not _MISSING:
            return value
        if not value.startswith(("http://", "https://")):
            raise self.error(key, value, "an http:// or https:// URL")
        return value.rstrip("/")

    def integer(self, key: str, default: Any = _MISSING, *, minimum: Optional[int] = None) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, value, "an integer")
        if minimum is not None and value < minimum:
            raise self.error(key, value, f"an integer >= {minimum}")
        return value

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, value, "true or false")
        return value

    def strings(
        self, key: str, default: Any = _MISSING, *, choices: Optional[Sequence[str]] = None
    ) -> Any:
        """A list of non-empty strings; a single string counts as a list of one."""
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, str):
            value = [value]
        if not (isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)):
            raise self.error(key, value, "a non-empty list of strings")
        if choices is not None:
            for item in value:
                if item not in choices:
                    raise self.error(key, item, f"items among {list(choices)}")
        if len(set(value)) != len(value):
            raise self.error(key, value, "a list without repeated items")
        return tuple(value)

    def mapping(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, dict):
            raise self.error(key, value, "a mapping")
        return value

    def sha256s(self, key: str, default: Any = _MISSING) -> Any:
        """A mapping of file name -> hex sha256 (lower-cased)."""
        value = self.mapping(key, default)
        if value is default and default is not _MISSING:
            return value
        checked = {}
        for name, digest in value.items():
            if not (isinstance(digest, str) and len(digest) == 64
                    and all(c in "0123456789abcdef" for c in digest.lower())):
                raise self.error(f"{key}.{name}", digest, "a hex sha256")
            checked[str(name)] = digest.lower()
        return checked

    def records(self, key: str, allowed: set[str], *, required: Sequence[str] = ()) -> list[dict]:
        """A non-empty list of mappings, each limited to `allowed` keys."""
        value = self._get(key, _MISSING)
        if not (isinstance(value, list) and value):
            raise self.error(key, value, "a non-empty list of mappings")
        for position, item in enumerate(value):
            field = f"{key}[{position}]"
            if not isinstance(item, dict):
                raise self.error(field, item, f"a mapping with keys among {sorted(allowed)}")
            for item_key in item:
                if item_key not in allowed:
                    raise self.error(
                        f"{field}.{item_key}", item[item_key], f"one of {sorted(allowed)}"
                    )
            for item_key in required:
                if item.get(item_key) is None:
                    raise self.error(f"{field}.{item_key}", None, "a value (required)")
        return value


def extensions_option(
    options: SourceOptions, key: str, default: tuple[str, ...]
) -> tuple[str, ...]:
    """Video file extensions, normalised to lower case with a leading dot."""
    values = options.strings(key, default)
    return tuple(ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in values)
