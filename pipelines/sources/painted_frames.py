"""Painting synthetic video frames: the pixels behind :mod:`vfcache.pipelines.sources.synthetic`.

A video is drawn from one seed: a textured background larger than the frame that pans
slowly, a few moving shapes, sensor-like noise with grains coarse enough to survive a
resize to 112 px, and for "fake" videos one named artifact (``flicker``, ``smooth``,
``warp``). The frame-index code is painted last so it stays readable. Everything is
vectorised numpy/OpenCV; a 720p frame costs a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from vfcache.pipelines.sources.framecode import paint_code

Artifact = Literal["flicker", "smooth", "warp"]
Scene = Literal["studio", "street"]

_REAL_NOISE_SIGMA = 28.0
NOISE_GRAIN_PER_SHORT = 112  # noise grains across the short side: one per pixel at 112
_FAKE_NOISE_SIGMA = {"flicker": 2.0, "warp": 2.0, "smooth": 0.0}
FLICKER_AMPLITUDE = 0.25  # brightness factor in [1 - a, 1 + a], random per frame
SMOOTH_SIGMA_FRACTION = 0.015  # Gaussian blur sigma, fraction of the short side
WARP_AMPLITUDE_FRACTION = 0.045  # peak displacement, fraction of the short side
WARP_WAVES_PER_S = 2.0  # how fast the warp waves travel


def _reflect(position: np.ndarray, low: float, high: float) -> np.ndarray:
    """Fold an unbounded linear motion back into [low, high] (a bouncing object)."""
    span = high - low
    phase = np.mod(position - low, 2 * span)
    return low + np.where(phase > span, 2 * span - phase, phase)


def _texture(rng: np.random.Generator, height: int, width: int, scene: Scene) -> np.ndarray:
    """A random background bigger than the frame: gradient, blobs and a faint fine grain.

    Its fine detail stays weak on purpose: at clip resolution the strongest fine texture of
    a real video should be its sensor noise, which the fakes lack.
    """
    short = min(height, width)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    # a mild tint only: a strong per-video colour would let a detector memorise videos
    corner = rng.uniform(100, 156, (3, 3)).astype(np.float32)
    image = corner[0] + (corner[1] - corner[0]) * xs + (corner[2] - corner[0]) * ys
    octaves = ((6, 80.0), (30, 40.0)) if scene == "studio" else ((10, 80.0), (40, 50.0))
    for octave, (cells_per_short, amplitude) in enumerate(octaves):
        interpolation = cv2.INTER_CUBIC if octave == 0 else cv2.INTER_LINEAR
        step = max(2, short // cells_per_short)
        coarse = rng.uniform(-1, 1, (height // step + 2, width // step + 2, 3)).astype(np.float32)
        big = cv2.resize(
            coarse, (coarse.shape[1] * step, coarse.shape[0] * step), interpolation=interpolation
        )
        image += amplitude * big[:height, :width]
    grain_step = max(2, short // 90)  # one to two pixels after a resize to 112
    grain = rng.uniform(-1, 1, (height // grain_step + 1, width // grain_step + 1))
    grain = np.kron(grain, np.ones((grain_step, grain_step)))[:height, :width, None]
    image += 4.0 * grain.astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class _Plan:
    """Everything random about one synthetic video, drawn once from its seed."""

    texture: np.ndarray  # (height + 2 pad, width + 2 pad, 3) uint8
    noise_up: np.ndarray | None  # same shape, uint8: positive part of the noise (None: none)
    noise_down: np.ndarray | None  # same shape, uint8: negative part
    pad: int
    pan_period_frames: float
    pan_phase: np.ndarray  # (2,)
    shape_start: np.ndarray  # (n, 2) x, y in px
    shape_speed: np.ndarray  # (n, 2) px per frame
    shape_size: np.ndarray  # (n,) px
    shape_color: np.ndarray  # (n, 3)
    shape_round: np.ndarray  # (n,) bool
    noise_offset: np.ndarray  # (num_frames, 2)
    flicker_gain: np.ndarray  # (num_frames,)
    warp_wavelength_px: np.ndarray  # (2,)


def _noise_tile(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: float, grain_px: float
) -> np.ndarray:
    """Sensor-like noise, int16, with grains of about ``grain_px`` so a resize keeps it."""
    coarse_shape = (int(shape[0] / grain_px) + 1, int(shape[1] / grain_px) + 1, shape[2])
    coarse = rng.normal(0.0, sigma, coarse_shape).astype(np.float32)
    noise = cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return noise.clip(-127, 127).astype(np.int16)


def _plan(
    width: int,
    height: int,
    num_frames: int,
    seed: int,
    artifact: Artifact | None,
    scene: Scene,
    fps: float,
) -> _Plan:
    rng = np.random.default_rng(seed)
    short = min(height, width)
    pad = max(8, short // 8)
    texture = _texture(rng, height + 2 * pad, width + 2 * pad, scene)
    sigma = _REAL_NOISE_SIGMA if artifact is None else _FAKE_NOISE_SIGMA[artifact]
    noise_up = noise_down = None
    if sigma > 0:
        grain_px = max(1.0, short / NOISE_GRAIN_PER_SHORT)
        noise = _noise_tile(rng, texture.shape, sigma, grain_px)
        # two uint8 parts, so each frame needs only saturating adds (cv2.add / cv2.subtract)
        noise_up = np.maximum(noise, 0).astype(np.uint8)
        noise_down = np.maximum(-noise, 0).astype(np.uint8)
    num_shapes = 3 if scene == "studio" else 6
    speed = short * (0.012 if scene == "studio" else 0.025)
    gain = rng.choice([-1.0, 1.0], num_frames) * rng.uniform(0.5, 1.0, num_frames)
    return _Plan(
        texture=texture,
        noise_up=noise_up,
        noise_down=noise_down,
        pad=pad,
        pan_period_frames=rng.uniform(2.0, 4.0) * fps,
        pan_phase=rng.uniform(0, 2 * np.pi, 2),
        shape_start=rng.uniform(0, 1, (num_shapes, 2)) * (width, height),
        shape_speed=rng.uniform(-1, 1, (num_shapes, 2)) * speed,
        shape_size=rng.uniform(0.06, 0.16, num_shapes) * short,
        shape_color=rng.integers(0, 256, (num_shapes, 3)),
        shape_round=rng.random(num_shapes) < 0.5,
        noise_offset=rng.integers(0, 2 * pad, (num_frames, 2)),
        flicker_gain=1.0 + FLICKER_AMPLITUDE * gain,
        warp_wavelength_px=rng.uniform(0.2, 0.3, 2) * short,
    )


def _draw_shapes(frame: np.ndarray, plan: _Plan, index: int) -> None:
    height, width = frame.shape[:2]
    moved = plan.shape_start + plan.shape_speed * index
    xs, ys = _reflect(moved[:, 0], 0, width), _reflect(moved[:, 1], 0, height)
    for x, y, size, color, is_round in zip(
        xs, ys, plan.shape_size, plan.shape_color, plan.shape_round
    ):
        color_t = tuple(int(v) for v in color)
        if is_round:
            cv2.circle(frame, (int(x), int(y)), int(size), color_t, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(
                frame,
                (int(x - size), int(y - 0.6 * size)),
                (int(x + size), int(y + 0.6 * size)),
                color_t,
                -1,
            )


def _heavy_blur(frame: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur computed at a reduced size: same look, a fraction of the cost."""
    factor = max(1, int(sigma_px // 2))
    height, width = frame.shape[:2]
    small = cv2.resize(
        frame, (max(1, width // factor), max(1, height // factor)), interpolation=cv2.INTER_AREA
    )
    small = cv2.GaussianBlur(small, (0, 0), sigma_px / factor)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _warp(frame: np.ndarray, plan: _Plan, index: int, fps: float) -> np.ndarray:
    height, width = frame.shape[:2]
    phase = 2 * np.pi * WARP_WAVES_PER_S * index / fps
    amplitude = WARP_AMPLITUDE_FRACTION * min(height, width)
    ys, xs = np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32)
    dx = amplitude * np.sin(2 * np.pi * ys / plan.warp_wavelength_px[0] + phase)
    dy = amplitude * np.sin(2 * np.pi * xs / plan.warp_wavelength_px[1] - 1.3 * phase)
    map_x = (xs[None, :] + dx[:, None]).astype(np.float32)
    map_y = (ys[:, None] + dy[None, :]).astype(np.float32)
    return cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def paint_frames(
    width: int,
    height: int,
    num_frames: int,
    *,
    seed: int,
    artifact: Artifact | None = None,
    scene: Scene = "studio",
    fps: float = 25.0,
) -> Iterator[np.ndarray]:
    """Yield ``num_frames`` upright RGB uint8 frames (height, width, 3), frame i coded with i.

    Real content (``artifact=None``) is sharp with sensor-like noise. ``flicker`` changes the
    global brightness by up to +-25% at random every frame, ``smooth`` blurs heavily and has
    no noise, ``warp`` bends the picture with travelling sine waves; fakes have less noise.
    """
    if artifact not in (None, "flicker", "smooth", "warp"):
        raise ValueError(f"artifact={artifact!r}; expected None, 'flicker', 'smooth' or 'warp'")
    if scene not in ("studio", "street"):
        raise ValueError(f"scene={scene!r}; expected 'studio' or 'street'")
    plan = _plan(width, height, num_frames, seed, artifact, scene, fps)
    short, pad = min(height, width), plan.pad
    for index in range(num_frames):
        angle = 2 * np.pi * index / plan.pan_period_frames + plan.pan_phase
        ox, oy = (pad + np.round(pad * np.sin(angle))).astype(int)
        frame = plan.texture[oy : oy + height, ox : ox + width].copy()
        _draw_shapes(frame, plan, index)
        if artifact == "smooth":
            frame = _heavy_blur(frame, SMOOTH_SIGMA_FRACTION * short)
        elif artifact == "warp":
            frame = _warp(frame, plan, index, fps)
        if plan.noise_up is not None:
            nx, ny = plan.noise_offset[index]
            window = np.s_[ny : ny + height, nx : nx + width]
            frame = cv2.subtract(cv2.add(frame, plan.noise_up[window]), plan.noise_down[window])
        if artifact == "flicker":
            frame = cv2.convertScaleAbs(frame, alpha=float(plan.flicker_gain[index]))
        paint_code(frame, index)
        yield frame
