"""Test fixtures for the data path: a cache folder of random clips (`cache_fixtures.build_cache`)
plus a split JSONL listing them in a shuffled order, with the exact pixels of every entry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from cache_fixtures import VideoPlan, build_cache
from vfcache.manifests.records import SplitEntry, split_entry_from_clip
from vfcache.manifests.split_files import write_split_file

from vfcache.config import ClipSpec
from vfcache.layout import DataRoot


def small_spec(frames: int = 3, height: int = 8, width: int = 10, name: str = "tiny") -> ClipSpec:
    return ClipSpec(name=name, frames=frames, sampling="uniform", height=height, width=width)


@dataclass(frozen=True)
class SplitFixture:
    split_file: Path
    entries: tuple[SplitEntry, ...]
    clips: tuple[np.ndarray, ...]  # clips[i] is the pixels of entries[i]


def write_split_cache(
    root: Path,
    dataset: str,
    spec: ClipSpec,
    *,
    labels: Sequence[int],
    generators: Sequence[str] | None = None,
    clips_per_shard: int = 4,
    seed: int = 0,
) -> SplitFixture:
    """One video (one clip) per label given, under cache/<dataset>/<spec>/, listed by
    splits/default/train.jsonl."""
    generators = (
        list(generators)
        if generators is not None
        else ["youtube" if lab == 0 else "gen" for lab in labels]
    )
    plans = [
        VideoPlan(dataset, int(label), generator, f"{dataset}-{i:04d}")
        for i, (label, generator) in enumerate(zip(labels, generators))
    ]
    cache = DataRoot(Path(root)).cache_dir(dataset, spec.name)
    built = build_cache(
        cache.path, plans, dataset=dataset, spec=spec, clips_per_shard=clips_per_shard, seed=seed
    )
    order = np.random.default_rng(seed).permutation(len(built.clips))
    entries = tuple(split_entry_from_clip(built.clips[i]) for i in order)
    split_file = write_split_file(cache.split_file("default", "train"), entries)
    return SplitFixture(split_file, entries, tuple(built.pixels[e.clip_id] for e in entries))
