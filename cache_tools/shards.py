"""The shard format: a sequence of independent zstd frames, one per clip.

Each frame decompresses to one complete `.npy` file (uint8, shape (T, H, W, 3), RGB, or
(T, H * 3 / 2, W) yuv420 planes for specs with `pixels: yuv420`, see `vfcache.pixels`) and
carries zstd's content checksum and content size, so one clip is one `pread(offset, nbytes)`
and one decompress, `zstd -dc shard | python -c np.load` in a loop reads every clip, and a
flipped byte raises `ShardCorruptError` naming the shard and the clip instead of returning
wrong pixels.

`ShardWriter` writes one shard to a temporary name and only fsyncs and renames it on
`commit()`; rolling over to the next shard is the extractor's decision.
"""

from __future__ import annotations

import io
import mmap
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import zstandard

from vfcache.atomic import fsync_dir, temp_path_for
from vfcache.layout import DEFAULT_ZSTD_LEVEL

ZSTD_LEVELS = range(1, 20)  # zstd's normal levels (20-22 need far more memory)


class ShardCorruptError(RuntimeError):
    """A clip could not be read back intact: bad checksum, truncated frame or bad `.npy` payload."""

    def __init__(
        self, shard: str | os.PathLike, offset: int, reason: str, clip_id: str | None = None
    ):
        self.shard = str(shard)
        self.offset = offset
        self.clip_id = clip_id
        self.reason = reason
        who = f"clip {clip_id} " if clip_id else ""
        super().__init__(f"{who}at offset {offset} of shard {self.shard} is corrupt: {reason}")


@dataclass(frozen=True)
class ShardEntry:
    """Where one clip lives inside a shard."""

    offset: int
    nbytes: int


def encode_clip(clip: np.ndarray, compressor: zstandard.ZstdCompressor) -> bytes:
    """One clip -> one zstd frame holding a complete `.npy` file."""
    rgb = clip.ndim == 4 and clip.shape[-1] == 3
    yuv420 = clip.ndim == 3 and clip.shape[-2] % 3 == 0 and clip.shape[-1] % 2 == 0
    if clip.dtype != np.uint8 or not (rgb or yuv420):
        raise ValueError(
            f"a clip must be uint8 with shape (T, H, W, 3), or yuv420 planes "
            f"(T, H * 3 / 2, W), got {clip.dtype} {clip.shape}"
        )
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(clip))
    return compressor.compress(header.getvalue() + np.ascontiguousarray(clip).tobytes())


def new_compressor(level: int = DEFAULT_ZSTD_LEVEL) -> zstandard.ZstdCompressor:
    if level not in ZSTD_LEVELS:
        raise ValueError(
            f"zstd level must be in {ZSTD_LEVELS.start}..{ZSTD_LEVELS.stop - 1}, got {level!r}"
        )
    return zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True)


def parse_npy(payload: bytes | memoryview) -> np.ndarray:
    """A read-only view of the array inside a complete in-memory `.npy` file."""
    stream = io.BytesIO(payload)
    version = np.lib.format.read_magic(stream)
    if version != (1, 0):
        raise ValueError(f"unsupported .npy version {version}")
    shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    if fortran or dtype != np.uint8:
        raise ValueError(f"expected a C-ordered uint8 array, got dtype {dtype} fortran={fortran}")
    start = stream.tell()
    expected = int(np.prod(shape))
    if len(payload) - start != expected:
        raise ValueError(
            f"payload holds {len(payload) - start} bytes, shape {shape} needs {expected}"
        )
    return np.frombuffer(payload, dtype=np.uint8, offset=start).reshape(shape)


def _checked_content_size(frame: bytes | memoryview) -> int:
    """The frame's content size, after checking it carries a content checksum and size (as ours
    do)."""
    params = zstandard.get_frame_parameters(frame)
    if not params.has_checksum:
        raise ValueError("zstd frame carries no content checksum")
    if params.content_size in (zstandard.CONTENTSIZE_UNKNOWN, zstandard.CONTENTSIZE_ERROR):
        raise ValueError("zstd frame carries no content size")
    return params.content_size


def decode_clip(frame: bytes, decompressor: zstandard.ZstdDecompressor | None = None) -> np.ndarray:
    """One zstd frame -> the clip array; raises `ValueError` or `zstandard.ZstdError` when
    damaged."""
    content_size = _checked_content_size(frame)
    dctx = decompressor or zstandard.ZstdDecompressor()
    payload = dctx.decompress(frame, max_output_size=content_size)
    return parse_npy(payload)


def _read_exact(reader, nbytes: int) -> bytes:
    chunks = []
    while nbytes > 0:
        chunk = reader.read(nbytes)
        if not chunk:
            break
        chunks.append(chunk)
        nbytes -= len(chunk)
    return b"".join(chunks)


def decode_clip_into(
    frame: bytes, out: np.ndarray, decompressor: zstandard.ZstdDecompressor | None = None
) -> np.ndarray:
    """Decompress one zstd frame straight into `out` (C-contiguous uint8 of the clip's shape).

    Same checks as `decode_clip` (checksum present and verified, header matches), but no
    intermediate buffer: a batch assembled from shards is written once, where it will live.
    """
    if out.dtype != np.uint8 or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(
            f"out must be a writable C-contiguous uint8 array, got {out.dtype} {out.flags}"
        )
    _checked_content_size(frame)
    dctx = decompressor or zstandard.ZstdDecompressor()
    reader = dctx.stream_reader(frame, read_size=len(frame), read_across_frames=False)
    prefix = _read_exact(reader, 10)
    if len(prefix) != 10 or prefix[:8] != b"\x93NUMPY\x01\x00":
        raise ValueError("payload is not a version 1.0 .npy file")
    header_len = int.from_bytes(prefix[8:10], "little")
    stream = io.BytesIO(prefix[8:] + _read_exact(reader, header_len))
    shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    if fortran or dtype != np.uint8 or tuple(shape) != out.shape:
        raise ValueError(
            f"clip is {dtype} {tuple(shape)} fortran={fortran}, expected uint8 {out.shape}"
        )
    target = memoryview(out).cast("B")
    filled = 0
    while filled < out.nbytes:
        got = reader.readinto(target[filled:])
        if got == 0:
            raise ValueError(f"payload ends after {filled} of {out.nbytes} clip bytes")
        filled += got
    if reader.read(1):  # reading to the end of the frame is also what verifies the checksum
        raise ValueError("payload holds more bytes than its .npy header declares")
    return out


