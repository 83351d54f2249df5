"""Pinned part assignments for the split: units that must go to a given part, whatever the seed.

A joint split (`vfcache.pipelines.split.joint`) splits several datasets one after the other; a video
shared with a dataset split before is pinned to the part its copy went to, so the copy and
the video never sit in two parts. `assign_codes` places pinned groups first (a group holding a
pinned unit goes with it), counts them against their part's size and stratum quotas, and carves
the other groups as usual. A unit pinned to a part the split does not have is left out of every
part (unassigned): that keeps the pair apart from no part, and out of the others.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from vfcache.errors import VfcacheError


class PinConflict(VfcacheError, ValueError):
    """A group holds units pinned to two different parts."""


def group_pins(group: np.ndarray, pinned: Optional[Sequence[Optional[str]]]) -> dict[int, str]:
    """{group code: part} from the pinned part (or None) of each unit."""
    if pinned is None:
        return {}
    if len(pinned) != len(group):
        raise ValueError(f"{len(pinned)} pins for {len(group)} units")
    pins: dict[int, str] = {}
    for unit, part in enumerate(pinned):
        if part is None:
            continue
        code = int(group[unit])
        if pins.setdefault(code, part) != part:
            raise PinConflict(
                f"one group holds videos pinned to both {pins[code]!r} and {part!r} by the "
                "joint split (their copies in earlier datasets sit in two parts)"
            )
    return pins


def after_pins(
    pins: dict[int, str],
    parts: Sequence[str],
    targets: dict[str, int],
    quotas: list[list[int]],
    composition: list[list],
    group_size: list[int],
) -> tuple[dict[str, int], list[list[int]]]:
    """Targets and stratum quotas left for the free groups once the pinned ones are placed
    (never below zero: a part pinned past its size gets no free group)."""
    targets = dict(targets)
    quotas = [list(row) for row in quotas]
    for code, part in pins.items():
        if part not in parts:
            continue
        targets[part] = max(0, targets[part] - group_size[code])
        row = parts.index(part)
        for stratum, n in composition[code]:
            quotas[row][stratum] = max(0, quotas[row][stratum] - n)
    return targets, quotas


def unit_pins(video_of_unit: Sequence[str], pins: dict[str, str]) -> Optional[list[Optional[str]]]:
    """The pinned part of each unit from {video_id: part}; None when no unit is pinned."""
    if not pins:
        return None
    found = [pins.get(video_id) for video_id in video_of_unit]
    return found if any(part is not None for part in found) else None


def pinned_to(
    pinned: Optional[Sequence[Optional[str]]], part: str
) -> Optional[list[Optional[str]]]:
    """Every pinned unit pinned to `part` instead (the subset takes every pinned unit)."""
    if pinned is None:
        return None
    return [None if p is None else part for p in pinned]


def keep(
    pinned: Optional[Sequence[Optional[str]]], units: np.ndarray
) -> Optional[list[Optional[str]]]:
    return None if pinned is None else [pinned[u] for u in units.tolist()]
