"""Frame selection: which source frames make each clip, as a pure function of timestamps.

`plan_clips(pts_s, spec, seed=...)` takes the presentation time of every frame (from
probe, sorted) and a `ClipSpec`, and returns one `ClipPlan` per clip. Nothing here opens a
file, so the choice is the same whatever reader decodes the frames, and it is right for
29.97 fps (1001/30000 s steps), variable frame rate and containers that misreport their
frame count: only timestamps are used.

Rules (all times in seconds):

- The frame shown at time t is the last frame with pts <= t + `TIME_EPS_S` (1 microsecond,
  far below any container's tick, far above float rounding; it makes a target that lands
  exactly on a frame's pts pick that frame).
- A video lasts `video_duration_s(pts_s)` = last pts - first pts + one frame duration,
  the frame duration being the median gap between consecutive pts.
- sampling `fps`: a clip is T frames at the target rate, target times s_k = t_start + k / fps,
  each mapped to the frame shown at s_k. The window lasts T / fps. t_start is snapped to the
  pts of the frame shown at the chosen start, so 24 from 30 fps always gives 0,1,2,3,5,...
  relative to the clip's first frame. Where the window starts (`start`): `start` (first
  frame), `center` (window centred in the video), `random` (uniform, seeded). With N > 1
  clips per video the video is cut into N equal segments and each clip is placed in its
  segment by the same policy, so clips never overlap when the video lasts N windows or
  more; when it lasts less, the N windows are spread evenly from the start to the end.
- sampling `uniform`: T target times evenly spaced from the first to the last pts (the
  middle of the video when T == 1), each mapped to the nearest frame (ties go earlier).
- Too short (fps: the video lasts less than one window; uniform: fewer than T frames) is
  handled by `short_policy`: `pad_last` repeats the video's last frame, `loop` wraps
  around to the start, `skip` raises `VideoTooShort`. A too-short video gives one clip,
  whatever `clips_per_video` says (N copies of the same padded clip would add nothing).
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from vfcache.config import ClipSpec

TIME_EPS_S = 1e-6
POLICY_NONE = "none"  # ClipPlan.short_policy when the video was long enough

__all__ = [
    "ClipPlan",
    "VideoTooShort",
    "plan_clips",
    "frame_shown_at",
    "nearest_frame",
    "frame_duration_s",
    "video_duration_s",
    "TIME_EPS_S",
    "POLICY_NONE",
]


@dataclass(frozen=True)
class ClipPlan:
    """The source frames of one clip, in clip order."""

    clip_index: int
    frame_indices: tuple[int, ...]  # presentation-order indices of the video's frames, may repeat
    timestamps_s: tuple[float, ...]  # pts of each chosen frame
    # clip frames that repeat an earlier frame because the video was too short: for fps
    # sampling, those whose target time lies past the end of the video
    padded_frames: int
    short_policy: str  # "none" when the video was long enough, else "pad_last" / "loop"


class VideoTooShort(ValueError):
    """The video is too short for the clip spec and its short_policy is `skip`."""

    reason = "too_short"

    def __init__(
        self, message: str, *, needed_s: float, had_s: float, needed_frames: int, had_frames: int
    ):
        super().__init__(message)
        self.needed_s, self.had_s = needed_s, had_s
        self.needed_frames, self.had_frames = needed_frames, had_frames


# ---------------------------------------------------------------- timestamp arithmetic


def frame_shown_at(pts_s: Sequence[float], time_s: float) -> int:
    """Index of the frame displayed at `time_s`: the last with pts <= time_s + TIME_EPS_S
    (the first frame for times before the video starts)."""
    return max(0, bisect.bisect_right(pts_s, time_s + TIME_EPS_S) - 1)


def nearest_frame(pts_s: Sequence[float], time_s: float) -> int:
    """Index of the frame whose pts is nearest to `time_s`; a tie goes to the earlier frame."""
    right = bisect.bisect_left(pts_s, time_s)
    if right == 0:
        return 0
    if right == len(pts_s):
        return len(pts_s) - 1
    left = right - 1
    return left if time_s - pts_s[left] <= pts_s[right] - time_s + TIME_EPS_S else right


def frame_duration_s(pts_s: Sequence[float]) -> float:
    """Typical frame duration: the median gap between consecutive pts (0 for one frame)."""
    if len(pts_s) < 2:
        return 0.0
    return float(statistics.median(b - a for a, b in itertools.pairwise(pts_s)))


def video_duration_s(pts_s: Sequence[float]) -> float:
    """How long the video is shown: last pts - first pts + one frame duration."""
    if not pts_s:
        return 0.0
    return pts_s[-1] - pts_s[0] + frame_duration_s(pts_s)


# ---------------------------------------------------------------- validation


def _validate_pts(pts_s: Sequence[float]) -> tuple[float, ...]:
    pts = tuple(float(t) for t in pts_s)
    if not pts:
        raise ValueError(
            "pts_s is empty: a video with no frames has nothing to sample "
            "(probe reports it as zero_frames)"
        )
    for i, t in enumerate(pts):
        if not math.isfinite(t):
            raise ValueError(f"pts_s[{i}] = {t!r} is not a finite time in seconds")
    for i in range(1, len(pts)):
        if pts[i] < pts[i - 1]:
            raise ValueError(
                f"pts_s must be sorted ascending (presentation order); "
                f"pts_s[{i}] = {pts[i]!r} < pts_s[{i - 1}] = {pts[i - 1]!r}"
            )
    return pts


def _validate_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(
            f"seed = {seed!r}; expected an int >= 0 (derive it from the video id, "
            "e.g. int(video_id[:16], 16))"
        )


# ---------------------------------------------------------------- policies as tables

# Where a window goes inside a span with `room_s` seconds to spare, as a fraction of that room.
_START_POSITIONS: dict[str, Callable[[np.random.Generator], float]] = {
    "start": lambda rng: 0.0,
    "center": lambda rng: 0.5,
    "random": lambda rng: float(rng.uniform(0.0, 1.0)),
}


def _pad_last_fps(pts: tuple[float, ...], rel_s: float, duration_s: float) -> int:
    return frame_shown_at(pts, pts[0] + rel_s)  # past the end this is the last frame


def _loop_fps(pts: tuple[float, ...], rel_s: float, duration_s: float) -> int:
    laps = math.floor((rel_s + TIME_EPS_S) / duration_s) if duration_s > 0 else 0
    return frame_shown_at(pts, pts[0] + rel_s - laps * duration_s)


def _pad_last_uniform(num_frames: int, k: int) -> int:
    return min(k, num_frames - 1)


def _loop_uniform(num_frames: int, k: int) -> int:
    return k % num_frames


# policy name -> (pick for fps sampling, pick for uniform sampling); `skip` has no picks:
# it raises VideoTooShort before any frame is chosen.
_SHORT_POLICIES: dict[str, tuple[Callable, Callable] | None] = {
    "pad_last": (_pad_last_fps, _pad_last_uniform),
    "loop": (_loop_fps, _loop_uniform),
    "skip": None,
}


def _short_picks(spec: ClipSpec, message: str, **sizes: float) -> tuple[Callable, Callable]:
    """The pick functions of the spec's short policy; raises VideoTooShort for `skip`."""
    picks = _SHORT_POLICIES[spec.short_policy]
    if picks is None:
        raise VideoTooShort(
            f"{message}; short_policy {spec.short_policy!r} drops such videos "
            "(use pad_last or loop to keep them)",
            **sizes,
        )
    return picks


