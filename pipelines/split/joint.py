"""A joint split (`vfcache split A B ...`): several datasets split so that a video they share
(`vfcache.pipelines.shared_videos`) sits in one part across all of them.

The datasets are split one after the other, in the order named, each with its own sizes, seed,
support bank and subset. The first is split exactly as on its own. Each later one pins every
video it shares with a dataset already split to the part that copy went to (`write_split`'s
`pins`, placed before the seeded carving and forced into a subset), so each group of shared
videos lands in one part, or, when its first copy was left out of the split, anywhere (no part
of the earlier dataset holds it). A pinned part can end up larger than asked; split.json then
records target and obtained, and the audit's size check names it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import pyarrow.compute as pc
from vfcache.manifests.columns import read_split_table
from vfcache.manifests.shared_videos import SharedVideo, shared_groups
from vfcache.manifests.split_files import JointInfo
from vfcache.pipelines.split import SplitReport, SplitSizeError, write_split

from vfcache.layout import CacheDir

log = logging.getLogger(__name__)

PLACED_PARTS = ("train", "val", "test")  # the support bank lies inside train


@dataclass(frozen=True)
class JointMember:
    """One dataset of a joint split: its name, cache folder and `write_split` options."""

    dataset: str
    cache_dir: CacheDir
    options: dict[str, Any]


def pins_for(
    dataset: str, groups: Sequence[list[tuple[str, str]]], placed: dict[tuple[str, str], str]
) -> dict[str, str]:
    """{video_id: part} for the videos of `dataset` whose group already has a part."""
    pins = {}
    for group in groups:
        parts = sorted({placed[node] for node in group if node in placed})
        if len(parts) > 1:
            members = ", ".join(f"{d}:{v[:12]}" for d, v in group)
            raise SplitSizeError(
                f"shared videos {members} already sit in parts {parts} of the datasets "
                "split before; split those datasets jointly first"
            )
        if parts:
            pins.update({video_id: parts[0] for d, video_id in group if d == dataset})
    return pins


def placed_videos(member: JointMember, wanted: set[str]) -> dict[tuple[str, str], str]:
    """{(dataset, video_id): part} for the wanted videos in the member's written split."""
    found = {}
    for part in PLACED_PARTS:
        path = member.cache_dir.split_file(member.options["name"], part)
        video_ids = pc.unique(read_split_table(path).column("video_id")).to_pylist()
        found.update({(member.dataset, v): part for v in video_ids if v in wanted})
    return found


def write_joint_split(
    members: Sequence[JointMember], shared: Sequence[SharedVideo], *, wait: bool = True
) -> list[SplitReport]:
    """Split every member in order, pinning the videos shared with an earlier member."""
    names = tuple(m.dataset for m in members)
    groups = shared_groups(shared)
    shared_ids = {d: {v for group in groups for dd, v in group if dd == d} for d in names}
    placed: dict[tuple[str, str], str] = {}
    reports = []
    for index, member in enumerate(members):
        pins = pins_for(member.dataset, groups, placed)
        joint = JointInfo(datasets=names, after=names[:index], pinned_videos=len(pins))
        reports.append(
            write_split(member.cache_dir, **member.options, wait=wait, pins=pins, joint=joint)
        )
        placed.update(placed_videos(member, shared_ids[member.dataset]))
        log.info(
            "joint split %s: %d videos pinned to the part of their copy", member.dataset, len(pins)
        )
    return reports
