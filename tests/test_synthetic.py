"""Synthetic media: the frame-index code, the painted content and PyAV encoding round trips."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from vfcache.pipelines.sources.synthetic import (
    display_rotation_deg,
    encode_video,
    make_video,
    paint_code,
    paint_frames,
    read_code,
    to_display,
    truncate_copy,
    write_not_a_video,
)

SIZES = [(160, 120), (320, 180), (270, 480), (720, 404), (1280, 720), (126, 64)]


def _noise_frame(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _short_side_crop(frame: np.ndarray, size: int = 112) -> np.ndarray:
    height, width = frame.shape[:2]
    scale = size / min(height, width)
    resized = cv2.resize(
        frame,
        (max(size, round(width * scale)), max(size, round(height * scale))),
        interpolation=cv2.INTER_AREA,
    )
    y0, x0 = (resized.shape[0] - size) // 2, (resized.shape[1] - size) // 2
    return resized[y0 : y0 + size, x0 : x0 + size]


def _squash(frame: np.ndarray, size: int = 112) -> np.ndarray:
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)


def _decode(path: Path) -> tuple[list[np.ndarray], list[float], list[int]]:
    """Raw decoded frames (no rotation applied), their pts in seconds and reported rotation."""
    frames, pts_s, rotations = [], [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            pts_s.append(float(frame.pts * frame.time_base))
            rotations.append(display_rotation_deg(frame))
    return frames, pts_s, rotations


@pytest.mark.parametrize("width,height", SIZES)
@pytest.mark.parametrize("index", [0, 1, 2730, 4095])
def test_code_round_trip_raw_and_resized(width: int, height: int, index: int) -> None:
    frame = _noise_frame(width, height, seed=index)
    paint_code(frame, index)
    assert read_code(frame) == index
    assert read_code(_short_side_crop(frame)) == index
    assert read_code(_squash(frame)) == index


@pytest.mark.parametrize("k", [1, 2, 3])
def test_code_refuses_a_frame_that_is_not_upright(k: int) -> None:
    frame = _noise_frame(320, 240)
    paint_code(frame, 77)
    rotated = np.ascontiguousarray(np.rot90(frame, k=k))
    with pytest.raises(ValueError, match=f"np.rot90\\(frame, k={4 - k}\\)"):
        read_code(rotated)
    assert read_code(np.ascontiguousarray(np.rot90(rotated, k=4 - k))) == 77


def test_code_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="no frame-index code"):
        read_code(_noise_frame(320, 240))
    with pytest.raises(ValueError, match="4096"):
        paint_code(_noise_frame(320, 240), 4096)
    with pytest.raises(ValueError, match="too small"):
        paint_code(_noise_frame(64, 32), 1)
    with pytest.raises(ValueError, match="uint8"):
        read_code(np.zeros((64, 64, 3), np.float32))
    frame = _noise_frame(320, 240)
    paint_code(frame, 5)
    frame[100:140, 140:180] = 128  # grey over the inner cells
    with pytest.raises(ValueError, match="ambiguous"):
        read_code(frame)


def test_paint_frames_is_deterministic_and_coded() -> None:
    first = list(paint_frames(192, 144, 6, seed=7, artifact="warp"))
    again = list(paint_frames(192, 144, 6, seed=7, artifact="warp"))
    other = list(paint_frames(192, 144, 6, seed=8, artifact="warp"))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])
    assert [read_code(f) for f in first] == list(range(6))
    assert first[0].shape == (144, 192, 3) and first[0].dtype == np.uint8


def _top_band(frame: np.ndarray) -> np.ndarray:
    """Grey levels of the top fifth of a frame, clear of the code grid (central 60%)."""
    gray = frame.astype(np.float32).mean(axis=2)
    return gray[: gray.shape[0] // 5]


def test_artifacts_change_what_a_detector_would_see() -> None:
    kw = dict(width=320, height=240, num_frames=12, seed=3, scene="street")
    real = list(paint_frames(**kw))
    smooth = list(paint_frames(**kw, artifact="smooth"))
    flicker = list(paint_frames(**kw, artifact="flicker"))
    warp = list(paint_frames(**kw, artifact="warp"))

    def detail(frames):
        return np.mean([cv2.Laplacian(_top_band(f), cv2.CV_32F).var() for f in frames])

    def brightness_spread(frames):
        means = np.array([_top_band(f).mean() for f in frames])
        return means.std() / means.mean()

    assert detail(smooth) < 0.1 * detail(real)
    assert brightness_spread(flicker) > 0.1 > 5 * brightness_spread(real)

    def structure_match(frames):  # brightness-invariant, noise blurred away
        def blurred(frame):
            return cv2.GaussianBlur(_top_band(frame), (0, 0), 2).ravel()

        return np.mean([np.corrcoef(blurred(f), blurred(r))[0, 1] for f, r in zip(frames, real)])

    # same seed, same scene: flicker keeps the picture's structure, warp bends it
    assert structure_match(flicker) > 0.98
    assert structure_match(warp) < 0.9


@pytest.mark.parametrize("width,height", [(320, 240), (720, 404)])
def test_real_sensor_noise_survives_the_clip_resize(width: int, height: int) -> None:
    """At 112 px the real videos keep clearly more fine noise than any fake (no codec here)."""

    def fine_noise(artifact):
        frames = paint_frames(width, height, 4, seed=4, artifact=artifact, scene="studio")
        residuals = []
        for frame in frames:
            band = _top_band(_short_side_crop(frame))
            residuals.append((band - cv2.medianBlur(band, 3)).std())
        return np.mean(residuals)

    real = fine_noise(None)
    assert all(real > 1.4 * fine_noise(artifact) for artifact in ("flicker", "smooth", "warp"))


CODECS = [
    ("h264", ".mp4"),
    ("mpeg4", ".avi"),
    ("vp9", ".webm"),
    ("hevc", ".mkv"),
    ("h264", ".mkv"),
    ("mpeg4", ".mp4"),
]


@pytest.mark.parametrize("codec,suffix", CODECS)
def test_codec_round_trip(tmp_path: Path, codec: str, suffix: str) -> None:
    path = tmp_path / f"clip{suffix}"
    truth = make_video(
        path,
        width=192,
        height=144,
        num_frames=20,
        fps=25,
        codec=codec,
        artifact="flicker",
        seed=1,
        gop=8,
    )
    frames, pts_s, rotations = _decode(path)
    assert len(frames) == truth.num_frames == 20
    assert [read_code(f) for f in frames] == list(truth.frame_codes)
    assert [read_code(_short_side_crop(f)) for f in frames] == list(truth.frame_codes)
    assert [read_code(_squash(f)) for f in frames] == list(truth.frame_codes)
    assert np.allclose(pts_s, truth.pts_s, atol=1e-3) and np.allclose(pts_s, np.arange(20) / 25)
    assert rotations == [0] * 20
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == codec


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_ntsc_frame_rate_timestamps(tmp_path: Path, suffix: str) -> None:
    rate = Fraction(30000, 1001)
    truth = make_video(
        tmp_path / f"ntsc{suffix}",
        width=160,
        height=120,
        num_frames=40,
        fps=rate,
        codec="h264",
        seed=2,
    )
    assert truth.fps == pytest.approx(29.97002997)
    _, pts_s, _ = _decode(tmp_path / f"ntsc{suffix}")
    expected = [float(i * Fraction(1001, 30000)) for i in range(40)]
    assert np.allclose(pts_s, expected, atol=1e-3)
    assert pts_s == pytest.approx(list(truth.pts_s), abs=1e-9)  # truth is what is stored
    with av.open(str(tmp_path / f"ntsc{suffix}")) as container:
        assert container.streams.video[0].average_rate == rate


@pytest.mark.parametrize(
    "codec,suffix", [("h264", ".mp4"), ("h264", ".mkv"), ("vp9", ".webm"), ("mpeg4", ".mp4")]
)
def test_variable_frame_rate_pts(tmp_path: Path, codec: str, suffix: str) -> None:
    gaps = np.random.default_rng(4).choice([1 / 30, 1 / 20, 1 / 12, 0.1234567], 29)
    written = np.concatenate([[0.0], np.cumsum(gaps)]).tolist()
    path = tmp_path / f"vfr{suffix}"
    truth = make_video(
        path, width=160, height=120, num_frames=30, fps=25, codec=codec, seed=5, pts_s=written
    )
    frames, pts_s, _ = _decode(path)
    assert truth.variable_frame_rate
    assert np.abs(np.array(pts_s) - written).max() <= 1e-3
    assert np.abs(np.array(truth.pts_s) - written).max() <= 1e-3
    assert [read_code(f) for f in frames] == list(range(30))


@pytest.mark.parametrize("rotation_deg", [90, 180, 270])
@pytest.mark.parametrize("codec,suffix", [("h264", ".mp4"), ("vp9", ".webm"), ("h264", ".mkv")])
def test_rotation_metadata(tmp_path: Path, rotation_deg: int, codec: str, suffix: str) -> None:
    path = tmp_path / f"rot{suffix}"
    truth = make_video(
        path,
        width=144,
        height=256,
        num_frames=6,
        fps=24,
        codec=codec,
        seed=6,
        rotation_deg=rotation_deg,
    )
    frames, _, rotations = _decode(path)
    assert rotations == [rotation_deg] * 6
    for index, raw in enumerate(frames):
        with pytest.raises(ValueError, match="not upright"):
            read_code(raw)  # the stored pixels are not the displayed picture
        upright = to_display(raw, rotations[index])
        assert upright.shape[:2] == (truth.height, truth.width)
        assert read_code(upright) == index
        assert read_code(_short_side_crop(upright)) == index


def test_encode_rejects_bad_requests(tmp_path: Path) -> None:
    frames = [np.zeros((120, 160, 3), np.uint8)] * 2
    with pytest.raises(ValueError, match="AVI cannot carry rotation"):
        encode_video(tmp_path / "a.avi", frames, codec="mpeg4", fps=25, rotation_deg=90)
    with pytest.raises(ValueError, match="unknown video suffix"):
        encode_video(tmp_path / "a.mov2", frames, codec="h264", fps=25)
    with pytest.raises(ValueError, match="cannot go into webm"):
        encode_video(tmp_path / "a.webm", frames, codec="h264", fps=25)
    with pytest.raises(ValueError, match="rotation_deg=45"):
        encode_video(tmp_path / "a.mp4", frames, codec="h264", fps=25, rotation_deg=45)
    with pytest.raises(ValueError, match="strictly increasing"):
        encode_video(tmp_path / "a.mp4", frames, codec="h264", fps=25, pts_s=[0.1, 0.1])
    with pytest.raises(ValueError, match="must be even"):
        encode_video(tmp_path / "a.mp4", [np.zeros((121, 160, 3), np.uint8)], codec="h264", fps=25)
    with pytest.raises(ValueError, match="more frames than pts_s entries"):
        encode_video(
            tmp_path / "a.mkv", frames + frames[:1], codec="h264", fps=25, pts_s=[0.0, 0.5]
        )
    with pytest.raises(ValueError, match="got 1 frames for 2 pts_s"):
        encode_video(tmp_path / "a.mkv", frames[:1], codec="h264", fps=25, pts_s=[0.0, 0.5])
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing final, no temp left


def test_broken_file_helpers(tmp_path: Path) -> None:
    source = tmp_path / "whole.mp4"
    truth = make_video(
        source, width=320, height=240, num_frames=50, fps=25, codec="h264", seed=9, gop=10
    )
    kept = truncate_copy(source, tmp_path / "cut.mp4", keep_fraction=0.5)
    assert kept == source.stat().st_size // 2 == (tmp_path / "cut.mp4").stat().st_size
    try:
        frames, _, _ = _decode(tmp_path / "cut.mp4")
    except av.FFmpegError:
        frames = []
    assert len(frames) < truth.num_frames
    write_not_a_video(tmp_path / "fake.mp4")
    with pytest.raises(av.FFmpegError):
        av.open(str(tmp_path / "fake.mp4"))


@pytest.mark.parametrize("first_import,expect_ok", [("av", True), ("decord", False)])
def test_vp9_encoding_needs_pyav_loaded_before_decord(
    tmp_path: Path, first_import: str, expect_ok: bool
) -> None:
    """decord's bundled libvpx shadows PyAV's when decord is imported first (see synthetic)."""
    script = (
        f"import {first_import}, decord\n"
        "from vfcache.pipelines.sources.synthetic import make_video\n"
        f"make_video({str(tmp_path / 'v.webm')!r}, width=160, height=120, num_frames=3, "
        "fps=25, codec='vp9', seed=0)\n"
    )
    repo_root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(repo_root)},
    )
    assert (result.returncode == 0) == expect_ok, result.stderr[-2000:]
    if not expect_ok:
        assert "import av first" in result.stderr
