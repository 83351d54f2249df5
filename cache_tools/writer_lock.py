"""One writer per cache folder: a lock file that says who holds it, and works on shared disks.

`writer_lock(folder, what)` creates `<folder>/.writer.lock` with `O_CREAT | O_EXCL` (atomic on
local disks and on NFS v3+, unlike `flock`, which many network filesystems ignore) and writes
the holder into it: host, pid, process start time, when, and what it does. While held, a
thread refreshes the file's mtime every `HEARTBEAT_S` seconds.

A second writer either waits (polling, saying once who it waits for) or, with `wait=False`,
raises `CacheBusy` whose message is one line: `extraction of sample/sample_8x112 is running
(pid 4242 on host gpu-7 since 2026-12-04T05:00:00+00:00)`. A lock whose holder is dead is
taken over with a warning: on the same host, when the pid is gone or now belongs to a process
that started later; on another host, when the heartbeat stopped for `stale_after_s`. A stale
lock is first renamed away (atomic, so two writers cannot both take it over), then the lock is
created again the normal way.

Readers (train, eval, audit, verify) never take the lock: everything they read is written to a
temporary name and renamed, so they see either the old or the new file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Optional

from vfcache.errors import VfcacheError

log = logging.getLogger(__name__)

LOCK_NAME = ".writer.lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0  # another host's lock without a heartbeat for this long is dead


class CacheBusy(VfcacheError):
    """Another writer holds the cache folder (and we were asked not to wait)."""


@dataclass(frozen=True)
class LockHolder:
    host: str
    pid: int
    process_start: Optional[float]  # the holder's start time (clock ticks since boot), if known
    since_utc: str
    what: str

    def describe(self) -> str:
        return f"{self.what} is running (pid {self.pid} on host {self.host} since {self.since_utc})"


def _process_start(pid: int) -> Optional[float]:
    """When `pid` started (field 22 of /proc/<pid>/stat), None where /proc is unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return float(stat.rsplit(")", 1)[1].split()[19])


def _me(what: str) -> LockHolder:
    return LockHolder(
        host=socket.gethostname(),
        pid=os.getpid(),
        process_start=_process_start(os.getpid()),
        since_utc=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        what=what,
    )


def read_holder(path: Path) -> Optional[LockHolder]:
    """The holder written in a lock file; None when the file is gone or half-written."""
    try:
        return LockHolder(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def holder_is_dead(holder: LockHolder, path: Path, stale_after_s: float) -> bool:
    if holder.host == socket.gethostname():
        try:
            os.kill(holder.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, another user's
        started = _process_start(holder.pid)
        return (
            holder.process_start is not None
            and started is not None
            and started != holder.process_start
        )
    try:
        return time.time() - path.stat().st_mtime > stale_after_s
    except FileNotFoundError:
        return True


def _try_create(path: Path, holder: LockHolder) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(holder), handle)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def _take_over(path: Path, holder: LockHolder) -> None:
    """Move a dead holder's lock aside; only one of several writers doing this succeeds."""
    aside = path.with_name(f"{path.name}.stale-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another writer took it over first
    log.warning("taking over the lock of a dead writer: %s", holder.describe())
    aside.unlink(missing_ok=True)


def _heartbeat(path: Path, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        with contextlib.suppress(OSError):
            os.utime(path)


@contextlib.contextmanager
def writer_lock(
    folder: str | os.PathLike,
    what: str,
    *,
    wait: bool = True,
    poll_s: float = 1.0,
    stale_after_s: float = STALE_AFTER_S,
) -> Iterator[LockHolder]:
    """Hold `<folder>/.writer.lock` for the block; see the module docstring."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    me = _me(what)
    announced = False
    while not _try_create(path, me):
        holder = read_holder(path)
        if holder is None:  # half-written by a writer that is creating it right now
            time.sleep(min(poll_s, 0.05))
            continue
        if holder_is_dead(holder, path, stale_after_s):
            _take_over(path, holder)
            continue
        if not wait:
            raise CacheBusy(holder.describe())
        if not announced:
            log.warning("waiting: %s", holder.describe())
            announced = True
        time.sleep(poll_s)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(path, stop), daemon=True)
    beat.start()
    try:
        yield me
    finally:
        stop.set()
        beat.join()
        if read_holder(path) == me:
            path.unlink(missing_ok=True)
