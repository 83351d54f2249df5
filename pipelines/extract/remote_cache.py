"""A cache folder whose home is on object storage (`vfcache extract NAME --cache-url s3://bucket/prefix`).

The remote folder `<url>/cache/<dataset>/<spec>/` has the layout of a local one and is what
training reads (`s3://.../splits/<name>/train.jsonl`). The local folder `<root>/cache/<dataset>/
<spec>/` is the driver's mirror of its small files: spec.json, the plans, done files and shard
indexes, clips.parquet, failures.parquet and the split files, plus `remote.json` naming the URL.
It never holds a shard, so split and audit run on the driver as before.

Each extraction task stages its shards on its worker's local disk (`vfcache.cache_tools.remote.
staging_folder`) and uploads each one as it commits: the shard, then its index (the index is
the commit point, remotely too), the done file last. A task that starts again takes the remote
folder as the truth: it pulls its indexes from there, deletes its shards that have no index (a
crash between the two uploads) and goes on. The driver pulls the small files before planning
and after the tasks, merges the indexes into clips.parquet and uploads that, failures.parquet
and spec.json. So the same crash-safety rules hold, with uploads in place of renames.

The writer lock stays on the local mirror: two drivers on one remote folder must share the
mirror folder (or not run at once).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from vfcache.cache_tools.remote import REMOTE_JSON, RemoteFolder, join_url, recorded_remote

from vfcache.atomic import write_json_atomic
from vfcache.errors import StageError
from vfcache.layout import (
    DONE_NAME,
    INDEX_NAME,
    PLAN_NAME,
    SHARD_NAME,
    SHARD_SUFFIX,
    CacheDir,
    index_name,
)

log = logging.getLogger(__name__)


def remote_home(cache: CacheDir, asked: Optional[str]) -> Optional[str]:
    """The URL of the cache folder's remote home: the one remote.json records, else `asked`
    (`--cache-url` + /cache/<dataset>/<spec>); a different one asked is a StageError."""
    record = cache.path / REMOTE_JSON
    recorded = recorded_remote(cache.path)
    wanted = join_url(asked, "/".join(cache.path.parts[-3:])) if asked else None
    if recorded and wanted and recorded != wanted:
        raise StageError(
            f"{cache.path} is the mirror of {recorded}; it cannot also be {wanted} "
            "(extract into another data root or spec name)"
        )
    url = recorded or wanted
    if url and not recorded:
        if cache.shards_dir.is_dir() and any(cache.shards_dir.glob(f"*{SHARD_SUFFIX}")):
            raise StageError(
                f"{cache.path} holds shards extracted to local disk; a cache folder lives in one "
                f"place: extract into another data root or spec name for {url}"
            )
        write_json_atomic(record, {"url": url})
    return url


def _is_small(name: str) -> bool:
    """A file the mirror keeps: a plan, a done file or a shard index (not a shard)."""
    return bool(PLAN_NAME.match(name) or DONE_NAME.match(name) or INDEX_NAME.match(name))


def sync_down(remote: RemoteFolder, cache: CacheDir) -> dict[str, int]:
    """Bring the remote folder's plans, done files and indexes into the mirror's shards folder,
    delete remote shards that have no index (uploads a crash cut short), and drop mirrored files
    the remote folder no longer has. Returns {shard name: bytes} of the remote final shards."""
    listing = remote.listing("shards")
    for name in sorted(listing):
        shard = SHARD_NAME.match(name)
        if shard and index_name(shard["writer"], int(shard["n"])) not in listing:
            log.info(
                "removing %s/shards/%s: uploaded without its index by an interrupted task",
                remote.url,
                name,
            )
            remote.delete(f"shards/{name}")
            del listing[name]
    cache.shards_dir.mkdir(parents=True, exist_ok=True)
    small = {name for name in listing if _is_small(name)}
    for name in sorted(small):
        local = cache.shards_dir / name
        if not local.exists() or local.stat().st_size != listing[name]:
            remote.pull(f"shards/{name}", local)
    for local in cache.shards_dir.iterdir():
        if local.is_file() and local.name not in small and _is_small(local.name):
            local.unlink()
    return {name: size for name, size in listing.items() if SHARD_NAME.match(name)}


def push_files(remote: RemoteFolder, cache: CacheDir, paths: list[Path]) -> None:
    """Upload files of the mirror to the same relative paths in the remote folder."""
    for path in paths:
        remote.push(path, path.relative_to(cache.path).as_posix())


def push_split(cache: CacheDir, split_dir: Path) -> Optional[str]:
    """Upload a split folder's files when the cache folder's home is remote; returns the URL."""
    url = recorded_remote(cache.path)
    if url is None:
        return None
    push_files(RemoteFolder(url), cache, sorted(p for p in split_dir.iterdir() if p.is_file()))
    return join_url(url, split_dir.relative_to(cache.path).as_posix())


def refuse_remote(cache: CacheDir, command: str) -> None:
    """Stop `command` (gc, verify, preview, publish: they read the shards from disk) with one
    line when the cache folder is the mirror of a remote one."""
    url = recorded_remote(cache.path)
    if url:
        raise StageError(
            f"{cache.path} is the local mirror of {url}, whose shards are on object storage; "
            f"`vfcache {command}` reads shards from disk and does not work on a remote cache yet"
        )
