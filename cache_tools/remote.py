"""Cache folders on object storage: read single clips from a store URL (`s3://bucket/prefix/...`)
by range request, with retries, and keep whole remote shards in a local disk cache under a budget.

The store client is obstore (the Rust `object_store` crate: S3 and S3-compatible servers, and
`gs://`, `az://`, `file://` URLs of the same form). fsspec's s3fs was the first choice; its
aiobotocore pins botocore to a narrow range that collides with boto3, which LitData (the load
benchmark's baseline) needs, and pip could not resolve the two.

A remote cache folder has the layout of a local one (spec.json, clips.parquet, shards/,
splits/<name>/<part>.jsonl). `ClipDataset` takes the split files by URL: it mirrors the split
file and spec.json into the local disk cache (they are small) and reads every clip from its
remote shard. Shards are never rewritten under a name, so a copy keyed by URL and size never
goes stale.

Credentials come from the environment only (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN; AWS_ENDPOINT_URL for an S3-compatible server; AWS_SKIP_SIGNATURE=true for a
public bucket): a URL that carries them (`s3://key:secret@bucket/...`) is refused, so none ends
up in a split file, a log line or a bundle, and nothing is looked up elsewhere.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Callable, Optional, TypeVar

from vfcache.cache_tools.shards import ShardCorruptError, ShardReader, _PerThread

from vfcache.atomic import temp_path_for
from vfcache.errors import StageError
from vfcache.layout import REMOTE_JSON_NAME, CacheDir

log = logging.getLogger(__name__)

T = TypeVar("T")

REMOTE_CACHE_DIR_ENV = (
    "VFCACHE_REMOTE_CACHE"  # folder of the local copies (default ~/.cache/vfcache/remote)
)
REMOTE_CACHE_BYTES_ENV = (
    "VFCACHE_REMOTE_CACHE_BYTES"  # budget of whole-shard copies; 0: range reads only
)
DEFAULT_REMOTE_CACHE_BYTES = 20 * 10**9
READ_ATTEMPTS = 5
FIRST_RETRY_DELAY_S = 0.2


class RemoteReadError(StageError):
    """A remote read still failed after its retries."""


def is_url(path: str | os.PathLike) -> bool:
    """True for `scheme://...` other than `file://` (a local path otherwise)."""
    text = os.fspath(path)
    return "://" in text and not text.startswith("file://")


def join_url(base: str, relpath: str) -> str:
    return base.rstrip("/") + "/" + relpath.lstrip("/")


def _store_errors():
    import obstore.exceptions as errors

    return errors


def with_retries(
    fn: Callable[[], T],
    what: str,
    *,
    attempts: int = READ_ATTEMPTS,
    first_delay_s: float = FIRST_RETRY_DELAY_S,
) -> T:
    """`fn()`, again after a dropped connection, a timeout or a short read (exponential backoff);
    a missing object (FileNotFoundError) or a refused request (StageError) is not retried."""
    errors = _store_errors()
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except errors.NotFoundError as err:
            raise FileNotFoundError(f"{what}: not found") from err
        except (errors.PermissionDeniedError, errors.UnauthenticatedError) as err:
            raise StageError(
                f"{what}: the store refused the request ({err}); check the credentials "
                "in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
            ) from err
        except (FileNotFoundError, PermissionError, StageError):
            raise
        except (errors.GenericError, OSError, TimeoutError) as err:
            first_line = str(err).splitlines()[0] if str(err) else ""
            if attempt == attempts:
                raise RemoteReadError(
                    f"{what} failed {attempts} times; last: {type(err).__name__}: {first_line}"
                ) from err
            delay = first_delay_s * 2 ** (attempt - 1)
            log.warning(
                "%s: %s: %s; retrying in %.1f s (%d/%d)",
                what,
                type(err).__name__,
                first_line,
                delay,
                attempt,
                attempts - 1,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@functools.lru_cache(maxsize=None)
def _open_store(url: str, pid: int, endpoint: Optional[str], key_id: Optional[str]):
    from obstore.store import from_url

    options: dict = {"retry_config": {"max_retries": 0}}  # retries are ours, with a log line each
    if endpoint and endpoint.startswith("http://"):
        options["client_options"] = {"allow_http": True}
    return from_url(url, **options)


def open_store(url: str):
    """The obstore store rooted at `url` (a folder); credentials and endpoint from the
    environment."""
    parts = urllib.parse.urlsplit(url)
    if parts.username or parts.password:
        raise StageError(
            f"{parts.scheme}://...@{parts.hostname}: credentials do not go in a URL; "
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
        )
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if parts.scheme in ("s3", "s3a"):
        public = os.environ.get("AWS_SKIP_SIGNATURE", "").lower() in ("1", "true", "yes")
        missing = [name for name in _CREDENTIAL_VARIABLES if not os.environ.get(name)]
        if missing and not public:
            raise StageError(
                f"{url}: no credentials for the store: set {' and '.join(missing)} in the "
                "environment (or AWS_SKIP_SIGNATURE=true for a public bucket)"
            )
    try:
        return _open_store(
            url.rstrip("/"), os.getpid(), endpoint, os.environ.get("AWS_ACCESS_KEY_ID")
        )
    except (ValueError, _store_errors().BaseError) as err:
        raise StageError(f"{url}: cannot open this store URL ({err})") from err


def split_url(url: str) -> tuple[str, str]:
    """(URL of the folder, object name) of an object's URL."""
    folder, _, name = url.rstrip("/").rpartition("/")
    return folder, name


