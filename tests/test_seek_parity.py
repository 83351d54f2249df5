"""Seek parity: the frames a clip gets after seeking equal, bit for bit, the same frames
decoded from the start of the stream, for both readers, wherever the clip starts, on streams
whose keyframe flags are not all clean random-access points (open GOPs, intra refresh in
High and High 4:4:4, HEVC CRA, MPEG-2, 10-bit). A frame FFmpeg cannot reconstruct even from
the stream start fails the read with `corrupt_frames`, never reaches a clip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from real_world_videos import SEEK_FIXTURES, cut_from_packet, keyframe_packets, write_fixture
from vfcache.pipelines.decode import VideoReadError, probe_video, read_frames

SIZE = dict(height=64, width=96)
READERS = ("pyav", "decord")


@pytest.fixture(scope="module")
def seek_videos(tmp_path_factory) -> dict[str, tuple[Path, object, dict[str, np.ndarray]]]:
    """name -> (path, probe info, reader -> every frame decoded from the stream start)."""
    folder = tmp_path_factory.mktemp("seek_videos")
    videos = {}
    for fixture in SEEK_FIXTURES:
        path = write_fixture(folder, fixture)
        info = probe_video(path)
        assert len(info.keyframe_indices) >= 3, f"{fixture.name}: {info.keyframe_indices}"
        every = list(range(info.num_frames))
        # one run from frame 0: no seek, the reference decode from the start
        from_start = {
            reader: read_frames(path, every, info=info, reader=reader, **SIZE) for reader in READERS
        }
        videos[fixture.name] = (path, info, from_start)
    return videos


@pytest.mark.slow
@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("name", [fixture.name for fixture in SEEK_FIXTURES])
def test_clips_after_keyframes_equal_the_decode_from_the_start(seek_videos, name, reader) -> None:
    """Every 8-frame clip that starts on or just after a keyframe, where a bad seek shows."""
    path, info, from_start = seek_videos[name]
    starts = sorted(
        {
            min(k + offset, info.num_frames - 8)
            for k in info.keyframe_indices
            for offset in (0, 1, 5)
        }
    )
    for start in starts:
        wanted = list(range(start, start + 8))
        clip = read_frames(path, wanted, info=info, reader=reader, **SIZE)
        assert np.array_equal(clip, from_start[reader][wanted]), f"{name} {reader} frames {wanted}"


@pytest.mark.slow
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_frame_selection_equals_the_decode_from_the_start(seek_videos, data) -> None:
    name = data.draw(st.sampled_from(sorted(seek_videos)), label="video")
    reader = data.draw(st.sampled_from(READERS), label="reader")
    path, info, from_start = seek_videos[name]
    start = data.draw(st.integers(0, info.num_frames - 1), label="start")
    stride = data.draw(st.integers(1, 12), label="stride")
    count = data.draw(st.integers(1, 8), label="count")
    wanted = [i for i in range(start, info.num_frames, stride)][:count]
    clip = read_frames(path, wanted, info=info, reader=reader, **SIZE)
    assert np.array_equal(clip, from_start[reader][wanted])


@pytest.fixture(scope="module")
def cut_mid_refresh(tmp_path_factory) -> Path:
    """An intra-refresh stream recorded from its second recovery point on: its first frames
    are incomplete until the refresh wave has passed, whatever the reader does."""
    folder = tmp_path_factory.mktemp("cut")
    whole = write_fixture(
        folder, next(f for f in SEEK_FIXTURES if f.name == "x264_intra_refresh.mp4")
    )
    cut = folder / "cut_mid_refresh.mp4"
    cut_from_packet(whole, cut, keyframe_packets(whole)[1])
    return cut


@pytest.mark.parametrize("reader", READERS)
def test_frames_corrupt_from_the_stream_start_fail_the_read(cut_mid_refresh, reader) -> None:
    info = probe_video(cut_mid_refresh)
    with pytest.raises(VideoReadError) as caught:
        read_frames(cut_mid_refresh, [0, 1, 2], info=info, reader=reader, **SIZE)
    assert caught.value.reason == "corrupt_frames"
    late = list(range(info.num_frames - 8, info.num_frames))
    if reader == "pyav":  # the frames after the refresh wave are whole
        assert read_frames(cut_mid_refresh, late, info=info, reader=reader, **SIZE).shape == (
            8,
            64,
            96,
            3,
        )
    else:  # decord drops the broken frames and would hand out shifted ones after them
        with pytest.raises(VideoReadError, match="use the pyav reader") as caught:
            read_frames(cut_mid_refresh, late, info=info, reader=reader, **SIZE)
        assert caught.value.reason == "corrupt_frames"
