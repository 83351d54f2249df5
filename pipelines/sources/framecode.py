"""A frame-index code painted into synthetic video frames, and its reader.

Every synthetic frame carries its own index as a 4x4 grid of black/white cells in the
middle of the displayed picture, inside a pure green quiet margin. Corners are orientation
markers (top-left white, the other three black); the other 12 cells hold the index in
binary, most significant bit first, row by row, so indices 0..4095 fit.

The grid is a square of ``GRID_FRACTION`` of the short side, centred, so a short-side
resize followed by a centre crop keeps it whole. The reader does not assume a geometry: it
finds the grid by scanning outwards from the frame centre until it meets the green margin
(a colour that black/white cells, even blurred by compression or resizing, never take), so
it works on the original frame, on a centre crop and on a squashed (aspect-changing) resize.
"""

from __future__ import annotations

import numpy as np

GRID_CELLS = 4
CELL_FRACTION = 0.12  # one cell, as a fraction of the displayed short side
MARGIN_FRACTION = 0.06  # quiet margin around the grid, same unit
GRID_FRACTION = GRID_CELLS * CELL_FRACTION + 2 * MARGIN_FRACTION  # 0.60 with the margin
MAX_INDEX = 2 ** (GRID_CELLS * GRID_CELLS - 4) - 1  # 4095
MIN_SHORT_SIDE_PX = 40

_MARGIN_RGB = np.array((0, 255, 0), dtype=np.uint8)
_CORNERS = ((0, 0), (0, GRID_CELLS - 1), (GRID_CELLS - 1, 0), (GRID_CELLS - 1, GRID_CELLS - 1))
_MARKERS = np.array([[1, 0], [0, 0]], dtype=bool)  # expected (TL, TR / BL, BR)
_DATA_CELLS = tuple(
    (r, c) for r in range(GRID_CELLS) for c in range(GRID_CELLS) if (r, c) not in _CORNERS
)
_GREEN_THRESHOLD = 60.0  # G - max(R, B) above this is margin
_CELL_LOW, _CELL_HIGH = 64.0, 192.0  # a cell mean between these is ambiguous


def _check_frame(frame_rgb: np.ndarray) -> None:
    if frame_rgb.dtype != np.uint8 or frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
        raise ValueError(
            f"expected an RGB uint8 frame of shape (H, W, 3), got dtype={frame_rgb.dtype} "
            f"shape={frame_rgb.shape}"
        )


def _cell_bits(index: int) -> np.ndarray:
    bits = np.zeros((GRID_CELLS, GRID_CELLS), dtype=bool)
    bits[0, 0] = True
    for position, (r, c) in enumerate(_DATA_CELLS):
        bits[r, c] = bool((index >> (len(_DATA_CELLS) - 1 - position)) & 1)
    return bits


def paint_code(frame_rgb: np.ndarray, index: int) -> None:
    """Paint ``index`` (0..4095) into the centre of ``frame_rgb`` (H, W, 3 uint8), in place."""
    _check_frame(frame_rgb)
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"frame index {index} does not fit the code grid (0..{MAX_INDEX})")
    height, width = frame_rgb.shape[:2]
    short = min(height, width)
    if short < MIN_SHORT_SIDE_PX:
        raise ValueError(
            f"frame {width}x{height} is too small for the code grid "
            f"(short side must be >= {MIN_SHORT_SIDE_PX} px)"
        )
    cell, margin = CELL_FRACTION * short, MARGIN_FRACTION * short
    cx, cy = width / 2.0, height / 2.0
    half = GRID_CELLS / 2 * cell
    frame_rgb[
        round(cy - half - margin) : round(cy + half + margin),
        round(cx - half - margin) : round(cx + half + margin),
    ] = _MARGIN_RGB
    xs = [round(cx - half + k * cell) for k in range(GRID_CELLS + 1)]
    ys = [round(cy - half + k * cell) for k in range(GRID_CELLS + 1)]
    bits = _cell_bits(index)
    for r in range(GRID_CELLS):
        for c in range(GRID_CELLS):
            frame_rgb[ys[r] : ys[r + 1], xs[c] : xs[c + 1]] = 255 if bits[r, c] else 0


