"""A small labelled corpus of synthetic videos (plus broken files) for the probe/extract tests.

Made once per test session. Every frame carries its index (see
`vfcache.pipelines.sources.synthetic`),
so a test can check that each clip holds exactly the source frames its plan names.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from vfcache.pipelines.sources.synthetic import (
    VideoTruth,
    make_video,
    truncate_copy,
    write_not_a_video,
)

from vfcache.config import ClipSpec, DatasetConfig, parse_dataset_config

# relpath -> make_video arguments; sizes are small so the whole corpus encodes in a second or two.
GOOD_VIDEOS: dict[str, dict] = {
    "street/fake/warpnet/f0.mp4": dict(
        codec="h264", width=160, height=120, num_frames=40, fps=25, seed=11, artifact="warp"
    ),
    "street/fake/warpnet/f1.mp4": dict(
        codec="h264", width=96, height=160, num_frames=30, fps=30, seed=12, rotation_deg=90
    ),
    "street/real/phone/r2.mkv": dict(
        codec="h264",
        width=160,
        height=96,
        num_frames=30,
        fps=25,
        seed=13,
        pts_s=tuple(round(i * 0.05 + (0.02 if i % 3 == 2 else 0.0), 3) for i in range(30)),
    ),
    "street/real/phone/r3.mp4": dict(
        codec="h264", width=128, height=96, num_frames=36, fps=24, seed=14
    ),
    "studio/fake/diffgen/f4.webm": dict(
        codec="vp9", width=160, height=120, num_frames=32, fps=25, seed=15, artifact="smooth"
    ),
    "studio/fake/diffgen/f5.mp4": dict(
        codec="h264", width=144, height=112, num_frames=48, fps=30, seed=16, artifact="flicker"
    ),
    "studio/real/camera/r6.avi": dict(
        codec="mpeg4", width=160, height=120, num_frames=36, fps=24, seed=17
    ),
    "studio/real/camera/r7.mp4": dict(
        codec="h264", width=176, height=144, num_frames=40, fps=25, seed=18, gop=8
    ),
}
TOO_SHORT = "studio/real/camera/short.mp4"  # 3 frames: too short for two 4-frame clips at 10 fps
TRUNCATED = "street/real/phone/cut.mp4"
NOT_A_VIDEO = "studio/fake/diffgen/text.mp4"
LAYOUT = {"pattern": "{domain}/{label}/{generator}/{name}", "group": "{domain}/{generator}/{name}"}


@dataclass(frozen=True)
class Corpus:
    raw_dir: Path
    truths: dict[str, Optional[VideoTruth]]  # None for files that are not videos

    def config(self, name: str = "corpus") -> DatasetConfig:
        return local_config(self.raw_dir, name)


def local_config(raw_dir: Path, name: str = "corpus") -> DatasetConfig:
    return parse_dataset_config(
        {
            "name": name,
            "kind": "local",
            "domain": name,
            "source": {"path": str(raw_dir)},
            "layout": LAYOUT,
        },
        f"{name}.yaml",
    )


def small_spec(**changes) -> ClipSpec:
    values = dict(
        name="t4x96",
        frames=4,
        sampling="fps",
        fps=10.0,
        height=96,
        width=96,
        start="random",
        clips_per_video=2,
        short_policy="skip",
    )
    return ClipSpec(**{**values, **changes})


def build_corpus(raw_dir: Path) -> Corpus:
    truths: dict[str, Optional[VideoTruth]] = {}
    for relpath, args in GOOD_VIDEOS.items():
        (raw_dir / relpath).parent.mkdir(parents=True, exist_ok=True)
        truths[relpath] = make_video(raw_dir / relpath, threads=1, **args)
    for relpath in (TOO_SHORT, TRUNCATED, NOT_A_VIDEO):
        (raw_dir / relpath).parent.mkdir(parents=True, exist_ok=True)
    truths[TOO_SHORT] = make_video(
        raw_dir / TOO_SHORT,
        codec="h264",
        width=96,
        height=96,
        num_frames=3,
        fps=25,
        seed=19,
        threads=1,
    )
    whole = raw_dir.parent / "whole.mp4"
    make_video(
        whole,
        codec="h264",
        width=160,
        height=120,
        num_frames=50,
        fps=25,
        seed=20,
        gop=10,
        threads=1,
    )
    truncate_copy(whole, raw_dir / TRUNCATED, keep_fraction=0.5)
    whole.unlink()
    truths[TRUNCATED] = None
    write_not_a_video(raw_dir / NOT_A_VIDEO)
    truths[NOT_A_VIDEO] = None
    (raw_dir / "README.json").write_text(json.dumps({"what": "not a video, must be ignored"}))
    return Corpus(raw_dir, truths)


def copy_corpus(corpus: Corpus, target: Path) -> Corpus:
    """A private copy for tests that change files."""
    shutil.copytree(corpus.raw_dir, target)
    return Corpus(target, dict(corpus.truths))


# Settings of the reference extraction every resume test compares against.
SHARD_TARGET_BYTES = 100_000  # two or three clips per shard: many rollovers
VIDEOS_PER_TASK = 3


def cache_snapshot(cache_path: Path) -> dict[str, bytes]:
    """The bytes of every final file that must not depend on interruptions or the cluster."""
    files = {
        "clips.parquet": (cache_path / "clips.parquet").read_bytes(),
        "failures.parquet": (cache_path / "failures.parquet").read_bytes(),
    }
    for path in sorted((cache_path / "shards").iterdir()):
        if path.name.startswith("shard-"):
            files[f"shards/{path.name}"] = path.read_bytes()
    return files


def temp_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if ".tmp-" in path.name]


def write_local_dataset(tmp_path: Path, videos: int, *, splits: Optional[dict] = None) -> Path:
    """`videos` tiny H.264 videos under tmp_path/videos/{real,fake}/cam/ and the config file of
    a `local` dataset `mine` over them (spec sample_8x112); returns the config's path."""
    import yaml

    folder = tmp_path / "videos"
    for index in range(videos):
        label = "real" if index % 2 == 0 else "fake"
        (folder / label / "cam").mkdir(parents=True, exist_ok=True)
        make_video(
            folder / label / "cam" / f"v{index}.mp4",
            codec="h264",
            width=64,
            height=48,
            num_frames=24,
            fps=8,
            seed=index,
            threads=1,
        )
    config = {
        "name": "mine",
        "kind": "local",
        "domain": "mine",
        "clip_spec": "sample_8x112",
        "source": {"path": str(folder)},
        "layout": {"pattern": "{label}/{generator}/{name}", "real": ["real"], "fake": ["fake"]},
    }
    if splits is not None:
        config["splits"] = splits
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
