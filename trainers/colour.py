"""YUV 4:2:0 planes -> RGB, one function for the CPU and the device (issue 18).

`yuv420_to_rgb` takes stored yuv420 clips (..., T, H * 3 // 2, W) (see `vfcache.pixels`) and
their colour codes and gives uint8 (..., T, H, W, 3), as the RGB path would have stored them.
It runs in integer arithmetic only (fixed point, 2^16 for the matrix and 2^4 for the chroma
upsampling), so CPU and CUDA give the same bits: a CPU run, `ClipDataset(..., form="rgb")` and
the device batch step (`vfcache.trainers.gpu.to_device`) agree exactly. Chroma is upsampled 2x with
the (3/4, 1/4) bilinear weights of centre-sited samples, which is what swscale's RGB output
comes closest to; the residual is about a level on natural footage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from vfcache.errors import StageError
from vfcache.pixels import MATRICES, RANGES, colour_code, yuv420_size

# (Kr, Kb) luma weights per matrix: ITU-R BT.601, BT.709, BT.2020 (non-constant luminance)
LUMA_WEIGHTS = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}
_MATRIX_SHIFT = 16
_CHROMA_SHIFT = 4  # the 2x upsampling sums weights 9, 3, 3, 1 (x16)


def conversion_table() -> torch.Tensor:
    """int64 (codes, 7): y offset, y gain, R from V, G from U, G from V, B from U, chroma
    offset, in fixed point; row `colour_code(matrix, range)`."""
    rows = []
    for matrix in MATRICES:
        kr, kb = LUMA_WEIGHTS[matrix]
        kg = 1.0 - kr - kb
        for colour_range in RANGES:
            y_offset, y_span, c_span = (
                (16, 219, 224) if colour_range == "limited" else (0, 255, 255)
            )
            c = 255.0 / c_span
            coefficients = (
                255.0 / y_span,
                2 * (1 - kr) * c,
                -2 * kb * (1 - kb) / kg * c,
                -2 * kr * (1 - kr) / kg * c,
                2 * (1 - kb) * c,
            )
            fixed = [round(v * (1 << _MATRIX_SHIFT)) for v in coefficients]
            rows.append([y_offset, *fixed, 128])
    return torch.tensor(rows, dtype=torch.int64)


_TABLE = conversion_table()


def _upsample_2x(plane: torch.Tensor) -> torch.Tensor:
    """int32 (..., h, w) -> (..., 2h, 2w), times 16: each output sample 3/4 of its nearest
    source sample and 1/4 of the next one away, edges repeated."""
    for dim in (-1, -2):
        n = plane.shape[dim]
        before = torch.cat([plane.narrow(dim, 0, 1), plane.narrow(dim, 0, n - 1)], dim)
        after = torch.cat([plane.narrow(dim, 1, n - 1), plane.narrow(dim, n - 1, 1)], dim)
        plane = torch.stack([3 * plane + before, 3 * plane + after], dim).flatten(dim - 1, dim)
    return plane


def yuv420_to_rgb(planes: torch.Tensor, colour: torch.Tensor | int) -> torch.Tensor:
    """uint8 yuv420 clips (B, T, H * 3 // 2, W) or one clip (T, H * 3 // 2, W), with colour
    codes (B,) (or one int) from `vfcache.pixels.colour_code` -> uint8 (B, T, H, W, 3) on
    the same device."""
    if planes.dtype != torch.uint8 or planes.ndim not in (3, 4):
        raise ValueError(
            f"expected uint8 yuv420 clips (B, T, H*3/2, W), got {planes.dtype} "
            f"{tuple(planes.shape)}"
        )
    single = planes.ndim == 3
    batch = planes.unsqueeze(0) if single else planes
    height, width = yuv420_size(tuple(batch.shape))
    b, t = batch.shape[:2]
    flat = batch.reshape(b, t, -1)
    area = height * width
    y = flat[..., :area].reshape(b, t, height, width).to(torch.int32)
    u = flat[..., area : area + area // 4].reshape(b, t, height // 2, width // 2).to(torch.int32)
    v = flat[..., area + area // 4 :].reshape(b, t, height // 2, width // 2).to(torch.int32)
    codes = torch.as_tensor(colour, dtype=torch.int64).reshape(-1).expand(b)
    table = _TABLE.to(planes.device)[codes.to(planes.device)].to(torch.int32).view(b, 7, 1, 1, 1)
    y_offset, y_gain, r_v, g_u, g_v, b_u, c_offset = table.unbind(1)
    chroma_scale = 1 << _CHROMA_SHIFT
    u = _upsample_2x(u - c_offset)
    v = _upsample_2x(v - c_offset)
    luma = (y - y_offset) * y_gain * chroma_scale
    shift = _MATRIX_SHIFT + _CHROMA_SHIFT
    half = 1 << (shift - 1)
    rgb = torch.stack([luma + r_v * v, luma + g_u * u + g_v * v, luma + b_u * u], -1)
    rgb = ((rgb + half) >> shift).clamp_(0, 255).to(torch.uint8)
    return rgb[0] if single else rgb


def clip_colour_codes(clips_parquet: Path, clip_ids: Sequence[str]) -> np.ndarray:
    """int64 colour codes of `clip_ids`, from the `color_matrix` and `color_range` columns of
    a yuv420 cache's clips.parquet (where the extraction recorded them per clip)."""
    names = ("clip_id", "color_matrix", "color_range")
    try:
        # ParquetFile, not pq.read_table: that imports pyarrow.dataset and pandas, 0.17 s of a
        # fresh process's first batch; it also leaves out missing columns, which column() names
        table = pq.ParquetFile(clips_parquet).read(columns=list(names))
        columns = [table.column(name).to_pylist() for name in names]
    except (OSError, KeyError, pa.ArrowInvalid) as err:
        raise StageError(
            f"{clips_parquet}: no colour tags for its yuv420 clips ({err}); extract the cache again"
        ) from err
    codes = {
        clip_id: colour_code(matrix, colour_range)
        for clip_id, matrix, colour_range in zip(*columns)
        if matrix is not None and colour_range is not None
    }
    missing = [clip_id for clip_id in clip_ids if clip_id not in codes]
    if missing:
        raise StageError(
            f"{clips_parquet} has no colour tags for {len(missing)} clip(s) of the "
            f"split (first: {missing[0]}); split the cache again"
        )
    return np.array([codes[clip_id] for clip_id in clip_ids], dtype=np.int64)
