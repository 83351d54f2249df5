"""How a clip's pixels are stored: `rgb24` (T, H, W, 3) or `yuv420` planes, and the colour
tags that turn YUV into RGB.

A `yuv420` clip is one uint8 array (T, H * 3 // 2, W): per frame the Y plane (H x W), then
the U and V planes (H/2 x W/2 each) flattened after it, the layout FFmpeg calls yuv420p (and
PyAV's `to_ndarray` gives). It is half the bytes of RGB before compression and about half
after; RGB is made from it on the way to the model (`vfcache.trainers.colour`), with the matrix and
range the video was tagged with, recorded per clip. Sizes must be even (4:2:0 halves both).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

PIXELS = ("rgb24", "yuv420")
DEFAULT_PIXELS = "rgb24"
MATRICES = ("bt601", "bt709", "bt2020")
RANGES = ("limited", "full")


def stored_shape(frames: int, height: int, width: int, pixels: str) -> tuple[int, ...]:
    """The uint8 array shape one clip is stored as."""
    if pixels == "rgb24":
        return (frames, height, width, 3)
    if pixels == "yuv420":
        return (frames, height * 3 // 2, width)
    raise ValueError(f"pixels = {pixels!r}; expected one of {list(PIXELS)}")


def odd_size_problem(height: int, width: int) -> Optional[str]:
    """Why a yuv420 clip cannot have this size, or None when it can."""
    odd = [f"{name} {value}" for name, value in (("height", height), ("width", width)) if value % 2]
    return (
        f"yuv420 halves both sizes, so they must be even (odd: {', '.join(odd)})" if odd else None
    )


def yuv420_size(stored: tuple[int, ...]) -> tuple[int, int]:
    """(height, width) of the frames of a stored yuv420 clip or batch (..., H * 3 // 2, W)."""
    rows, width = int(stored[-2]), int(stored[-1])
    if rows % 3 or width % 2:
        raise ValueError(f"{tuple(stored)} is not the shape of yuv420 planes (..., H * 3 / 2, W)")
    return rows * 2 // 3, width


def colour_code(matrix: str, colour_range: str) -> int:
    """One small int per (matrix, range), the form a batch carries to the device."""
    if matrix not in MATRICES or colour_range not in RANGES:
        raise ValueError(
            f"colour ({matrix!r}, {colour_range!r}); expected a matrix among "
            f"{list(MATRICES)} and a range among {list(RANGES)}"
        )
    return MATRICES.index(matrix) * len(RANGES) + RANGES.index(colour_range)


def colour_of_code(code: int) -> tuple[str, str]:
    return MATRICES[code // len(RANGES)], RANGES[code % len(RANGES)]


def split_planes(
    clip: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views (T, H, W), (T, H/2, W/2), (T, H/2, W/2) of a stored yuv420 clip."""
    flat = clip.reshape(clip.shape[0], -1)
    area = height * width
    return (
        flat[:, :area].reshape(-1, height, width),
        flat[:, area : area + area // 4].reshape(-1, height // 2, width // 2),
        flat[:, area + area // 4 :].reshape(-1, height // 2, width // 2),
    )
