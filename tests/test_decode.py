"""Readers: probe, exact frame identity (the frame-index code painted by synthetic.py),
rotation, variable frame rate, decord/PyAV agreement, resize, bad files and seeking."""

from __future__ import annotations

import dataclasses
import itertools
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np
import pytest
from vfcache.pipelines.decode import (
    VideoInfo,
    VideoReadError,
    _decord_source,
    _pyav_source,
    decode_all_then_pick,
    decode_floor,
    plan_decode_runs,
    probe_video,
    read_frames,
)
from vfcache.pipelines.decode._frame_fit import CropBox, coded_box, crop_box, displayed
from vfcache.pipelines.decode.frames import plan_clips
from vfcache.pipelines.sources.synthetic import (
    VideoTruth,
    make_video,
    paint_frames,
    read_code,
    truncate_copy,
    write_not_a_video,
)

from vfcache.config import ClipSpec

READERS = ["pyav", "decord"]
CLIP_24 = ClipSpec(
    name="t", frames=24, sampling="fps", fps=24.0, height=64, width=64, start="center"
)
UNIFORM_16 = ClipSpec(name="t", frames=16, sampling="uniform", height=64, width=64)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Callable[..., tuple[Path, VideoTruth]]:
    """make(name, **make_video kwargs) -> (path, truth), each video written once per module."""
    folder = tmp_path_factory.mktemp("videos")
    made: dict[str, tuple[Path, VideoTruth]] = {}

    def make(name: str, **kwargs) -> tuple[Path, VideoTruth]:
        if name not in made:
            options = dict(
                width=160, height=96, num_frames=60, fps=30, codec="h264", seed=1, gop=15
            )
            options.update(kwargs)
            path = folder / name
            made[name] = (path, make_video(path, **options))
        return made[name]

    return make


def codes(clip: np.ndarray) -> list[int]:
    return [read_code(frame) for frame in clip]


def decoded_keyframes(path: Path) -> tuple[int, ...]:
    with av.open(str(path)) as container:
        flags = [frame.key_frame for frame in container.decode(video=0)]
    return tuple(i for i, key in enumerate(flags) if key)


CODECS = [("h264.mp4", "h264"), ("mpeg4.avi", "mpeg4"), ("vp9.webm", "vp9"), ("hevc.mkv", "hevc")]


# ---------------------------------------------------------------- probe


@pytest.mark.parametrize("name,codec", CODECS)
def test_probe_matches_what_was_written(video, name: str, codec: str) -> None:
    path, truth = video(name, codec=codec)
    info = probe_video(path)
    assert (info.codec, info.width, info.height, info.rotation) == (codec, 160, 96, 0)
    assert info.num_frames == truth.num_frames == 60
    assert info.pts_s == pytest.approx(truth.pts_s, abs=1e-9)
    assert info.fps == pytest.approx(30.0) and info.duration_s == pytest.approx(2.0, abs=0.002)
    assert info.keyframe_indices == decoded_keyframes(path)
    assert info.keyframe_indices[:2] == (0, 15)


# ---------------------------------------------------------------- frame identity


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("name,codec", CODECS)
def test_clip_frames_are_the_planned_frames(video, name: str, codec: str, reader: str) -> None:
    path, _ = video(name, codec=codec)
    info = probe_video(path)
    for spec in (CLIP_24, dataclasses.replace(CLIP_24, start="start"), UNIFORM_16):
        plan = plan_clips(info.pts_s, spec, seed=0)[0]
        clip = read_frames(path, plan.frame_indices, info=info, height=64, width=64, reader=reader)
        assert clip.shape == (spec.frames, 64, 64, 3) and clip.dtype == np.uint8
        assert codes(clip) == list(plan.frame_indices)


@pytest.mark.parametrize("reader", READERS)
def test_any_order_and_repeats(video, reader: str) -> None:
    path, _ = video("h264.mp4", codec="h264")
    info = probe_video(path)
    wanted = [50, 3, 3, 0, 59, 17, 50, 16]
    clip = read_frames(path, wanted, info=info, height=48, width=48, reader=reader)
    assert codes(clip) == wanted
    assert np.array_equal(clip[1], clip[2]) and np.array_equal(clip[0], clip[6])


