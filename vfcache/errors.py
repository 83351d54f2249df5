"""User-facing errors. The CLI turns these into clean messages and a non-zero exit."""

from __future__ import annotations


class VfcacheError(Exception):
    """Base class for errors a user can act on."""


class ConfigError(VfcacheError):
    """An invalid config: names the file, the field, the value and what would be accepted."""

    def __init__(self, source: str, field: str, value: object, expected: str):
        self.source, self.field, self.value, self.expected = source, field, value, expected
        super().__init__(f"{source}: field {field!r} = {value!r} is invalid; expected {expected}")


class StageError(VfcacheError):
    """A pipeline stage cannot run (missing input, too many failures...)."""
