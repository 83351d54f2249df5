"""Video readers: probe a video, and read the frames a clip needs as uint8 RGB at clip size.

- `probe_video(path) -> VideoInfo`: codec, displayed size, rotation, fps, and every frame's
  pts from demuxing packets (one frame is decoded, for the rotation and to prove the codec
  decodes). Raises `VideoReadError` whose `reason` goes into manifests.
- `read_frames(path, frame_indices, info=..., height=..., width=...)`: frames by
  presentation-order index (any order, repeats allowed), rotated to display orientation,
  cropped/squashed and resized with antialiasing; (N, height, width, 3) uint8 RGB.
  `reader="pyav"` (default) seeks to the keyframe at or before each run of needed frames and
  crops, resizes and converts only the frames used, in one swscale pass on the YUV frame;
  `reader="decord"` gives the same frames, with pixels within about one level on average
  (decord only hands over RGB; see `_frame_fit`).
- `decode_floor(...)`: the benchmark's reference, the same decoding without conversion.
- `decode_all_then_pick(...)`: the benchmark's baseline, the usual script.

Frame selection (which indices) lives in `vfcache.pipelines.decode.frames`; geometry in
`_frame_fit`.
"""

from __future__ import annotations

import os
from collections import defaultdict, deque
from concurrent.futures import Executor, Future, wait
from typing import Callable, Iterator, Optional, Sequence, Union

import av
import numpy as np
from vfcache.pipelines.decode._decord_source import decord_frames
from vfcache.pipelines.decode._frame_fit import RESIZE_MODES, FrameFitter, crop_box
from vfcache.pipelines.decode._pyav_source import PyAVSource, plan_decode_runs, probe
from vfcache.pipelines.decode._video import (
    READ_ERROR_REASONS,
    REASON_DECODE_ERROR,
    REASON_NO_VIDEO_STREAM,
    REASON_NOT_A_VIDEO,
    REASON_TRUNCATED,
    REASON_UNSUPPORTED_CODEC,
    REASON_ZERO_FRAMES,
    VideoInfo,
    VideoReadError,
)

from vfcache.pixels import odd_size_problem, stored_shape

__all__ = [
    "VideoInfo",
    "VideoReadError",
    "READ_ERROR_REASONS",
    "READERS",
    "RESIZE_MODES",
    "probe_video",
    "read_frames",
    "decode_floor",
    "decode_all_then_pick",
    "plan_decode_runs",
    "REASON_NOT_A_VIDEO",
    "REASON_NO_VIDEO_STREAM",
    "REASON_TRUNCATED",
    "REASON_ZERO_FRAMES",
    "REASON_UNSUPPORTED_CODEC",
    "REASON_DECODE_ERROR",
]

MAX_FRAMES_IN_FLIGHT = 8  # decoded frames waiting for the `worker` thread (about 22 MB at 720p)

# A reader yields, for sorted unique indices, (index, frame, clockwise rotation the reader
# already applied); a frame is a decoded av.VideoFrame or a full-size RGB array.
Frame = Union[av.VideoFrame, np.ndarray]
FrameSource = Callable[[str, Sequence[int], VideoInfo, int], Iterator[tuple[int, Frame, int]]]


def _pyav_frames(
    path: str, needed: Sequence[int], info: VideoInfo, decoder_threads: int
) -> Iterator[tuple[int, Frame, int]]:
    with PyAVSource(path, info, decoder_threads) as source:
        for index, frame in source.decode_needed(needed):
            yield index, frame, 0