def test_empty_index_list_gives_an_empty_clip(video) -> None:
    path, _ = video("h264.mp4", codec="h264")
    clip = read_frames(path, [], info=probe_video(path), height=32, width=40)
    assert clip.shape == (0, 32, 40, 3)


@pytest.mark.parametrize("reader", READERS)
def test_ntsc_frame_rate(video, reader: str) -> None:
    path, _ = video("ntsc.mp4", fps=Fraction(30000, 1001), num_frames=90)
    info = probe_video(path)
    assert info.fps == pytest.approx(30000 / 1001, rel=1e-9)
    plan = plan_clips(info.pts_s, dataclasses.replace(CLIP_24, start="start"), seed=0)[0]
    assert plan.frame_indices[:8] == (0, 1, 2, 3, 4, 6, 7, 8)
    clip = read_frames(path, plan.frame_indices, info=info, height=64, width=64, reader=reader)
    assert codes(clip) == list(plan.frame_indices)


VFR_PTS = tuple(round(t, 4) for t in np.cumsum([0.0] + [0.02, 0.05, 0.033, 0.1, 0.011] * 12))


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("name,codec", [("vfr.mp4", "h264"), ("vfr.webm", "vp9")])
def test_variable_frame_rate(video, name: str, codec: str, reader: str) -> None:
    path, truth = video(name, codec=codec, num_frames=len(VFR_PTS), pts_s=VFR_PTS)
    info = probe_video(path)
    assert info.pts_s == pytest.approx(truth.pts_s, abs=1e-9)
    assert info.pts_s == pytest.approx(VFR_PTS, abs=6e-4)  # webm keeps milliseconds
    for spec in (dataclasses.replace(CLIP_24, fps=10.0, frames=12), UNIFORM_16):
        plan = plan_clips(info.pts_s, spec, seed=0)[0]
        clip = read_frames(path, plan.frame_indices, info=info, height=64, width=64, reader=reader)
        assert codes(clip) == list(plan.frame_indices)


# ---------------------------------------------------------------- orientation

ROTATED = [
    ("r90.mp4", 90),
    ("r180.mp4", 180),
    ("r270.mp4", 270),
    ("r90.mkv", 90),
    ("r180.mkv", 180),
    ("r270.webm", 270),
]


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("name,rotation", ROTATED)
def test_rotation_is_applied(video, name: str, rotation: int, reader: str) -> None:
    codec = "vp9" if name.endswith(".webm") else "h264"
    path, _ = video(name, codec=codec, rotation_deg=rotation)
    info = probe_video(path)
    assert (info.rotation, info.width, info.height) == (rotation, 160, 96)  # displayed
    wanted = [0, 7, 31, 59]
    clip = read_frames(path, wanted, info=info, height=60, width=100, reader=reader)
    assert clip.shape == (4, 60, 100, 3)
    assert codes(clip) == wanted  # read_code raises when the picture is not upright


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("rotation", [0, 90])
def test_portrait_video(video, rotation: int, reader: str) -> None:
    path, _ = video(f"portrait{rotation}.mp4", width=96, height=160, rotation_deg=rotation)
    info = probe_video(path)
    assert (info.width, info.height) == (96, 160)
    for resize in ("short_side_crop", "squash"):
        clip = read_frames(
            path, [2, 40], info=info, height=120, width=72, resize=resize, reader=reader
        )
        assert clip.shape == (2, 120, 72, 3) and codes(clip) == [2, 40]


# ---------------------------------------------------------------- readers agree

AGREEMENT = [
    ("h264.mp4", {}),
    ("mpeg4.avi", {"codec": "mpeg4"}),
    ("vp9.webm", {"codec": "vp9"}),
    ("r90.mp4", {"rotation_deg": 90}),
    ("r90.mkv", {"rotation_deg": 90}),
    ("r180.mp4", {"rotation_deg": 180}),
    ("odd.mp4", {"width": 202, "height": 118}),
    ("wide.mp4", {"width": 640, "height": 360}),
]