# ---------------------------------------------------------------- samplers


def _plan(
    clip_index: int, pts: tuple[float, ...], indices: list[int], padded: int, policy: str
) -> ClipPlan:
    return ClipPlan(
        clip_index=clip_index,
        frame_indices=tuple(indices),
        timestamps_s=tuple(pts[i] for i in indices),
        padded_frames=padded,
        short_policy=policy,
    )


def _window_offsets_s(
    duration_s: float, window_s: float, clips: int, start: str, seed: int
) -> list[float]:
    """Start of each clip window in seconds after the first pts, each in [0, duration - window]."""
    rng = np.random.default_rng(seed)
    positions = [_START_POSITIONS[start](rng) for _ in range(clips)]
    segment_s = duration_s / clips
    if segment_s >= window_s:
        return [i * segment_s + pos * (segment_s - window_s) for i, pos in enumerate(positions)]
    slack_s = duration_s - window_s  # clips must overlap: spread them evenly over the video
    return [i * slack_s / (clips - 1) for i in range(clips)]


def _sample_fps(pts: tuple[float, ...], spec: ClipSpec, seed: int) -> list[ClipPlan]:
    frames, fps = spec.frames, float(spec.fps)
    window_s, duration_s = frames / fps, video_duration_s(pts)
    if duration_s + TIME_EPS_S < window_s:
        pick = _short_picks(
            spec,
            f"video lasts {duration_s:.3f} s ({len(pts)} frames) but a clip needs "
            f"{window_s:.3f} s ({frames} frames at {fps:g} fps)",
            needed_s=window_s,
            had_s=duration_s,
            needed_frames=frames,
            had_frames=len(pts),
        )[0]
        rel_times = [k / fps for k in range(frames)]
        indices = [pick(pts, rel, duration_s) for rel in rel_times]
        padded = sum(rel + TIME_EPS_S >= duration_s for rel in rel_times)
        return [_plan(0, pts, indices, padded, spec.short_policy)]
    plans = []
    offsets = _window_offsets_s(duration_s, window_s, spec.clips_per_video, spec.start, seed)
    for clip_index, offset_s in enumerate(offsets):
        start_s = pts[frame_shown_at(pts, pts[0] + offset_s)]
        indices = [frame_shown_at(pts, start_s + k / fps) for k in range(frames)]
        plans.append(_plan(clip_index, pts, indices, 0, POLICY_NONE))
    return plans