READERS: dict[str, FrameSource] = {"pyav": _pyav_frames, "decord": decord_frames}


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Probe `path`; raises VideoReadError (not_a_video, no_video_stream, truncated,
    zero_frames, unsupported_codec, decode_error)."""
    return probe(os.fspath(path))


def _validate_indices(frame_indices: Sequence[int], info: VideoInfo) -> list[int]:
    indices = []
    for position, index in enumerate(frame_indices):
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ValueError(f"frame_indices[{position}] = {index!r}; expected an int")
        if not 0 <= index < info.num_frames:
            raise ValueError(
                f"frame_indices[{position}] = {index}; the video has "
                f"{info.num_frames} frames (valid: 0..{info.num_frames - 1})"
            )
        indices.append(int(index))
    return indices


def _validate_threads(decoder_threads: int) -> None:
    if (
        isinstance(decoder_threads, bool)
        or not isinstance(decoder_threads, int)
        or decoder_threads < 1
    ):
        raise ValueError(f"decoder_threads = {decoder_threads!r}; expected an int >= 1")


def _validate_reader(reader: str) -> None:
    if reader not in READERS:
        raise ValueError(f"reader = {reader!r}; expected one of {sorted(READERS)}")


def _fitter(
    info: VideoInfo, height: int, width: int, resize: str, pixels: str = "rgb24"
) -> FrameFitter:
    box = crop_box(info.height, info.width, height=height, width=width, resize=resize)
    coded_height, coded_width = info.coded_size
    return FrameFitter(
        coded_height=coded_height,
        coded_width=coded_width,
        rotation=info.rotation,
        box=box,
        height=height,
        width=width,
        pixels=pixels,
    )


def _fit(
    fitter: FrameFitter,
    frame: Frame,
    rotation_applied: int,
    info: VideoInfo,
    out: np.ndarray,
    path: str,
    index: int,
) -> None:
    try:
        if isinstance(frame, av.VideoFrame):
            fitter.fit(frame, out)
        else:
            fitter.fit_rgb(
                frame, out, rotation_applied=rotation_applied, source_pix_fmt=info.pix_fmt
            )
    except av.error.FFmpegError as err:  # e.g. a frame whose size changed mid-stream
        raise VideoReadError(
            REASON_DECODE_ERROR,
            f"frame {index} could not be cropped and resized ({err})",
            path=path,
        ) from err


def _output_slots(indices: list[int]) -> dict[int, list[int]]:
    slots: dict[int, list[int]] = defaultdict(list)
    for position, index in enumerate(indices):
        slots[index].append(position)
    return slots


def read_frames(
    path: str | os.PathLike,
    frame_indices: Sequence[int],
    *,
    info: VideoInfo,
    height: int,
    width: int,
    resize: str = "short_side_crop",
    reader: str = "pyav",
    decoder_threads: int = 1,
    on_ready: Optional[Callable[[np.ndarray, int], None]] = None,
    worker: Optional[Executor] = None,
    pixels: str = "rgb24",
    colour: Optional[dict] = None,
) -> np.ndarray:
    """Frames `frame_indices` (presentation order, as planned by `vfcache.pipelines.decode.frames`)
    of the
    video, as an (N, height, width, 3) uint8 RGB array in the order of the argument.

    `pixels="yuv420"`: (N, height * 3 // 2, width) yuv420p planes instead (see
    `vfcache.pixels`; even sizes), whose matrix and range are put in `colour` (a dict, keys
    `matrix` and `range`) when given.

    `info` comes from `probe_video` on the same file. `resize`: `short_side_crop` (scale
    the short side to the clip's, centre crop) or `squash`. `decoder_threads` is set on the
    codec context (1 by default: parallelism comes from the workers). Raises VideoReadError
    (`truncated` when the stream ends before a needed frame).

    `on_ready(clip, n)`, when given, is called as decoding goes with the array being filled
    and the number `n` of its leading rows that are final, each time `n` grows: a caller can
    start on a finished clip (compress it) while the next one decodes. Rows past `n` are
    still being written; rows before it are never touched again.

    `worker`, a single-thread executor, takes the crop, resize and conversion of each decoded
    frame (and `on_ready`) off this thread, so they overlap the decoding of the next frames
    (FFmpeg's decoder and swscale run without the GIL). At most `MAX_FRAMES_IN_FLIGHT` decoded
    frames wait for it; the call returns once every row is written.
    """
    path = os.fspath(path)
    indices = _validate_indices(frame_indices, info)
    _validate_reader(reader)
    _validate_threads(decoder_threads)
    if pixels == "yuv420" and odd_size_problem(height, width):
        raise ValueError(f"{height}x{width}: {odd_size_problem(height, width)}")
    fitter = _fitter(info, height, width, resize, pixels)
    clip = np.empty(stored_shape(len(indices), height, width, pixels), dtype=np.uint8)
    slots = _output_slots(indices)
    done = set()
    final = np.zeros(len(indices) + 1, dtype=bool)  # a sentinel row that never becomes final
    ready = 0

    def place(index: int, frame: Frame, rotation_applied: int) -> None:
        nonlocal ready
        first, *repeats = slots[index]
        _fit(fitter, frame, rotation_applied, info, clip[first], path, index)
        for position in repeats:
            clip[position] = clip[first]
        if on_ready is not None:
            final[slots[index]] = True
            advanced = ready
            while final[advanced]:
                advanced += 1
            if advanced > ready:
                ready = advanced
                on_ready(clip, ready)

    in_flight: deque[Future] = deque()
    try:
        for index, frame, rotation_applied in READERS[reader](
            path, sorted(slots), info, decoder_threads
        ):
            if worker is None:
                place(index, frame, rotation_applied)
            else:
                in_flight.append(worker.submit(place, index, frame, rotation_applied))
                while in_flight and (len(in_flight) > MAX_FRAMES_IN_FLIGHT or in_flight[0].done()):
                    in_flight.popleft().result()  # raises what the worker raised
            done.add(index)
        while in_flight:
            in_flight.popleft().result()
    finally:
        for future in in_flight:  # a failed read: the frames still queued are not converted
            future.cancel()
        wait(in_flight)
    if len(done) != len(slots):  # readers raise first; this guards a reader that stops early
        missing = sorted(set(slots) - done)
        raise VideoReadError(
            REASON_DECODE_ERROR, f"reader {reader!r} did not return frames {missing[:5]}", path=path
        )
    if colour is not None and fitter.colour is not None:
        colour["matrix"], colour["range"] = fitter.colour
    return clip


def decode_floor(
    path: str | os.PathLike,
    frame_indices: Sequence[int],
    *,
    info: VideoInfo,
    decoder_threads: int = 1,
    skip_nonref: bool = True,
) -> int:
    """Decode exactly the frames `read_frames(reader="pyav")` decodes, without converting
    them; returns how many frames were decoded (the benchmark's reference cost).
    `skip_nonref=False` also decodes the unneeded non-reference frames between a keyframe
    and the needed frames (read_frames skips them)."""
    needed = sorted(set(_validate_indices(frame_indices, info)))
    _validate_threads(decoder_threads)
    with PyAVSource(os.fspath(path), info, decoder_threads, skip_nonref=skip_nonref) as source:
        for _ in source.decode_needed(needed):
            pass
        return source.frames_decoded


def decode_all_then_pick(
    path: str | os.PathLike,
    frame_indices: Sequence[int],
    *,
    info: VideoInfo,
    height: int,
    width: int,
    resize: str = "short_side_crop",
    decoder_threads: int = 1,
) -> np.ndarray:
    """The usual script, as the benchmark's baseline: decode every frame from the start and
    convert each to RGB, then pick the wanted ones and resize them. It keeps the wanted
    decoded frames rather than a list of every RGB frame, so long videos fit in memory, and
    resizes them as `read_frames` does, so the output is the same; the work (every frame
    decoded and converted) is the usual script's."""
    path = os.fspath(path)
    indices = _validate_indices(frame_indices, info)
    _validate_threads(decoder_threads)
    fitter = _fitter(info, height, width, resize)
    slots = _output_slots(indices)
    kept: dict[int, av.VideoFrame] = {}
    with PyAVSource(path, info, decoder_threads) as source:
        for index, frame in source.frames_from(None):
            frame.to_ndarray(format="rgb24")  # the usual script's cost: every frame to RGB
            if index in slots:
                kept[index] = frame
    missing = sorted(set(slots) - set(kept))
    if missing:
        raise VideoReadError(REASON_TRUNCATED, f"frames {missing[:5]} never decoded", path=path)
    clip = np.empty((len(indices), height, width, 3), dtype=np.uint8)
    for index, positions in slots.items():
        for position in positions:
            _fit(fitter, kept[index], 0, info, clip[position], path, index)
    return clip
