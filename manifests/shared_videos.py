"""Videos shared across datasets: the pairs `vfcache.pipelines.shared_videos` finds (same bytes, or
the
same frames after a re-encode or resize), their groups, and the audit check that no group sits
in two parts of the audited split.

A pair is two videos of two different datasets. Pairs chain into groups (a DVF video, its AEGIS
copy and a GenVideo copy of that copy are one group even when only two of the three pairs
match directly); a group may sit in one part of every dataset, or be left out of the split,
never in two parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import pyarrow as pa

MATCH_BYTES = "bytes"  # the same file: same video_id (sha256 of the bytes)
MATCH_FRAMES = "frames"  # the same picture: frame hashes within the threshold


@dataclass(frozen=True)
class SharedVideo:
    """One video found in two datasets."""

    dataset_a: str
    relpath_a: str
    video_id_a: str
    dataset_b: str
    relpath_b: str
    video_id_b: str
    match: str  # bytes / frames
    distance_bits: float  # mean Hamming distance of the frame hashes (0 for the same bytes)

    @property
    def a(self) -> tuple[str, str]:
        return self.dataset_a, self.video_id_a

    @property
    def b(self) -> tuple[str, str]:
        return self.dataset_b, self.video_id_b

    def describe(self) -> str:
        how = (
            "same bytes"
            if self.match == MATCH_BYTES
            else f"frames {self.distance_bits:.1f} bits apart"
        )
        return f"{self.dataset_a}:{self.relpath_a} = {self.dataset_b}:{self.relpath_b} ({how})"


def shared_groups(shared: Iterable[SharedVideo]) -> list[list[tuple[str, str]]]:
    """The (dataset, video_id) groups the pairs chain into, each sorted, sorted by first member."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def root(node: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for pair in shared:
        parent[root(pair.a)] = root(pair.b)
    groups: dict[tuple[str, str], list] = {}
    for node in parent:
        groups.setdefault(root(node), []).append(node)
    return sorted(sorted(members) for members in groups.values())


def parts_of_videos(
    placements: Sequence[tuple[str, str, pa.Array]], wanted: set[tuple[str, str]]
) -> dict[tuple[str, str], set[str]]:
    """For the wanted (dataset, video_id), the parts of the split holding them
    (`placements`: (dataset, part, video ids) as the audit collects them)."""
    found: dict[tuple[str, str], set[str]] = {}
    wanted_ids = {video_id for _, video_id in wanted}
    for dataset, part, video_ids in placements:
        for video_id in set(video_ids.to_pylist()) & wanted_ids:
            if (dataset, video_id) in wanted:
                found.setdefault((dataset, video_id), set()).add(part)
    return found


def group_leaks(
    shared: Sequence[SharedVideo], placements: Sequence[tuple[str, str, pa.Array]]
) -> list[str]:
    """One line per group of shared videos found in more than one part."""
    groups = shared_groups(shared)
    where = parts_of_videos(placements, {node for group in groups for node in group})
    relpath = {p.a: p.relpath_a for p in shared} | {p.b: p.relpath_b for p in shared}
    problems = []
    for group in groups:
        parts = sorted({part for node in group for part in where.get(node, ())})
        if len(parts) > 1:
            members = ", ".join(
                f"{d}:{relpath[(d, v)]} in {'/'.join(sorted(where.get((d, v), ()))) or 'no part'}"
                for d, v in group
            )
            problems.append(f"shared video in {parts}: {members}")
    return problems
