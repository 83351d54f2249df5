"""The decoded-clip cache: decompressed clips in fixed-size slots of one memory-mapped file.

Every clip of a clip spec has the same shape, so slot `k` simply holds dataset index `k`
(direct mapping, no slot table); indices at or beyond `n_slots = budget // slot bytes` are
over budget and always go back to the loader (shard read + decompress). Later epochs copy a
clip out of its slot instead of decompressing it (~0.3 ms against ~3 ms for 24x224x224x3).

File layout: a 4 KiB JSON header, one state byte per slot (EMPTY / WRITING / READY), then the
page-aligned slots. The file is created under a temporary name, sized sparse and renamed, so
memory is only used as slots fill. Put it on tmpfs (`/dev/shm`) for a pure-memory cache.

Concurrency (DataLoader workers, several ranks on one node sharing a path): a slot is filled
under an exclusive POSIX record lock on its state byte and published by setting READY before
the lock is released; a reader copies a READY slot under a shared lock on the same byte. The
lock calls are the memory barriers, so a reader never sees READY before the pixels (no torn
reads, also on weakly ordered CPUs). A READY slot is never written again while the file
lives. A process that dies mid-fill releases its lock with it; the slot it left in WRITING is
found unlocked and refilled. A filler that finds a slot locked by another process does not
wait: it decodes into its own buffer (counted as a fallback). Within one process calls are
serialised by a thread lock, because POSIX record locks do not exclude threads of one process.

Reuse across runs: with a `fingerprint` (the dataset's identity), an existing file whose header
matches (shape, slots, fingerprint and the boot id, so a file that may have lost pages in an
OS crash is never trusted) is attached warm; otherwise the file is recreated empty. Ranks of
one node share one file when rank 0 opens it first and the others after a barrier (two
processes creating it at once each end up with a private copy: correct, but twice the memory).
"""

from __future__ import annotations

import fcntl
import json
import logging
import mmap
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from vfcache.atomic import temp_path_for

log = logging.getLogger(__name__)

HEADER_BYTES = 4096
PAGE_BYTES = 4096
FORMAT_NAME = "vfcache-decoded-clips"
FORMAT_VERSION = 1

EMPTY, WRITING, READY = 0, 1, 2

ClipLoader = Callable[[np.ndarray], object]  # writes one clip into the array it is given


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def budget_bytes_from_gb(gigabytes: float) -> int:
    """`--decode-cache-gb` in GiB -> bytes."""
    if gigabytes < 0:
        raise ValueError(f"decode cache budget must be >= 0 GiB, got {gigabytes}")
    return int(gigabytes * 2**30)


def slots_for_budget(budget_bytes: int, clip_bytes: int) -> int:
    """How many page-aligned clip slots fit in the budget."""
    if clip_bytes <= 0:
        raise ValueError(f"clip size must be positive, got {clip_bytes} bytes")
    return max(0, budget_bytes) // _round_up(clip_bytes, PAGE_BYTES)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


@dataclass
class DecodedCacheStats:
    """Counters of this process only (each DataLoader worker keeps its own)."""

    hits: int = 0
    fills: int = 0
    fallbacks: int = 0  # over budget, or the slot was being filled by another process


@dataclass(frozen=True)
class _Layout:
    clip_shape: tuple[int, ...]
    n_slots: int
    clip_bytes: int
    slot_stride_bytes: int
    states_offset: int
    data_offset: int
    file_bytes: int

    @classmethod
    def plan(cls, clip_shape: Sequence[int], budget_bytes: int) -> "_Layout":
        shape = tuple(int(s) for s in clip_shape)
        clip_bytes = int(np.prod(shape))
        n_slots = slots_for_budget(budget_bytes, clip_bytes)
        stride = _round_up(clip_bytes, PAGE_BYTES)
        data_offset = HEADER_BYTES + _round_up(max(n_slots, 1), PAGE_BYTES)
        return cls(
            shape,
            n_slots,
            clip_bytes,
            stride,
            HEADER_BYTES,
            data_offset,
            data_offset + n_slots * stride,
        )


