"""verify --decode: clips that look like a decoder's concealment are named, real clips are not.

Concealed frames are made the way a decoder shows lost references (chroma planes of zeros, a
flat mid-grey); the clips the checked readers give on the intra-refresh fixtures, and the
sample dataset's cache, raise no alarm.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from cache_fixtures import VideoPlan, build_cache, sample_cache_root, tiny_spec
from click.testing import CliRunner
from real_world_videos import SEEK_FIXTURES, write_fixture
from vfcache.cache_tools.concealment import concealment_problem
from vfcache.cache_tools.verify import verify_cache
from vfcache.pipelines.decode import probe_video, read_frames

from vfcache.cli import cli


def _zero_chroma(path: Path, count: int) -> np.ndarray:
    """The video's first frames with their chroma planes zeroed, converted by FFmpeg as a
    decoder's zero-initialised reference buffers show up (the reader's green clips before it
    checked the corrupt flag: U = V = 0 in every pixel, the luma left)."""
    frames = []
    with av.open(str(path)) as container:
        for frame, _ in zip(container.decode(video=0), range(count)):
            planes = frame.to_ndarray(format="yuv420p")  # (H * 3 / 2, W): Y, then U and V
            planes[frame.height :] = 0
            zeroed = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frames.append(zeroed.to_ndarray(format="rgb24"))
    return np.stack(frames)


@pytest.mark.parametrize("name", ["x264_intra_refresh.mp4", "x264_444_intra_refresh.mp4"])
def test_zero_chroma_frames_are_flagged_and_the_checked_reader_gives_clean_ones(tmp_path, name):
    path = write_fixture(tmp_path, next(f for f in SEEK_FIXTURES if f.name == name))
    assert concealment_problem(_zero_chroma(path, 8)).startswith("zero_chroma: frames 0-7 of 8")
    info = probe_video(path)
    for start in info.keyframe_indices:  # seeks to recovery points, checked
        clip = read_frames(path, list(range(start, start + 8)), info=info, height=64, width=96)
        assert concealment_problem(clip) is None


def _moving_clip(frames: int = 8) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, size=(frames, 32, 32, 3), dtype=np.uint8)


def test_fades_and_flashes_inside_a_moving_clip_are_not_concealment():
    clip = _moving_clip()
    clip[2:4] = 0  # a fade through black
    clip[5] = 255  # a flash
    assert concealment_problem(clip) is None


@pytest.mark.parametrize(
    ("colour", "kind"),
    [
        ((128, 128, 128), "flat_grey"),
        ((131, 131, 131), "flat_grey"),
        ((0, 0, 0), "flat_clip"),
        ((20, 200, 40), "flat_clip"),
    ],
)
def test_flat_frames(colour, kind):
    clip = np.empty((6, 32, 32, 3), dtype=np.uint8)
    clip[:] = colour
    if kind == "flat_grey":  # grey frames count even inside a moving clip
        clip[:3] = _moving_clip(3)
    assert concealment_problem(clip).startswith(kind)


def test_a_clip_of_the_wrong_rank_is_refused():
    with pytest.raises(ValueError, match="expected a"):
        concealment_problem(np.zeros((4, 8, 8), dtype=np.uint8))


def test_verify_decode_names_each_concealed_clip(tmp_path):
    plans = [
        VideoPlan("d", label, "g", f"v{label}{i}", clips=2) for label in (0, 1) for i in range(2)
    ]
    spec = tiny_spec()
    green = np.zeros(spec.clip_shape, dtype=np.uint8)
    green[..., 1] = np.arange(spec.clip_shape[2], dtype=np.uint8)[None, None, :] * 4 + 100

    def pixels(plan: VideoPlan, clip_index: int) -> np.ndarray:
        if (plan.group, clip_index) == ("v11", 1):
            return green
        return np.random.default_rng(clip_index).integers(
            0, 256, size=spec.clip_shape, dtype=np.uint8
        )

    cache = build_cache(tmp_path / "cache", plans, spec=spec, clip_pixels=pixels)
    assert verify_cache(cache.cache_dir, progress=False).ok  # the bytes are intact
    report = verify_cache(cache.cache_dir, progress=False, decode=True)
    assert [c.reason.split(":")[0] for c in report.bad_clips] == ["zero_chroma"]
    victim = next(c for c in cache.clips if c.group == "v11" and c.clip_index == 1)
    assert report.bad_clips[0].clip_id == victim.clip_id


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory) -> Path:
    return sample_cache_root(tmp_path_factory, "concealment_sample_root")


def test_verify_decode_raises_no_alarm_on_the_sample_dataset(sample_root):
    result = CliRunner().invoke(
        cli, ["--root", str(sample_root), "--no-progress", "verify", "sample", "--decode"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "verify passed"
