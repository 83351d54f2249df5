"""What probe and extract read, chosen by address: a video file (`vfcache.pipelines.decode`) or a
keyframe row of a parquet table (`vfcache.pipelines.decode.keyframes`, addressed
`<file>.parquet#<row>`).

The stages call these four functions instead of the readers, so a dataset of keyframe rows
goes through the same probe, planning, extraction and failure records as a folder of mp4.
For a row, `bytes` is the size of its JPEG frames, the modification time is the table's and
the id is the sha256 of its frames (see `keyframes.row_fingerprint`).
"""

from __future__ import annotations

import os
from concurrent.futures import Executor
from pathlib import Path
from typing import Callable, Optional, Sequence

import av
import numpy as np
from vfcache.pipelines.decode import VideoInfo, keyframes, probe_video, read_frames
from vfcache.pipelines.decode._frame_fit import colour_tags

from vfcache.checksums import sha256_file


def is_keyframe_row(relpath: str) -> bool:
    return keyframes.parse_row_address(relpath) is not None


def media_stat(raw_dir: str | os.PathLike, relpath: str) -> tuple[int, int]:
    """(bytes, mtime_ns) of a file or a keyframe row; raises OSError when the file is unreadable."""
    if is_keyframe_row(relpath):
        path, row = keyframes.keyframe_path(raw_dir, relpath)
        mtime_ns = path.stat().st_mtime_ns
        return sum(
            len(jpeg) for jpeg in keyframes.row_jpegs(path, row)
        ), mtime_ns  # size only: no hashing
    stat = (Path(raw_dir) / relpath).stat()
    return stat.st_size, stat.st_mtime_ns


def media_sha256(raw_dir: str | os.PathLike, relpath: str) -> str:
    """The video id: sha256 of the file bytes, or of a keyframe row's frames."""
    if is_keyframe_row(relpath):
        path, row = keyframes.keyframe_path(raw_dir, relpath)
        return keyframes.row_fingerprint(path, row)[1]
    return sha256_file(Path(raw_dir) / relpath)


def probe_media(raw_dir: str | os.PathLike, relpath: str) -> VideoInfo:
    """Probe a file or a keyframe row; raises VideoReadError."""
    if is_keyframe_row(relpath):
        return keyframes.probe_keyframes(*keyframes.keyframe_path(raw_dir, relpath))
    return probe_video(Path(raw_dir) / relpath)


def read_media_frames(
    raw_dir: str | os.PathLike,
    relpath: str,
    frame_indices: Sequence[int],
    *,
    info: VideoInfo,
    height: int,
    width: int,
    resize: str,
    reader: str = "pyav",
    decoder_threads: int = 1,
    on_ready: Optional[Callable[[np.ndarray, int], None]] = None,
    worker: Optional[Executor] = None,
    pixels: str = "rgb24",
    colour: Optional[dict] = None,
) -> np.ndarray:
    """Frames of a file (through `reader`) or of a keyframe row, (N, height, width, 3) uint8 RGB
    (or yuv420 planes, with `pixels` and `colour` as in `read_frames`).

    `on_ready` and `worker` as in `read_frames`; for a keyframe row `on_ready` is called once,
    when all are read, and `worker` is not used."""
    if is_keyframe_row(relpath):
        path, row = keyframes.keyframe_path(raw_dir, relpath)
        clip = keyframes.read_keyframes(
            path, row, frame_indices, height=height, width=width, resize=resize
        )
        if pixels == "yuv420":
            clip = rgb_to_yuv420(clip, colour)
        if on_ready is not None and len(clip):
            on_ready(clip, len(clip))
        return clip
    return read_frames(
        Path(raw_dir) / relpath,
        frame_indices,
        info=info,
        height=height,
        width=width,
        resize=resize,
        reader=reader,
        decoder_threads=decoder_threads,
        on_ready=on_ready,
        worker=worker,
        pixels=pixels,
        colour=colour,
    )


def rgb_to_yuv420(clip: np.ndarray, colour: Optional[dict] = None) -> np.ndarray:
    """An RGB clip (T, H, W, 3) as yuv420 planes (T, H * 3 // 2, W), BT.601 limited range
    (swscale's conversion, as for decord's RGB frames), for sources that decode to RGB."""
    matrix, colour_range = colour_tags(None)
    planes = np.stack(
        [
            av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            .reformat(format="yuv420p", dst_colorspace="ITU601", dst_color_range="MPEG")
            .to_ndarray()
            for frame in clip
        ]
    )
    if colour is not None:
        colour["matrix"], colour["range"] = matrix, colour_range
    return planes