class ShardWriter:
    """Write clips into one shard; the shard appears under its final name only on `commit()`."""

    def __init__(self, path: str | os.PathLike, level: int = DEFAULT_ZSTD_LEVEL):
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"shard {self.path} is already final; shards are never rewritten")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_path_for(self.path)
        self._handle = open(self._tmp, "wb")
        self._compressor = new_compressor(level)
        self.bytes_written = 0
        self.entries: list[ShardEntry] = []

    def append(self, clip: np.ndarray) -> ShardEntry:
        return self.append_frame(encode_clip(clip, self._compressor))

    def append_frame(self, frame: bytes) -> ShardEntry:
        """Append a clip already compressed by `encode_clip` (e.g. on another thread)."""
        self._handle.write(frame)
        entry = ShardEntry(offset=self.bytes_written, nbytes=len(frame))
        self.bytes_written += len(frame)
        self.entries.append(entry)
        return entry

    def commit(self) -> Path:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self._tmp, self.path)
        fsync_dir(self.path.parent)
        return self.path

    def abort(self) -> None:
        if not self._handle.closed:
            self._handle.close()
        if self._tmp.exists():
            self._tmp.unlink()

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self._handle.closed:
            self.commit()
        else:
            self.abort()


class _PerThread(threading.local):
    """A reader's decompressor, one per thread that reads."""

    def __init__(self) -> None:
        self.dctx = zstandard.ZstdDecompressor()


class ShardReader:
    """Random access to the clips of one shard: one decompress per clip, straight from the
    memory-mapped file (no copy of the compressed bytes; `read` returns them with a `pread`).

    Several threads may read through one reader at once (each has its own decompressor). The
    file's size is checked on every read, so a shard truncated while mapped raises
    `ShardCorruptError` instead of touching pages past its end."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDONLY)
        self._per_thread = _PerThread()
        try:
            self._map: mmap.mmap | None = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped; every read of it is a truncation
            self._map = None

    def read_frame(self, offset: int, nbytes: int, clip_id: str | None = None) -> bytes:
        frame = os.pread(self._fd, nbytes, offset)
        if len(frame) != nbytes:
            raise ShardCorruptError(
                self.path, offset, f"read {len(frame)} of {nbytes} bytes (truncated shard)", clip_id
            )
        return frame

    def read(self, offset: int, nbytes: int, clip_id: str | None = None) -> np.ndarray:
        frame = self.read_frame(offset, nbytes, clip_id)
        try:
            return decode_clip(frame, self._per_thread.dctx)
        except (zstandard.ZstdError, ValueError) as err:
            raise ShardCorruptError(self.path, offset, str(err), clip_id) from err

    def _frame_view(self, offset: int, nbytes: int, clip_id: str | None) -> memoryview | bytes:
        """The compressed frame as a view of the mapped file: no read, no copy, no allocation."""
        available = min(os.fstat(self._fd).st_size, len(self._map)) if self._map is not None else 0
        if offset + nbytes > available:
            got = max(0, available - offset)
            raise ShardCorruptError(
                self.path, offset, f"read {got} of {nbytes} bytes (truncated shard)", clip_id
            )
        return memoryview(self._map)[offset : offset + nbytes]

    def read_into(
        self, offset: int, nbytes: int, out: np.ndarray, clip_id: str | None = None
    ) -> np.ndarray:
        """`read`, decompressed straight into `out` (see `decode_clip_into`)."""
        frame = self._frame_view(offset, nbytes, clip_id)
        try:
            return decode_clip_into(frame, out, self._per_thread.dctx)
        except (zstandard.ZstdError, ValueError) as err:
            raise ShardCorruptError(self.path, offset, str(err), clip_id) from err

    def close(self) -> None:
        if getattr(self, "_map", None) is not None:
            try:
                self._map.close()
            except BufferError:  # a frame view is still alive somewhere: the map goes with it
                pass
            self._map = None
        if getattr(self, "_fd", -1) >= 0:  # -1 or absent: closed, or the open itself failed
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "ShardReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    def __getstate__(self) -> dict:
        # Readers travel to DataLoader workers by path; each process opens its own descriptor.
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])


def iter_shard(path: str | os.PathLike) -> Iterator[tuple[ShardEntry, np.ndarray]]:
    """Walk a shard frame by frame without an index (for verify and recovery)."""
    path = Path(path)
    data = path.read_bytes()
    dctx = zstandard.ZstdDecompressor()
    offset = 0
    while offset < len(data):
        obj = dctx.decompressobj()
        try:
            payload = obj.decompress(data[offset:])
        except zstandard.ZstdError as err:
            raise ShardCorruptError(path, offset, str(err)) from err
        if not obj.eof:
            raise ShardCorruptError(path, offset, "shard ends inside a zstd frame (truncated)")
        nbytes = len(data) - offset - len(obj.unused_data)
        try:
            clip = parse_npy(payload)
        except ValueError as err:
            raise ShardCorruptError(path, offset, str(err)) from err
        yield ShardEntry(offset, nbytes), clip
        offset += nbytes
