"""Keyframe rows as videos: AEGIS ships parquet rows whose `keyframes` column holds a list of
JPEG images (about 8 per video) and whose `meta_data` column holds a JSON string.

A row is addressed like a file, `data/<file>.parquet#<row>` (the row zero-padded so that
relpaths sort in row order), and behaves like a short video for probe and extract:
`probe_keyframes` gives a `VideoInfo` whose frame k is shown at k / KEYFRAMES_FPS seconds
(a nominal rate: the stored frames carry no timestamps), and `read_keyframes` decodes the
requested frames with OpenCV and fits them to the clip size with the decode layer's own
crop + antialiased resize (`vfcache.pipelines.decode._frame_fit.FrameFitter`), so keyframe clips
and video
clips go through the same geometry. A uniform clip spec (e.g. `keyframes_8x224`) spreads its
frames over the stored keyframes and pads by the spec's short policy.

The schema is checked before any row is used (`check_schema`): a file whose columns or
types differ from the expected ones fails with a message naming the file and what differs.
Reading a row reads its row group once; the last row group is cached per process, so
probing or extracting rows in order reads each row group once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from vfcache.pipelines.decode import (
    REASON_DECODE_ERROR,
    REASON_ZERO_FRAMES,
    VideoInfo,
    VideoReadError,
)
from vfcache.pipelines.decode._frame_fit import FrameFitter, crop_box

from vfcache.errors import StageError

ROW_MARK = "#"
ROW_DIGITS = 6
KEYFRAMES_FPS = 1.0  # nominal: the parquet stores no timestamps
META_COLUMN = "meta_data"
FRAMES_COLUMN = "keyframes"
KEYFRAME_CODEC = "mjpeg"
KEYFRAME_CONTAINER = "parquet"


class KeyframeSchemaError(StageError):
    """A keyframe parquet file does not have the columns and types this reader expects."""


def row_address(file_relpath: str, row: int) -> str:
    if row < 0:
        raise ValueError(f"row must be >= 0, got {row}")
    return f"{file_relpath}{ROW_MARK}{row:0{ROW_DIGITS}d}"


def parse_row_address(relpath: str) -> Optional[tuple[str, int]]:
    """(file relpath, row) for `data/x.parquet#000012`; None for an ordinary file path."""
    head, mark, tail = relpath.rpartition(ROW_MARK)
    if not mark or not head.endswith(".parquet") or not tail.isdigit():
        return None
    return head, int(tail)


def _frames_type_kind(frames_type: pa.DataType) -> Optional[str]:
    """'binary' for list<binary>, 'struct' for list<struct<bytes: binary, ...>> (datasets.Image)."""
    if not (pa.types.is_list(frames_type) or pa.types.is_large_list(frames_type)):
        return None
    item = frames_type.value_type
    if pa.types.is_binary(item) or pa.types.is_large_binary(item):
        return "binary"
    if pa.types.is_struct(item):
        index = item.get_field_index("bytes")
        if index >= 0 and (
            pa.types.is_binary(item.field(index).type)
            or pa.types.is_large_binary(item.field(index).type)
        ):
            return "struct"
    return None


def check_schema(schema: pa.Schema, path: str | os.PathLike) -> str:
    """Fail unless `meta_data` is a string and `keyframes` a list of JPEG bytes; returns the frames
    kind ('binary' or 'struct')."""
    names = schema.names
    problems = []
    if META_COLUMN not in names:
        problems.append(f"no {META_COLUMN!r} column")
    elif not (
        pa.types.is_string(schema.field(META_COLUMN).type)
        or pa.types.is_large_string(schema.field(META_COLUMN).type)
    ):
        problems.append(
            f"{META_COLUMN!r} is {schema.field(META_COLUMN).type}, expected a JSON string"
        )
    kind = None
    if FRAMES_COLUMN not in names:
        problems.append(f"no {FRAMES_COLUMN!r} column")
    else:
        kind = _frames_type_kind(schema.field(FRAMES_COLUMN).type)
        if kind is None:
            problems.append(
                f"{FRAMES_COLUMN!r} is {schema.field(FRAMES_COLUMN).type}, expected list<binary> "
                "or list<struct<bytes: binary>> (JPEG images)"
            )
    if problems:
        raise KeyframeSchemaError(
            f"{path}: not an AEGIS keyframe table ({'; '.join(problems)}); columns found: {names}"
        )
    return kind


def read_meta_rows(path: str | os.PathLike) -> list[dict]:
    """The parsed `meta_data` JSON of every row of a checked file, in row order."""
    handle = pq.ParquetFile(path)
    check_schema(handle.schema_arrow, path)
    metas = []
    for row, text in enumerate(handle.read(columns=[META_COLUMN]).column(0).to_pylist()):
        try:
            meta = json.loads(text) if text is not None else None
        except json.JSONDecodeError as err:
            raise KeyframeSchemaError(
                f"{path}#{row}: {META_COLUMN} is not valid JSON ({err})"
            ) from err
        if not isinstance(meta, dict):
            raise KeyframeSchemaError(
                f"{path}#{row}: {META_COLUMN} is {type(meta).__name__}, expected a JSON object"
            )
        metas.append(meta)
    return metas


@functools.lru_cache(maxsize=1)
def _row_group(path: str, mtime_ns: int, index: int) -> tuple[int, tuple]:
    """(first row of the group, each row's frames as a tuple of bytes); keyed by mtime, so a
    changed file is read again."""
    handle = pq.ParquetFile(path)
    kind = check_schema(handle.schema_arrow, path)
    first = sum(handle.metadata.row_group(i).num_rows for i in range(index))
    rows = handle.read_row_group(index, columns=[FRAMES_COLUMN]).column(0).to_pylist()
    frames = []
    for images in rows:
        images = images or []
        frames.append(
            tuple((image["bytes"] if kind == "struct" else image) or b"" for image in images)
        )
    return first, tuple(frames)


def row_jpegs(path: str | os.PathLike, row: int) -> tuple[bytes, ...]:
    """The JPEG bytes of one row, in stored order."""
    path = os.fspath(path)
    try:
        mtime_ns = os.stat(path).st_mtime_ns
        metadata = pq.ParquetFile(path).metadata
    except (OSError, pa.ArrowInvalid) as err:
        raise VideoReadError(
            REASON_DECODE_ERROR, f"cannot open keyframe table: {err}", path=f"{path}#{row}"
        ) from err
    start = 0
    for index in range(metadata.num_row_groups):
        count = metadata.row_group(index).num_rows
        if row < start + count:
            first, frames = _row_group(path, mtime_ns, index)
            return frames[row - first]
        start += count
    raise VideoReadError(
        REASON_DECODE_ERROR,
        f"row {row} is past the last row ({metadata.num_rows} rows)",
        path=f"{path}#{row}",
    )


def row_fingerprint(path: str | os.PathLike, row: int) -> tuple[int, str]:
    """(bytes, sha256) of a row's frames: the frame count, then each frame's length and bytes."""
    jpegs = row_jpegs(path, row)
    digest = hashlib.sha256(b"keyframes:%d\n" % len(jpegs))
    for jpeg in jpegs:
        digest.update(b"%d\n" % len(jpeg))
        digest.update(jpeg)
    return sum(len(jpeg) for jpeg in jpegs), digest.hexdigest()


def decode_jpeg(jpeg: bytes, *, where: str, index: int) -> np.ndarray:
    """One JPEG as an (H, W, 3) uint8 RGB array; raises VideoReadError when it does not decode."""
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR) if jpeg else None
    if image is None:
        raise VideoReadError(
            REASON_DECODE_ERROR,
            f"keyframe {index} is not a decodable image ({len(jpeg)} bytes)",
            path=where,
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def probe_keyframes(path: str | os.PathLike, row: int) -> VideoInfo:
    """Decode every keyframe of the row (they are few); describe it as a video at KEYFRAMES_FPS."""
    where = f"{os.fspath(path)}#{row}"
    jpegs = row_jpegs(path, row)
    if not jpegs:
        raise VideoReadError(REASON_ZERO_FRAMES, "the row has no keyframes", path=where)
    sizes = set()
    for index, jpeg in enumerate(jpegs):
        sizes.add(decode_jpeg(jpeg, where=where, index=index).shape[:2])
    if len(sizes) != 1:
        raise VideoReadError(
            REASON_DECODE_ERROR, f"keyframes differ in size: {sorted(sizes)}", path=where
        )
    height, width = sizes.pop()
    count = len(jpegs)
    return VideoInfo(
        codec=KEYFRAME_CODEC,
        width=width,
        height=height,
        rotation=0,
        fps=KEYFRAMES_FPS,
        num_frames=count,
        duration_s=count / KEYFRAMES_FPS,
        pts_s=tuple(k / KEYFRAMES_FPS for k in range(count)),
        keyframe_indices=tuple(range(count)),
        container=KEYFRAME_CONTAINER,
    )


def read_keyframes(
    path: str | os.PathLike,
    row: int,
    frame_indices: Sequence[int],
    *,
    height: int,
    width: int,
    resize: str = "short_side_crop",
) -> np.ndarray:
    """Keyframes `frame_indices` of the row (any order, repeats allowed) as (N, height, width, 3)
    uint8 RGB."""
    where = f"{os.fspath(path)}#{row}"
    jpegs = row_jpegs(path, row)
    for position, index in enumerate(frame_indices):
        if (
            isinstance(index, bool)
            or not isinstance(index, (int, np.integer))
            or not 0 <= index < len(jpegs)
        ):
            raise ValueError(
                f"frame_indices[{position}] = {index!r}; the row has {len(jpegs)} keyframes"
            )
    clip = np.empty((len(frame_indices), height, width, 3), dtype=np.uint8)
    fitter = None
    first_slot: dict[int, int] = {}
    for position, index in enumerate(frame_indices):
        index = int(index)
        if index in first_slot:  # a repeated keyframe (padding): decode and resize it once
            clip[position] = clip[first_slot[index]]
            continue
        frame = decode_jpeg(jpegs[index], where=where, index=index)
        if fitter is None:
            size = frame.shape[:2]
            fitter = _fitter(size[0], size[1], height, width, resize)
        elif frame.shape[:2] != size:  # probe refuses such rows; the table changed since
            raise VideoReadError(
                REASON_DECODE_ERROR,
                f"keyframe {index} is {frame.shape[:2]}, not {size} like the others",
                path=where,
            )
        fitter.fit_rgb(frame, clip[position], rotation_applied=0, source_pix_fmt=None)
        first_slot[index] = position
    return clip


def _fitter(
    frame_height: int, frame_width: int, height: int, width: int, resize: str
) -> FrameFitter:
    """The decode layer's crop + antialiased resize, for RGB keyframes of this size."""
    box = crop_box(frame_height, frame_width, height=height, width=width, resize=resize)
    return FrameFitter(
        coded_height=frame_height,
        coded_width=frame_width,
        rotation=0,
        box=box,
        height=height,
        width=width,
    )


def keyframe_path(raw_dir: str | os.PathLike, relpath: str) -> tuple[Path, int]:
    """The parquet file and row of a row address below `raw_dir`."""
    parsed = parse_row_address(relpath)
    if parsed is None:
        raise ValueError(f"{relpath!r} is not a keyframe row address (data/<file>.parquet#<row>)")
    return Path(raw_dir) / parsed[0], parsed[1]