@pytest.mark.parametrize("name,options", AGREEMENT)
def test_readers_give_the_same_frames_and_nearly_the_same_pixels(
    video, name: str, options: dict
) -> None:
    """PyAV and decode-all resize the decoded YUV frame: identical. decord only gives RGB,
    which is converted back to the source's YUV before the same resize: the same frames,
    pixels within a few levels (measured: mean 1.0-1.6, 99th percentile <= 4 at 640x360
    and up, <= 25 on 160x96 frames full of sharp grain; the rest is RGB clipping)."""
    path, _ = video(name, **options)
    info = probe_video(path)
    wanted = [45, 1, 2, 30, 30, 59]
    for resize in ("short_side_crop", "squash"):
        size = dict(info=info, height=56, width=80, resize=resize)
        pyav = read_frames(path, wanted, **size)
        assert np.array_equal(pyav, decode_all_then_pick(path, wanted, **size))
        decord = read_frames(path, wanted, **size, reader="decord")
        assert codes(decord) == codes(pyav) == wanted
        diff = np.abs(pyav.astype(int) - decord)
        assert diff.mean() < 2.0
        assert np.percentile(diff, 99) <= (6 if options.get("width", 0) >= 640 else 30)


@pytest.mark.parametrize(
    "name,codec,reliable", [("h264.mp4", "h264", True), ("hevc.mkv", "hevc", False)]
)
def test_decord_seeks_only_where_its_keyframe_index_is_right(
    video, name: str, codec: str, reliable: bool
) -> None:
    """x265 writes open GOPs: decord counts keyframes in decode order (13, 28, ... instead
    of 15, 30, ...), so its seeks would return wrong frames; it then reads sequentially."""
    import decord

    path, _ = video(name, codec=codec)
    info = probe_video(path)
    reader = decord.VideoReader(str(path))
    assert _decord_source._seeks_are_reliable(reader, set(info.keyframe_indices)) is reliable
    wanted = [16, 31, 47]
    clip = read_frames(path, wanted, info=info, height=64, width=64, reader="decord")
    assert codes(clip) == wanted


def test_decoder_threads_do_not_change_pixels(video) -> None:
    path, _ = video("h264.mp4")
    info = probe_video(path)
    one = read_frames(path, [5, 40, 41, 58], info=info, height=64, width=64, decoder_threads=1)
    two = read_frames(path, [5, 40, 41, 58], info=info, height=64, width=64, decoder_threads=2)
    assert codes(two) == [5, 40, 41, 58] and np.array_equal(one, two)


# ---------------------------------------------------------------- resize


@pytest.mark.parametrize("resize", ["short_side_crop", "squash"])
@pytest.mark.parametrize("size", [(64, 64), (50, 70), (70, 50), (200, 300)])
def test_resize_modes_give_the_requested_shape(video, resize: str, size: tuple[int, int]) -> None:
    path, _ = video("h264.mp4")
    info = probe_video(path)
    clip = read_frames(path, [3, 33], info=info, height=size[0], width=size[1], resize=resize)
    assert clip.shape == (2, *size, 3) and codes(clip) == [3, 33]


def test_crop_box_geometry() -> None:
    crop = "short_side_crop"
    assert crop_box(96, 160, height=112, width=112, resize=crop) == CropBox(0, 32, 96, 96)
    assert crop_box(720, 1280, height=224, width=224, resize=crop) == CropBox(0, 280, 720, 720)
    assert crop_box(1280, 720, height=224, width=224, resize=crop) == CropBox(280, 0, 720, 720)
    assert crop_box(96, 160, height=50, width=100, resize=crop) == CropBox(8, 0, 80, 160)
    assert crop_box(96, 160, height=50, width=100, resize="squash") == CropBox(0, 0, 96, 160)
    with pytest.raises(ValueError, match="resize = 'stretch'"):
        crop_box(96, 160, height=50, width=100, resize="stretch")


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_coded_box_is_the_region_that_rotates_into_the_box(rotation: int) -> None:
    coded_h, coded_w = 6, 10
    rows, cols = np.indices((coded_h, coded_w))
    box = CropBox(1, 2, 3, 2)
    region = coded_box(box, coded_h, coded_w, rotation)
    for grid in (rows, cols):
        shown = displayed(grid, rotation)[
            box.top : box.top + box.height, box.left : box.left + box.width
        ]
        kept = displayed(
            grid[region.top : region.top + region.height, region.left : region.left + region.width],
            rotation,
        )
        assert np.array_equal(shown, kept)


