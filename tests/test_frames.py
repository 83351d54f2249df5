"""Frame selection: exact indices for the rules of vfcache.pipelines.decode.frames, and invariants
(Hypothesis)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vfcache.pipelines.decode.frames import (
    POLICY_NONE,
    ClipPlan,
    VideoTooShort,
    frame_shown_at,
    nearest_frame,
    plan_clips,
    video_duration_s,
)

from vfcache.config import ClipSpec
from vfcache.errors import ConfigError


def fps_spec(frames: int = 24, fps: float = 24.0, **changes) -> ClipSpec:
    return ClipSpec(name="t", frames=frames, sampling="fps", height=8, width=8, fps=fps, **changes)


def uniform_spec(frames: int, **changes) -> ClipSpec:
    return ClipSpec(name="t", frames=frames, sampling="uniform", height=8, width=8, **changes)


def cfr(num_frames: int, fps: float = 30.0, start_s: float = 0.0) -> list[float]:
    return [start_s + i / fps for i in range(num_frames)]


def only(plans: list[ClipPlan]) -> ClipPlan:
    assert len(plans) == 1
    return plans[0]


# ---------------------------------------------------------------- fps sampling


def test_24_from_30_fps_takes_four_of_every_five_frames() -> None:
    plan = only(plan_clips(cfr(90), fps_spec(), seed=0))
    assert plan.frame_indices == (
        0,
        1,
        2,
        3,
        5,
        6,
        7,
        8,
        10,
        11,
        12,
        13,
        15,
        16,
        17,
        18,
        20,
        21,
        22,
        23,
        25,
        26,
        27,
        28,
    )
    assert plan.timestamps_s == tuple(i / 30 for i in plan.frame_indices)
    assert (plan.clip_index, plan.padded_frames, plan.short_policy) == (0, 0, POLICY_NONE)


def test_24_from_30_fps_with_a_time_base_offset() -> None:
    # an mp4 whose first pts is not 0 (edit list): selection is relative to the first frame
    plan = only(plan_clips(cfr(90, start_s=1.5), fps_spec(frames=8), seed=0))
    assert plan.frame_indices == (0, 1, 2, 3, 5, 6, 7, 8)


def test_24_from_ntsc_29_97_fps() -> None:
    pts = [i * 1001 / 30000 for i in range(120)]
    plan = only(plan_clips(pts, fps_spec(), seed=0))
    assert plan.frame_indices == (
        0,
        1,
        2,
        3,
        4,
        6,
        7,
        8,
        9,
        11,
        12,
        13,
        14,
        16,
        17,
        18,
        19,
        21,
        22,
        23,
        24,
        26,
        27,
        28,
    )


def test_same_rate_takes_consecutive_frames() -> None:
    plan = only(plan_clips(cfr(60, fps=25), fps_spec(frames=10, fps=25), seed=0))
    assert plan.frame_indices == tuple(range(10))


def test_variable_frame_rate_picks_the_frame_on_screen() -> None:
    pts = [0.0, 0.05, 0.06, 0.2, 0.21, 0.35, 0.5, 0.55, 0.7, 0.9, 1.0, 1.3]
    plan = only(plan_clips(pts, fps_spec(frames=8, fps=10), seed=0))
    # targets 0.0, 0.1, ..., 0.7 s: the last frame with pts <= target
    assert plan.frame_indices == (0, 2, 3, 4, 5, 6, 7, 8)


def test_start_policies() -> None:
    pts = cfr(300)  # 10 s
    spec = fps_spec(frames=8)
    assert only(plan_clips(pts, spec, seed=0)).frame_indices == (0, 1, 2, 3, 5, 6, 7, 8)
    # window 1/3 s, slack 9.667 s, centred: starts at 4.833 s = frame 145
    centre = only(plan_clips(pts, dataclasses.replace(spec, start="center"), seed=0))
    assert centre.frame_indices == (145, 146, 147, 148, 150, 151, 152, 153)
    random_spec = dataclasses.replace(spec, start="random")
    firsts = {only(plan_clips(pts, random_spec, seed=s)).frame_indices[0] for s in range(20)}
    assert len(firsts) > 10 and all(0 <= f <= 290 for f in firsts)
    again = only(plan_clips(pts, random_spec, seed=7))
    assert again == only(plan_clips(pts, random_spec, seed=7))
    first = again.frame_indices[0]
    assert again.frame_indices == tuple(first + d for d in (0, 1, 2, 3, 5, 6, 7, 8))


def test_clips_per_video_spread_over_segments_without_overlap() -> None:
    pts = cfr(300)  # 10 s, three segments of 100 frames, windows of 1 s
    starts = {
        start: [
            p.frame_indices[0]
            for p in plan_clips(pts, fps_spec(start=start, clips_per_video=3), seed=3)
        ]
        for start in ("start", "center")
    }
    assert starts == {"start": [0, 100, 200], "center": [35, 135, 235]}
    plans = plan_clips(pts, fps_spec(start="random", clips_per_video=3), seed=3)
    assert [p.clip_index for p in plans] == [0, 1, 2]
    for i, plan in enumerate(plans):
        assert 100 * i <= plan.frame_indices[0] and plan.frame_indices[-1] < 100 * (i + 1)


def test_clips_per_video_overlap_evenly_when_the_video_is_short() -> None:
    plans = plan_clips(cfr(60), fps_spec(clips_per_video=3), seed=0)  # 2 s for 3 windows of 1 s
    assert [p.frame_indices[0] for p in plans] == [0, 15, 30]
    assert plans[-1].frame_indices[-1] == 58


# ---------------------------------------------------------------- too short, fps sampling


def test_pad_last_repeats_the_last_frame() -> None:
    plan = only(plan_clips(cfr(20), fps_spec(short_policy="pad_last", clips_per_video=3), seed=0))
    assert plan.frame_indices == (
        0,
        1,
        2,
        3,
        5,
        6,
        7,
        8,
        10,
        11,
        12,
        13,
        15,
        16,
        17,
        18,
        19,
        19,
        19,
        19,
        19,
        19,
        19,
        19,
    )
    assert (plan.padded_frames, plan.short_policy) == (8, "pad_last")


def test_loop_wraps_to_the_start() -> None:
    plan = only(plan_clips(cfr(20), fps_spec(short_policy="loop"), seed=0))
    assert plan.frame_indices == (
        0,
        1,
        2,
        3,
        5,
        6,
        7,
        8,
        10,
        11,
        12,
        13,
        15,
        16,
        17,
        18,
        0,
        1,
        2,
        3,
        5,
        6,
        7,
        8,
    )
    assert (plan.padded_frames, plan.short_policy) == (8, "loop")


def test_skip_raises_with_what_was_needed() -> None:
    expected = r"0\.667 s \(20 frames\).*1\.000 s \(24 frames at 24 fps\)"
    with pytest.raises(VideoTooShort, match=expected) as info:
        plan_clips(cfr(20), fps_spec(short_policy="skip"), seed=0)
    error = info.value
    assert (error.needed_frames, error.had_frames, error.reason) == (24, 20, "too_short")
    assert info.value.needed_s == pytest.approx(1.0) and info.value.had_s == pytest.approx(2 / 3)


def test_exactly_one_window_is_long_enough() -> None:
    plan = only(plan_clips(cfr(30), fps_spec(short_policy="skip"), seed=0))
    assert plan.frame_indices[-1] == 28 and plan.short_policy == POLICY_NONE


# ---------------------------------------------------------------- uniform sampling


def test_uniform_spreads_over_the_whole_video() -> None:
    plan = only(plan_clips(cfr(900), uniform_spec(16), seed=0))
    assert plan.frame_indices == (
        0,
        60,
        120,
        180,
        240,
        300,
        360,
        420,
        479,
        539,
        599,
        659,
        719,
        779,
        839,
        899,
    )
    assert only(plan_clips(cfr(10), uniform_spec(4), seed=0)).frame_indices == (0, 3, 6, 9)
    assert only(plan_clips(cfr(10), uniform_spec(1), seed=0)).frame_indices == (4,)
    assert only(plan_clips(cfr(8), uniform_spec(8), seed=0)).frame_indices == tuple(range(8))


def test_uniform_uses_timestamps_not_counts() -> None:
    # 10 frames bunched in the first second, 2 frames late: targets 0, 1, 2, 3 s
    pts = [i * 0.1 for i in range(10)] + [2.05, 3.0]
    assert only(plan_clips(pts, uniform_spec(4), seed=0)).frame_indices == (0, 9, 10, 11)


@pytest.mark.parametrize(
    "policy,expected",
    [
        ("pad_last", (0, 1, 2, 3, 4, 4, 4, 4)),
        ("loop", (0, 1, 2, 3, 4, 0, 1, 2)),
    ],
)
def test_uniform_too_short(policy: str, expected: tuple[int, ...]) -> None:
    plan = only(plan_clips(cfr(5), uniform_spec(8, short_policy=policy), seed=0))
    assert (plan.frame_indices, plan.padded_frames, plan.short_policy) == (expected, 3, policy)


def test_uniform_too_short_skip() -> None:
    with pytest.raises(VideoTooShort, match="5 frames but uniform sampling needs 8"):
        plan_clips(cfr(5), uniform_spec(8, short_policy="skip"), seed=0)


# ---------------------------------------------------------------- helpers and validation


def test_timestamp_helpers() -> None:
    pts = cfr(4)
    assert [frame_shown_at(pts, t) for t in (-1.0, 0.0, 0.0333, 1 / 30, 5.0)] == [0, 0, 0, 1, 3]
    assert [nearest_frame(pts, t) for t in (-1.0, 0.016, 0.02, 1 / 60, 9.0)] == [0, 0, 1, 0, 3]
    assert video_duration_s(pts) == pytest.approx(4 / 30)
    assert video_duration_s([2.0]) == 0.0


@pytest.mark.parametrize(
    "pts,message",
    [
        ([], "empty"),
        ([0.0, 0.2, 0.1], r"pts_s\[2\] = 0.1 < pts_s\[1\] = 0.2"),
        ([0.0, float("nan")], r"pts_s\[1\] = nan"),
    ],
)
def test_bad_pts_are_named(pts: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_clips(pts, fps_spec(), seed=0)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: fps_spec(fps=None), r"field 'fps' = None"),
        (lambda: fps_spec(fps=-1.0), r"field 'fps' = -1.0"),
        (lambda: fps_spec(frames=0), r"field 'frames' = 0"),
        (lambda: fps_spec(short_policy="wrap"), r"field 'short_policy' = 'wrap'.*pad_last"),
        (lambda: fps_spec(start="middle"), r"field 'start' = 'middle'"),
        (lambda: fps_spec(clips_per_video=0), r"field 'clips_per_video' = 0"),
        (lambda: uniform_spec(4, clips_per_video=2), r"field 'clips_per_video' = 2"),
        (
            lambda: dataclasses.replace(uniform_spec(4), sampling="dense"),
            r"field 'sampling' = 'dense'",
        ),
    ],
)
def test_bad_specs_are_refused_when_made(make, message: str) -> None:
    """A ClipSpec validates itself once, at construction: no bad spec reaches plan_clips."""
    with pytest.raises(ConfigError, match=message):
        make()


def test_seed_must_be_a_non_negative_int() -> None:
    with pytest.raises(ValueError, match="seed = '7'"):
        plan_clips(cfr(100), fps_spec(), seed="7")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed = -1"):
        plan_clips(cfr(100), fps_spec(), seed=-1)
    big = int("f" * 64, 16)  # a whole sha256 is a fine seed
    assert plan_clips(cfr(300), fps_spec(start="random"), seed=big) == plan_clips(
        cfr(300), fps_spec(start="random"), seed=big
    )


# ---------------------------------------------------------------- invariants


@st.composite
def videos(draw) -> list[float]:
    gaps = draw(st.lists(st.floats(0.002, 0.2), min_size=0, max_size=300))
    start = draw(st.floats(0.0, 100.0))
    pts = [start]
    for gap in gaps:
        pts.append(pts[-1] + gap)
    return pts


@st.composite
def specs(draw) -> ClipSpec:
    sampling = draw(st.sampled_from(["fps", "uniform"]))
    common = dict(
        frames=draw(st.integers(1, 40)), short_policy=draw(st.sampled_from(["pad_last", "loop"]))
    )
    if sampling == "uniform":
        return uniform_spec(**common)
    return fps_spec(
        fps=draw(st.floats(1.0, 60.0)),
        start=draw(st.sampled_from(["start", "center", "random"])),
        clips_per_video=draw(st.integers(1, 4)),
        **common,
    )


@settings(max_examples=300, deadline=None)
@given(pts=videos(), spec=specs(), seed=st.integers(0, 2**32))
def test_plan_invariants(pts: list[float], spec: ClipSpec, seed: int) -> None:
    plans = plan_clips(pts, spec, seed=seed)
    assert plans == plan_clips(pts, spec, seed=seed)  # deterministic for a seed
    short = plans[0].short_policy != POLICY_NONE
    assert len(plans) == (1 if short else spec.clips_per_video)
    for clip_index, plan in enumerate(plans):
        assert plan.clip_index == clip_index
        assert len(plan.frame_indices) == spec.frames == len(plan.timestamps_s)
        assert all(0 <= i < len(pts) for i in plan.frame_indices)
        assert plan.timestamps_s == tuple(pts[i] for i in plan.frame_indices)
        if short and spec.sampling == "uniform":
            assert plan.padded_frames == spec.frames - len(pts)
        assert 0 <= plan.padded_frames <= spec.frames
        if not short:
            assert list(plan.frame_indices) == sorted(plan.frame_indices)
            assert plan.short_policy == POLICY_NONE and plan.padded_frames == 0
        if short and spec.short_policy == "pad_last":
            assert list(plan.frame_indices) == sorted(plan.frame_indices)
    if not short and spec.sampling == "uniform" and spec.frames > 1:
        assert plans[0].frame_indices[0] == 0 and plans[0].frame_indices[-1] == len(pts) - 1
    if not short and spec.sampling == "fps":
        frame_s = video_duration_s(pts) - (pts[-1] - pts[0])
        for plan in plans:  # the window fits inside the video
            assert plan.timestamps_s[0] + (spec.frames - 1) / spec.fps <= pts[-1] + frame_s + 1e-6
