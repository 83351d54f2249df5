"""`vfcache gc NAME`: delete the shards that nothing references any more.

A dataset that loses or changes videos keeps their clips in their shards (extraction never
rewrites a shard; `clips.parquet` just stops listing them). A shard is garbage when no clip of
it is in `clips.parquet` and no split file of the cache folder names it: old splits still
train from their shards, so they keep them alive. Garbage shards go with their indexes;
`collect_garbage` says what it would free before anything is deleted (`dry_run`). A video
whose shards were collected and that comes back later is extracted again (see
`vfcache.pipelines.extract.plan.covered_video_ids`). Holds the cache folder's writer lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pyarrow.compute as pc
import pyarrow.parquet as pq
from vfcache.cache_tools.writer_lock import writer_lock
from vfcache.manifests.columns import read_split_table

from vfcache.errors import StageError
from vfcache.layout import INDEX_SUFFIX, SHARD_NAME, SHARD_SUFFIX, CacheDir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Garbage:
    shards: tuple[str, ...]  # relative to the cache folder
    bytes: int  # shard and index bytes freed
    kept_shards: int
    deleted: bool


def referenced_shards(cache: CacheDir) -> set[str]:
    """Shard paths (relative to the cache folder) named by clips.parquet or any split file."""
    if not cache.clips_parquet.exists():
        raise StageError(
            f"{cache.clips_parquet} does not exist; nothing to collect before an extraction"
        )
    names = set(
        pc.unique(pq.read_table(cache.clips_parquet, columns=["shard"])["shard"]).to_pylist()
    )
    splits = cache.path / "splits"
    for split_file in sorted(splits.glob("*/*.jsonl")) if splits.is_dir() else []:
        table = read_split_table(split_file)
        if table.num_rows:
            names.update(pc.unique(table.column("shard")).to_pylist())
    return names


def collect_garbage(cache: CacheDir, *, dry_run: bool = False, wait: bool = True) -> Garbage:
    what = f"gc of {cache.path.parent.name}/{cache.path.name}"
    with writer_lock(cache.path, what, wait=wait):
        keep = referenced_shards(cache)
        shards = (
            sorted(p for p in cache.shards_dir.iterdir() if SHARD_NAME.match(p.name))
            if cache.shards_dir.is_dir()
            else []
        )
        garbage, freed = [], 0
        for shard in shards:
            relpath = f"shards/{shard.name}"
            if relpath in keep:
                continue
            index = shard.with_name(shard.name[: -len(SHARD_SUFFIX)] + INDEX_SUFFIX)
            freed += shard.stat().st_size + (index.stat().st_size if index.exists() else 0)
            garbage.append((relpath, shard, index))
        if not dry_run:
            for _, shard, index in garbage:
                index.unlink(missing_ok=True)  # the index first: a shard without index is an orphan
                shard.unlink()
            if garbage:
                log.info("gc %s: deleted %d shards (%d bytes)", cache.path, len(garbage), freed)
        return Garbage(
            tuple(relpath for relpath, _, _ in garbage),
            freed,
            kept_shards=len(shards) - len(garbage),
            deleted=not dry_run,
        )


__all__ = ["Garbage", "collect_garbage", "referenced_shards"]
