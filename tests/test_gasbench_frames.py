"""The `gasbench` clip spec gives GASBench's frames bit for bit.

The reference below is written here from the description of GASBench's decoder (issue 16 and
`shared/docs/gasbench.md` section 4): decode every frame of the best video stream in order, to
RGB with the stream's own matrix and range, turned upright; keep frames 0, step, 2 step...
(`step = max(1, round(average fps / frame_rate))`, fps 30 when unknown, 1 without a frame rate)
up to num_frames, repeat the last for a short video; crop the centre to the target's aspect
ratio and resize with cv2 INTER_LINEAR. It shares no code with `vfcache.pipelines.decode.gasbench`.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from vfcache.cache_tools.shards import ShardReader
from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import ClipRecord
from vfcache.pipelines.decode import probe_video
from vfcache.pipelines.extract import extract_clips
from vfcache.pipelines.probe import build_manifest
from vfcache.pipelines.sources.synthetic import make_video

from vfcache.config import (
    ConfigError,
    gasbench_clip_spec,
    load_clip_spec,
    parse_clip_spec,
    parse_dataset_config,
)
from vfcache.layout import DataRoot

VIDEOS = {
    "real/cam/vfr.mp4": dict(
        width=160,
        height=96,
        num_frames=30,
        fps=25,
        pts_s=tuple(round(i * 0.04 + (0.03 if i % 4 == 3 else 0.0), 3) for i in range(30)),
    ),
    "real/cam/late_start.mp4": dict(
        width=128,
        height=96,
        num_frames=30,
        fps=25,
        pts_s=tuple(round(1.0 + i * 0.04, 3) for i in range(30)),
    ),
    "fake/gen/rotated.mp4": dict(width=96, height=160, num_frames=24, fps=30, rotation_deg=90),
    "fake/gen/short.mp4": dict(width=112, height=80, num_frames=5, fps=24),
    "fake/gen/odd_size.mkv": dict(width=150, height=98, num_frames=40, fps=30),
}


def reference_frames(
    path: Path, *, num_frames: int, frame_rate, height: int, width: int
) -> np.ndarray:
    rotation_cw = probe_video(path).rotation
    with av.open(str(path)) as container:
        stream = container.streams.best("video")
        rate = stream.average_rate
        fps = float(rate) if rate else 30.0
        decoded = []
        for frame in container.decode(stream):
            rgb = frame.reformat(
                format="rgb24", src_colorspace=frame.colorspace, src_color_range=frame.color_range
            ).to_ndarray()
            decoded.append(np.rot90(rgb, k=-(rotation_cw // 90)))  # clockwise turns
    step = 1 if frame_rate is None else max(1, round(fps / frame_rate))
    chosen = decoded[::step][:num_frames]
    chosen = chosen + [chosen[-1]] * (num_frames - len(chosen))
    out = []
    for rgb in chosen:
        h, w = rgb.shape[:2]
        if Fraction(w, h) > Fraction(width, height):  # too wide: keep the full height
            crop_h, crop_w = h, min(w, int(round(h * width / height)))
        else:
            crop_h, crop_w = min(h, int(round(w * height / width))), w
        top, left = (h - crop_h) // 2, (w - crop_w) // 2
        out.append(
            cv2.resize(
                np.ascontiguousarray(rgb[top : top + crop_h, left : left + crop_w]),
                (width, height),
                interpolation=cv2.INTER_LINEAR,
            )
        )
    return np.stack(out)


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("gasbench_videos") / "raw"
    for number, (relpath, args) in enumerate(VIDEOS.items()):
        (raw / relpath).parent.mkdir(parents=True, exist_ok=True)
        make_video(raw / relpath, codec="h264", seed=40 + number, threads=1, **args)
    return raw


@pytest.mark.parametrize(
    "frames, frame_rate, size",
    [
        (8, None, (64, 64)),  # consecutive frames; short.mp4 is padded
        (6, 8.0, (48, 80)),  # every round(25 / 8) = 3rd frame (30 fps: 4th), a wide target
        (4, 60.0, (72, 40)),  # a frame rate above the video's: step 1; a tall target
    ],
)
def test_the_cache_holds_gasbenchs_frames(raw_dir, tmp_path, frames, frame_rate, size):
    config = parse_dataset_config(
        {"name": "gb", "kind": "local", "domain": "gb", "source": {"path": str(raw_dir)}}, "gb.yaml"
    )
    spec = gasbench_clip_spec(
        num_frames=frames, height=size[0], width=size[1], frame_rate=frame_rate
    )
    root = DataRoot(tmp_path)
    build_manifest(config, root, spec, client=None, progress=False)
    extract_clips(config, root, spec, client=None, progress=False, max_failed=0.0)
    cache = root.cache_dir("gb", spec.name)
    clips = {c.relpath: c for c in read_records(cache.clips_parquet, ClipRecord)}
    assert set(clips) == set(VIDEOS)
    for relpath, clip in clips.items():
        with ShardReader(cache.resolve_shard(clip.shard)) as reader:
            pixels = reader.read(clip.offset, clip.nbytes, clip.clip_id)
        expected = reference_frames(
            raw_dir / relpath,
            num_frames=frames,
            frame_rate=frame_rate,
            height=size[0],
            width=size[1],
        )
        np.testing.assert_array_equal(pixels, expected, err_msg=relpath)
    assert clips["fake/gen/short.mp4"].padded_frames == max(
        0, frames - len(range(0, 5, 1 if frame_rate != 8.0 else 3))
    )


def test_the_gasbench_spec_keeps_existing_spec_hashes_and_refuses_mixtures():
    # the spec hashes of existing presets (so their clip ids) are the ones main computes
    assert {
        name: load_clip_spec(name).spec_hash
        for name in ("sample_8x112", "r2plus1d_24x224", "videomae_16x224")
    } == {
        "sample_8x112": "d3144cfd4c611fd5",
        "r2plus1d_24x224": "670733052cf700f4",
        "videomae_16x224": "c90a52256c3a83f2",
    }
    spec = load_clip_spec("gasbench_16x224")
    assert (spec.frames, spec.height, spec.width, spec.sampling, spec.resize) == (
        16,
        224,
        224,
        "gasbench",
        "center_crop_linear",
    )
    base = {"name": "x", "frames": 4, "size": 64}
    for bad in (
        {"sampling": "gasbench"},
        {"sampling": "fps", "fps": 8, "resize": "center_crop_linear"},
        {"sampling": "gasbench", "resize": "center_crop_linear", "short_policy": "loop"},
    ):
        with pytest.raises(ConfigError):
            parse_clip_spec({**base, **bad}, "<t>")


def test_eval_dir_videos_scores_raw_videos_the_gasbench_way_and_caches_them(raw_dir, tmp_path):
    import json

    from click.testing import CliRunner
    from gasbench_fixtures import expected_probabilities, write_model_dir

    from vfcache.cli import cli

    runner = CliRunner()
    args = ["--root", str(tmp_path / "root"), "--workers", "1", "--no-progress", "eval"]
    first = write_model_dir(tmp_path / "first", frames=6, size=(48, 80), frame_rate=8.0)
    done = runner.invoke(cli, args + [str(first), "--videos", str(raw_dir), "--device", "cpu"])
    assert done.exit_code == 0, done.output
    root = DataRoot(tmp_path / "root")
    cache = root.cache_dir("videos-raw", "gasbench_6x48x80_8fps")
    relpaths = {c.clip_id: c.relpath for c in read_records(cache.clips_parquet, ClipRecord)}
    predictions = [
        json.loads(line)
        for line in (tmp_path / "root/reports/gasbench/first/predictions.jsonl")
        .read_text()
        .splitlines()
    ]
    assert sorted(relpaths[p["clip_id"]] for p in predictions) == sorted(VIDEOS)
    for row in predictions:
        frames = reference_frames(
            raw_dir / relpaths[row["clip_id"]], num_frames=6, frame_rate=8.0, height=48, width=80
        )
        assert row["prob_fake"] == pytest.approx(
            expected_probabilities(frames[None])[0, 1], abs=1e-6
        )
        assert row["label"] == (1 if relpaths[row["clip_id"]].startswith("fake/") else 0)
    second = write_model_dir(
        tmp_path / "second", frames=6, size=(48, 80), frame_rate=8.0, name="other"
    )
    done = runner.invoke(cli, args + [str(second), "--videos", str(raw_dir), "--device", "cpu"])
    assert done.exit_code == 0, done.output
    assert "this run wrote 0 clips" in done.output  # the second model decodes nothing
