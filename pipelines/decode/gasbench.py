"""GASBench's frames, bit for bit: the clip of a `sampling: gasbench` spec.

GASBench (its PyAV decoder `processing/video_decode.py` and `ResizeShortestEdge` in
`processing/transforms/spatial.py`, read at BitMind-AI/gasbench 0a5c7ed / fb32675) does not
choose frames by timestamp. It opens the best video stream, decodes from the start with one
thread and keeps decoded frame `i` when `i % step == 0`, `step = max(1, round(fps / frame_rate))`
(`fps` the stream's average rate, 30 when missing; `step = 1` without `frame_rate`), until it
has `num_frames`; a short video repeats its last kept frame. Each frame goes to RGB with the
stream's own colour matrix and range, is turned by its display rotation (`np.rot90`), centre
cropped to the target's aspect ratio and resized with `cv2.resize(..., INTER_LINEAR)`.

So the frame choice depends on the decode order and the container's average rate, which only
the decoder sees: `read_gasbench_clip` decodes and chooses in one pass, and
`gasbench_frame_indices` is the pure rule it applies (also used to describe the clip).
"""

from __future__ import annotations

import math
import os
from typing import Optional

import av
import cv2
import numpy as np
from av.video.reformatter import Colorspace
from vfcache.pipelines.decode._video import REASON_DECODE_ERROR, REASON_ZERO_FRAMES, VideoReadError

DEFAULT_FPS = 30.0


def gasbench_step(average_fps: Optional[float], frame_rate: Optional[float]) -> int:
    """Keep every `step`-th decoded frame: 1 without a frame rate, else round(fps / frame_rate)
    (Python's round, half to even, as GASBench), at least 1."""
    if frame_rate is None:
        return 1
    fps = float(average_fps) if average_fps else DEFAULT_FPS
    if not math.isfinite(fps) or fps <= 0:
        fps = DEFAULT_FPS
    return max(1, round(fps / frame_rate))


def gasbench_frame_indices(total_frames: int, num_frames: int, step: int) -> list[int]:
    """Decoded-frame indices of the clip: range(0, total, step)[:num_frames], the last one
    repeated to `num_frames` when the video is short."""
    if total_frames < 1:
        raise ValueError("a video without frames has no clip")
    indices = list(range(0, total_frames, step))[:num_frames]
    return indices + [indices[-1]] * (num_frames - len(indices))


def crop_to_aspect_resize(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """GASBench's ResizeShortestEdge: the largest centred crop of the target's aspect ratio,
    then cv2.resize INTER_LINEAR to (height, width)."""
    h, w = rgb.shape[:2]
    scale = min(h / height, w / width)
    crop_h, crop_w = min(int(round(scale * height)), h), min(int(round(scale * width)), w)
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    cropped = np.ascontiguousarray(rgb[top : top + crop_h, left : left + crop_w])
    return cv2.resize(cropped, (width, height), interpolation=cv2.INTER_LINEAR)


def _display_rgb(frame: av.VideoFrame) -> np.ndarray:
    pixels = frame.to_ndarray(
        format="rgb24",
        src_colorspace=frame.colorspace,
        dst_colorspace=Colorspace.DEFAULT,
        src_color_range=frame.color_range,
    )
    rotation = int(frame.rotation) % 360  # PyAV: counter-clockwise; np.rot90 turns that way too
    if rotation in (90, 180, 270):
        pixels = np.rot90(pixels, rotation // 90)
    return pixels


def read_gasbench_clip(
    path: str | os.PathLike,
    *,
    num_frames: int,
    frame_rate: Optional[float],
    height: int,
    width: int,
) -> tuple[np.ndarray, list[int], int]:
    """(clip uint8 (num_frames, height, width, 3) RGB, decoded-frame index of each clip frame,
    frames padded) the way GASBench decodes a video; stops decoding once the clip is complete.
    Raises VideoReadError."""
    path = os.fspath(path)
    kept: list[np.ndarray] = []
    indices: list[int] = []
    try:
        with av.open(path) as container:
            stream = container.streams.best("video")
            if stream is None:
                raise VideoReadError(REASON_DECODE_ERROR, "no video stream", path=path)
            stream.codec_context.thread_count = 1
            step = gasbench_step(
                float(stream.average_rate) if stream.average_rate else None, frame_rate
            )
            for index, frame in enumerate(container.decode(stream)):
                if index % step:
                    continue
                kept.append(crop_to_aspect_resize(_display_rgb(frame), height, width))
                indices.append(index)
                if len(kept) == num_frames:
                    break
    except av.error.FFmpegError as err:
        raise VideoReadError(
            REASON_DECODE_ERROR, f"GASBench-way decoding failed ({err})", path=path
        ) from err
    if not kept:
        raise VideoReadError(REASON_ZERO_FRAMES, "no frame decoded", path=path)
    padding = num_frames - len(kept)
    return np.stack(kept + [kept[-1]] * padding), indices + [indices[-1]] * padding, padding


__all__ = ["crop_to_aspect_resize", "gasbench_frame_indices", "gasbench_step", "read_gasbench_clip"]
