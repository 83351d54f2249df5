"""Perceptual hashes of a few decoded frames per video: the same video found again after a
re-encode or a resize (AEGIS's real `dvf` videos are copies of DVF videos, say).

Per video, `FRAMES_HASHED` frames, each shown at the middle of one of as many equal stretches
of the video's duration (`frame_times`, by timestamp, so a re-encode at another frame rate
picks the same moments), are decoded with the project's readers (`vfcache.pipelines.decode.media`,
so files
and keyframe rows alike) squashed to 32x32 (the whole picture: a resize of it gives the same
input) and turned grey. Each frame gets a 64-bit DCT pHash (`phash_frames`): the 8x8 lowest
frequencies of the 32x32 DCT-II, one bit per coefficient, set when it is above their median
(the DC term left out of the median). Two videos are the same when the mean Hamming distance
of their aligned frame hashes is at most `MATCH_BITS` of 64 (`frame_distances`).

The hashes are computed once per file and kept beside the video manifest in
`cache/<dataset>/frame_hashes.parquet` (`FrameHashRecord`, keyed by video_id, the sha256 of
the bytes), written through a temporary file; a later call hashes only the videos that are new
or were hashed by another `METHOD`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from vfcache.manifests.parquet_io import read_records, write_records
from vfcache.manifests.records import STATUS_FAILED, STATUS_OK, FrameHashRecord, VideoRecord
from vfcache.pipelines.decode import VideoReadError
from vfcache.pipelines.decode.frames import frame_shown_at, video_duration_s
from vfcache.pipelines.decode.media import probe_media, read_media_frames
from vfcache.pipelines.probe import read_error_reason
from vfcache.pipelines.runner import run_tasks

log = logging.getLogger(__name__)

FRAME_HASHES_NAME = "frame_hashes.parquet"
FRAMES_HASHED = 4
HASH_SIZE_PX = 32  # frames are squashed to this square before the DCT
LOW_FREQUENCIES = 8  # the 8x8 lowest DCT frequencies give the 64 bits
# Mean Hamming distance (bits of 64 per frame, over the aligned frames) at or below which two
# videos are the same. Measured on the synthetic test videos (tests/test_shared_videos.py):
# copies re-encoded with h264, MPEG-4 or HEVC at lower quality and resized to 0.75x, 1.5x or
# 2x stay within 2.5 bits; unrelated videos differ by 10 bits or more (mean 17; these videos
# come from one painter and look far more alike than real footage, whose unrelated pairs sit
# near 32, the distance of random hashes). 6 leaves room on both sides.
MATCH_BITS = 6
METHOD = f"dct-phash-{LOW_FREQUENCIES**2}bit x{FRAMES_HASHED} frames @{HASH_SIZE_PX}px grey squash"
HASHES_PER_TASK = 16
UNREADABLE = (
    "unreadable"  # the reason of a file that could not be opened (not stored: it may come back)
)


def frame_times(pts_s: Sequence[float], count: int = FRAMES_HASHED) -> list[int]:
    """Indices of the frames shown at the middle of `count` equal stretches of the duration."""
    start, duration = pts_s[0], video_duration_s(pts_s)
    return [frame_shown_at(pts_s, start + duration * (i + 0.5) / count) for i in range(count)]


def _dct_matrix(size: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: `m @ x @ m.T` is the 2-D DCT of a square `x`."""
    k = np.arange(size)[:, None]
    n = np.arange(size)[None, :]
    m = np.cos(np.pi * (2 * n + 1) * k / (2 * size)) * np.sqrt(2.0 / size)
    m[0] /= np.sqrt(2.0)
    return m


_DCT = _dct_matrix(HASH_SIZE_PX)
_GREY = np.array([0.299, 0.587, 0.114])
_BIT_WEIGHTS = np.uint64(1) << np.arange(LOW_FREQUENCIES**2, dtype=np.uint64)[::-1]


