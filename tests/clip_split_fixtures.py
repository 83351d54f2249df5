"""Test fixtures for the data path: a cache folder of random clips in shards plus a split JSONL.

`write_split_cache` writes spec.json, a few shards through `ShardWriter` and one split file,
and returns the split file with the exact clips it lists, so tests compare pixels exactly.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from cache_tools.atomic import write_json_atomic
from cache_tools.shards import SHARD_SUFFIX, ShardWriter
from manifests.layout import DataRoot
from manifests.records import SplitEntry, make_clip_id
from vfcache.config import ClipSpec


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
    domain: str | None = None,
    clips_per_shard: int = 4,
    seed: int = 0,
    part: str = "train",
) -> SplitFixture:
    """One clip per label given; shards of `clips_per_shard` clips; the split lists them in a shuffled order."""
    rng = np.random.default_rng(seed)
    cache = DataRoot(Path(root)).cache_dir(dataset, spec.name)
    write_json_atomic(cache.spec_json, spec.to_json())
    generators = list(generators) if generators is not None else ["real" if lab == 0 else "gen" for lab in labels]
    entries, clips = [], []
    for first in range(0, len(labels), clips_per_shard):
        rel = f"shards/shard-0000-{first // clips_per_shard:04d}{SHARD_SUFFIX}"
        with ShardWriter(cache.resolve_shard(rel)) as writer:
            for index in range(first, min(first + clips_per_shard, len(labels))):
                clip = rng.integers(0, 256, size=spec.clip_shape, dtype=np.uint8)
                where = writer.append(clip)
                video_id = f"{dataset}-video-{index:04d}"
                entries.append(SplitEntry(
                    clip_id=make_clip_id(video_id, spec.spec_hash, 0), shard=rel, offset=where.offset,
                    nbytes=where.nbytes, label=int(labels[index]), domain=domain or dataset,
                    generator=generators[index], group=video_id, video_id=video_id, dataset=dataset, clip_index=0,
                ))
                clips.append(clip)
    order = rng.permutation(len(entries))
    entries = [entries[i] for i in order]
    clips = [clips[i] for i in order]
    split_file = cache.split_file("default", part)
    split_file.parent.mkdir(parents=True, exist_ok=True)
    split_file.write_text("".join(json.dumps(dataclasses.asdict(e), sort_keys=True) + "\n" for e in entries))
    return SplitFixture(split_file, tuple(entries), tuple(clips))
