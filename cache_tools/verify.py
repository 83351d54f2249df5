"""Verify a cache folder: every clip of clips.parquet reads back intact, and no shard holds stray
bytes.

Each clip is read through `ShardReader` (zstd content checksum, complete `.npy` payload),
and its shape and dtype are compared with the spec in spec.json. Each shard's index
coverage is walked: the clips listed for it must tile the file from byte 0 to its end with
no gap, overlap or trailing bytes (bytes no clip owns are a partial write or an unmerged
index). Shards under shards/ that clips.parquet never names are reported too. Every bad
clip and shard is named; the report says what, where and why. With `decode=True` each clip's
pixels are also looked at: a clip that looks like a decoder's concealment (green with zero
chroma, flat grey, or flat throughout; see `vfcache.cache_tools.concealment`) is a bad clip too.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm
from vfcache.cache_tools.concealment import concealment_problem
from vfcache.cache_tools.shards import ShardCorruptError, ShardReader
from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import ClipRecord

from vfcache.atomic import TEMP_MARK
from vfcache.errors import StageError
from vfcache.layout import SHARD_SUFFIX, CacheDir, shard_path_problem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BadClip:
    clip_id: str
    shard: str
    offset: int
    reason: str


@dataclass(frozen=True)
class BadShard:
    shard: str
    reason: str


@dataclass(frozen=True)
class VerifyReport:
    cache_dir: str
    clip_shape: tuple[int, ...]
    clips_checked: int
    shards_checked: int
    bytes_checked: int
    bad_clips: tuple[BadClip, ...]
    bad_shards: tuple[BadShard, ...]
    stale_temp_files: tuple[str, ...]  # left by interrupted writers; the next run removes them

    @property
    def ok(self) -> bool:
        return not self.bad_clips and not self.bad_shards

    def to_json(self) -> dict:
        payload = dataclasses.asdict(self)
        payload["ok"] = self.ok
        return payload

    def summary(self) -> str:
        lines = [
            f"{self.cache_dir}: {self.clips_checked} clips in {self.shards_checked} shards "
            f"({self.bytes_checked} bytes) checked against clip shape {self.clip_shape}"
        ]
        lines += [
            f"BAD CLIP {c.clip_id} in {c.shard} at offset {c.offset}: {c.reason}"
            for c in self.bad_clips
        ]
        lines += [f"BAD SHARD {s.shard}: {s.reason}" for s in self.bad_shards]
        lines += [f"stale temporary file {name}" for name in self.stale_temp_files]
        lines.append(
            "verify "
            + (
                "passed"
                if self.ok
                else f"FAILED: {len(self.bad_clips)} bad clips, {len(self.bad_shards)} bad shards"
            )
        )
        return "\n".join(lines)


def coverage_problems(entries: Sequence[tuple[int, int, str]], size_bytes: int) -> list[str]:
    """Gaps, overlaps and trailing or missing bytes of (offset, nbytes, clip_id) entries over a
    file."""
    problems = []
    position = 0
    for offset, nbytes, clip_id in sorted(entries):
        if offset > position:
            problems.append(
                f"{offset - position} bytes at offsets {position}..{offset} belong to no clip"
            )
        elif offset < position:
            problems.append(
                f"clip {clip_id} at offset {offset} overlaps the clip before it (ends at "
                f"{position})"
            )
        position = max(position, offset + nbytes)
    if position < size_bytes:
        problems.append(
            f"{size_bytes - position} stray bytes after the last clip (offsets "
            f"{position}..{size_bytes})"
        )
    elif position > size_bytes:
        problems.append(
            f"the index reaches byte {position} but the shard has {size_bytes} bytes (truncated)"
        )
    return problems


def _clip_problem(array: np.ndarray, shape: tuple, decode: bool) -> str | None:
    if array.dtype != np.uint8 or tuple(array.shape) != tuple(shape):
        return f"{array.dtype} {tuple(array.shape)}, the spec says uint8 {tuple(shape)}"
    return concealment_problem(array) if decode else None


def _verify_shard(
    cache: CacheDir,
    rel: str,
    clips: list[ClipRecord],
    shape: tuple,
    bar: tqdm,
    bad_clips: list,
    bad_shards: list,
    decode: bool = False,
) -> int:
    """Check one shard's clips and coverage; returns the shard's size in bytes (0 when unusable)."""
    bad_path = shard_path_problem(rel)
    if bad_path:
        bad_shards.append(BadShard(rel, bad_path))
        bad_clips += [
            BadClip(c.clip_id, rel, c.offset, f"its shard path is invalid: {bad_path}")
            for c in clips
        ]
        bar.update(len(clips))
        return 0
    shard_path = cache.resolve_shard(rel)
    if not shard_path.is_file():
        bad_shards.append(
            BadShard(rel, f"missing ({len(clips)} clips of clips.parquet point to it)")
        )
        bad_clips += [BadClip(c.clip_id, rel, c.offset, "its shard is missing") for c in clips]
        bar.update(len(clips))
        return 0
    size = shard_path.stat().st_size
    with ShardReader(shard_path) as reader:
        for clip in sorted(clips, key=lambda c: c.offset):
            try:
                array = reader.read(clip.offset, clip.nbytes, clip.clip_id)
            except ShardCorruptError as err:
                bad_clips.append(BadClip(clip.clip_id, rel, clip.offset, err.reason))
            else:
                reason = _clip_problem(array, shape, decode)
                if reason is not None:
                    bad_clips.append(BadClip(clip.clip_id, rel, clip.offset, reason))
            bar.update(1)
    for problem in coverage_problems([(c.offset, c.nbytes, c.clip_id) for c in clips], size):
        bad_shards.append(BadShard(rel, problem))
    return size


def verify_cache(
    cache_dir: CacheDir | str | Path, *, progress: bool = True, decode: bool = False
) -> VerifyReport:
    """Read every clip back, compare with the spec, and check that each shard holds only indexed
    clips; with `decode`, also flag clips that look like a decoder's concealment."""
    cache = cache_dir if isinstance(cache_dir, CacheDir) else CacheDir(Path(cache_dir))
    shape = cache.read_spec().stored_shape
    if not cache.clips_parquet.exists():
        raise StageError(f"{cache.clips_parquet} does not exist; nothing to verify")
    clips = read_records(cache.clips_parquet, ClipRecord)
    bad_clips: list[BadClip] = []
    bad_shards: list[BadShard] = []
    for clip_id, count in sorted(Counter(c.clip_id for c in clips).items()):
        if count > 1:
            bad_clips.append(BadClip(clip_id, "", 0, f"listed {count} times in clips.parquet"))
    by_shard: dict[str, list[ClipRecord]] = defaultdict(list)
    for clip in clips:
        by_shard[clip.shard].append(clip)
    bytes_checked = 0
    with tqdm(
        total=len(clips), desc=f"verify {cache.path.name}", unit="clip", disable=not progress
    ) as bar:
        for rel in sorted(by_shard):
            bytes_checked += _verify_shard(
                cache, rel, by_shard[rel], shape, bar, bad_clips, bad_shards, decode
            )
    stale = []
    if cache.shards_dir.is_dir():
        for path in sorted(cache.shards_dir.iterdir()):
            rel = path.relative_to(cache.path).as_posix()
            if TEMP_MARK in path.name:
                stale.append(rel)
            elif path.name.endswith(SHARD_SUFFIX) and rel not in by_shard:
                bad_shards.append(
                    BadShard(rel, f"{path.stat().st_size} bytes that clips.parquet does not index")
                )
    report = VerifyReport(
        str(cache.path),
        tuple(shape),
        len(clips),
        len(by_shard),
        bytes_checked,
        tuple(bad_clips),
        tuple(bad_shards),
        tuple(stale),
    )
    if not report.ok:
        log.warning(
            "verify %s: %d bad clips, %d bad shards", cache.path, len(bad_clips), len(bad_shards)
        )
    return report
