"""The one toolkit that validates configs at the boundary: clip specs, dataset configs and
their `source:` mappings, train and eval configs. Every failure is a `ConfigError` naming
the file, the field, the value and what would be accepted (style habit 4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from vfcache.errors import ConfigError


def load_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(str(path), "<file>", str(path), "an existing YAML file") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(str(path), "<file>", "unparsable YAML", f"valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ConfigError(str(path), "<file>", type(data).__name__, "a mapping at the top level")
    return data


def check_keys(source: str, prefix: str, data: dict, allowed: set[str], required: set[str]) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(
                source, prefix + str(key), data[key], f"one of the known keys {sorted(allowed)}"
            )
    for key in required:
        if key not in data:
            raise ConfigError(source, prefix + key, None, "a value (the field is required)")


def typed(
    source: str, fieldname: str, value: Any, kind: type, *, minimum: float | None = None
) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ConfigError(source, fieldname, value, f"a {kind.__name__}")
    if minimum is not None and value < minimum:
        raise ConfigError(source, fieldname, value, f"a {kind.__name__} >= {minimum}")
    return value


def choice(source: str, fieldname: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(source, fieldname, value, f"one of {list(choices)}")
    return value


_MISSING = object()


class Options:
    """A free-form mapping of a config (a dataset's `source:`, say) read key by key with types:
    `where` is the file, `prefix` the mapping's place in it (`source.`). Unknown keys fail at
    construction, naming the keys that are known."""

    def __init__(
        self,
        where: str,
        prefix: str,
        values: dict,
        allowed: set[str],
        *,
        required: Sequence[str] = (),
        owner: str = "",
    ):
        self.where, self.prefix, self.values = where, prefix, dict(values)
        owner = f" of {owner}" if owner else ""
        for key in sorted(self.values):
            if key not in allowed:
                raise self.error(
                    key, self.values[key], f"one of the keys{owner}: {sorted(allowed)}"
                )
        for key in required:
            if self.values.get(key) is None:
                raise self.error(
                    key, None, f"a value (required{' by' + owner[3:] if owner else ''})"
                )

    def error(self, key: str, value: Any, expected: str) -> ConfigError:
        return ConfigError(self.where, f"{self.prefix}{key}", value, expected)

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
            if not (
                isinstance(digest, str)
                and len(digest) == 64
                and all(c in "0123456789abcdef" for c in digest.lower())
            ):
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