class ShardDiskCache:
    """Whole remote shards on local disk, `budget_bytes` at most, the least recently used evicted
    first.

    Several processes (DataLoader workers) may share the folder: a copy appears by rename once
    complete, and an evicted copy stays readable by a process that has it open."""

    def __init__(self, folder: str | os.PathLike, budget_bytes: int):
        if budget_bytes < 0:
            raise ValueError(f"budget_bytes must be >= 0, got {budget_bytes}")
        self.folder = Path(folder)
        self.budget_bytes = budget_bytes

    @classmethod
    def from_environment(cls) -> "ShardDiskCache":
        folder = (
            os.environ.get(REMOTE_CACHE_DIR_ENV) or Path.home() / ".cache" / "vfcache" / "remote"
        )
        raw = os.environ.get(REMOTE_CACHE_BYTES_ENV, str(DEFAULT_REMOTE_CACHE_BYTES))
        try:
            budget = int(float(raw))
        except ValueError as err:
            raise StageError(f"{REMOTE_CACHE_BYTES_ENV}={raw!r} is not a number of bytes") from err
        return cls(folder, budget)

    def copy_path(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode()).hexdigest()[:32]
        return self.folder / "shards" / f"{digest}-{Path(urllib.parse.urlsplit(url).path).name}"

    def used_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._copies())

    def _copies(self) -> list[Path]:
        folder = self.folder / "shards"
        return (
            [p for p in folder.iterdir() if p.is_file() and ".tmp-" not in p.name]
            if folder.is_dir()
            else []
        )

    def _make_room(self, nbytes: int) -> None:
        copies = []
        for path in self._copies():
            try:
                stat = path.stat()
            except FileNotFoundError:  # another process evicted it
                continue
            copies.append((stat.st_mtime_ns, stat.st_size, path))
        used = sum(size for _, size, _ in copies)
        for _, size, path in sorted(copies):
            if used + nbytes <= self.budget_bytes:
                break
            path.unlink(missing_ok=True)
            used -= size
            log.debug("remote shard cache: evicted %s (%d bytes)", path.name, size)

    def get(self, url: str, size: int, download: Callable[[Path], None]) -> Optional[Path]:
        """The local copy of `url` (`size` bytes), downloaded with `download(dest)` when missing;
        None when the shard alone is over the budget (read it by range instead)."""
        if size > self.budget_bytes:
            return None
        path = self.copy_path(url)
        try:
            if path.stat().st_size == size:
                os.utime(path)  # recently used
                return path
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        self._make_room(size)
        tmp = temp_path_for(path)
        try:
            download(tmp)
            if tmp.stat().st_size != size:
                raise RemoteReadError(
                    f"{url}: downloaded {tmp.stat().st_size} bytes, the store lists {size}"
                )
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path


