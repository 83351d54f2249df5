"""Clips that look like a failed decode: the second line of defence behind the readers' checks.

A decoder that lost its references conceals the damage with what it has: FFmpeg's H.264
decoder (through PyAV) gives frames whose chroma planes are zero, shown as a green picture
with R and B near 0; decord gives a flat mid-grey frame (about 128-131); a frame that never
arrived can be one flat colour. `verify --decode` reads every clip and flags:

- `zero_chroma`: frames where nearly every pixel has R and B near 0 and G clearly above
  them (no camera or generator produces a whole frame of pure green);
- `flat_grey`: frames of one mid-grey colour (every channel within `FLAT_STD` levels of its
  mean, the channels within 8 levels of each other, between 100 and 160);
- `flat_clip`: every frame of the clip flat, whatever its colour (a black clip is kept by
  the decoder, but holds nothing a detector can learn from).

Black or white frames inside an otherwise moving clip (fades, flashes) are not flagged.
The thresholds were checked against the sample dataset and both benchmark corpora (no
alarm) and against the concealed clips of the seek fixtures (every one flagged).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

FLAT_STD = 2.0  # uint8 levels: below this in every channel a frame shows no picture
GREEN_SHARE = 0.9  # share of pixels with zero chroma that makes a frame concealment-green
_NEAR_ZERO = 16
_GREEN_MARGIN = 24
_STRIDE = 4  # every 4th row and column: enough pixels to judge, 1/16 of the work


def _ranges(indices: list[int]) -> str:
    """'0-3, 7' for [0, 1, 2, 3, 7]."""
    spans: list[list[int]] = []
    for index in indices:
        if spans and index == spans[-1][1] + 1:
            spans[-1][1] = index
        else:
            spans.append([index, index])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans)


def concealment_problem(clip: np.ndarray) -> Optional[str]:
    """Why the (T, H, W, 3) uint8 RGB `clip` looks like a failed decode, or None."""
    if clip.ndim != 4 or clip.shape[-1] != 3:
        raise ValueError(f"expected a (T, H, W, 3) RGB clip, got shape {clip.shape}")
    sample = clip[:, ::_STRIDE, ::_STRIDE].astype(np.int16)
    red, green, blue = sample[..., 0], sample[..., 1], sample[..., 2]
    zero_chroma = (
        (np.maximum(red, blue) <= _NEAR_ZERO) & (green >= np.maximum(red, blue) + _GREEN_MARGIN)
    ).mean(axis=(1, 2))
    means = sample.mean(axis=(1, 2))  # (T, 3)
    flat = (sample.std(axis=(1, 2)) < FLAT_STD).all(axis=1)
    greyish = (np.ptp(means, axis=1) <= 8) & (means.min(axis=1) >= 100) & (means.max(axis=1) <= 160)
    green_frames = np.flatnonzero(zero_chroma >= GREEN_SHARE).tolist()
    if green_frames:
        return (
            f"zero_chroma: frames {_ranges(green_frames)} of {len(clip)} are green with R and "
            "B near 0, a decoder's concealment of missing references"
        )
    grey_frames = np.flatnonzero(flat & greyish).tolist()
    if grey_frames:
        colour = tuple(int(round(c)) for c in means[grey_frames[0]])
        return (
            f"flat_grey: frames {_ranges(grey_frames)} of {len(clip)} are one grey colour "
            f"(RGB {colour}), a decoder's concealment of missing references"
        )
    if flat.all():
        colour = tuple(int(round(c)) for c in means[0])
        return f"flat_clip: every frame is one flat colour (first: RGB {colour})"
    return None
