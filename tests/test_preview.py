"""contact_sheet: a readable PNG of the expected size whose tiles are the cached frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from cache_fixtures import VideoPlan, build_cache
from vfcache.cache_tools.preview import (
    CAPTION_PX,
    EMPTY_TILE_RGB,
    GAP_PX,
    LABEL_COLUMN_PX,
    contact_sheet,
    frame_positions,
    sheet_size,
    tile_size,
)

from vfcache.errors import StageError

PLANS = (
    [VideoPlan("d", 0, "youtube", f"r{i}") for i in range(5)]
    + [VideoPlan("d", 1, "sora", f"s{i}") for i in range(3)]
    + [VideoPlan("d", 1, "pika", f"p{i}", clips=2) for i in range(2)]
)  # cells: 5, 3, 4 clips


@pytest.fixture()
def cache(tmp_path: Path):
    return build_cache(tmp_path / "cache", PLANS, clips_per_shard=3)


def test_sheet_size_follows_the_layout(cache, tmp_path: Path):
    out = contact_sheet(
        cache.cache_dir, tmp_path / "out" / "sheet.png", per_cell=4, frames_per_clip=3, tile_px=32
    )
    image = cv2.imread(str(out), cv2.IMREAD_COLOR)
    assert image is not None and image.dtype == np.uint8
    rows = 3  # real/youtube, fake/pika, fake/sora
    assert image.shape == (
        rows * (CAPTION_PX + 32 + GAP_PX),
        LABEL_COLUMN_PX + 4 * (3 * 32 + GAP_PX),
        3,
    )
    assert image.shape[:2] == sheet_size(rows, 4, 3, (32, 32))
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name]


def test_tiles_are_the_cached_frames_and_missing_clips_are_blank(cache, tmp_path: Path):
    frames_per_clip, per_cell = 2, 4
    out = contact_sheet(
        cache.cache_dir,
        tmp_path / "sheet.png",
        per_cell=per_cell,
        frames_per_clip=frames_per_clip,
        tile_px=16,
        seed=7,
    )
    rgb = cv2.imread(str(out), cv2.IMREAD_COLOR)[..., ::-1]
    strips = {}
    for clip in cache.clips:
        pixels = cache.pixels[clip.clip_id]
        strips[clip.clip_id] = np.concatenate(
            [pixels[i] for i in frame_positions(4, frames_per_clip)], axis=1
        )
    rows = [("youtube", 5), ("pika", 4), ("sora", 3)]  # sorted by (label, generator)
    row_h, strip_w = CAPTION_PX + 16 + GAP_PX, frames_per_clip * 16
    for row, (generator, available) in enumerate(rows):
        cell_ids = {c.clip_id for c in cache.clips if c.generator == generator}
        shown = []
        for column in range(per_cell):
            top, left = row * row_h + CAPTION_PX, LABEL_COLUMN_PX + column * (strip_w + GAP_PX)
            tile = rgb[top : top + 16, left : left + strip_w]
            matches = [cid for cid in cell_ids if np.array_equal(tile, strips[cid])]
            if column < available:
                assert len(matches) == 1, (generator, column)
                shown.append(matches[0])
            else:
                assert (tile == np.array(EMPTY_TILE_RGB, np.uint8)).all()
        assert len(set(shown)) == min(available, per_cell)


def test_same_seed_same_png_other_seed_other_clips(cache, tmp_path: Path):
    first = contact_sheet(cache.cache_dir, tmp_path / "a.png", per_cell=2, seed=1).read_bytes()
    assert (
        contact_sheet(cache.cache_dir, tmp_path / "b.png", per_cell=2, seed=1).read_bytes() == first
    )
    others = {
        contact_sheet(cache.cache_dir, tmp_path / f"s{s}.png", per_cell=2, seed=s).read_bytes()
        for s in range(2, 6)
    }
    assert others - {first}


def test_tile_size_keeps_the_aspect_ratio():
    assert tile_size(224, 224, 96) == (96, 96)
    assert tile_size(90, 160, 96) == (54, 96)


def test_bad_arguments_and_empty_caches_are_refused(cache, tmp_path: Path):
    with pytest.raises(ValueError, match="per_cell=0"):
        contact_sheet(cache.cache_dir, tmp_path / "x.png", per_cell=0)
    with pytest.raises(StageError, match="nothing to preview"):
        contact_sheet(tmp_path / "nothing", tmp_path / "x.png")