def phash_frames(frames_rgb: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) uint8 RGB -> (N,) uint64 pHashes."""
    if frames_rgb.shape[1:] != (HASH_SIZE_PX, HASH_SIZE_PX, 3):
        raise ValueError(
            f"frames of shape {frames_rgb.shape[1:]}; expected ({HASH_SIZE_PX}, {HASH_SIZE_PX}, 3)"
        )
    grey = frames_rgb.astype(np.float64) @ _GREY
    low = (_DCT @ grey @ _DCT.T)[:, :LOW_FREQUENCIES, :LOW_FREQUENCIES].reshape(len(grey), -1)
    median = np.median(low[:, 1:], axis=1, keepdims=True)
    bits = (low > median).astype(np.uint64)
    return (bits * _BIT_WEIGHTS).sum(axis=1, dtype=np.uint64)


def hash_video(raw_dir: str, relpath: str, video_id: str) -> FrameHashRecord:
    """The pHashes of one video; an unreadable video gives a `failed` row, never an exception."""
    try:
        info = probe_media(raw_dir, relpath)
        frames = read_media_frames(
            raw_dir,
            relpath,
            frame_times(info.pts_s),
            info=info,
            height=HASH_SIZE_PX,
            width=HASH_SIZE_PX,
            resize="squash",
        )
    except VideoReadError as err:
        return FrameHashRecord(video_id, relpath, METHOD, "", STATUS_FAILED, read_error_reason(err))
    except OSError as err:
        return FrameHashRecord(
            video_id, relpath, METHOD, "", STATUS_FAILED, f"{UNREADABLE}: {err.strerror or err}"
        )
    hashes = "".join(f"{int(h):016x}" for h in phash_frames(frames))
    return FrameHashRecord(video_id, relpath, METHOD, hashes, STATUS_OK, None)


@dataclass(frozen=True)
class HashTask:
    raw_dir: str
    videos: tuple[tuple[str, str], ...]  # (relpath, video_id)


def hash_batch(task: HashTask) -> list[FrameHashRecord]:
    """One dask task: hash a few videos."""
    return [hash_video(task.raw_dir, relpath, video_id) for relpath, video_id in task.videos]


def load_frame_hashes(dataset_dir: Path) -> dict[str, FrameHashRecord]:
    """The stored rows of this `METHOD`, by video_id ({} when none are stored)."""
    path = dataset_dir / FRAME_HASHES_NAME
    if not path.exists():
        return {}
    return {
        row.video_id: row for row in read_records(path, FrameHashRecord) if row.method == METHOD
    }


def pending_videos(
    videos: Sequence[VideoRecord], stored: dict[str, FrameHashRecord]
) -> list[VideoRecord]:
    """The videos (status ok) without a stored hash of this method."""
    return [v for v in videos if v.status == STATUS_OK and v.video_id not in stored]


def update_frame_hashes(
    dataset_dir: Path,
    raw_dir: Path,
    videos: Sequence[VideoRecord],
    *,
    client=None,
    progress: bool = True,
    dataset: str = "",
) -> dict[str, FrameHashRecord]:
    """The frame hashes of `videos` (status ok), computing those not stored yet and storing them.

    `client`: a dask Client, or None to hash in this process. Rows of videos no longer listed are
    kept (a changed listing must not force re-hashing). Returns the rows of `videos`, by
    video_id."""
    stored = load_frame_hashes(dataset_dir)
    todo = pending_videos(videos, stored)
    if todo:
        pairs = [(v.relpath, v.video_id) for v in todo]
        tasks = [
            HashTask(str(raw_dir), tuple(pairs[i : i + HASHES_PER_TASK]))
            for i in range(0, len(pairs), HASHES_PER_TASK)
        ]
        missing: dict[str, FrameHashRecord] = {}
        for rows in run_tasks(
            client, hash_batch, tasks, f"frame hashes {dataset}".strip(), progress=progress
        ):
            for row in rows:  # a file that could not be opened may come back: it is not remembered
                (missing if (row.reason or "").startswith(UNREADABLE) else stored)[row.video_id] = (
                    row
                )
        write_records(
            dataset_dir / FRAME_HASHES_NAME,
            sorted(stored.values(), key=lambda r: r.video_id),
            FrameHashRecord,
        )
        stored = {**stored, **missing}
        failed = sum(stored[v.video_id].status != STATUS_OK for v in todo)
        if failed:
            log.warning(
                "%s: %d of %d videos could not be hashed (only their bytes are compared)",
                dataset,
                failed,
                len(todo),
            )
    wanted = {v.video_id for v in videos}
    return {vid: row for vid, row in stored.items() if vid in wanted}


def hash_array(rows: Sequence[FrameHashRecord]) -> np.ndarray:
    """(len(rows), FRAMES_HASHED) uint64 from the hex of `ok` rows."""
    out = np.zeros((len(rows), FRAMES_HASHED), dtype=np.uint64)
    for i, row in enumerate(rows):
        out[i] = [int(row.frame_hashes[16 * k : 16 * (k + 1)], 16) for k in range(FRAMES_HASHED)]
    return out


def frame_distances(a: np.ndarray, b: np.ndarray, *, chunk_rows: int = 4096) -> np.ndarray:
    """Mean Hamming distance (bits of 64) between every video of `a` (n, K) and of `b` (m, K): (n,
    m)."""
    out = np.empty((len(a), len(b)), dtype=np.float32)
    for start in range(0, len(a), chunk_rows):
        block = a[start : start + chunk_rows, None, :] ^ b[None, :, :]
        out[start : start + chunk_rows] = np.bitwise_count(block).sum(axis=2) / a.shape[1]
    return out


def matching_pairs(
    a: np.ndarray, b: np.ndarray, max_bits: float = MATCH_BITS, *, chunk_rows: int = 256
) -> list[tuple[int, int, float]]:
    """(row of a, row of b, distance) for every pair within `max_bits`, without holding all
    distances."""
    found = []
    for start in range(0, len(a), chunk_rows):
        dist = frame_distances(a[start : start + chunk_rows], b)
        rows, cols = np.nonzero(dist <= max_bits)
        found += [(start + int(r), int(c), float(dist[r, c])) for r, c in zip(rows, cols)]
    return found


def hashed_ok(rows: dict[str, FrameHashRecord]) -> list[FrameHashRecord]:
    """The `ok` rows, sorted by video_id (the order `hash_array` rows then have)."""
    return sorted((r for r in rows.values() if r.status == STATUS_OK), key=lambda r: r.video_id)