def test_short_side_crop_keeps_the_centre(video) -> None:
    path, _ = video("h264.mp4")
    info = probe_video(path)
    crop = read_frames(path, [10], info=info, height=96, width=96)[0]  # no resize: a pure crop
    with av.open(str(path)) as container:
        frame = next(itertools.islice(container.decode(video=0), 10, None))
    assert np.array_equal(crop, frame.to_ndarray(format="rgb24")[:, 32:128])


# ---------------------------------------------------------------- bad files


def _mp4_without_faststart(path: Path, num_frames: int = 30) -> None:
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for pixels in paint_frames(160, 96, num_frames, seed=2):
            output.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        output.mux(stream.encode(None))


def _audio_file(path: Path, with_empty_video: bool = False) -> None:
    with av.open(str(path), "w") as output:
        if with_empty_video:
            video_stream = output.add_stream("mpeg4", rate=30)
            video_stream.width, video_stream.height, video_stream.pix_fmt = 64, 48, "yuv420p"
        audio = output.add_stream("aac", rate=16000)
        for i in range(5):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 16000, i * 1024
            output.mux(audio.encode(frame))
        output.mux(audio.encode(None))


def _unknown_codec_file(path: Path) -> None:
    with av.open(str(path), "w") as output:
        stream = output.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for pixels in paint_frames(64, 48, 3, seed=1):
            output.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        output.mux(stream.encode(None))
    payload = path.read_bytes()
    assert payload.count(b"V_FFV1") == 1
    path.write_bytes(payload.replace(b"V_FFV1", b"V_QQQ1"))  # a codec id FFmpeg does not know


def _expect(path: Path, reason: str) -> VideoReadError:
    with pytest.raises(VideoReadError) as caught:
        probe_video(path)
    assert caught.value.reason == reason, str(caught.value)
    assert str(path) in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    "name,codec",
    [("h264.mp4", "h264"), ("vp9.webm", "vp9"), ("mpeg4.avi", "mpeg4"), ("hevc.mkv", "hevc")],
)
def test_truncated_files(video, tmp_path: Path, name: str, codec: str) -> None:
    path, _ = video(name, codec=codec)
    truncate_copy(path, tmp_path / name, keep_fraction=0.6)
    _expect(tmp_path / name, "truncated")


def test_truncated_mp4_with_its_index_at_the_end(tmp_path: Path) -> None:
    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    _mp4_without_faststart(whole)
    assert probe_video(whole).num_frames == 30
    truncate_copy(whole, cut, keep_fraction=0.7)
    assert "header without its index" in str(_expect(cut, "truncated"))


def test_reading_past_the_end_of_a_truncated_file(video, tmp_path: Path) -> None:
    path, _ = video("h264.mp4")
    info = probe_video(path)  # probed while whole, cut afterwards
    cut = tmp_path / "cut.mp4"
    truncate_copy(path, cut, keep_fraction=0.6)
    assert codes(read_frames(cut, [0, 5], info=info, height=48, width=48)) == [0, 5]
    with pytest.raises(VideoReadError) as caught:
        read_frames(cut, [10, 59], info=info, height=48, width=48)
    assert caught.value.reason == "truncated" and "59" in str(caught.value)


@pytest.mark.parametrize("name", ["notes.mp4", "notes.txt"])
def test_not_a_video(tmp_path: Path, name: str) -> None:
    write_not_a_video(tmp_path / name)
    _expect(tmp_path / name, "not_a_video")


def test_images_and_empty_files_are_not_videos(tmp_path: Path) -> None:
    frame = next(paint_frames(64, 48, 1, seed=0))
    with av.open(str(tmp_path / "still.png"), "w") as output:  # a PNG written by FFmpeg
        stream = output.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb24"
        output.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        output.mux(stream.encode(None))
    _expect(tmp_path / "still.png", "not_a_video")
    (tmp_path / "empty.mp4").write_bytes(b"")
    _expect(tmp_path / "empty.mp4", "not_a_video")


