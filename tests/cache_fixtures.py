"""Test fixtures for the split, audit, verify and preview tests: small cache folders of
random-pixel clips.

`build_cache` writes spec.json, shards (through ShardWriter), clips.parquet, videos.parquet
and failures.parquet, and returns the clips it wrote with their pixels, so tests can check
exact figures. No video is decoded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from vfcache.cache_tools.shards import ShardWriter
from vfcache.manifests.parquet_io import write_records
from vfcache.manifests.records import (
    STATUS_FAILED,
    STATUS_OK,
    STATUS_SKIPPED,
    ClipRecord,
    FailureRecord,
    VideoRecord,
    make_clip_id,
)

from vfcache.atomic import write_json_atomic
from vfcache.config import ClipSpec
from vfcache.layout import SHARD_SUFFIX, CacheDir


def tiny_spec(frames: int = 4, size_px: int = 16) -> ClipSpec:
    return ClipSpec(name="tiny", frames=frames, sampling="uniform", height=size_px, width=size_px)


@dataclass(frozen=True)
class VideoPlan:
    """One source video to put in the fixture cache."""

    domain: str
    label: int
    generator: str
    group: str
    clips: int = 1
    short_policy: str = "none"  # none / pad_last / loop
    status: str = STATUS_OK
    reason: Optional[str] = None
    name: Optional[str] = None

    @property
    def relpath(self) -> str:
        kind = "real" if self.label == 0 else "fake"
        return f"{self.domain}/{kind}/{self.generator}/{self.name or self.group}.mp4"

    @property
    def video_id(self) -> str:
        return hashlib.sha256(self.relpath.encode()).hexdigest()


def make_clip(
    plan: VideoPlan,
    clip_index: int,
    spec_hash: str = "0" * 16,
    *,
    dataset: str = "ds",
    shard: str = "shards/none.npy.zst",
    offset: int = 0,
    nbytes: int = 1,
) -> ClipRecord:
    frames = 4
    padded = 2 if plan.short_policy != "none" else 0
    return ClipRecord(
        clip_id=make_clip_id(plan.video_id, spec_hash, clip_index),
        video_id=plan.video_id,
        clip_index=clip_index,
        frame_indices=tuple(range(frames)),
        timestamps_s=tuple(i / 8 for i in range(frames)),
        padded_frames=padded,
        short_policy=plan.short_policy,
        shard=shard,
        offset=offset,
        nbytes=nbytes,
        dataset=dataset,
        domain=plan.domain,
        relpath=plan.relpath,
        label=plan.label,
        generator=plan.generator,
        group=plan.group,
        source_split=None,
    )


def video_record(plan: VideoPlan, dataset: str) -> VideoRecord:
    ok = plan.status == STATUS_OK
    return VideoRecord(
        video_id=plan.video_id,
        dataset=dataset,
        domain=plan.domain,
        relpath=plan.relpath,
        label=plan.label,
        generator=plan.generator,
        group=plan.group,
        source_split=None,
        bytes=1000,
        codec="h264" if ok else None,
        width=32,
        height=32,
        rotation=0,
        fps=8.0,
        num_frames=8 if ok else None,
        duration_s=1.0 if ok else None,
        status=plan.status,
        reason=plan.reason,
    )


@dataclass(frozen=True)
class FixtureCache:
    cache_dir: CacheDir
    spec: ClipSpec
    clips: tuple[ClipRecord, ...]
    pixels: dict = field(repr=False)  # clip_id -> np.ndarray


def build_cache(
    path: Path,
    plans: Sequence[VideoPlan],
    *,
    dataset: str = "ds",
    spec: ClipSpec | None = None,
    clips_per_shard: int = 4,
    seed: int = 0,
    clip_pixels: Callable[[VideoPlan, int], np.ndarray] | None = None,
) -> FixtureCache:
    """A cache folder of `plans`' clips; pixels are random unless `clip_pixels(plan, clip_index)`
    gives them."""
    spec = spec or tiny_spec()
    cache = CacheDir(Path(path))
    write_json_atomic(cache.spec_json, spec.to_json())
    rng = np.random.default_rng(seed)
    clips, pixels, failures = [], {}, []
    writer, shard_count = None, 0
    for plan in plans:
        if plan.status != STATUS_OK:
            stage = "probe" if plan.status == STATUS_FAILED else "extract"
            failures.append(
                FailureRecord(plan.video_id, plan.relpath, stage, plan.reason or plan.status)
            )
            continue
        for clip_index in range(plan.clips):
            if writer is None:
                rel = f"shards/shard-0000-{shard_count:04d}{SHARD_SUFFIX}"
                writer, shard_count = ShardWriter(cache.path / rel), shard_count + 1
            clip = (
                rng.integers(0, 256, size=spec.clip_shape, dtype=np.uint8)
                if clip_pixels is None
                else clip_pixels(plan, clip_index)
            )
            entry = writer.append(clip)
            record = make_clip(
                plan,
                clip_index,
                spec.spec_hash,
                dataset=dataset,
                shard=rel,
                offset=entry.offset,
                nbytes=entry.nbytes,
            )
            clips.append(record)
            pixels[record.clip_id] = clip
            if len(writer.entries) == clips_per_shard:
                writer.commit()
                writer = None
    if writer is not None:
        writer.commit()
    write_records(cache.clips_parquet, clips, ClipRecord)
    write_records(cache.videos_parquet, [video_record(p, dataset) for p in plans], VideoRecord)
    write_records(cache.failures_parquet, failures, FailureRecord)
    return FixtureCache(cache, spec, tuple(clips), pixels)


def card_like_plans(domain: str, real: int, fake_by_generator: dict[str, int]) -> list[VideoPlan]:
    """One clip per video, one group per video, like the R(2+1)D card's record counts."""
    plans = [VideoPlan(domain, 0, "youtube", f"{domain}-real-{i:04d}") for i in range(real)]
    for generator, count in fake_by_generator.items():
        plans += [
            VideoPlan(domain, 1, generator, f"{domain}-{generator}-{i:04d}") for i in range(count)
        ]
    return plans


__all__ = [
    "STATUS_FAILED",
    "STATUS_SKIPPED",
    "VideoPlan",
    "build_cache",
    "card_like_plans",
    "make_clip",
    "tiny_spec",
]


def sample_cache_root(tmp_path_factory, name: str = "sample_root") -> Path:
    """A data root holding the sample dataset's cache (`vfcache cache sample`, about 15 s): the real
    pipeline on real (synthetic) videos, for module fixtures."""
    from click.testing import CliRunner

    from vfcache.cli import cli

    root = tmp_path_factory.mktemp(name)
    result = CliRunner().invoke(
        cli, ["--root", str(root), "--workers", "2", "--no-progress", "cache", "sample"]
    )
    assert result.exit_code == 0, result.output
    return root