def _sample_uniform(pts: tuple[float, ...], spec: ClipSpec, seed: int) -> list[ClipPlan]:
    frames, count = spec.frames, len(pts)
    if count < frames:
        pick = _short_picks(
            spec,
            f"video has {count} frames but uniform sampling needs {frames}",
            needed_s=0.0,
            had_s=video_duration_s(pts),
            needed_frames=frames,
            had_frames=count,
        )[1]
        indices = [pick(count, k) for k in range(frames)]
        return [_plan(0, pts, indices, frames - count, spec.short_policy)]
    first, last = pts[0], pts[-1]
    if frames == 1:
        targets = [(first + last) / 2]
    else:
        targets = [first + k * (last - first) / (frames - 1) for k in range(frames)]
    indices = [nearest_frame(pts, t) for t in targets]
    return [_plan(0, pts, indices, 0, POLICY_NONE)]


_SAMPLERS: dict[str, Callable[[tuple[float, ...], ClipSpec, int], list[ClipPlan]]] = {
    "fps": _sample_fps,
    "uniform": _sample_uniform,
}


def plan_clips(pts_s: Sequence[float], spec: ClipSpec, *, seed: int) -> list[ClipPlan]:
    """The clips of one video: `spec.clips_per_video` plans (one when the video is too short).

    `pts_s` is every frame's presentation time in seconds, sorted ascending; `seed` drives
    `start: random` (derive it from the video id so re-runs pick the same frames). Raises
    `VideoTooShort` under `short_policy: skip`, `ValueError` for bad arguments.
    """
    pts = _validate_pts(pts_s)
    _validate_seed(seed)
    return _SAMPLERS[spec.sampling](pts, spec, int(seed))
