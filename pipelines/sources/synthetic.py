"""Synthetic videos with known content, for tests, the embedded `sample` dataset and benchmarks.

Frames are painted deterministically from a seed (a panning textured background with
moving shapes and sensor-like noise; "fake" videos carry a named artifact) and every frame
carries its own index (see :mod:`pipelines.sources.framecode`). :func:`encode_video`
writes them with PyAV in any of the project's codecs and containers, at a constant,
NTSC-style or variable frame rate, optionally with display-rotation metadata;
:func:`make_video` does both and returns the :class:`VideoTruth` a test checks against.

Rotation convention. ``rotation_deg`` is the clockwise rotation a player applies to the
stored pixels to show them upright (the value of the legacy ``rotate`` tag that phones
write). It is written as the stream's display matrix (mp4 ``tkhd`` matrix, Matroska/WebM
projection side data); AVI cannot carry it. A PyAV reader gets it from any decoded frame:
``frame.rotation`` is the counter-clockwise angle in [-180, 180], so
``rotation_deg == (-frame.rotation) % 360`` and the upright picture is
``np.rot90(frame.to_ndarray(format="rgb24"), k=frame.rotation // 90)``
(:func:`display_rotation_deg`, :func:`to_display`). decord 0.6 applies the mp4 rotation
itself, but for 90/270 degrees it returns a garbled 4-channel array; do not trust it there.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import cv2
import numpy as np

from pipelines.sources.framecode import paint_code, read_code

__all__ = [
    "Artifact", "Codec", "EncodedVideo", "VideoTruth", "display_rotation_deg", "encode_video",
    "make_video", "paint_code", "paint_frames", "read_code", "to_display", "truncate_copy",
    "write_bytes_atomic",
    "write_not_a_video",
]

log = logging.getLogger(__name__)

Codec = Literal["h264", "mpeg4", "vp9", "hevc"]
Artifact = Literal["flicker", "smooth", "warp"]
Scene = Literal["studio", "street"]

_ENCODERS = {"h264": "libx264", "mpeg4": "mpeg4", "vp9": "libvpx-vp9", "hevc": "libx265"}
_FORMATS = {".mp4": "mp4", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
_CODECS_BY_FORMAT = {
    "mp4": {"h264", "mpeg4", "vp9", "hevc"}, "matroska": {"h264", "mpeg4", "vp9", "hevc"},
    "webm": {"vp9"}, "avi": {"h264", "mpeg4"},
}
TEMP_MARK = ".tmp-"  # same mark as cache_tools.atomic, so its stale-file sweep finds ours
_REAL_NOISE_SIGMA = 12.0
_FAKE_NOISE_SIGMA = {"flicker": 3.0, "warp": 2.0, "smooth": 0.0}
FLICKER_AMPLITUDE = 0.25  # brightness factor in [1 - a, 1 + a], random per frame
SMOOTH_SIGMA_FRACTION = 0.015  # Gaussian blur sigma, fraction of the short side
WARP_AMPLITUDE_FRACTION = 0.045  # peak displacement, fraction of the short side
WARP_WAVES_PER_S = 2.0  # how fast the warp waves travel


@dataclass(frozen=True)
class VideoTruth:
    """What a synthetic video holds, as a reader should find it (display orientation)."""

    codec: str
    container: str
    width: int
    height: int
    num_frames: int
    fps: float
    variable_frame_rate: bool
    pts_s: tuple[float, ...]
    rotation_deg: int
    frame_codes: tuple[int, ...]  # index painted in each frame, in presentation order
    artifact: str | None
    seed: int

    @property
    def duration_s(self) -> float:
        return self.pts_s[-1] + 1.0 / self.fps if self.pts_s else 0.0

    @classmethod
    def from_json(cls, obj: dict) -> VideoTruth:
        return cls(**{**obj, "pts_s": tuple(obj["pts_s"]), "frame_codes": tuple(obj["frame_codes"])})


@dataclass(frozen=True)
class EncodedVideo:
    path: Path
    codec: str
    container: str
    num_frames: int
    pts_s: tuple[float, ...]  # as stored, after rounding to the stream time base


def display_rotation_deg(frame: av.VideoFrame) -> int:
    """Clockwise rotation (0/90/180/270) to apply to a decoded PyAV frame to show it upright."""
    return int(-frame.rotation) % 360


def to_display(frame_rgb: np.ndarray, rotation_deg: int) -> np.ndarray:
    """Rotate decoded pixels clockwise by ``rotation_deg`` (0/90/180/270) to display them."""
    _check_rotation(rotation_deg)
    return np.ascontiguousarray(np.rot90(frame_rgb, k=-(rotation_deg // 90)))


def _check_rotation(rotation_deg: int) -> None:
    if rotation_deg not in (0, 90, 180, 270):
        raise ValueError(f"rotation_deg={rotation_deg!r}; expected 0, 90, 180 or 270")


def _reflect(position: np.ndarray, low: float, high: float) -> np.ndarray:
    """Fold an unbounded linear motion back into [low, high] (a bouncing object)."""
    span = high - low
    phase = np.mod(position - low, 2 * span)
    return low + np.where(phase > span, 2 * span - phase, phase)


def _texture(rng: np.random.Generator, height: int, width: int, scene: Scene) -> np.ndarray:
    """A random background bigger than the frame: gradient + blobs + sharp fine grain."""
    short = min(height, width)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    corner = rng.uniform(40, 215, (3, 3)).astype(np.float32)
    image = corner[0] + (corner[1] - corner[0]) * xs + (corner[2] - corner[0]) * ys
    octaves = ((6, 70.0, cv2.INTER_CUBIC), (30, 40.0, cv2.INTER_LINEAR))
    if scene == "street":
        octaves = ((10, 60.0, cv2.INTER_CUBIC), (45, 50.0, cv2.INTER_NEAREST))
    for cells_per_short, amplitude, interpolation in octaves:
        step = max(2, short // cells_per_short)
        coarse = rng.uniform(-1, 1, (height // step + 2, width // step + 2, 3)).astype(np.float32)
        big = cv2.resize(coarse, (coarse.shape[1] * step, coarse.shape[0] * step),
                         interpolation=interpolation)
        image += amplitude * big[:height, :width]
    grain_step = max(2, short // 90)  # still one to two pixels after a resize to 112
    grain = rng.uniform(-1, 1, (height // grain_step + 1, width // grain_step + 1))
    grain = np.kron(grain, np.ones((grain_step, grain_step)))[:height, :width, None]
    image += (30.0 if scene == "studio" else 45.0) * grain.astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class _Plan:
    """Everything random about one synthetic video, drawn once from its seed."""

    texture: np.ndarray  # (height + 2 pad, width + 2 pad, 3) uint8
    noise_up: np.ndarray  # same shape, uint8: positive part of the noise
    noise_down: np.ndarray  # same shape, uint8: negative part (1x1 when there is no noise)
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


def _plan(width: int, height: int, num_frames: int, seed: int, artifact: Artifact | None,
          scene: Scene, fps: float) -> _Plan:
    rng = np.random.default_rng(seed)
    short = min(height, width)
    pad = max(8, short // 8)
    texture = _texture(rng, height + 2 * pad, width + 2 * pad, scene)
    sigma = _REAL_NOISE_SIGMA if artifact is None else _FAKE_NOISE_SIGMA[artifact]
    noise = (rng.normal(0.0, sigma, texture.shape).clip(-127, 127).astype(np.int16) if sigma > 0
             else np.zeros((1, 1, 3), np.int16))
    noise_up, noise_down = np.maximum(noise, 0).astype(np.uint8), np.maximum(-noise, 0).astype(np.uint8)
    num_shapes = 3 if scene == "studio" else 6
    speed = short * (0.012 if scene == "studio" else 0.025)
    gain = rng.choice([-1.0, 1.0], num_frames) * rng.uniform(0.5, 1.0, num_frames)
    return _Plan(
        texture=texture, noise_up=noise_up, noise_down=noise_down, pad=pad,
        pan_period_frames=rng.uniform(2.0, 4.0) * fps, pan_phase=rng.uniform(0, 2 * np.pi, 2),
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
    for x, y, size, color, is_round in zip(xs, ys, plan.shape_size, plan.shape_color,
                                           plan.shape_round):
        color_t = tuple(int(v) for v in color)
        if is_round:
            cv2.circle(frame, (int(x), int(y)), int(size), color_t, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(frame, (int(x - size), int(y - 0.6 * size)),
                          (int(x + size), int(y + 0.6 * size)), color_t, -1)


def _heavy_blur(frame: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur computed at a reduced size: same look, a fraction of the cost."""
    factor = max(1, int(sigma_px // 2))
    height, width = frame.shape[:2]
    small = cv2.resize(frame, (max(1, width // factor), max(1, height // factor)),
                       interpolation=cv2.INTER_AREA)
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


def paint_frames(width: int, height: int, num_frames: int, *, seed: int,
                 artifact: Artifact | None = None, scene: Scene = "studio",
                 fps: float = 25.0) -> Iterator[np.ndarray]:
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
        frame = plan.texture[oy:oy + height, ox:ox + width].copy()
        _draw_shapes(frame, plan, index)
        if artifact == "smooth":
            frame = _heavy_blur(frame, SMOOTH_SIGMA_FRACTION * short)
        elif artifact == "warp":
            frame = _warp(frame, plan, index, fps)
        if artifact != "smooth":
            nx, ny = plan.noise_offset[index]
            window = np.s_[ny:ny + height, nx:nx + width]
            frame = cv2.subtract(cv2.add(frame, plan.noise_up[window]), plan.noise_down[window])
        if artifact == "flicker":
            frame = cv2.convertScaleAbs(frame, alpha=float(plan.flicker_gain[index]))
        paint_code(frame, index)
        yield frame


def _as_fraction(fps: float | Fraction) -> Fraction:
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps={fps!r}; expected a positive frame rate")
    return rate


def _time_base(codec: Codec, rate: Fraction, variable: bool) -> Fraction:
    if not variable:
        return 1 / rate
    # MPEG-4 Part 2 cannot code a time base denominator above 65535
    return Fraction(1, 1000) if codec == "mpeg4" else Fraction(1, 90000)


def _encoder_options(codec: Codec, quality: int) -> dict[str, str]:
    if codec == "h264":
        return {"crf": str(quality), "preset": "superfast"}  # keeps B-frames, unlike ultrafast
    if codec == "hevc":
        return {"crf": str(quality + 5), "preset": "ultrafast", "x265-params": "log-level=error"}
    if codec == "vp9":
        return {"crf": str(quality + 9), "b": "0", "deadline": "realtime", "cpu-used": "8",
                "row-mt": "1"}
    return {"flags": "+qscale", "global_quality": str(max(2, quality // 6) * 118)}


def _check_target(path: Path, codec: str, rotation_deg: int) -> str:
    container = _FORMATS.get(path.suffix.lower())
    if container is None:
        raise ValueError(f"{path}: unknown video suffix {path.suffix!r}; use one of {sorted(_FORMATS)}")
    if codec not in _ENCODERS:
        raise ValueError(f"codec={codec!r}; expected one of {sorted(_ENCODERS)}")
    if codec not in _CODECS_BY_FORMAT[container]:
        raise ValueError(f"{path}: codec {codec!r} cannot go into {container}; "
                         f"choose one of {sorted(_CODECS_BY_FORMAT[container])}")
    _check_rotation(rotation_deg)
    if rotation_deg and container == "avi":
        raise ValueError(f"{path}: AVI cannot carry rotation metadata; use .mp4, .mkv or .webm")
    return container


def _frame_pts(pts_s: Sequence[float] | None, index: int, time_base: Fraction) -> int:
    if pts_s is None:
        return index
    if index >= len(pts_s):
        raise ValueError(f"more frames than pts_s entries ({len(pts_s)})")
    return _round_half_up(Fraction(pts_s[index]) / time_base)


def _round_half_up(value: Fraction) -> int:
    """Round like FFmpeg's av_rescale_q (halves away from zero), not like round()."""
    return math.floor(value + Fraction(1, 2))


def encode_video(path: str | os.PathLike, frames: Iterable[np.ndarray], *, codec: Codec,
                 fps: float | Fraction, pts_s: Sequence[float] | None = None,
                 rotation_deg: int = 0, gop: int | None = None, quality: int = 23,
                 threads: int = 0) -> EncodedVideo:
    """Encode upright RGB uint8 frames to ``path`` (container from the suffix), atomically.

    ``fps`` is the nominal rate (a Fraction such as ``Fraction(30000, 1001)`` is kept
    exact); frame i is at i / fps unless ``pts_s`` gives every frame's time in seconds
    (variable frame rate, strictly increasing). ``rotation_deg`` (clockwise, see the module
    docstring) is written as display-matrix metadata and the pixels are stored rotated the
    other way. ``gop`` is the keyframe interval in frames; ``quality`` is CRF-like (lower is
    better: h264 crf, hevc crf + 5, vp9 crf + 9, mpeg4 qscale quality // 6). mp4 files are
    written with the index first (faststart). ``threads=0`` lets the encoder choose.
    """
    path = Path(path)
    container = _check_target(path, codec, rotation_deg)
    rate = _as_fraction(fps)
    if pts_s is not None and any(b <= a for a, b in zip(pts_s, pts_s[1:])):
        raise ValueError("pts_s must be strictly increasing")
    if pts_s is not None and pts_s[0] < 0:
        raise ValueError(f"pts_s must start at >= 0 s, got {pts_s[0]}")
    frame_iter = iter(frames)
    try:
        first = next(frame_iter)
    except StopIteration:
        raise ValueError(f"{path}: no frames to encode") from None
    stored_h, stored_w = np.rot90(first, k=rotation_deg // 90).shape[:2]
    if stored_h % 2 or stored_w % 2:
        raise ValueError(f"{path}: frame size {first.shape[1]}x{first.shape[0]} must be even")
    time_base = _time_base(codec, rate, pts_s is not None)
    tmp = temp_path_for(path)
    options = {"movflags": "+faststart"} if container == "mp4" else {}
    written: list[int] = []
    try:
        with av.open(str(tmp), "w", format=container, options=options) as output:
            stream = output.add_stream(_ENCODERS[codec], rate=rate,
                                       options=_encoder_options(codec, quality))
            stream.width, stream.height, stream.pix_fmt = stored_w, stored_h, "yuv420p"
            stream.codec_context.time_base = time_base
            stream.codec_context.thread_count = threads
            if gop is not None:
                stream.codec_context.gop_size = gop
            if rotation_deg:
                stream.set_display_rotation(-rotation_deg)  # PyAV takes counter-clockwise
            for index, pixels in enumerate(itertools.chain([first], frame_iter)):
                stored = np.ascontiguousarray(np.rot90(pixels, k=rotation_deg // 90))
                frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
                frame.pts, frame.time_base = _frame_pts(pts_s, index, time_base), time_base
                written.append(frame.pts)
                output.mux(stream.encode(frame))
            output.mux(stream.encode(None))
            stream_time_base = stream.time_base
        if pts_s is not None and len(written) != len(pts_s):
            raise ValueError(f"{path}: got {len(written)} frames for {len(pts_s)} pts_s entries")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    stored_pts = tuple(
        float(_round_half_up(p * time_base / stream_time_base) * stream_time_base)
        for p in written)
    log.debug("wrote %s: %s %d frames", path, codec, len(written))
    return EncodedVideo(path=path, codec=codec, container=container, num_frames=len(written),
                        pts_s=stored_pts)


def make_video(path: str | os.PathLike, *, width: int, height: int, num_frames: int,
               fps: float | Fraction, codec: Codec, artifact: Artifact | None = None,
               seed: int, rotation_deg: int = 0, pts_s: Sequence[float] | None = None,
               gop: int | None = None, scene: Scene = "studio", quality: int = 23,
               threads: int = 0) -> VideoTruth:
    """Paint and encode a synthetic video; ``width`` x ``height`` is the displayed size."""
    if pts_s is not None and len(pts_s) != num_frames:
        raise ValueError(f"pts_s has {len(pts_s)} entries for num_frames={num_frames}")
    rate = _as_fraction(fps)
    frames = paint_frames(width, height, num_frames, seed=seed, artifact=artifact,
                          scene=scene, fps=float(rate))
    encoded = encode_video(path, frames, codec=codec, fps=rate, pts_s=pts_s,
                           rotation_deg=rotation_deg, gop=gop, quality=quality, threads=threads)
    return VideoTruth(
        codec=codec, container=encoded.container, width=width, height=height,
        num_frames=encoded.num_frames, fps=float(rate), variable_frame_rate=pts_s is not None,
        pts_s=encoded.pts_s, rotation_deg=rotation_deg,
        frame_codes=tuple(range(encoded.num_frames)), artifact=artifact, seed=seed,
    )


def truncate_copy(source: str | os.PathLike, target: str | os.PathLike, *,
                  keep_fraction: float = 0.5) -> int:
    """Copy the first ``keep_fraction`` of ``source``'s bytes to ``target``; return bytes kept."""
    if not 0.0 < keep_fraction < 1.0:
        raise ValueError(f"keep_fraction={keep_fraction}; expected a value in (0, 1)")
    payload = Path(source).read_bytes()
    kept = payload[: int(len(payload) * keep_fraction)]
    write_bytes_atomic(Path(target), kept)
    return len(kept)


def write_not_a_video(path: str | os.PathLike) -> None:
    """Write a small text file that no demuxer accepts, whatever its suffix says."""
    text = "This is not a video. It is a deliberately broken file of the vfcache sample.\n"
    write_bytes_atomic(Path(path), (text * 20).encode())


def temp_path_for(path: Path) -> Path:
    """A unique sibling of ``path`` marked ``.tmp-`` (the project's mark for stale temp files)."""
    return path.with_name(f"{path.name}{TEMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    tmp = temp_path_for(path)
    try:
        tmp.write_bytes(payload)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
