"""Frames with natural-image statistics for the benchmark corpus: a real photograph, panned and
zoomed like a handheld camera, with sensor-like noise.

The photograph is the one matplotlib ships (`mpl-data/sample_data/grace_hopper.jpg`, 512 x 600,
a public-domain portrait), so no download and no new dependency is needed. Synthetic test
patterns compress several times better than camera footage under zstd; these frames, encoded
H.264 at web bitrates, decode to clips that compress about as real footage does, so the
extraction and load benchmarks measure the cost of compression honestly.
"""

from __future__ import annotations

from typing import Iterator

import cv2
import numpy as np

PHOTO = "grace_hopper.jpg"
NOISE_SIGMA = 2.5  # grey levels of per-pixel Gaussian noise, like a camera sensor at normal light


def photo_rgb() -> np.ndarray:
    """The photograph as RGB uint8."""
    from matplotlib import cbook

    path = cbook.get_sample_data(PHOTO, asfileobj=False)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"matplotlib's sample photograph {path} cannot be read")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def natural_frames(width: int, height: int, num_frames: int, *, seed: int) -> Iterator[np.ndarray]:
    """`num_frames` RGB frames of `width` x `height`: a window over the photograph that drifts,
    zooms slowly in and out, and shakes a little (seeded), plus Gaussian sensor noise."""
    rng = np.random.default_rng(seed)
    photo = photo_rgb().astype(np.float32)
    ph, pw = photo.shape[:2]
    aspect = width / height
    # the largest window of the output's aspect ratio that fits the photo, then zoomed in 1.0-1.6x
    base_h = min(ph, pw / aspect)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    speed = rng.uniform(0.5, 1.5, size=3) * 2 * np.pi / max(num_frames, 1)
    for index in range(num_frames):
        zoom = 1.3 + 0.3 * np.sin(phase[0] + speed[0] * index)
        win_h = base_h / zoom
        win_w = win_h * aspect
        cx = (
            pw / 2
            + (pw - win_w) / 2 * 0.9 * np.sin(phase[1] + speed[1] * index)
            + rng.normal(0, 0.6)
        )
        cy = (
            ph / 2
            + (ph - win_h) / 2 * 0.9 * np.sin(phase[2] + speed[2] * index)
            + rng.normal(0, 0.6)
        )
        scale = width / win_w
        matrix = np.array(
            [[scale, 0, width / 2 - scale * cx], [0, scale, height / 2 - scale * cy]], np.float32
        )
        frame = cv2.warpAffine(
            photo, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
        )
        frame += rng.normal(0, NOISE_SIGMA, size=frame.shape).astype(np.float32)
        yield np.clip(frame, 0, 255).astype(np.uint8)
