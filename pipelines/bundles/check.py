"""`vfcache check-bundle`: is my cache the publisher's? Re-extract every clip of a pulled bundle
from the user's own raw videos and compare it with the bundle, by clip and by video.

For each video of the bundle that has clips, found by its path under the user's raw folder:
- missing: no such file here (not downloaded, removed, renamed);
- different: the clips cut here are not the bundle's: other pixels (another decoder version,
  a damaged or re-encoded download: the file's sha256 then differs from the bundle's video
  id), a clip the bundle has that cannot be cut here, or a file that no longer decodes;
- matched: same file bytes (so the same clip ids) and every clip's decoded pixels equal (same
  pixel digest). A clip is matched when its id and its pixel digest are the bundle's: when the
  file bytes differ, none of the video's clips is, even if the pixels happen to agree.

The clips are cut exactly as `vfcache extract` cuts them (pipelines/extract_task.cut_clips:
same plan, same seed from the bundle's video id, same decoder path), in memory: nothing is
written to the user's cache. Before anything is decoded, the bundle's files are checked
against its bundle.json (a split file changed since the pull fails there: `BundleChanged`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional

from vfcache.manifests.bundle import (
    DIGESTS_NAME,
    VIDEOS_NAME,
    BundleError,
    ClipDigest,
    bundle_file_problems,
    pixel_digest,
    read_bundle_manifest,
)
from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import ClipRecord, VideoRecord, make_clip_id
from vfcache.pipelines.decode import VideoReadError
from vfcache.pipelines.decode.frames import VideoTooShort
from vfcache.pipelines.decode.media import media_sha256, media_stat
from vfcache.pipelines.extract.task import ExtractTask, SourceChanged, cut_clips
from vfcache.pipelines.runner import run_tasks

from vfcache.config import ClipSpec
from vfcache.layout import CacheDir

MATCHED, MISSING, DIFFERENT = "matched", "missing", "different"
VIDEOS_PER_TASK = 8


class BundleChanged(BundleError):
    """The bundle's files are not the ones bundle.json lists (changed after pulling)."""


@dataclass(frozen=True)
class VideoCheck:
    relpath: str
    video_id: str  # the bundle's
    status: str  # matched / missing / different
    clips: int  # the bundle's clips of this video
    clips_matched: int
    reason: str  # why it is missing or different ("" when matched)
    local_video_id: Optional[str] = None  # sha256 of the local file, when it exists


@dataclass(frozen=True)
class CheckTask:
    raw_dir: str
    spec: ClipSpec
    reader: str
    # (video record as the bundle has it, {clip_index: (pixel_sha256, frame_indices)})
    videos: tuple[tuple[VideoRecord, dict], ...]


@dataclass(frozen=True)
class BundleCheck:
    bundle: str
    dataset: str
    raw_dir: str
    videos: tuple[VideoCheck, ...]

    def _count(self, status: str) -> int:
        return sum(1 for v in self.videos if v.status == status)

    @property
    def clips(self) -> dict[str, int]:
        """Clips matched, missing (their video is absent) and different."""
        matched = sum(v.clips_matched for v in self.videos)
        missing = sum(v.clips for v in self.videos if v.status == MISSING)
        total = sum(v.clips for v in self.videos)
        return {MATCHED: matched, MISSING: missing, DIFFERENT: total - matched - missing}

    @property
    def by_video(self) -> dict[str, int]:
        return {status: self._count(status) for status in (MATCHED, MISSING, DIFFERENT)}

    @property
    def ok(self) -> bool:
        """No clip differs (missing videos are reported, not failed: the user may hold a part)."""
        return self.clips[DIFFERENT] == 0

    def to_json(self) -> dict:
        return {
            "bundle": self.bundle,
            "dataset": self.dataset,
            "raw_dir": self.raw_dir,
            "ok": self.ok,
            "clips": self.clips,
            "videos": self.by_video,
            "per_video": [asdict(v) for v in self.videos],
        }

    def format(self, *, listed: int = 20) -> str:
        lines = [
            f"{self.bundle}: {self.dataset} against {self.raw_dir}",
            f"{'':10}{'matched':>10}{'missing':>10}{'different':>10}",
            "clips     " + "".join(f"{self.clips[s]:>10}" for s in (MATCHED, MISSING, DIFFERENT)),
            "videos    "
            + "".join(f"{self.by_video[s]:>10}" for s in (MATCHED, MISSING, DIFFERENT)),
        ]
        for status in (DIFFERENT, MISSING):
            rows = [v for v in self.videos if v.status == status]
            if rows:
                lines.append(f"{status} videos:")
                lines += [f"  {v.relpath}: {v.reason}" for v in rows[:listed]]
                if len(rows) > listed:
                    lines.append(f"  ... and {len(rows) - listed} more (see the JSON report)")
        lines.append(
            "check "
            + (
                "passed: every clip found here matches the bundle"
                if self.ok
                else f"FAILED: {self.clips[DIFFERENT]} clips of {self.by_video[DIFFERENT]} "
                "videos differ from the bundle"
            )
        )
        return "\n".join(lines)


