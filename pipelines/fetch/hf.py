"""Fetch a Hugging Face dataset repo at a pinned commit into a plain folder, and record it.

The requested revision (branch, tag or commit) is resolved to a commit sha once, and every
file is downloaded at that commit with `huggingface_hub.snapshot_download(local_dir=...)`,
so a branch moving mid-download cannot mix two versions. Each file is then checked
locally against the Hub's tree listing (size, and the LFS sha256 or the git blob id), a
damaged file is downloaded again once, and `fetch.json` records repo, revision, commit and
every file with size and sha256.

Endpoint and token follow the client's conventions: `endpoint=` or `HF_ENDPOINT` (read at
call time), `token=` or `HF_TOKEN` / the stored login. Xet-backed repos (the real AEGIS ones)
download through `hf_xet` on the client's default path, or over plain HTTP with
`HF_HUB_DISABLE_XET=1`; the check afterwards is the same either way. Tested against
huggingface_hub 2.4 and hf-xet 1.x on both paths (tests/standins/hf_hub.py has the routes).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from huggingface_hub import (
    HfApi,
    RepoFile,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.utils import filter_repo_objects
from tqdm.auto import tqdm
from vfcache.pipelines.fetch.diagnose import disk_errors
from vfcache.pipelines.fetch.errors import FetchError, HubAccessError, IntegrityError
from vfcache.pipelines.fetch.hub_errors import hub_errors, token_source, with_hub_retries
from vfcache.pipelines.fetch.record import FetchedFile, FetchRecord, write_fetch_record

from vfcache.checksums import HASH_CHUNK_BYTES

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"

_REPO_TYPE = "dataset"


class _SilentTqdm(tqdm):
    def __init__(self, *args, **kwargs):
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)


@contextlib.contextmanager
def hub_progress(progress: bool) -> Iterator[None]:
    """huggingface_hub's own progress bars (uploads, downloads) on or off for the block."""
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    if not progress:
        disable_progress_bars()
    try:
        yield
    finally:
        if not progress and not was_disabled:
            enable_progress_bars()


def resolve_endpoint(endpoint: str | None) -> str:
    """`endpoint`, else `HF_ENDPOINT` as set now, else the public Hub."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hash_file(path: Path, bar: tqdm | None = None) -> tuple[int, str, str]:
    """(size_bytes, sha256, git blob sha1) in one read of the file."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    git_sha1 = hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK_BYTES):
            sha256.update(chunk)
            git_sha1.update(chunk)
            if bar is not None:
                bar.update(len(chunk))
    return size, sha256.hexdigest(), git_sha1.hexdigest()


def xet_file_hash(path: Path) -> str:
    """The Xet file hash of the local file (hf_xet's own hashing, as the Hub lists `xetHash`)."""
    import hf_xet  # installed with huggingface_hub; only Xet-only listings need it

    return hf_xet.hash_files([str(path)])[0].hash


def mismatch_reason(
    entry: RepoFile, path: Path, size: int, sha256: str, git_sha1: str
) -> str | None:
    """Why the local bytes differ from the tree entry, or None when they match.

    LFS files (Xet-backed ones too: the Hub lists their LFS sha256) are checked by sha256; a
    file listed with a Xet hash and no LFS block by its Xet hash; small files by git blob id.
    """
    if size != entry.size:
        return f"size {size} != {entry.size} announced by the Hub"
    if entry.lfs is not None:
        return (
            None if sha256 == entry.lfs.sha256 else f"sha256 {sha256} != LFS oid {entry.lfs.sha256}"
        )
    if entry.xet_hash is not None:
        local = xet_file_hash(path)
        return None if local == entry.xet_hash else f"Xet hash {local} != {entry.xet_hash}"
    if git_sha1 != entry.blob_id:
        return f"git blob id {git_sha1} != {entry.blob_id}"
    return None


def tree_at(api: HfApi, repo_id: str, commit: str) -> dict[str, RepoFile]:
    return {
        entry.path: entry
        for entry in api.list_repo_tree(
            repo_id, repo_type=_REPO_TYPE, revision=commit, recursive=True
        )
        if isinstance(entry, RepoFile)
    }


def _listing(
    api: HfApi, repo_id: str, revision: str, allow_patterns: list[str] | None, endpoint: str
) -> tuple[str, dict[str, RepoFile], list[str]]:
    """(commit, tree at the commit, sorted paths the patterns select); HubAccessError if none."""
    with hub_errors("read", repo_id, revision, endpoint):
        commit = with_hub_retries(lambda: api.dataset_info(repo_id, revision=revision).sha)
    with hub_errors("list", repo_id, revision, endpoint):
        tree = tree_at(api, repo_id, commit)
    wanted = sorted(filter_repo_objects(tree, allow_patterns=allow_patterns))
    if not wanted:
        raise HubAccessError(
            f"{repo_id}@{commit}: no file matches allow_patterns={allow_patterns!r} "
            f"(the repo has {len(tree)} files, e.g. {sorted(tree)[:3]})"
        )
    return commit, tree, wanted