@dataclass
class _Mapping:
    """The per-process view of the file: descriptor, mapping, state bytes, slots, locks."""

    fd: int
    mm: mmap.mmap
    states: np.ndarray
    slots: np.ndarray
    pid: int = field(default_factory=os.getpid)
    thread_lock: threading.Lock = field(default_factory=threading.Lock)


class DecodedClipCache:
    """Fixed-size slots for decoded clips of one shape, in one memory-mapped file."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        clip_shape: Sequence[int],
        budget_bytes: int,
        fingerprint: str | None = None,
    ):
        self.path = Path(path)
        self.budget_bytes = int(budget_bytes)
        self.fingerprint = fingerprint
        self.layout = _Layout.plan(clip_shape, self.budget_bytes)
        self.stats = DecodedCacheStats()
        if fingerprint is None or not self._header_matches():
            self._create_file()
        else:
            log.info("reusing decoded-clip cache %s (%d slots)", self.path, self.layout.n_slots)
        self._mapping: _Mapping | None = None
        self._map()

    # -- properties -------------------------------------------------------------------------
    @property
    def clip_shape(self) -> tuple[int, ...]:
        return self.layout.clip_shape

    @property
    def n_slots(self) -> int:
        return self.layout.n_slots

    def ready_count(self) -> int:
        """Slots published so far (all processes)."""
        return int(np.count_nonzero(self._current().states == READY))

    # -- the file -------------------------------------------------------------------------------
    def _header(self) -> dict:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "clip_shape": list(self.layout.clip_shape),
            "n_slots": self.layout.n_slots,
            "slot_stride_bytes": self.layout.slot_stride_bytes,
            "fingerprint": self.fingerprint,
            "boot_id": _boot_id(),
        }

    def _read_header(self) -> dict | None:
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read(HEADER_BYTES)
            return json.loads(raw.rstrip(b"\0").decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None

    def _header_matches(self) -> bool:
        header = self._read_header()
        if header is None:
            return False
        try:
            size_ok = self.path.stat().st_size == self.layout.file_bytes
        except OSError:
            return False
        return size_ok and header == self._header()

    def _create_file(self) -> None:
        payload = json.dumps(self._header()).encode("utf-8")
        if len(payload) > HEADER_BYTES:
            raise ValueError(
                f"decoded-cache header of {len(payload)} bytes exceeds {HEADER_BYTES}; shorten the "
                f"fingerprint"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path_for(self.path)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.ftruncate(fd, self.layout.file_bytes)  # sparse: pages appear only as slots fill
            os.pwrite(fd, payload, 0)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        log.info(
            "decoded-clip cache %s: %d slots of %s (%.2f GiB budget)",
            self.path,
            self.layout.n_slots,
            self.layout.clip_shape,
            self.budget_bytes / 2**30,
        )

    def _map(self) -> None:
        header = self._read_header()
        expected = self._header()
        if header is None or {k: v for k, v in header.items() if k != "boot_id"} != {
            k: v for k, v in expected.items() if k != "boot_id"
        }:
            raise ValueError(
                f"decoded-clip cache {self.path} does not match {expected} (found {header})"
            )
        fd = os.open(self.path, os.O_RDWR)
        try:
            mm = mmap.mmap(
                fd, self.layout.file_bytes, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
            )
        except (OSError, ValueError):
            os.close(fd)
            raise
        lay = self.layout
        states = np.frombuffer(mm, np.uint8, count=lay.n_slots, offset=lay.states_offset)
        slots = np.frombuffer(
            mm, np.uint8, count=lay.n_slots * lay.slot_stride_bytes, offset=lay.data_offset
        )
        self._mapping = _Mapping(fd, mm, states, slots.reshape(lay.n_slots, lay.slot_stride_bytes))

    def _current(self) -> _Mapping:
        mapping = self._mapping
        if mapping is None:
            raise ValueError(f"decoded-clip cache {self.path} is closed")
        if mapping.pid != os.getpid():
            # Forked child: the MAP_SHARED mapping and descriptor are inherited and stay shared;
            # POSIX locks are not inherited, and a thread lock held at fork time must not be.
            mapping.pid = os.getpid()
            mapping.thread_lock = threading.Lock()
            self.stats = DecodedCacheStats()
        return mapping

    def close(self) -> None:
        mapping, self._mapping = self._mapping, None
        if mapping is None:
            return
        del mapping.states, mapping.slots  # the mapping cannot close while views export it
        mapping.mm.close()
        os.close(mapping.fd)

    def __getstate__(self) -> dict:
        # Travels to spawned workers by path; the receiver attaches to the same file.
        return {
            "path": self.path,
            "budget_bytes": self.budget_bytes,
            "fingerprint": self.fingerprint,
            "clip_shape": self.layout.clip_shape,
        }

    def __setstate__(self, state: dict) -> None:
        self.path = state["path"]
        self.budget_bytes = state["budget_bytes"]
        self.fingerprint = state["fingerprint"]
        self.layout = _Layout.plan(state["clip_shape"], self.budget_bytes)
        self.stats = DecodedCacheStats()
        self._mapping = None
        self._map()

    # -- slots ----------------------------------------------------------------------------------
    def _slot(self, mapping: _Mapping, key: int) -> np.ndarray:
        return mapping.slots[key, : self.layout.clip_bytes].reshape(self.layout.clip_shape)

    def _lock(self, mapping: _Mapping, key: int, kind: int) -> bool:
        try:
            fcntl.lockf(mapping.fd, kind, 1, self.layout.states_offset + key, os.SEEK_SET)
        except (BlockingIOError, PermissionError):
            return False
        return True

    def _unlock(self, mapping: _Mapping, key: int) -> None:
        fcntl.lockf(mapping.fd, fcntl.LOCK_UN, 1, self.layout.states_offset + key, os.SEEK_SET)

    def get_or_load(
        self, key: int, loader: ClipLoader, out: np.ndarray | None = None
    ) -> np.ndarray:
        """The clip of dataset index `key`: copied from its slot, or written by `loader(dest)`.

        `loader` writes one clip into the uint8 array of `clip_shape` it is given (on a miss
        that array is the slot itself). The result lands in `out` when given, else in a new
        array owned by the caller.
        """
        dest = np.empty(self.layout.clip_shape, np.uint8) if out is None else out
        if dest.shape != self.layout.clip_shape or dest.dtype != np.uint8:
            raise ValueError(
                f"out must be uint8 {self.layout.clip_shape}, got {dest.dtype} {dest.shape}"
            )
        mapping = self._current()
        if not 0 <= key < self.layout.n_slots:
            self.stats.fallbacks += 1
            loader(dest)
            return dest
        with mapping.thread_lock:
            if mapping.states[key] == READY and self._copy_ready(mapping, key, dest):
                return dest
            if not self._lock(mapping, key, fcntl.LOCK_EX | fcntl.LOCK_NB):
                self.stats.fallbacks += 1  # another process is filling this slot right now
                loader(dest)
                return dest
            try:
                slot = self._slot(mapping, key)
                if mapping.states[key] != READY:  # EMPTY, or WRITING left by a process that died
                    mapping.states[key] = WRITING
                    try:
                        loader(slot)
                    except BaseException:
                        mapping.states[key] = EMPTY
                        raise
                    mapping.states[key] = READY  # published by the unlock below
                    self.stats.fills += 1
                else:
                    self.stats.hits += 1
                np.copyto(dest, slot)
            finally:
                self._unlock(mapping, key)
        return dest

    def _copy_ready(self, mapping: _Mapping, key: int, dest: np.ndarray) -> bool:
        self._lock(mapping, key, fcntl.LOCK_SH)  # blocking; only a claimer's short check holds EX
        try:
            if mapping.states[key] != READY:
                return False
            np.copyto(dest, self._slot(mapping, key))
        finally:
            self._unlock(mapping, key)
        self.stats.hits += 1
        return True

    def __enter__(self) -> "DecodedClipCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        lay = self.layout
        return (
            f"DecodedClipCache({str(self.path)!r}, clip_shape={lay.clip_shape}, "
            f"n_slots={lay.n_slots})"
        )
