"""Contact sheet of a cache folder: a PNG to eyeball what the clips look like per label and
generator.

One row per (label, generator): a caption column, then `per_cell` clips drawn at random
(seeded) from that cell, each shown as `frames_per_clip` frames evenly spaced over the clip,
with the clip's id and domain above it. Uses only numpy and OpenCV; written atomically.

Layout (pixels): tile = clip frame scaled so its longer side is `tile_px`;
width  = LABEL_COLUMN_PX + per_cell * (frames_per_clip * tile_w + GAP_PX);
height = rows * (CAPTION_PX + tile_h + GAP_PX).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from vfcache.cache_tools.shards import ShardReader
from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import LABEL_NAMES, ClipRecord

from vfcache.atomic import write_bytes_atomic
from vfcache.errors import StageError
from vfcache.layout import CacheDir

LABEL_COLUMN_PX = 160
CAPTION_PX = 16
GAP_PX = 6
BACKGROUND_RGB = (24, 24, 24)
EMPTY_TILE_RGB = (64, 64, 64)
TEXT_RGB = (235, 235, 235)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def tile_size(clip_height: int, clip_width: int, tile_px: int) -> tuple[int, int]:
    """(height, width) of one frame on the sheet: the longer side becomes `tile_px`."""
    scale = tile_px / max(clip_height, clip_width)
    return max(1, round(clip_height * scale)), max(1, round(clip_width * scale))


def sheet_size(
    rows: int, per_cell: int, frames_per_clip: int, tile_hw: tuple[int, int]
) -> tuple[int, int]:
    """(height, width) of the whole sheet in pixels."""
    tile_h, tile_w = tile_hw
    return rows * (CAPTION_PX + tile_h + GAP_PX), LABEL_COLUMN_PX + per_cell * (
        frames_per_clip * tile_w + GAP_PX
    )


def frame_positions(num_frames: int, frames_per_clip: int) -> np.ndarray:
    return np.linspace(0, num_frames - 1, frames_per_clip).round().astype(int)


def _put_text(canvas: np.ndarray, text: str, x: int, y: int, scale: float = 0.4) -> None:
    cv2.putText(canvas, text, (x, y), FONT, scale, TEXT_RGB, 1, cv2.LINE_AA)


def _clip_strip(clip: np.ndarray, frames_per_clip: int, tile_hw: tuple[int, int]) -> np.ndarray:
    tile_h, tile_w = tile_hw
    frames = [
        cv2.resize(clip[i], (tile_w, tile_h), interpolation=cv2.INTER_AREA)
        for i in frame_positions(clip.shape[0], frames_per_clip)
    ]
    return np.concatenate(frames, axis=1)


def contact_sheet(
    cache_dir: CacheDir | str | Path,
    out_png: str | Path,
    *,
    per_cell: int = 4,
    frames_per_clip: int = 4,
    seed: int = 0,
    tile_px: int = 96,
) -> Path:
    """Write the contact sheet of `cache_dir` to `out_png` and return its path."""
    if per_cell < 1 or frames_per_clip < 1 or tile_px < 8:
        raise ValueError(
            f"per_cell={per_cell}, frames_per_clip={frames_per_clip} must be >= 1 "
            f"and tile_px={tile_px} >= 8"
        )
    cache = cache_dir if isinstance(cache_dir, CacheDir) else CacheDir(Path(cache_dir))
    if not cache.clips_parquet.exists():
        raise StageError(f"{cache.clips_parquet} does not exist; nothing to preview")
    clips = read_records(cache.clips_parquet, ClipRecord)
    if not clips:
        raise StageError(f"{cache.clips_parquet} lists no clips; nothing to preview")
    cells: dict[tuple[int, str], list[ClipRecord]] = defaultdict(list)
    for clip in sorted(clips, key=lambda c: c.clip_id):
        cells[(clip.label, clip.generator)].append(clip)
    rng = np.random.default_rng(seed)
    chosen = {}
    for key in sorted(cells):
        picks = np.sort(
            rng.choice(len(cells[key]), size=min(per_cell, len(cells[key])), replace=False)
        )
        chosen[key] = [cells[key][i] for i in picks]
    readers: dict[str, ShardReader] = {}
    try:
        arrays = {}
        for key, picked in chosen.items():
            for clip in picked:
                if clip.shard not in readers:
                    readers[clip.shard] = ShardReader(cache.resolve_shard(clip.shard))
                reader = readers[clip.shard]
                arrays[clip.clip_id] = reader.read(clip.offset, clip.nbytes, clip.clip_id)
    finally:
        for reader in readers.values():
            reader.close()
    first = next(iter(arrays.values()))
    tile_hw = tile_size(first.shape[1], first.shape[2], tile_px)
    height, width = sheet_size(len(chosen), per_cell, frames_per_clip, tile_hw)
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = BACKGROUND_RGB
    row_h = CAPTION_PX + tile_hw[0] + GAP_PX
    strip_w = frames_per_clip * tile_hw[1]
    for row, ((label, generator), picked) in enumerate(chosen.items()):
        top = row * row_h
        _put_text(canvas, LABEL_NAMES.get(label, str(label)), 6, top + CAPTION_PX + 12, 0.5)
        _put_text(canvas, generator[:22], 6, top + CAPTION_PX + 30)
        _put_text(canvas, f"{len(cells[(label, generator)])} clips", 6, top + CAPTION_PX + 46)
        for column in range(per_cell):
            left = LABEL_COLUMN_PX + column * (strip_w + GAP_PX)
            box = canvas[top + CAPTION_PX : top + CAPTION_PX + tile_hw[0], left : left + strip_w]
            if column < len(picked):
                clip = picked[column]
                box[:] = _clip_strip(arrays[clip.clip_id], frames_per_clip, tile_hw)
                caption = f"{clip.clip_id[:10]} {clip.domain}"[: max(4, strip_w // 7)]
                _put_text(canvas, caption, left, top + CAPTION_PX - 5)
            else:
                box[:] = EMPTY_TILE_RGB
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(canvas[..., ::-1]))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode the contact sheet for {cache.path}")
    out_png = Path(out_png)
    write_bytes_atomic(out_png, encoded.tobytes())
    return out_png
