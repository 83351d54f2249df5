"""Synthetic videos with known content, for tests, the embedded `sample` dataset and benchmarks.

Frames are painted deterministically from a seed (a panning textured background with
moving shapes and sensor-like noise; "fake" videos carry a named artifact) and every frame
carries its own index (see :mod:`vfcache.pipelines.sources.framecode`). :func:`encode_video`
writes them with PyAV in any of the project's codecs and containers, at a constant,
NTSC-style or variable frame rate, optionally with display-rotation metadata;
:func:`make_video` does both and returns the :class:`VideoTruth` a test checks against.

Rotation convention. ``rotation_deg`` is the clockwise rotation a player applies to the
stored pixels to show them upright (the value of the legacy ``rotate`` tag that phones
write). It is written as the stream's display matrix (``VideoStream.set_display_rotation``;
in mp4 the ``tkhd`` matrix, in Matroska/WebM what FFmpeg 7 maps it to); AVI cannot carry
it. PyAV 18 has no stream-level getter; a reader gets it from any decoded frame:
``frame.rotation`` is the counter-clockwise angle in [-180, 180], so
``rotation_deg == (-frame.rotation) % 360`` and the upright picture is
``np.rot90(frame.to_ndarray(format="rgb24"), k=frame.rotation // 90)``
(:func:`display_rotation_deg`, :func:`to_display`). decord 0.6 applies the mp4 rotation
itself but returns a garbled 4-channel array for 90/270 degrees, and ignores the rotation
of Matroska/WebM files; do not trust it for rotated videos.

Import order. decord bundles an old libvpx and loads it globally: when decord is imported
before PyAV in a process, PyAV's VP9 encoder binds to it and cannot open. Import ``av``
first (this module does, so importing it before decord is enough).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
from vfcache.pipelines.sources.framecode import paint_code, read_code
from vfcache.pipelines.sources.painted_frames import Artifact, Scene, paint_frames

from vfcache.atomic import TEMP_MARK, temp_path_for, write_bytes_atomic

__all__ = [
    "TEMP_MARK",
    "Artifact",
    "Codec",
    "EncodedVideo",
    "Scene",
    "VideoTruth",
    "display_rotation_deg",
    "encode_video",
    "make_video",
    "paint_code",
    "paint_frames",
    "read_code",
    "temp_path_for",
    "to_display",
    "truncate_copy",
    "write_bytes_atomic",
    "write_not_a_video",
]

log = logging.getLogger(__name__)

Codec = Literal["h264", "mpeg4", "vp9", "hevc"]

_ENCODERS = {"h264": "libx264", "mpeg4": "mpeg4", "vp9": "libvpx-vp9", "hevc": "libx265"}
_FORMATS = {".mp4": "mp4", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
_CODECS_BY_FORMAT = {
    "mp4": {"h264", "mpeg4", "vp9", "hevc"},
    "matroska": {"h264", "mpeg4", "vp9", "hevc"},
    "webm": {"vp9"},
    "avi": {"h264", "mpeg4"},
}


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
        return cls(
            **{**obj, "pts_s": tuple(obj["pts_s"]), "frame_codes": tuple(obj["frame_codes"])}
        )


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
        return {
            "crf": str(quality + 9),
            "b": "0",
            "deadline": "realtime",
            "cpu-used": "8",
            "row-mt": "1",
        }
    return {"flags": "+qscale", "global_quality": str(max(2, quality // 6) * 118)}


def _check_target(path: Path, codec: str, rotation_deg: int) -> str:
    container = _FORMATS.get(path.suffix.lower())
    if container is None:
        raise ValueError(
            f"{path}: unknown video suffix {path.suffix!r}; use one of {sorted(_FORMATS)}"
        )
    if codec not in _ENCODERS:
        raise ValueError(f"codec={codec!r}; expected one of {sorted(_ENCODERS)}")
    if codec not in _CODECS_BY_FORMAT[container]:
        raise ValueError(
            f"{path}: codec {codec!r} cannot go into {container}; "
            f"choose one of {sorted(_CODECS_BY_FORMAT[container])}"
        )
    _check_rotation(rotation_deg)
    if rotation_deg and container == "avi":
        raise ValueError(f"{path}: AVI cannot carry rotation metadata; use .mp4, .mkv or .webm")
    return container


def _check_pts(pts_s: Sequence[float] | None) -> None:
    if pts_s is None:
        return
    if any(b <= a for a, b in zip(pts_s, pts_s[1:])):
        raise ValueError("pts_s must be strictly increasing")
    if len(pts_s) and pts_s[0] < 0:
        raise ValueError(f"pts_s must start at >= 0 s, got {pts_s[0]}")


def _encode(stream: av.VideoStream, frame: av.VideoFrame | None, codec: str) -> list[av.Packet]:
    try:
        return stream.encode(frame)
    except av.FFmpegError as err:
        if codec == "vp9" and "decord" in sys.modules:
            # decord loads its own libvpx 1.6 globally; when that happens before PyAV is
            # imported, PyAV's libvpx-vp9 binds to it and cannot open (EINVAL)
            raise RuntimeError(
                "the VP9 encoder could not be opened, probably because decord "
                "was imported before PyAV in this process; import av first"
            ) from err
        raise


def _frame_pts(pts_s: Sequence[float] | None, index: int, time_base: Fraction) -> int:
    if pts_s is None:
        return index
    if index >= len(pts_s):
        raise ValueError(f"more frames than pts_s entries ({len(pts_s)})")
    return _round_half_up(Fraction(pts_s[index]) / time_base)


def _round_half_up(value: Fraction) -> int:
    """Round like FFmpeg's av_rescale_q (halves away from zero), not like round()."""
    return math.floor(value + Fraction(1, 2))


