"""`ClipDataset`: random access to the clips listed by one or more split JSONL files.

A split file (read with `vfcache.manifests.columns.read_split_entries`) is self-contained (shard
path
relative to its cache folder, offset, nbytes, label, domain, generator), so one clip is one
`pread` and one decompress. Several split files
(AEGIS + DVF + GenVideo train) combine into one index space as long as their clips share a
shape. Each process keeps its own shard descriptors, opened lazily and dropped when the
process id changes, so the dataset is safe to fork into DataLoader workers.

`__getitems__` (used by the DataLoader for a whole batch) decompresses every clip straight
into one batch buffer, allocated in shared memory inside a worker, and `collate_clips`
recognises that buffer and hands it on without another copy. With a `DecodedClipCache` the
clips of later epochs are copied from its slots instead of decompressed.

A cache of `pixels: yuv420` stores planes (see `vfcache.pixels`): with `form="stored"` (the
default) the dataset hands them out as they are, with each clip's colour code (`colour`), for
`vfcache.trainers.gpu.to_device` to make RGB on the device; `form="rgb"` makes RGB here, on the CPU,
with the same function (`vfcache.trainers.colour.yuv420_to_rgb`). The decoded-clip cache always
holds
the stored form.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info
from vfcache.cache_tools.decoded_cache import DecodedClipCache
from vfcache.cache_tools.remote import (
    ShardDiskCache,
    is_url,
    join_url,
    mirror_small_file,
    open_shard_reader,
)
from vfcache.cache_tools.shards import ShardReader
from vfcache.manifests.columns import read_split_entries
from vfcache.manifests.records import SplitEntry
from vfcache.trainers.colour import clip_colour_codes, yuv420_to_rgb

from vfcache.config import ClipSpec
from vfcache.cores import usable_cores
from vfcache.errors import StageError
from vfcache.layout import CacheDir, cache_dir_of_split_file

log = logging.getLogger(__name__)

DEFAULT_MAX_OPEN_SHARDS = 256
FORMS = ("stored", "rgb")
BATCH_THREADS = 4  # at most, in the main process (see __getitems__)


@dataclass(frozen=True)
class SplitSource:
    """One split file inside a combined dataset: where its clips sit in the index space."""

    split_file: Path
    cache_dir: CacheDir
    spec: ClipSpec
    first_index: int
    num_clips: int


def open_decode_cache(
    dataset: "ClipDataset", folder: str | os.PathLike, budget_bytes: int
) -> DecodedClipCache:
    """Attach a decoded-clip cache named after the dataset's fingerprint inside `folder`
    (`/dev/shm` keeps it in memory); a later run over the same clips finds it warm."""
    cache = DecodedClipCache(
        Path(folder) / f"vfcache-decoded-{dataset.fingerprint}.slots",
        clip_shape=dataset.stored_shape,
        budget_bytes=budget_bytes,
        fingerprint=dataset.fingerprint,
    )
    dataset.attach_decode_cache(cache)
    return cache


def _as_paths(split_files: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path | str]:
    """Local split files as paths; split files on object storage stay URLs (`s3://...`)."""
    if isinstance(split_files, (str, os.PathLike)):
        split_files = [split_files]
    return [str(p) if is_url(p) else Path(p) for p in split_files]


def _open_split_file(
    path: Path | str, remote_cache: ShardDiskCache
) -> tuple[CacheDir, Path, Optional[str]]:
    """(cache folder, local split file, URL of the remote cache folder or None).

    A split file at a URL is mirrored, with its cache folder's spec.json, under the remote disk
    cache (`vfcache.cache_tools.remote`); its shards are then read from the remote cache folder."""
    if not is_url(path):
        return cache_dir_of_split_file(path), Path(path), None
    base, splits, name, part = str(path).rsplit("/", 3)
    if splits != "splits":
        raise StageError(f"{path}: split files sit at <cache folder>/splits/<name>/<part>.jsonl")
    key = hashlib.sha256(base.encode()).hexdigest()[:16]
    spec_json = mirror_small_file(
        join_url(base, "spec.json"), remote_cache.folder, f"{key}/spec.json"
    )
    if '"yuv420"' in spec_json.read_text(
        encoding="utf-8"
    ):  # its clips' colour tags are in clips.parquet
        mirror_small_file(
            join_url(base, "clips.parquet"), remote_cache.folder, f"{key}/clips.parquet"
        )
    local = mirror_small_file(str(path), remote_cache.folder, f"{key}/splits/{name}/{part}")
    return cache_dir_of_split_file(local), local, base


def new_clip_batch(batch_size: int, clip_shape: Sequence[int]) -> torch.Tensor:
    """An uninitialised uint8 (B, T, H, W, 3) tensor; in shared memory inside a DataLoader
    worker, so sending it to the main process costs no copy (as torch's default_collate does)."""
    shape = (batch_size, *clip_shape)
    if get_worker_info() is None:
        # numpy's allocator reuses freed heap memory; a fresh torch.empty of this size pays
        # page faults on every batch (measured 5x slower to fill on a 2-core VM)
        return torch.from_numpy(np.empty(shape, dtype=np.uint8))
    numel = int(np.prod(shape))
    storage = torch.UntypedStorage._new_shared(numel)
    return torch.empty(0, dtype=torch.uint8).set_(storage, 0, shape)


class ClipDataset(Dataset):
    """Map-style dataset over split JSONL files; sample `i` is the clip of entry `i`."""

    def __init__(
        self,
        split_files: str | os.PathLike | Iterable[str | os.PathLike],
        *,
        decode_cache: DecodedClipCache | None = None,
        max_open_shards: int = DEFAULT_MAX_OPEN_SHARDS,
        labels: Iterable[int] | None = None,
        remote_cache: ShardDiskCache | None = None,
        form: str = "stored",
    ):
        """`labels`: keep only the clips of these labels (one-class training on real clips).
        `form`: `stored` hands clips out as the cache stores them, `rgb` always as RGB.

        Split files may be URLs of a cache folder on object storage (`s3://bucket/.../splits/
        <name>/<part>.jsonl`); `remote_cache` keeps copies of its shards (default: from the
        environment, see `vfcache.cache_tools.remote`)."""
        paths = _as_paths(split_files)
        if not paths:
            raise ValueError("ClipDataset needs at least one split file")
        if form not in FORMS:
            raise ValueError(f"form = {form!r}; expected one of {list(FORMS)}")
        if max_open_shards < 1:
            raise ValueError(f"max_open_shards must be >= 1, got {max_open_shards}")
        self.max_open_shards = max_open_shards
        entries: list[SplitEntry] = []
        shard_ids: list[int] = []
        shard_paths: dict[str, int] = {}
        sources: list[SplitSource] = []
        self.remote_cache = remote_cache or (
            ShardDiskCache.from_environment() if any(map(is_url, paths)) else None
        )
        for path in paths:
            cache_dir, local_path, remote_base = _open_split_file(path, self.remote_cache)
            part = read_split_entries(local_path)
            if labels is not None:
                keep = set(labels)
                part = [entry for entry in part if entry.label in keep]
            sources.append(
                SplitSource(path, cache_dir, cache_dir.read_spec(), len(entries), len(part))
            )
            resolved: dict[str, int] = {}  # a shard's path is made once, not once per clip
            for entry in part:
                shard_id = resolved.get(entry.shard)
                if shard_id is None:
                    shard = (
                        join_url(remote_base, entry.shard)
                        if remote_base
                        else str(cache_dir.resolve_shard(entry.shard))
                    )
                    shard_id = resolved[entry.shard] = shard_paths.setdefault(
                        shard, len(shard_paths)
                    )
                shard_ids.append(shard_id)
            entries.extend(part)
        self.sources = tuple(sources)
        self.stored_shape = self._common_clip_shape(self.sources)
        self.pixels = self.sources[0].spec.pixels
        self.form = form
        self.converts = form == "rgb" and self.pixels == "yuv420"  # RGB made on this side
        self.clip_shape = self.sources[0].spec.clip_shape if self.converts else self.stored_shape
        self.rgb_shape = self.sources[0].spec.clip_shape  # what the model sees, whatever the form
        self._check_unique(entries)
        self.entries = tuple(entries)
        # per clip, the colour code its yuv420 planes are made RGB with (None for RGB caches)
        self.colour_codes = (
            None
            if self.pixels != "yuv420"
            else np.concatenate(
                [
                    clip_colour_codes(
                        source.cache_dir.clips_parquet,
                        [
                            e.clip_id
                            for e in entries[
                                source.first_index : source.first_index + source.num_clips
                            ]
                        ],
                    )
                    for source in self.sources
                ]
            )
        )
        self.labels = np.array([e.label for e in entries], dtype=np.int64)
        self.domains = np.array([e.domain for e in entries], dtype=object)
        self.generators = np.array([e.generator for e in entries], dtype=object)
        self.datasets = np.array([e.dataset for e in entries], dtype=object)
        self._shard_of_clip = np.array(shard_ids, dtype=np.int64)
        self._shard_paths = tuple(shard_paths)
        self._readers: OrderedDict[int, ShardReader] = OrderedDict()
        self._readers_pid = os.getpid()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self.decode_cache: DecodedClipCache | None = None
        if decode_cache is not None:
            self.attach_decode_cache(decode_cache)

    @staticmethod
    def _common_clip_shape(sources: Sequence[SplitSource]) -> tuple[int, ...]:
        """The stored shape every source shares (an RGB and a yuv420 cache do not mix)."""
        shapes = {(tuple(s.spec.stored_shape), s.spec.pixels) for s in sources}
        if len(shapes) != 1:
            listing = ", ".join(
                f"{s.split_file} -> {s.spec.stored_shape} {s.spec.pixels} ({s.spec.name})"
                for s in sources
            )
            raise ValueError(
                f"split files combined in one dataset must share a clip shape; got {listing}"
            )
        if len({s.spec.spec_hash for s in sources}) > 1:
            log.warning(
                "combining split files cut with different clip specs of one shape: %s",
                sorted({s.spec.name for s in sources}),
            )
        return shapes.pop()[0]

    @staticmethod
    def _check_unique(entries: Sequence[SplitEntry]) -> None:
        seen: set[str] = set()
        for entry in entries:
            if entry.clip_id in seen:
                raise ValueError(
                    f"clip {entry.clip_id} is listed more than once across the split files"
                )
            seen.add(entry.clip_id)

    @functools.cached_property
    def fingerprint(self) -> str:
        """Identity of the index space (clip ids in order and their shape), for reusing a decoded
        cache."""
        digest = hashlib.sha256(repr(self.stored_shape).encode())
        for entry in self.entries:
            digest.update(entry.clip_id.encode())
        return digest.hexdigest()[:32]

    def attach_decode_cache(self, decode_cache: DecodedClipCache) -> None:
        if tuple(decode_cache.clip_shape) != tuple(self.stored_shape):
            raise ValueError(
                f"decoded-clip cache {decode_cache.path} holds clips of {decode_cache.clip_shape}, "
                f"the dataset's are {self.stored_shape}"
            )
        if decode_cache.fingerprint is not None and decode_cache.fingerprint != self.fingerprint:
            raise ValueError(
                f"decoded-clip cache {decode_cache.path} was made for dataset "
                f"{decode_cache.fingerprint}, "
                f"this one is {self.fingerprint}; pass fingerprint=dataset.fingerprint"
            )
        self.decode_cache = decode_cache

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def reads_remote(self) -> bool:
        """Whether some shards are read from object storage (see `vfcache.cache_tools.remote`)."""
        return any(is_url(path) for path in self._shard_paths)

    # -- reading --------------------------------------------------------------------------------
    def _reader(self, shard_id: int) -> ShardReader:
        if self._readers_pid != os.getpid():
            # Forked into a worker: open our own readers rather than lean on the parent's, which it
            # may evict and close.
            self._readers = OrderedDict()
            self._readers_pid = os.getpid()
        reader = self._readers.get(shard_id)
        if reader is None:
            if len(self._readers) >= self.max_open_shards:
                self._readers.popitem(last=False)[1].close()
            reader = self._readers[shard_id] = open_shard_reader(
                self._shard_paths[shard_id], self.remote_cache
            )
        else:
            self._readers.move_to_end(shard_id)
        return reader

    def _check_index(self, index: int) -> int:
        index = int(index)
        if not -len(self.entries) <= index < len(self.entries):
            raise IndexError(
                f"clip index {index} out of range for a dataset of {len(self.entries)} clips"
            )
        return index % len(self.entries)

    def _decode_into(self, index: int, dest: np.ndarray) -> None:
        entry = self.entries[index]
        reader = self._reader(int(self._shard_of_clip[index]))
        reader.read_into(entry.offset, entry.nbytes, dest, clip_id=entry.clip_id)

    def read_clip(self, index: int, out: np.ndarray | None = None) -> np.ndarray:
        """The uint8 clip of entry `index` in `clip_shape` ((T, H, W, 3), or stored yuv420
        planes), written into `out` when given."""
        index = self._check_index(index)
        if self.converts:
            rgb = self._to_rgb(self._read_stored(index, None)[None], [index])[0]
            if out is None:
                return rgb
            out[...] = rgb
            return out
        return self._read_stored(index, out)

    def _read_stored(self, index: int, out: np.ndarray | None) -> np.ndarray:
        if self.decode_cache is not None:
            return self.decode_cache.get_or_load(
                index, lambda dest: self._decode_into(index, dest), out
            )
        dest = np.empty(self.stored_shape, np.uint8) if out is None else out
        self._decode_into(index, dest)
        return dest

    def _to_rgb(self, planes: np.ndarray, indices: Sequence[int]) -> np.ndarray:
        codes = torch.from_numpy(self.colour_codes[list(indices)])
        return yuv420_to_rgb(torch.from_numpy(planes), codes).numpy()

    def _sample(self, index: int, clip: torch.Tensor) -> dict:
        entry = self.entries[index]
        sample = {
            "clip": clip,
            "label": entry.label,
            "domain": entry.domain,
            "generator": entry.generator,
            "clip_id": entry.clip_id,
            "index": index,
        }
        if self.colour_codes is not None and not self.converts:
            sample["colour"] = int(self.colour_codes[index])
        return sample

    def __getitem__(self, index: int) -> dict:
        index = self._check_index(index)
        return self._sample(index, torch.from_numpy(self.read_clip(index)))

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        """A batch of samples whose clips are consecutive rows of one buffer (see `collate_clips`).

        In the main process (a DataLoader without workers, or direct use) the clips of a batch
        are decompressed on a few threads (zstd releases the GIL); in a DataLoader worker, on
        the worker's one thread, since the workers already fill the cores."""
        indices = [self._check_index(i) for i in indices]
        batch = new_clip_batch(len(indices), self.clip_shape)
        rgb_rows = batch.numpy() if self.converts else None
        rows = (
            np.empty((len(indices), *self.stored_shape), np.uint8)
            if self.converts
            else batch.numpy()
        )
        pool = self._batch_pool(indices)
        if pool is None:
            for row, index in enumerate(indices):
                self._read_stored(index, rows[row])
        else:
            # readers are opened here, before the threads start, so none is evicted while in use
            readers = [self._reader(int(self._shard_of_clip[index])) for index in indices]

            def read(row: int) -> None:
                entry = self.entries[indices[row]]
                readers[row].read_into(entry.offset, entry.nbytes, rows[row], clip_id=entry.clip_id)

            for _ in pool.map(read, range(len(indices))):
                pass
        if rgb_rows is not None:
            rgb_rows[...] = self._to_rgb(rows, indices)
        return [self._sample(index, batch[row]) for row, index in enumerate(indices)]

    def _batch_pool(self, indices: Sequence[int]) -> Optional[ThreadPoolExecutor]:
        """The threads that decompress a batch in the main process, or None to read on this one."""
        if (
            len(indices) < 2
            or self.decode_cache is not None
            or get_worker_info() is not None
            or len({int(self._shard_of_clip[i]) for i in indices}) > self.max_open_shards
        ):
            return None
        if self._pool is None or self._pool_pid != os.getpid():
            threads = min(BATCH_THREADS, usable_cores())
            if threads < 2:
                return None
            self._pool, self._pool_pid = (
                ThreadPoolExecutor(threads, thread_name_prefix="vfcache-batch"),
                os.getpid(),
            )
        return self._pool

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_readers"] = OrderedDict()  # descriptors never travel; each process opens its own
        state["_pool"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._readers_pid = os.getpid()


def _rows_of_one_buffer(clips: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """The (B, ...) tensor the clips are consecutive rows of, when they are (no copy), else None."""
    first = clips[0]
    if not all(c.is_contiguous() for c in clips):
        return None
    storage = first.untyped_storage()
    numel = first.numel()
    for row, clip in enumerate(clips):
        if clip.untyped_storage().data_ptr() != storage.data_ptr() or clip.shape != first.shape:
            return None
        if clip.storage_offset() != first.storage_offset() + row * numel:
            return None
    return torch.empty(0, dtype=first.dtype).set_(
        storage, first.storage_offset(), (len(clips), *first.shape)
    )


def collate_clips(samples: Sequence[dict]) -> dict:
    """Samples -> {clip: uint8 (B, T, H, W, 3), label: int64 (B,), index: int64 (B,), domain,
    generator, clip_id: lists}. Clips already laid out as one batch buffer are not copied."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    clips = [s["clip"] for s in samples]
    batch = _rows_of_one_buffer(clips)
    if batch is None:
        batch = new_clip_batch(len(clips), tuple(clips[0].shape))
        rows = batch.numpy()
        for row, clip in enumerate(clips):
            if tuple(clip.shape) != rows.shape[1:]:
                raise ValueError(
                    f"clip {samples[row]['clip_id']} has shape {tuple(clip.shape)}, batch needs "
                    f"{rows.shape[1:]}"
                )
            # numpy copy: torch's intra-op threads cost more than they gain for one clip
            np.copyto(rows[row], clip.numpy())
    colour = (
        {"colour": torch.tensor([s["colour"] for s in samples], dtype=torch.int64)}
        if "colour" in samples[0]
        else {}
    )
    return {
        "clip": batch,
        **colour,
        "label": torch.tensor([s["label"] for s in samples], dtype=torch.int64),
        "index": torch.tensor([s["index"] for s in samples], dtype=torch.int64),
        "domain": [s["domain"] for s in samples],
        "generator": [s["generator"] for s in samples],
        "clip_id": [s["clip_id"] for s in samples],
    }