def test_audio_only_has_no_video_stream(tmp_path: Path) -> None:
    _audio_file(tmp_path / "sound.m4a")
    _expect(tmp_path / "sound.m4a", "no_video_stream")


def test_video_stream_without_frames(tmp_path: Path) -> None:
    _audio_file(tmp_path / "silent.mkv", with_empty_video=True)
    _expect(tmp_path / "silent.mkv", "zero_frames")


def test_unsupported_codec(tmp_path: Path) -> None:
    _unknown_codec_file(tmp_path / "odd.mkv")
    _expect(tmp_path / "odd.mkv", "unsupported_codec")


def test_read_error_reasons_are_checked() -> None:
    with pytest.raises(ValueError, match="reason = 'broken'"):
        VideoReadError("broken", "x")


def test_bad_arguments_are_named(video) -> None:
    path, _ = video("h264.mp4")
    info = probe_video(path)
    with pytest.raises(ValueError, match=r"frame_indices\[1\] = 60; the video has 60 frames"):
        read_frames(path, [0, 60], info=info, height=32, width=32)
    with pytest.raises(ValueError, match="reader = 'opencv'"):
        read_frames(path, [0], info=info, height=32, width=32, reader="opencv")
    with pytest.raises(ValueError, match="decoder_threads = 0"):
        read_frames(path, [0], info=info, height=32, width=32, decoder_threads=0)
    with pytest.raises(ValueError, match="height = 0"):
        read_frames(path, [0], info=info, height=0, width=32)


# ---------------------------------------------------------------- seeking


def test_decode_runs_plan() -> None:
    keys = (0, 30, 60, 90)
    runs = plan_decode_runs([3, 5, 40, 41, 95], keys)
    assert [(r.start_index, r.frame_indices) for r in runs] == [
        (0, (3, 5)),
        (30, (40, 41)),
        (90, (95,)),
    ]
    # seeking to 30 would skip no frame after 29: decode through
    runs = plan_decode_runs([3, 29, 31, 35, 59], keys)
    assert [(r.start_index, r.frame_indices) for r in runs] == [(0, (3, 29, 31, 35, 59))]
    runs = plan_decode_runs([3, 21, 31, 50], keys, min_skip_frames=8)  # skips 22..29
    assert [(r.start_index, r.frame_indices) for r in runs] == [(0, (3, 21)), (30, (31, 50))]
    runs = plan_decode_runs([3, 23, 31], keys, min_skip_frames=8)  # would skip 24..29 only
    assert [(r.start_index, r.frame_indices) for r in runs] == [(0, (3, 23, 31))]
    runs = plan_decode_runs([1, 4, 30], (2, 30))  # frame 1 precedes every keyframe
    assert [(r.start_index, r.frame_indices) for r in runs] == [(None, (1, 4)), (30, (30,))]
    assert [(r.start_index, r.frame_indices) for r in plan_decode_runs([7, 9], ())] == [(7, (7, 9))]
    assert plan_decode_runs([], keys) == []


def _frames_from_keyframe(indices, keyframes) -> int:
    """Frames decoded when every needed frame is reached from its own keyframe."""
    return sum(i - max(k for k in keyframes if k <= i) + 1 for i in indices)


def test_uniform_sampling_on_a_long_video_seeks_instead_of_decoding_everything(video) -> None:
    path, _ = video("long.mp4", width=128, height=72, num_frames=900, gop=30)
    info = probe_video(path)
    assert info.keyframe_indices == tuple(range(0, 900, 30))
    plan = plan_clips(info.pts_s, UNIFORM_16, seed=0)[0]
    every = decode_floor(path, plan.frame_indices, info=info, skip_nonref=False)
    assert every == _frames_from_keyframe(plan.frame_indices, info.keyframe_indices)
    assert every < 16 * 30 < info.num_frames
    # non-reference B-frames before a needed frame are not decoded at all
    assert decode_floor(path, plan.frame_indices, info=info) < every
    clip = read_frames(path, plan.frame_indices, info=info, height=64, width=64)
    assert codes(clip) == list(plan.frame_indices)


