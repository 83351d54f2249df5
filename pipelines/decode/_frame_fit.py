"""Fit decoded frames to the clip size: crop, antialiased resize and RGB conversion in one
swscale pass, then rotation to display orientation.

Why this way (measured on 720p H.264, 24 frames, one core): converting the whole frame to
RGB and resizing it afterwards costs 1.3-1.8 ms a frame (to_ndarray 0.7 ms + torch
antialiased resize 0.6-1.1 ms; cv2 INTER_AREA alone 2.3-3 ms), about as much as decoding a
light 720p frame; an FFmpeg filter graph `crop -> scale(flags=area) -> rgb24` on the YUV
frame costs 0.7 ms, no more than the bare RGB conversion, because the crop is free (pointer
arithmetic) and swscale only reads the kept pixels. The graph is built once per video.

The crop box is chosen in display coordinates (`crop_box`), mapped to the coded frame
(`coded_box`), and the small output is rotated with numpy. decord hands over RGB frames; to
come as close as possible to the PyAV path, `fit_rgb` first converts them back to the
source's pixel format (restoring its chroma subsampling) and then runs the same graph; the
residual difference comes from RGB clipping in decord's conversion (see test_decode).

With `pixels="yuv420"` the same graph ends in yuv420p instead of rgb24 (issue 18): the frame
is cropped and resized in YUV by the same scaler, and the scaler is told to keep the
source's matrix and range (`colour_tags`), which it would otherwise convert to its BT.601
default; `FrameFitter.colour` records them for the clip rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import av
import numpy as np

from vfcache.config import RESIZE_MODES

ROTATIONS = (0, 90, 180, 270)
SCALE_FLAGS = "area"  # swscale area averaging: antialiased when downscaling
# AVColorSpace values -> the matrices a yuv420 clip can be tagged with; anything else
# (unspecified, FCC, SMPTE 240M, YCgCo) is converted to BT.601, swscale's default for RGB
_MATRIX_OF_COLORSPACE = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020", 10: "bt2020"}
_RANGE_FULL = 2  # AVCOL_RANGE_JPEG
_RANGE_LIMITED = 1  # AVCOL_RANGE_MPEG


@dataclass(frozen=True)
class CropBox:
    """A region of a frame, in pixels."""

    top: int
    left: int
    height: int
    width: int


def _validate_size(height: int, width: int) -> None:
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} = {value!r}; expected a positive int (pixels)")


def validate_resize(resize: str) -> None:
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize = {resize!r}; expected one of {list(RESIZE_MODES)}")


def validate_rotation(rotation: int) -> None:
    if rotation not in ROTATIONS:
        raise ValueError(
            f"rotation = {rotation!r}; expected one of {list(ROTATIONS)} (degrees clockwise)"
        )


def crop_box(
    display_height: int, display_width: int, *, height: int, width: int, resize: str
) -> CropBox:
    """The part of a `display_height` x `display_width` frame that is resized to the clip size.

    `squash` keeps the whole frame (the aspect ratio changes). `short_side_crop` keeps the
    centred region with the clip's aspect ratio: the same as scaling the short side to the
    clip's and centre-cropping, but cropping first so only kept pixels are resized.
    """
    _validate_size(display_height, display_width)
    _validate_size(height, width)
    validate_resize(resize)
    if resize == "squash":
        return CropBox(0, 0, display_height, display_width)
    scale = max(height / display_height, width / display_width)
    crop_h = min(display_height, max(1, round(height / scale)))
    crop_w = min(display_width, max(1, round(width / scale)))
    return CropBox((display_height - crop_h) // 2, (display_width - crop_w) // 2, crop_h, crop_w)


def coded_box(box: CropBox, coded_height: int, coded_width: int, rotation: int) -> CropBox:
    """The region of the coded frame that becomes `box` of the frame rotated clockwise by
    `rotation` degrees."""
    validate_rotation(rotation)
    top, left, h, w = box.top, box.left, box.height, box.width
    if rotation == 90:
        return CropBox(coded_height - left - w, top, w, h)
    if rotation == 180:
        return CropBox(coded_height - top - h, coded_width - left - w, h, w)
    if rotation == 270:
        return CropBox(left, coded_width - top - h, w, h)
    return box


def displayed(frame_rgb: np.ndarray, rotation: int) -> np.ndarray:
    """A view of `frame_rgb` rotated clockwise by `rotation` degrees (no copy)."""
    validate_rotation(rotation)
    return np.rot90(frame_rgb, k=-(rotation // 90)) if rotation else frame_rgb


def colour_tags(frame: Optional[av.VideoFrame]) -> tuple[str, str]:
    """(matrix, range) a yuv420 clip of this decoded frame is stored with: the frame's own tags
    where they are BT.601/709/2020, else BT.601; limited range unless tagged (or yuvj) full."""
    if frame is None:  # RGB frames (decord, JPEG keyframes): converted with swscale's default
        return "bt601", "limited"
    matrix = _MATRIX_OF_COLORSPACE.get(int(frame.colorspace), "bt601")
    full = int(frame.color_range) == _RANGE_FULL or (
        int(frame.color_range) != _RANGE_LIMITED and frame.format.name.startswith("yuvj")
    )
    return matrix, "full" if full else "limited"


def _write_planes(small: np.ndarray, rotation: int, out: np.ndarray) -> None:
    """Write a yuv420p frame (h * 3 // 2, w) into `out` (H * 3 // 2, W), each plane rotated."""
    h, w = small.shape[0] * 2 // 3, small.shape[1]
    flat = small.reshape(-1)
    planes = (
        flat[: h * w].reshape(h, w),
        flat[h * w : h * w * 5 // 4].reshape(h // 2, w // 2),
        flat[h * w * 5 // 4 :].reshape(h // 2, w // 2),
    )
    target = out.reshape(-1)
    start = 0
    for plane in planes:
        turned = displayed(plane, rotation)
        target[start : start + turned.size] = turned.reshape(-1)
        start += turned.size


def _graph(width: int, height: int, pix_fmt: str, chain: list[tuple[str, str]]) -> av.filter.Graph:
    graph = av.filter.Graph()
    node = graph.add_buffer(width=width, height=height, format=pix_fmt, time_base=Fraction(1, 1))
    for name, args in chain:
        following = graph.add(name, args)
        node.link_to(following)
        node = following
    sink = graph.add("buffersink")
    node.link_to(sink)
    graph.configure()
    return graph


class FrameFitter:
    """Turns decoded frames of one video into clip frames: height x width x 3 RGB, or with
    `pixels="yuv420"` yuv420p planes (height * 3 // 2, width) (see `vfcache.pixels`)."""

    def __init__(
        self,
        *,
        coded_height: int,
        coded_width: int,
        rotation: int,
        box: CropBox,
        height: int,
        width: int,
        pixels: str = "rgb24",
    ):
        _validate_size(height, width)
        if pixels not in ("rgb24", "yuv420"):
            raise ValueError(f"pixels = {pixels!r}; expected rgb24 or yuv420")
        self.rotation, self.height, self.width, self.pixels = rotation, height, width, pixels
        self.colour: Optional[tuple[str, str]] = None  # (matrix, range) of yuv420 output
        self.coded = coded_box(box, coded_height, coded_width, rotation)
        if (
            self.coded.top < 0
            or self.coded.left < 0
            or self.coded.top + self.coded.height > coded_height
            or self.coded.left + self.coded.width > coded_width
        ):
            raise ValueError(
                f"crop box {box} does not fit a {coded_width}x{coded_height} frame "
                f"rotated by {rotation}"
            )
        # output size before rotation
        self._out_h, self._out_w = (width, height) if rotation in (90, 270) else (height, width)
        self._graphs: dict[tuple, av.filter.Graph] = {}

    def _chain(self) -> list[tuple[str, str]]:
        c = self.coded
        scale = f"w={self._out_w}:h={self._out_h}:flags={SCALE_FLAGS}"
        if self.pixels == "yuv420":
            matrix, colour_range = self.colour  # type: ignore[misc]
            scale += (
                f":out_color_matrix={matrix}:out_range={'pc' if colour_range == 'full' else 'tv'}"
            )
        return [
            ("crop", f"w={c.width}:h={c.height}:x={c.left}:y={c.top}"),
            ("scale", scale),
            ("format", "pix_fmts=" + ("yuv420p" if self.pixels == "yuv420" else "rgb24")),
        ]

    def _run(
        self,
        key: tuple,
        frame: av.VideoFrame,
        prefix: list[tuple[str, str]],
        out: np.ndarray,
        decoded: Optional[av.VideoFrame],
    ) -> None:
        graph = self._graphs.get(key)
        if graph is None:  # built on first use, again if the stream changes size or format
            if self.colour is None:  # the video's first frame sets the tags of all its clips
                self.colour = colour_tags(decoded)
            graph = self._graphs[key] = _graph(
                frame.width, frame.height, frame.format.name, prefix + self._chain()
            )
        graph.push(frame)
        small = graph.pull().to_ndarray()
        if self.pixels == "yuv420":
            _write_planes(small, self.rotation, out)
        else:
            out[...] = displayed(small, self.rotation)

    def fit(self, frame: av.VideoFrame, out: np.ndarray) -> None:
        """Write a decoded (coded-orientation) PyAV frame into `out`."""
        self._run(("frame", frame.width, frame.height, frame.format.name), frame, [], out, frame)

    def fit_rgb(
        self,
        frame_rgb: np.ndarray,
        out: np.ndarray,
        *,
        rotation_applied: int,
        source_pix_fmt: Optional[str],
    ) -> None:
        """Write an RGB frame (already rotated clockwise by `rotation_applied`) into `out`,
        through the source's pixel format so chroma is resized as in `fit`."""
        coded_rgb = np.ascontiguousarray(displayed(frame_rgb, (-rotation_applied) % 360))
        frame = av.VideoFrame.from_ndarray(coded_rgb, format="rgb24")
        prefix = (
            [("scale", f"flags={SCALE_FLAGS}"), ("format", f"pix_fmts={source_pix_fmt}")]
            if source_pix_fmt and source_pix_fmt != "rgb24"
            else []
        )
        self._run(("rgb", frame.width, frame.height, source_pix_fmt), frame, prefix, out, None)
