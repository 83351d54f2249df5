"""A split file as a `datasets.Dataset` whose rows read their clips lazily, for users who live in
the Hugging Face ecosystem (`.map`, `.filter`, `.to_pandas`, `.push_to_hub` of their own
results). Training in vfcache itself goes through `vfcache.trainers.dataset.ClipDataset`, which is
faster (a decoded-clip cache, one reader per shard and worker); this is an interop door.

    ds = to_hf_dataset("data/bundles/lab/aegis-clips/splits/default/test.jsonl")
    ds[0]["clip"]          # uint8 (T, H, W, 3), read from its shard when the row is accessed
    ds.features["label"]   # ClassLabel(names=['real', 'fake'])

The table holds the split entries with the features of
`vfcache.manifests.hf_features.split_features`;
the clip column is added on access by `with_transform`, so building the dataset reads no pixels.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from vfcache.cache_tools.shards import ShardReader
from vfcache.manifests.columns import read_split_entries
from vfcache.manifests.hf_features import split_features

from vfcache.layout import cache_dir_of_split_file


class _ReadClips:
    """The `with_transform` function: adds `clip` to a batch of rows (readers opened per call,
    so the dataset pickles and forks without open descriptors)."""

    def __init__(self, cache_path: Path):
        self.cache_path = cache_path

    def __call__(self, batch: dict) -> dict:
        readers: dict[str, ShardReader] = {}
        try:
            clips = []
            for shard, offset, nbytes, clip_id in zip(
                batch["shard"], batch["offset"], batch["nbytes"], batch["clip_id"]
            ):
                if shard not in readers:
                    readers[shard] = ShardReader(self.cache_path / shard)
                clips.append(readers[shard].read(offset, nbytes, clip_id))
        finally:
            for reader in readers.values():
                reader.close()
        return {**batch, "clip": clips}


def to_hf_dataset(split_file: str | os.PathLike):
    """The entries of `split_file` as a `datasets.Dataset` with a lazily read `clip` column."""
    import datasets

    cache = cache_dir_of_split_file(split_file)
    rows = [dataclasses.asdict(entry) for entry in read_split_entries(split_file)]
    features = split_features()
    table = (
        datasets.Dataset.from_list(rows, features=features)
        if rows
        else datasets.Dataset.from_dict({name: [] for name in features}, features=features)
    )
    return table.with_transform(_ReadClips(cache.path))
