"""`vfcache pull OWNER/NAME`: bring a published clip bundle into `<root>/bundles/OWNER/NAME/` at
one commit, and verify every file twice: against the Hub's listing at that commit (size and
LFS sha256 or git blob id, as every Hub fetch does: pipelines/fetch/hf.py), then against the
publisher's own list in bundle.json (size and sha256). A file changed after publishing (a
split file edited in the repo, a shard replaced) fails the second check.

The revision asked for (a branch, tag or commit) is resolved to a commit once and recorded in
the bundle folder's `fetch.json`; pulling again with another revision downloads only what
changed and removes the files the new commit no longer has. Two pulls into one folder take
turns (the folder's writer lock).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from vfcache.cache_tools.writer_lock import writer_lock
from vfcache.manifests.bundle import (
    UNLISTED,
    BundleError,
    BundleManifest,
    bundle_file_problems,
    read_bundle_manifest,
)

from vfcache.layout import DataRoot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PullResult:
    repo_id: str
    commit: str
    folder: Path
    manifest: BundleManifest
    files: int
    total_bytes: int
    removed: tuple[str, ...]  # files of an earlier pull that this commit does not have


def _remove_stale(folder: Path, keep: set[str]) -> list[str]:
    removed = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relpath = path.relative_to(folder).as_posix()
        if relpath in keep or relpath in UNLISTED or relpath.startswith(".cache/"):
            continue
        path.unlink()
        removed.append(relpath)
    return removed


def pull_bundle(
    repo_id: str,
    root: DataRoot,
    *,
    revision: str = "main",
    token: Optional[str] = None,
    endpoint: Optional[str] = None,
    progress: bool = True,
    wait: bool = True,
) -> PullResult:
    """Download and verify; raise BundleError when the files are not the bundle's."""
    from vfcache.pipelines.fetch.hf import fetch_hf_dataset, hub_progress

    folder = root.bundle_dir(repo_id)
    with writer_lock(folder, f"pull of {repo_id}", wait=wait):
        with hub_progress(progress):
            record = fetch_hf_dataset(
                repo_id,
                folder,
                revision=revision,
                token=token,
                endpoint=endpoint,
                progress=progress,
            )
        removed = _remove_stale(folder, {f.relpath for f in record.files})
        manifest = read_bundle_manifest(folder)
        problems = bundle_file_problems(folder, manifest)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise BundleError(
            f"{repo_id}@{record.commit_sha} is not the bundle its bundle.json describes: "
            f"{'; '.join(problems[:5])}{more}"
        )
    return PullResult(
        repo_id,
        record.commit_sha,
        folder,
        manifest,
        len(record.files),
        record.total_bytes,
        tuple(removed),
    )
