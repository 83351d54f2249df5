"""Find the videos two or more datasets share: the same file (same video_id, the sha256 of the
bytes) or the same picture after a re-encode or resize (frame hashes within
`vfcache.pipelines.frame_hash.MATCH_BITS`).

`dataset_videos` reads a dataset's video manifest and brings its frame hashes up to date (stored
beside the manifest, computed once per file); `find_shared_videos` compares every pair of
datasets and returns one `SharedVideo` per pair of videos found in both. Only videos of
different datasets are paired: within a dataset, identical files are already skipped by the
probe stage, and near-identical videos there are the dataset's own business.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import STATUS_OK, FrameHashRecord, VideoRecord
from vfcache.manifests.shared_videos import MATCH_BYTES, MATCH_FRAMES, SharedVideo
from vfcache.pipelines.frame_hash import (
    MATCH_BITS,
    hash_array,
    hashed_ok,
    matching_pairs,
    update_frame_hashes,
)
from vfcache.pipelines.sources.base import get_source

from vfcache.config import DatasetConfig
from vfcache.errors import StageError
from vfcache.layout import VIDEOS_PARQUET_NAME, DataRoot


@dataclass(frozen=True)
class DatasetVideos:
    """The readable videos of one dataset and their frame hashes (by video_id)."""

    name: str
    videos: tuple[VideoRecord, ...]
    hashes: dict[str, FrameHashRecord]

    @property
    def unhashed(self) -> int:
        """Videos whose frames could not be hashed (only their bytes are compared)."""
        return sum(
            1
            for v in self.videos
            if v.video_id not in self.hashes or self.hashes[v.video_id].status != STATUS_OK
        )


def dataset_videos(
    config: DatasetConfig, root: DataRoot, *, client=None, progress: bool = True
) -> DatasetVideos:
    """The dataset's ok videos from its manifest, with frame hashes (computed where missing)."""
    folder = root.dataset_dir(config.name)
    manifest = folder / VIDEOS_PARQUET_NAME
    if not manifest.exists():
        raise StageError(
            f"{manifest} does not exist; run `vfcache build-manifest {config.name}` first"
        )
    videos = tuple(v for v in read_records(manifest, VideoRecord) if v.status == STATUS_OK)
    raw_dir = Path(get_source(config).raw_dir(root))
    hashes = update_frame_hashes(
        folder, raw_dir, videos, client=client, progress=progress, dataset=config.name
    )
    return DatasetVideos(config.name, videos, hashes)


def _same_bytes(a: DatasetVideos, b: DatasetVideos) -> list[SharedVideo]:
    by_id = {v.video_id: v for v in b.videos}
    return [
        SharedVideo(
            a.name,
            va.relpath,
            va.video_id,
            b.name,
            by_id[va.video_id].relpath,
            va.video_id,
            MATCH_BYTES,
            0.0,
        )
        for va in a.videos
        if va.video_id in by_id
    ]


def _same_frames(a: DatasetVideos, b: DatasetVideos, max_bits: float) -> list[SharedVideo]:
    rows_a, rows_b = hashed_ok(a.hashes), hashed_ok(b.hashes)
    if not rows_a or not rows_b:
        return []
    relpath_a = {v.video_id: v.relpath for v in a.videos}
    relpath_b = {v.video_id: v.relpath for v in b.videos}
    found = []
    for i, j, bits in matching_pairs(hash_array(rows_a), hash_array(rows_b), max_bits):
        ra, rb = rows_a[i], rows_b[j]
        if ra.video_id != rb.video_id:  # the same bytes are paired by `_same_bytes`
            found.append(
                SharedVideo(
                    a.name,
                    relpath_a[ra.video_id],
                    ra.video_id,
                    b.name,
                    relpath_b[rb.video_id],
                    rb.video_id,
                    MATCH_FRAMES,
                    bits,
                )
            )
    return found


def find_shared_videos(
    datasets: Sequence[DatasetVideos], *, max_bits: float = MATCH_BITS
) -> list[SharedVideo]:
    """Every pair of videos of two different datasets with the same bytes or the same frames,
    dataset a before dataset b in the order given; sorted."""
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise StageError(f"datasets named more than once: {names}")
    found: list[SharedVideo] = []
    for a, b in itertools.combinations(datasets, 2):
        found += _same_bytes(a, b) + _same_frames(a, b, max_bits)
    return sorted(found, key=lambda p: (p.dataset_a, p.relpath_a, p.dataset_b, p.relpath_b))
