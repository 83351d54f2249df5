"""GASBench's parquet shapes turned into video files next to the table, read row group by row
group (`ParquetFile.iter_batches`), never the whole table in memory.

- Video-bytes tables: each row's video column (`data_columns`, else the first column whose name
  contains video, bytes, content or data, GASBench's auto-detection) holds the encoded video:
  binary, a struct with `bytes` (and maybe `path`), or base64 text. Each becomes
  `<table stem>/row_<n><ext>` with its bytes unchanged (ext from the struct's path, else .mp4).
- Frames tables (columns `video_id` and `frame_idx`, GASBench dev c445606): rows of one video,
  sorted by `frame_idx`, are encoded as `<table stem>/<video_id>.mp4` (H.264, CRF 12, at the
  table's `fps` column or GASBench's 30 fps default; odd sizes lose their last row/column).
  A video's rows must be contiguous in the table, which is what lets one video at a time sit
  in memory; a `video_id` met again after another one stops with an error.

`filter_column` / `filter_value` keep only the rows whose value (as text) matches. Outputs are
written temp-then-rename, and `.converted/<table>.json` marks a table done, so a re-run skips it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from vfcache.pipelines.decode.keyframes import decode_jpeg
from vfcache.pipelines.sources.gasbench_yaml import GasbenchEntry
from vfcache.pipelines.sources.synthetic import encode_video

from vfcache.atomic import write_bytes_atomic, write_json_atomic
from vfcache.errors import StageError

log = logging.getLogger(__name__)

MARKER_DIR = ".converted"
BATCH_ROWS = 16
FRAMES_FPS_DEFAULT = 30.0
_VIDEO_COLUMN_HINTS = ("video", "bytes", "content", "data")
_FRAME_COLUMN_HINTS = ("image", "frame", "bytes", "data", "content")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def marker_path(table: Path) -> Path:
    return table.parent / MARKER_DIR / f"{table.name}.json"


def output_dir(table: Path) -> Path:
    return table.with_suffix("")


def _pick_column(names: list[str], wanted: tuple[str, ...], hints: tuple[str, ...], table: Path):
    if wanted:
        missing = [c for c in wanted if c not in names]
        if missing:
            raise StageError(f"{table}: data_columns {missing} not among its columns {names}")
        return list(wanted)
    for hint in hints:
        for name in names:
            if hint in name.lower() and name not in ("video_id", "frame_idx"):
                return [name]
    raise StageError(f"{table}: no media column (none of {names} contains {list(hints)})")


def _payload(value: Any, where: str) -> tuple[bytes, str]:
    """(bytes, file extension) of one cell: binary, {bytes, path} struct, or base64 text."""
    ext = ".mp4"
    if isinstance(value, dict):
        path = value.get("path") or ""
        if "." in str(path):
            ext = "." + str(path).rsplit(".", 1)[1].lower()
        value = value.get("bytes")
    if isinstance(value, str):
        try:
            value = base64.b64decode(value, validate=True)
        except binascii.Error as err:
            raise StageError(f"{where}: text cell is not base64 ({err})") from None
    if not isinstance(value, (bytes, bytearray)) or not value:
        raise StageError(f"{where}: cell holds no media bytes ({type(value).__name__})")
    return bytes(value), ext


def _batches(table: Path, columns: list[str]) -> Iterator[list[dict]]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(table)
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
        yield batch.to_pylist()


def _keep(row: dict, entry: GasbenchEntry) -> bool:
    return entry.filter_column is None or str(row.get(entry.filter_column)) == entry.filter_value


def _columns(table: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(table).names)


def convert_table(table: Path, entry: GasbenchEntry) -> int:
    """Write the videos of one parquet table beside it; returns how many (0 when already done)."""
    if marker_path(table).is_file():
        return 0
    names = _columns(table)
    if entry.filter_column is not None and entry.filter_column not in names:
        raise StageError(f"{table}: filter_column {entry.filter_column!r} not in {names}")
    if "video_id" in names and "frame_idx" in names:
        written = _convert_frames(table, entry, names)
    else:
        written = _convert_videos(table, entry, names)
    write_json_atomic(marker_path(table), {"table": table.name, "videos": written})
    log.info("%s: %d videos written to %s", table, written, output_dir(table))
    return written


def _convert_videos(table: Path, entry: GasbenchEntry, names: list[str]) -> int:
    media = _pick_column(names, entry.data_columns, _VIDEO_COLUMN_HINTS, table)
    extra = (
        [entry.filter_column] if entry.filter_column and entry.filter_column not in media else []
    )
    out, row_index, written = output_dir(table), 0, 0
    for rows in _batches(table, media + extra):
        for row in rows:
            if _keep(row, entry):
                for column in media:
                    payload, ext = _payload(row[column], f"{table} row {row_index} {column}")
                    suffix = "" if len(media) == 1 else f"_{_UNSAFE.sub('_', column)}"
                    write_bytes_atomic(out / f"row_{row_index:06d}{suffix}{ext}", payload)
                    written += 1
            row_index += 1
    return written


def _write_frames_video(out: Path, video_id: str, frames: list[tuple[int, bytes]], fps: float):
    frames.sort(key=lambda item: item[0])
    where = f"{out} video {video_id}"
    images = [decode_jpeg(data, where=where, index=idx) for idx, data in frames]
    height, width = (images[0].shape[0] // 2) * 2, (images[0].shape[1] // 2) * 2
    if any(img.shape[:2] != images[0].shape[:2] for img in images):
        raise StageError(f"{where}: frames of different sizes")
    name = _UNSAFE.sub("_", video_id) or "video"
    out.mkdir(parents=True, exist_ok=True)
    encode_video(
        out / f"{name}.mp4",
        (np.ascontiguousarray(img[:height, :width]) for img in images),
        codec="h264",
        fps=fps,
        quality=12,
    )


def _convert_frames(table: Path, entry: GasbenchEntry, names: list[str]) -> int:
    frame_column = _pick_column(names, entry.data_columns[:1], _FRAME_COLUMN_HINTS, table)[0]
    columns = ["video_id", "frame_idx", frame_column]
    columns += [c for c in ("fps", entry.filter_column) if c and c in names and c not in columns]
    out, written, done = output_dir(table), 0, set()
    current, frames, fps = None, [], FRAMES_FPS_DEFAULT
    for rows in _batches(table, columns):
        for row in rows:
            if not _keep(row, entry):
                continue
            video_id = str(row["video_id"])
            if video_id != current:
                if current is not None:
                    _write_frames_video(out, current, frames, fps)
                    written += 1
                    done.add(current)
                if video_id in done:
                    raise StageError(
                        f"{table}: rows of video_id {video_id!r} are not contiguous; "
                        "vfcache reads a frames table one video at a time"
                    )
                current, frames = video_id, []
                fps = float(row.get("fps") or FRAMES_FPS_DEFAULT)
            data, _ = _payload(row[frame_column], f"{table} video {video_id}")
            frames.append((int(row["frame_idx"]), data))
    if current is not None:
        _write_frames_video(out, current, frames, fps)
        written += 1
    return written