def list_hf_dataset(
    repo_id: str,
    *,
    revision: str,
    allow_patterns: list[str] | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> tuple[str, list[tuple[str, int]]]:
    """(commit, [(path, size_bytes)]) that `fetch_hf_dataset` would download; nothing is written."""
    endpoint = resolve_endpoint(endpoint)
    api = HfApi(endpoint=endpoint, token=token)
    commit, tree, wanted = _listing(api, repo_id, revision, allow_patterns, endpoint)
    return commit, [(path, tree[path].size) for path in wanted]


def hub_access(
    repo_id: str, *, revision: str, path: str, endpoint: str | None = None, token: str | None = None
) -> tuple[str, ...]:
    """What a dry run says about access: whether the repo needs a token (gated, private),
    whether one is set, and whether the Hub lets this client download `path` (one HEAD on
    `resolve`, the request a download starts with); nothing is downloaded."""
    endpoint = resolve_endpoint(endpoint)
    api = HfApi(endpoint=endpoint, token=token)
    with hub_errors("read", repo_id, revision, endpoint):
        info = with_hub_retries(lambda: api.dataset_info(repo_id, revision=revision))
    source = token_source()
    need = (
        f"needed (gated: {info.gated})"
        if info.gated
        else "needed (private repo)"
        if info.private
        else "not needed (public, not gated)"
    )
    lines = [
        f"listing: readable on {endpoint} at commit {info.sha}",
        f"token: {need}; {f'present ({source})' if source else 'none set'}",
    ]
    url = hf_hub_url(repo_id, path, repo_type=_REPO_TYPE, revision=info.sha, endpoint=endpoint)
    try:
        with hub_errors("download", repo_id, revision, endpoint):
            get_hf_file_metadata(url, token=token)
        lines.append(f"download: allowed ({path} answered)")
    except FetchError as err:
        lines.append(f"download: refused: {err}")
    return tuple(lines)


def fetch_hf_dataset(
    repo_id: str,
    dest_dir: Path | str,
    *,
    revision: str,
    allow_patterns: list[str] | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    max_workers: int = 4,
    progress: bool = True,
) -> FetchRecord:
    """Download `repo_id` (a dataset repo) at `revision` into `dest_dir`; write and return
    its fetch record.

    Re-running downloads only files that are missing or damaged. Raises `HubAccessError`
    (gated, missing repo/revision, nothing matching `allow_patterns`) or `IntegrityError`
    (a file still differs from the Hub's listing after a second download).
    """
    dest = Path(dest_dir)
    endpoint = resolve_endpoint(endpoint)
    api = HfApi(endpoint=endpoint, token=token)
    commit, tree, wanted = _listing(api, repo_id, revision, allow_patterns, endpoint)
    logger.info(
        "fetching %d files of %s@%s (%s) into %s", len(wanted), repo_id, commit, revision, dest
    )
    quiet = {} if progress else {"tqdm_class": _SilentTqdm}
    entries = [tree[p] for p in wanted]
    with disk_errors(dest, _bytes_missing(dest, entries)):
        with hub_errors("download", repo_id, revision, endpoint):
            snapshot_download(
                repo_id,
                repo_type=_REPO_TYPE,
                revision=commit,
                local_dir=dest,
                allow_patterns=allow_patterns,
                token=token,
                endpoint=endpoint,
                max_workers=max_workers,
                **quiet,
            )
        files = _verify_files(api, repo_id, commit, dest, entries, token, progress)
    record = FetchRecord(
        source="huggingface",
        repo_id=repo_id,
        revision=revision,
        commit_sha=commit,
        endpoint=endpoint,
        allow_patterns=tuple(allow_patterns) if allow_patterns is not None else None,
        files=tuple(files),
        fetched_at_utc=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    write_fetch_record(record, dest)
    return record


def _bytes_missing(dest: Path, entries: list[RepoFile]) -> int:
    """Bytes of the listed files not yet on disk at their listed size (what a fetch still
    brings)."""
    missing = 0
    for entry in entries:
        path = dest / entry.path
        if not (path.is_file() and path.stat().st_size == entry.size):
            missing += entry.size
    return missing


def _verify_files(
    api: HfApi,
    repo_id: str,
    commit: str,
    dest: Path,
    entries: list[RepoFile],
    token: str | None,
    progress: bool,
) -> list[FetchedFile]:
    """Hash every file; download a damaged one again (once) before giving up."""
    files = []
    total = sum(entry.size for entry in entries)
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"verify {repo_id}",
        disable=not progress,
    ) as bar:
        for entry in entries:
            path = dest / entry.path
            size, sha256, git_sha1 = hash_file(path, bar)
            reason = mismatch_reason(entry, path, size, sha256, git_sha1)
            if reason is not None:
                logger.warning("%s: %s; downloading it again", path, reason)
                with hub_errors("download", repo_id, commit, api.endpoint):
                    hf_hub_download(
                        repo_id,
                        entry.path,
                        repo_type=_REPO_TYPE,
                        revision=commit,
                        local_dir=dest,
                        token=token,
                        endpoint=api.endpoint,
                        force_download=True,
                    )
                size, sha256, git_sha1 = hash_file(path, bar)
                reason = mismatch_reason(entry, path, size, sha256, git_sha1)
                if reason is not None:
                    raise IntegrityError(f"{repo_id}@{commit}: {entry.path}: {reason}")
            files.append(FetchedFile(relpath=entry.path, size_bytes=size, sha256=sha256))
    return files
