"""What probe learns about a video (`VideoInfo`), the error readers raise (`VideoReadError`),
and the timestamp arithmetic probe and readers must share to agree on frame identity.

Public names are re-exported by `vfcache.pipelines.decode`; import them from there.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Optional, Sequence

# Why a video could not be read, as recorded in manifests and failure summaries.
REASON_NOT_A_VIDEO = "not_a_video"
REASON_NO_VIDEO_STREAM = "no_video_stream"
REASON_TRUNCATED = "truncated"
REASON_ZERO_FRAMES = "zero_frames"
REASON_UNSUPPORTED_CODEC = "unsupported_codec"
REASON_DECODE_ERROR = "decode_error"
# a needed frame that FFmpeg marks corrupt or concealed even when decoded from the stream start
REASON_CORRUPT_FRAMES = "corrupt_frames"
READ_ERROR_REASONS = (
    REASON_NOT_A_VIDEO,
    REASON_NO_VIDEO_STREAM,
    REASON_TRUNCATED,
    REASON_ZERO_FRAMES,
    REASON_UNSUPPORTED_CODEC,
    REASON_DECODE_ERROR,
    REASON_CORRUPT_FRAMES,
)


class VideoReadError(Exception):
    """A video that cannot be read. `reason` is a short slug from READ_ERROR_REASONS."""

    def __init__(self, reason: str, message: str, *, path: Optional[str] = None):
        if reason not in READ_ERROR_REASONS:
            raise ValueError(f"reason = {reason!r}; expected one of {list(READ_ERROR_REASONS)}")
        self.reason, self.path, self.detail = reason, path, message
        super().__init__(f"{path}: {reason}: {message}" if path else f"{reason}: {message}")


@dataclass(frozen=True)
class VideoInfo:
    """A video as probe sees it, by demuxing its packets (one frame is decoded for rotation)."""

    codec: str
    width: int  # displayed size, after rotation
    height: int
    rotation: int  # degrees clockwise to apply to decoded frames (0/90/180/270)
    fps: float  # average frame rate over the pts
    num_frames: int
    duration_s: float  # last pts - first pts + one frame duration
    pts_s: tuple[float, ...] = field(repr=False)  # every frame's presentation time, sorted
    # presentation indices of the frames decoding can start from (keyframes); () = unknown,
    # in which case readers let the demuxer find the keyframe before the first needed frame
    keyframe_indices: tuple[int, ...] = field(default=(), repr=False)
    container: str = ""  # demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"
    pix_fmt: str = ""  # decoded pixel format, e.g. "yuv420p"

    @property
    def coded_size(self) -> tuple[int, int]:
        """(height, width) of the frames as decoded, before rotation."""
        if self.rotation in (90, 270):
            return self.width, self.height
        return self.height, self.width


def ticks_to_s(ticks: int, time_base: Fraction) -> float:
    """A timestamp in seconds, correctly rounded; probe and readers must use this same formula
    so a decoded frame's time equals the probed pts bit for bit."""
    return ticks * time_base.numerator / time_base.denominator


def s_to_ticks(time_s: float, time_base: Fraction) -> int:
    return round(Fraction(time_s) / time_base)


def index_of_time(pts_s: Sequence[float], time_s: float, tolerance_s: float) -> Optional[int]:
    """The index of the frame whose pts is `time_s` (within `tolerance_s`), else None."""
    i = bisect.bisect_left(pts_s, time_s - tolerance_s)
    if i < len(pts_s) and abs(pts_s[i] - time_s) <= tolerance_s:
        return i
    return None