def _first_margin(profile: np.ndarray, start: int, step: int) -> int | None:
    positions = np.arange(start, len(profile) if step > 0 else -1, step)
    hits = positions[profile[positions] > _GREEN_THRESHOLD]
    return int(hits[0]) if len(hits) else None


def _greenness(pixels: np.ndarray) -> np.ndarray:
    pixels = pixels.astype(np.int16)
    return pixels[..., 1] - np.maximum(pixels[..., 0], pixels[..., 2])


def _grid_span(frame_rgb: np.ndarray, axis: int) -> tuple[int, int]:
    """Grid extent [lo, hi) along ``axis`` (1 = x, 0 = y), scanning from the centre."""
    across = frame_rgb.shape[1 - axis]
    band_half = max(1, across // 100)
    band = slice(across // 2 - band_half, across // 2 + band_half)
    strip = frame_rgb[band, :] if axis == 1 else frame_rgb[:, band]
    profile = _greenness(strip).mean(axis=1 - axis)
    centre = len(profile) // 2
    hi = _first_margin(profile, centre, 1)
    lo = _first_margin(profile, centre - 1, -1)
    if hi is None or lo is None or hi - (lo + 1) < GRID_CELLS * 2:
        name = "x" if axis == 1 else "y"
        raise ValueError(
            f"no frame-index code found: the green margin around the grid is "
            f"missing along {name} (span {lo}..{hi} of {len(profile)} px)"
        )
    return lo + 1, hi


def _read_cells(
    frame_rgb: np.ndarray, x_span: tuple[int, int], y_span: tuple[int, int]
) -> np.ndarray:
    cell_w = (x_span[1] - x_span[0]) / GRID_CELLS
    cell_h = (y_span[1] - y_span[0]) / GRID_CELLS
    means = np.empty((GRID_CELLS, GRID_CELLS))
    for r in range(GRID_CELLS):
        y0 = int(round(y_span[0] + (r + 0.25) * cell_h))
        y1 = max(y0 + 1, int(round(y_span[0] + (r + 0.75) * cell_h)))
        for c in range(GRID_CELLS):
            x0 = int(round(x_span[0] + (c + 0.25) * cell_w))
            x1 = max(x0 + 1, int(round(x_span[0] + (c + 0.75) * cell_w)))
            means[r, c] = frame_rgb[y0:y1, x0:x1].mean()  # grey level over R, G and B
    return means


def _markers_ok(bits: np.ndarray) -> bool:
    corners = np.array([[bits[0, 0], bits[0, -1]], [bits[-1, 0], bits[-1, -1]]])
    return bool(np.array_equal(corners, _MARKERS))


def read_code(frame_rgb: np.ndarray) -> int:
    """Read the frame index painted by :func:`paint_code`.

    Works on any resize of the displayed frame that keeps its central square (original
    size, short-side resize + centre crop, squash to a square). Raises ``ValueError`` when
    no grid is found, a cell is ambiguous, or the orientation markers are wrong (the frame
    was not rotated to its display orientation); the message says which ``np.rot90`` ``k``
    would make it readable.
    """
    _check_frame(frame_rgb)
    x_span = _grid_span(frame_rgb, axis=1)
    y_span = _grid_span(frame_rgb, axis=0)
    means = _read_cells(frame_rgb, x_span, y_span)
    unclear = np.argwhere((means > _CELL_LOW) & (means < _CELL_HIGH))
    if len(unclear):
        r, c = unclear[0]
        raise ValueError(
            f"frame-index code cell (row {r}, col {c}) is ambiguous: mean "
            f"{means[r, c]:.0f}, expected < {_CELL_LOW:.0f} or > {_CELL_HIGH:.0f}"
        )
    bits = means >= 128.0
    if not _markers_ok(bits):
        fixes = [k for k in (1, 2, 3) if _markers_ok(np.rot90(bits, k=k))]
        hint = (
            f"; np.rot90(frame, k={fixes[0]}) would be upright"
            if fixes
            else "; no rotation fixes it"
        )
        raise ValueError(
            "frame-index code orientation markers are wrong (expected top-left "
            f"white, other corners black), the frame is not upright{hint}"
        )
    index = 0
    for r, c in _DATA_CELLS:
        index = (index << 1) | int(bits[r, c])
    return index