def encode_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    *,
    codec: Codec,
    fps: float | Fraction,
    pts_s: Sequence[float] | None = None,
    rotation_deg: int = 0,
    gop: int | None = None,
    quality: int = 23,
    threads: int = 0,
) -> EncodedVideo:
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
    _check_pts(pts_s)
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
    # bitexact: no random Matroska segment UID, no muxing date or library version strings,
    # so the same frames give the same bytes on every run and machine (with the same FFmpeg)
    options = {"fflags": "+bitexact", **({"movflags": "+faststart"} if container == "mp4" else {})}
    written: list[int] = []
    try:
        with av.open(str(tmp), "w", format=container, options=options) as output:
            stream = output.add_stream(
                _ENCODERS[codec], rate=rate, options=_encoder_options(codec, quality)
            )
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
                output.mux(_encode(stream, frame, codec))
            output.mux(_encode(stream, None, codec))
            stream_time_base = stream.time_base
        if pts_s is not None and len(written) != len(pts_s):
            raise ValueError(f"{path}: got {len(written)} frames for {len(pts_s)} pts_s entries")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    stored_pts = tuple(
        float(_round_half_up(p * time_base / stream_time_base) * stream_time_base) for p in written
    )
    log.debug("wrote %s: %s %d frames", path, codec, len(written))
    return EncodedVideo(
        path=path, codec=codec, container=container, num_frames=len(written), pts_s=stored_pts
    )


def make_video(
    path: str | os.PathLike,
    *,
    width: int,
    height: int,
    num_frames: int,
    fps: float | Fraction,
    codec: Codec,
    artifact: Artifact | None = None,
    seed: int,
    rotation_deg: int = 0,
    pts_s: Sequence[float] | None = None,
    gop: int | None = None,
    scene: Scene = "studio",
    quality: int = 23,
    threads: int = 0,
) -> VideoTruth:
    """Paint and encode a synthetic video; ``width`` x ``height`` is the displayed size."""
    if pts_s is not None and len(pts_s) != num_frames:
        raise ValueError(f"pts_s has {len(pts_s)} entries for num_frames={num_frames}")
    rate = _as_fraction(fps)
    frames = paint_frames(
        width, height, num_frames, seed=seed, artifact=artifact, scene=scene, fps=float(rate)
    )
    encoded = encode_video(
        path,
        frames,
        codec=codec,
        fps=rate,
        pts_s=pts_s,
        rotation_deg=rotation_deg,
        gop=gop,
        quality=quality,
        threads=threads,
    )
    return VideoTruth(
        codec=codec,
        container=encoded.container,
        width=width,
        height=height,
        num_frames=encoded.num_frames,
        fps=float(rate),
        variable_frame_rate=pts_s is not None,
        pts_s=encoded.pts_s,
        rotation_deg=rotation_deg,
        frame_codes=tuple(range(encoded.num_frames)),
        artifact=artifact,
        seed=seed,
    )


def truncate_copy(
    source: str | os.PathLike, target: str | os.PathLike, *, keep_fraction: float = 0.5
) -> int:
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