def _check_video(task: CheckTask, video: VideoRecord, expected: dict) -> VideoCheck:
    def result(
        status: str, matched: int, reason: str, local_id: Optional[str] = None
    ) -> VideoCheck:
        return VideoCheck(
            video.relpath, video.video_id, status, len(expected), matched, reason, local_id
        )

    try:
        size, _ = media_stat(task.raw_dir, video.relpath)
        local_id = media_sha256(task.raw_dir, video.relpath)
    except (OSError, VideoReadError):
        return result(MISSING, 0, f"not found under {task.raw_dir}")
    bytes_note = (
        ""
        if local_id == video.video_id
        else f"file bytes differ (sha256 {local_id[:12]}..., bundle {video.video_id[:12]}...), so "
        f"its clip ids do; "
    )
    extract = ExtractTask(
        writer="check",
        cache_path="",
        raw_dir=task.raw_dir,
        spec=task.spec,
        videos=(),
        reader=task.reader,
        shard_target_bytes=0,
    )
    try:  # positions are seeded by the bundle's video id, as the publisher's extraction was
        cut = {
            plan.clip_index: (plan, clip)
            for plan, clip in cut_clips(extract, replace(video, bytes=size), frozenset())
        }
    except (VideoReadError, VideoTooShort, SourceChanged) as err:
        return result(DIFFERENT, 0, f"{bytes_note}cannot cut its clips here: {err}", local_id)
    same_pixels, problems = 0, []
    for clip_index, (digest, frame_indices) in sorted(expected.items()):
        if clip_index not in cut:
            problems.append(f"clip {clip_index} not cut here")
            continue
        plan, clip = cut[clip_index]
        if tuple(plan.frame_indices) != tuple(frame_indices):
            problems.append(f"clip {clip_index} takes other frames")
        elif pixel_digest(clip) != digest:
            problems.append(f"clip {clip_index} pixels differ")
        else:
            same_pixels += 1
    if same_pixels == len(expected) and not bytes_note:
        return result(MATCHED, same_pixels, "", local_id)
    shown = ", ".join(problems[:3]) + (f" (+{len(problems) - 3})" if len(problems) > 3 else "")
    pixels = f"{len(problems)} of {len(expected)} clips' pixels differ" + (
        f": {shown}" if problems else ""
    )
    # other file bytes give other clip ids (they derive from the file's sha256): no clip matches
    return result(DIFFERENT, 0 if bytes_note else same_pixels, f"{bytes_note}{pixels}", local_id)


def check_videos(task: CheckTask) -> list[VideoCheck]:
    return [_check_video(task, video, expected) for video, expected in task.videos]


def check_bundle(
    bundle_dir: str | Path,
    raw_dir: str | Path,
    *,
    name: Optional[str] = None,
    reader: str = "pyav",
    client=None,
    progress: bool = True,
) -> BundleCheck:
    """Compare the bundle at `bundle_dir` with clips cut from the videos under `raw_dir`."""
    folder = Path(bundle_dir)
    manifest = read_bundle_manifest(folder)
    problems = bundle_file_problems(folder, manifest)
    if problems:
        raise BundleChanged(
            f"{folder}: the bundle's files are not the ones its bundle.json lists: "
            f"{'; '.join(problems[:5])}; pull it again (`vfcache pull`) to restore them"
        )
    raw = Path(raw_dir)
    if not raw.is_dir():
        raise BundleError(
            f"no raw videos of {manifest.dataset} at {raw}: fetch them first "
            f"(vfcache fetch {manifest.dataset}), or point --raw at your copy"
        )
    spec = CacheDir(folder).read_spec()
    digests = {d.clip_id: d.pixel_sha256 for d in read_records(folder / DIGESTS_NAME, ClipDigest)}
    expected: dict[str, dict] = defaultdict(dict)
    for clip in read_records(folder / "clips.parquet", ClipRecord):
        if clip.clip_id != make_clip_id(clip.video_id, spec.spec_hash, clip.clip_index):
            raise BundleChanged(
                f"{folder}: clip {clip.clip_id} is not the id of clip {clip.clip_index} of "
                f"video {clip.video_id} under spec {spec.spec_hash}"
            )
        if clip.clip_id not in digests:
            raise BundleChanged(
                f"{folder}: clip {clip.clip_id} has no pixel digest in {DIGESTS_NAME}"
            )
        expected[clip.video_id][clip.clip_index] = (digests[clip.clip_id], clip.frame_indices)
    videos = [v for v in read_records(folder / VIDEOS_NAME, VideoRecord) if v.video_id in expected]
    if len(videos) != len(expected):
        raise BundleChanged(
            f"{folder}: {len(expected) - len(videos)} videos with clips are not in {VIDEOS_NAME}"
        )
    videos.sort(key=lambda v: v.relpath)
    tasks = [
        CheckTask(
            str(raw),
            spec,
            reader,
            tuple((v, expected[v.video_id]) for v in videos[i : i + VIDEOS_PER_TASK]),
        )
        for i in range(0, len(videos), VIDEOS_PER_TASK)
    ]
    checks = [
        c
        for batch in run_tasks(client, check_videos, tasks, "check", progress=progress)
        for c in batch
    ]
    return BundleCheck(
        name or str(folder),
        manifest.dataset,
        str(raw),
        tuple(sorted(checks, key=lambda c: c.relpath)),
    )


def write_check_report(path: str | Path, check: BundleCheck) -> Path:
    from vfcache.atomic import write_json_atomic

    write_json_atomic(path, check.to_json())
    return Path(path)
