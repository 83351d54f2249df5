"""decord as an alternative reader, made to agree with PyAV on frame identity and orientation.

decord 0.6 numbers frames by sorting all packets by pts, as probe does, but it may count
packets probe leaves out (discarded ones) and reports float32 times relative to the stream
start; so each needed frame is mapped to decord's index by time and checked, never assumed.
decord applies rotation itself when its bundled FFmpeg 4 exports a display matrix, which it
does for mp4/mov but not for Matroska/WebM; each frame says which rotation it carries.
decord's seek counts keyframes in decode order and then treats them as presentation
indices, which is wrong with open GOPs (HEVC from x265, whose leading frames follow their
keyframe in decode order) and returns the wrong frames; when decord's keyframe list differs
from probe's, frames are read sequentially from the start instead (correct, slower).
Pixels: decord converts YUV to RGB with the same swscale code as PyAV's to_ndarray
(identical full-size frames measured on h264, mpeg4 and vp9); the caller then resizes.
"""

from __future__ import annotations

import logging
from typing import Iterator, Optional, Sequence

import numpy as np
from vfcache.pipelines.decode._pyav_source import (
    PyAVSource,
    open_container,
    plan_decode_runs,
    video_stream,
)
from vfcache.pipelines.decode._video import (
    REASON_CORRUPT_FRAMES,
    REASON_DECODE_ERROR,
    VideoInfo,
    VideoReadError,
    ticks_to_s,
)

log = logging.getLogger(__name__)

_ROTATING_FORMATS = ("mov", "mp4")  # demuxers whose display matrix decord's FFmpeg 4 reads


def _stream_start_s(path: str) -> float:
    """The video stream's start time, which decord subtracts from every pts."""
    with open_container(path) as container:
        stream = video_stream(container, path)
        if stream.start_time is None:
            return 0.0
        return ticks_to_s(stream.start_time, stream.time_base)


def _decord_index(times_s: np.ndarray, pts_s: Sequence[float], index: int, path: str) -> int:
    """decord's index of probe frame `index`: the decord frame nearest in time, which must be
    closer than half the gap to the probe frame's neighbours."""
    target = pts_s[index]
    position = int(np.argmin(np.abs(times_s - target)))
    gaps = [pts_s[i + 1] - pts_s[i] for i in (index - 1, index) if 0 <= i < len(pts_s) - 1]
    tolerance = min(gaps) / 2 if gaps else float("inf")
    if abs(times_s[position] - target) >= max(tolerance, 1e-4):
        raise VideoReadError(
            REASON_DECODE_ERROR,
            f"decord has no frame at probe frame {index} "
            f"(pts {target:.6f} s; nearest decord frame {position} at "
            f"{times_s[position]:.6f} s)",
            path=path,
        )
    return position


def _seeks_are_reliable(reader, keyframes_in_decord: set[int]) -> bool:
    """decord seeks right only when its keyframe positions are the presentation indices."""
    return {int(k) for k in reader.get_key_indices()} == keyframes_in_decord


def _read_sequentially(reader, mapped: Sequence[int]) -> np.ndarray:
    """decord frames `mapped` by decoding from the first frame on, without seeking."""
    wanted = {index: position for position, index in enumerate(mapped)}
    frames: list = [None] * len(mapped)
    reader.seek(0)
    for index in range(max(mapped) + 1):
        frame = reader.next()
        if index in wanted:
            frames[wanted[index]] = frame.asnumpy()
    return np.stack(frames)


def _first_bad_seek(path: str, needed: Sequence[int], info: VideoInfo) -> Optional[str]:
    """Why one of the seeks decord would make gives unclean frames, or None when none does.
    Checked with PyAV; a bad start makes PyAV decode the needed frames from an earlier point,
    so a video whose needed frames are corrupt even from the stream start raises here."""
    runs = [
        run
        for run in plan_decode_runs(needed, info.keyframe_indices, min_skip_frames=0)
        if run.start_index is not None
    ]  # a run from keyframe 0 is checked too: a stream
    if not runs:  # recorded mid-refresh is incomplete at its start
        return None
    with PyAVSource(path, info) as source:
        for run in runs:
            why = source.first_bad_start(run)
            if why is not None:
                for _ in source.decode_needed(needed):  # raises corrupt_frames if still corrupt
                    pass
                if source.corrupt_unneeded:  # FFmpeg 4 in decord drops them: its count is off
                    first = min(source.corrupt_unneeded)
                    raise VideoReadError(
                        REASON_CORRUPT_FRAMES,
                        f"{len(source.corrupt_unneeded)}"
                        f" frames from frame {first} on cannot be rebuilt even "
                        "from the stream start; decord drops them and hands "
                        "out the wrong frames after them: use the pyav reader",
                        path=path,
                    )
                return why
    return None


def decord_applied_rotation(info: VideoInfo) -> int:
    """Rotation decord 0.6 applies by itself to frames of this video (clockwise degrees)."""
    names = info.container.split(",")
    return info.rotation if any(name in names for name in _ROTATING_FORMATS) else 0


def decord_frames(
    path: str, needed: Sequence[int], info: VideoInfo, decoder_threads: int = 1
) -> Iterator[tuple[int, np.ndarray, int]]:
    """Yield (index, RGB frame, clockwise rotation decord already applied) for sorted unique
    `needed`."""
    import decord  # optional reader: imported only when chosen

    try:
        reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=decoder_threads)
        count = len(reader)
        times_s = reader.get_frame_timestamp(list(range(count)))[:, 0].astype(np.float64)
    except decord.DECORDError as err:
        raise VideoReadError(
            REASON_DECODE_ERROR, f"decord cannot read it ({err})", path=path
        ) from err
    if count == 0:
        raise VideoReadError(REASON_DECODE_ERROR, "decord finds no frames", path=path)
    order = np.argsort(times_s, kind="stable")
    times_s = times_s[order] + _stream_start_s(path)

    def to_decord(index: int) -> int:
        return int(order[_decord_index(times_s, info.pts_s, index, path)])

    mapped = [to_decord(i) for i in needed]
    try:
        if not _seeks_are_reliable(reader, {to_decord(k) for k in info.keyframe_indices}):
            log.info(
                "%s: decord's keyframe index disagrees with the stream's (open GOP?); "
                "reading frames sequentially",
                path,
            )
            batch = _read_sequentially(reader, mapped)
        elif (bad_seek := _first_bad_seek(path, needed, info)) is not None:
            log.warning(
                "%s: %s; decord reads frames sequentially from the stream start", path, bad_seek
            )
            batch = _read_sequentially(reader, mapped)
        else:
            batch = reader.get_batch(mapped).asnumpy()
    except decord.DECORDError as err:
        raise VideoReadError(
            REASON_DECODE_ERROR,
            f"decord failed to decode frames {list(needed)[:5]} ({err})",
            path=path,
        ) from err
    applied = decord_applied_rotation(info)
    expected = (info.height, info.width) if applied in (90, 270) else info.coded_size
    if batch.shape[1:] != (*expected, 3):
        raise VideoReadError(
            REASON_DECODE_ERROR,
            f"decord returned frames of shape "
            f"{batch.shape[1:]}, expected {(*expected, 3)} (rotation "
            f"{info.rotation}, applied by decord: {applied})",
            path=path,
        )
    for index, frame in zip(needed, batch, strict=True):
        yield index, frame, applied