def test_a_clip_decodes_from_the_keyframe_before_it(video) -> None:
    path, _ = video("long.mp4", width=128, height=72, num_frames=900, gop=30)
    info = probe_video(path)
    plan = plan_clips(info.pts_s, CLIP_24, seed=0)[0]  # centred: frames 435..463
    assert (plan.frame_indices[0], plan.frame_indices[-1]) == (435, 463)
    # one run from keyframe 420: no new seek at keyframe 450, which would skip only frame 449
    every = decode_floor(path, plan.frame_indices, info=info, skip_nonref=False)
    assert every == plan.frame_indices[-1] - 420 + 1
    assert 24 <= decode_floor(path, plan.frame_indices, info=info) < every


def test_a_seek_that_lands_late_is_retried_from_an_earlier_keyframe(video, monkeypatch) -> None:
    path, _ = video("long.mp4", width=128, height=72, num_frames=900, gop=30)
    info = probe_video(path)
    original = _pyav_source.PyAVSource._position
    calls = []

    def misleading_index(self, start_index):  # a demuxer whose index is one GOP off
        calls.append(start_index)
        if len(calls) == 1 and start_index is not None:
            start_index = start_index + 30
        return original(self, start_index)

    monkeypatch.setattr(_pyav_source.PyAVSource, "_position", misleading_index)
    clip = read_frames(path, [400, 401], info=info, height=48, width=48)
    assert codes(clip) == [400, 401]
    assert calls[:2] == [390, 360]  # landed at 420 > 400, then retried one keyframe earlier


def test_probe_info_without_keyframes_still_reads_the_right_frames(video) -> None:
    path, _ = video("long.mp4", width=128, height=72, num_frames=900, gop=30)
    info = dataclasses.replace(probe_video(path), keyframe_indices=())
    wanted = [700, 12, 455]
    assert codes(read_frames(path, wanted, info=info, height=48, width=48)) == wanted
    assert isinstance(info, VideoInfo)


@pytest.mark.parametrize("reader", READERS)
def test_a_conversion_thread_gives_the_same_frames_and_reports_final_rows_in_order(
    video, reader: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path, _ = video("h264.mp4", codec="h264")
    info = probe_video(path)
    wanted = [
        3,
        4,
        5,
        20,
        21,
        22,
        21,
        40,
        41,
        3,
    ]  # overlapping and repeated rows, out of order at the end
    plain = read_frames(path, wanted, info=info, height=48, width=48, reader=reader)
    reported: list[tuple[int, list[int]]] = []

    def on_ready(
        clip: np.ndarray, final_rows: int
    ) -> None:  # rows before final_rows never change again
        reported.append((final_rows, codes(clip[:final_rows].copy())))

    with ThreadPoolExecutor(1) as worker:
        threaded = read_frames(
            path,
            wanted,
            info=info,
            height=48,
            width=48,
            reader=reader,
            on_ready=on_ready,
            worker=worker,
        )
    assert np.array_equal(threaded, plain)
    counts = [n for n, _ in reported]
    assert counts == sorted(set(counts)) and counts[-1] == len(wanted)
    assert all(seen == wanted[:n] for n, seen in reported)
    assert counts[0] < len(wanted)  # rows became final while later frames still decoded


def test_a_frame_that_fails_on_the_conversion_thread_raises_in_the_caller(
    video, monkeypatch
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import vfcache.pipelines.decode as decode_module

    path, _ = video("h264.mp4", codec="h264")
    info = probe_video(path)
    real_fit = decode_module._fit

    def fit_failing_on_frame_30(fitter, frame, rotation_applied, info, out, path, index):
        if index == 30:
            raise VideoReadError("decode_error", "injected", path=path)
        return real_fit(fitter, frame, rotation_applied, info, out, path, index)

    monkeypatch.setattr(decode_module, "_fit", fit_failing_on_frame_30)
    with ThreadPoolExecutor(1) as worker, pytest.raises(VideoReadError, match="injected"):
        read_frames(path, list(range(20, 59)), info=info, height=32, width=32, worker=worker)