class RemoteShardReader(ShardReader):
    """`ShardReader` on a shard at a URL: each clip is one range request (retried), or, with a
    disk cache whose budget holds the shard, a `pread` of the local copy made on first use."""

    def __init__(self, url: str, disk_cache: Optional[ShardDiskCache] = None):
        self.path = url  # ShardCorruptError names it
        self.url = url
        self.disk_cache = disk_cache
        folder, self._name = split_url(url)
        self._store = open_store(folder)
        self._local: Optional[ShardReader] = None
        self._local_tried = False
        self._local_lock = (
            threading.Lock()
        )  # one download of the shard, whichever thread asks first
        self._fd = -1
        self._map = None
        self._per_thread = _PerThread()

    def _local_copy(self) -> Optional[ShardReader]:
        if self._local_tried or self.disk_cache is None:
            return self._local
        with self._local_lock:
            if self._local_tried:
                return self._local
            import obstore

            size = with_retries(
                lambda: obstore.head(self._store, self._name)["size"], f"size of {self.url}"
            )
            path = self.disk_cache.get(
                self.url,
                size,
                lambda dest: with_retries(
                    lambda: download(self._store, self._name, dest), f"download of {self.url}"
                ),
            )
            if path is not None:
                self._local = ShardReader(path)
            self._local_tried = True
        return self._local

    def read_frame(self, offset: int, nbytes: int, clip_id: str | None = None) -> bytes:
        local = self._local_copy()
        if local is not None:
            return local.read_frame(offset, nbytes, clip_id)

        import obstore

        def fetch() -> bytes:
            data = bytes(obstore.get_range(self._store, self._name, start=offset, length=nbytes))
            if len(data) != nbytes:  # a connection cut mid-body can surface as a short body
                raise ConnectionError(f"short read: {len(data)} of {nbytes} bytes")
            return data

        try:
            return with_retries(fetch, f"clip {clip_id or ''} at {offset}+{nbytes} of {self.url}")
        except FileNotFoundError as err:
            raise ShardCorruptError(
                self.url, offset, "the shard is missing from the store", clip_id
            ) from err

    def _frame_view(self, offset: int, nbytes: int, clip_id: str | None) -> memoryview | bytes:
        return self.read_frame(offset, nbytes, clip_id)

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
            self._local = None

    def __getstate__(self) -> dict:
        return {"url": self.url, "disk_cache": self.disk_cache}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["url"], state["disk_cache"])


def download(store, name: str, dest: Path) -> None:
    """Stream the object `name` of `store` into the file `dest` (overwritten)."""
    import obstore

    with open(dest, "wb") as handle:
        for chunk in obstore.get(store, name).stream():
            handle.write(chunk)


def open_shard_reader(path: str, disk_cache: Optional[ShardDiskCache] = None) -> ShardReader:
    """A reader for a local shard path or a shard URL."""
    return RemoteShardReader(path, disk_cache) if is_url(path) else ShardReader(path)


def mirror_small_file(url: str, disk_cache_folder: str | os.PathLike, relpath: str) -> Path:
    """Download a small remote file (a split file, spec.json) to `<folder>/meta/<relpath>`, every
    time (it may have changed: a split is rewritten in place); returns the local path."""
    folder, name = split_url(url)
    try:
        return RemoteFolder(folder).pull(name, Path(disk_cache_folder) / "meta" / relpath)
    except FileNotFoundError as err:
        raise StageError(f"{url} does not exist") from err


REMOTE_JSON = REMOTE_JSON_NAME


class RemoteFolder:
    """A cache folder on object storage, by relative path (`shards/shard-0000-0000.npy.zst`).

    An object appears whole when its upload ends (no temp names needed); every call is retried
    like a read."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.store = open_store(self.url)

    def listing(self, sub: str = "shards") -> dict[str, int]:
        """{name: size} of the objects directly under `sub` (empty when there is none)."""
        import obstore

        def ls() -> dict[str, int]:
            found = obstore.list_with_delimiter(self.store, sub.strip("/") or None)
            return {
                entry["path"].rsplit("/", 1)[-1]: int(entry["size"]) for entry in found["objects"]
            }

        return with_retries(ls, f"listing of {self.url}/{sub}")

    def pull(self, relpath: str, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path_for(dest)
        try:
            with_retries(
                lambda: download(self.store, relpath, tmp), f"download of {self.url}/{relpath}"
            )
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def push(self, src: Path, relpath: str) -> None:
        import obstore

        with_retries(
            lambda: obstore.put(self.store, relpath, Path(src)),
            f"upload of {src} to {self.url}/{relpath}",
        )

    def delete(self, relpath: str) -> None:
        import obstore

        def rm() -> None:
            try:
                obstore.delete(self.store, relpath)
            except _store_errors().NotFoundError:
                pass

        with_retries(rm, f"delete of {self.url}/{relpath}")


def staging_folder(url: str) -> Path:
    """The worker-local folder where a task stages the shards of the remote cache folder `url`."""
    import tempfile

    digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return (
        Path(os.environ.get("VFCACHE_STAGING") or tempfile.gettempdir())
        / "vfcache-staging"
        / digest
    )


def recorded_remote(cache_path: str | os.PathLike) -> Optional[str]:
    """The URL a local cache folder mirrors (its remote.json), or None for a cache on disk."""
    return CacheDir(Path(cache_path)).remote_url()


def remote_shard_sizes(cache_path: str | os.PathLike) -> Optional[dict[str, int]]:
    """{shard file name: bytes} in the remote home of a mirrored cache folder; None for a cache on
    disk."""
    url = recorded_remote(cache_path)
    return None if url is None else RemoteFolder(url).listing("shards")
