"""Fetch steps the dataset sources share: a Hugging Face snapshot that is not fetched twice,
archives extracted in place, and the fetch record of HTTP downloads.

A raw folder is "fetched" when its `fetch.json` (see `vfcache.pipelines.fetch.record`) is there.
For archives, the record lists the archive volumes as downloaded (size, sha256), and the
extraction markers (`.extracted/<archive>.json`) list what came out of them; a re-run
accepts an archive that is gone because it was extracted, so nothing is fetched twice.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from vfcache.pipelines.fetch import (
    FetchedFile,
    FetchRecord,
    extract_archive,
    find_volumes,
    is_extracted,
    read_fetch_record,
    sha256_file,
    write_fetch_record,
)
from vfcache.pipelines.fetch.archives import MARKER_DIR
from vfcache.pipelines.fetch.record import FETCH_RECORD_NAME

log = logging.getLogger(__name__)

_ARCHIVE_NAME = re.compile(
    r"(\.zip|\.tar|\.tgz|\.tar\.gz|\.tar\.bz2|\.tar\.xz|\.split\.[a-z]{2,}|_part_[a-z]{2,}"
    r"|\.(zip|tar|tgz|gz)\.\d{3})$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FetchSummary:
    """What one `Source.fetch` call did, for the CLI to print."""

    dataset: str
    raw_dir: str
    source: str  # e.g. "huggingface Clarifiedfish/AEGIS-Full@<commit>", "http <base url>"
    files: int  # files the fetch record lists
    total_bytes: int
    downloaded: Optional[
        int
    ]  # files this call transferred (None: the Hub client decided, see up_to_date)
    failed: int  # files that could not be fetched (see failures_path)
    extracted_archives: int  # archives this call extracted
    up_to_date: bool = False  # everything was already there; the source was not contacted
    failures_path: Optional[str] = None
    notes: tuple[str, ...] = ()


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def read_record_or_none(dest: Path) -> Optional[FetchRecord]:
    if not (dest / FETCH_RECORD_NAME).is_file():
        return None
    try:
        return read_fetch_record(dest)
    except ValueError as err:
        log.warning("ignoring unreadable fetch record in %s (%s)", dest, err)
        return None


def extracted_volume_names(folder: Path) -> set[str]:
    """Names of archive volumes in `folder` that an extraction marker says were extracted there."""
    names: set[str] = set()
    marker_dir = folder / MARKER_DIR
    if not marker_dir.is_dir():
        return names
    for marker in marker_dir.glob("*.json"):
        try:
            names.update(json.loads(marker.read_text(encoding="utf-8")).get("volumes", []))
        except (OSError, json.JSONDecodeError) as err:
            log.warning("ignoring unreadable extraction marker %s (%s)", marker, err)
    return names


def file_accounted(dest: Path, entry: FetchedFile) -> bool:
    """The recorded file is on disk with its size, or was an archive volume extracted in place."""
    path = dest / entry.relpath
    if path.is_file():
        return path.stat().st_size == entry.size_bytes
    return path.name in extracted_volume_names(path.parent)


def hf_fetch_once(
    repo_id: str,
    dest: Path,
    *,
    revision: str,
    allow_patterns: Optional[Sequence[str]],
    endpoint: Optional[str],
    progress: bool,
) -> tuple[FetchRecord, bool]:
    """`fetch_hf_dataset` unless `dest` already holds a complete fetch of the same request.

    Returns (record, fetched_now). Archives extracted after an earlier fetch count as
    present, so a re-run neither downloads them again nor needs the network.
    """
    from vfcache.pipelines.fetch.hf import fetch_hf_dataset  # the Hub client loads only when used

    patterns = tuple(allow_patterns) if allow_patterns is not None else None
    previous = read_record_or_none(dest)
    if (
        previous is not None
        and previous.source == "huggingface"
        and previous.repo_id == repo_id
        and revision in (previous.revision, previous.commit_sha)
        and previous.allow_patterns == patterns
        and all(file_accounted(dest, entry) for entry in previous.files)
    ):
        log.info(
            "%s@%s already fetched into %s (%d files); not contacting the Hub",
            repo_id,
            previous.commit_sha,
            dest,
            len(previous.files),
        )
        return previous, False
    record = fetch_hf_dataset(
        repo_id,
        dest,
        revision=revision,
        allow_patterns=list(patterns) if patterns is not None else None,
        endpoint=endpoint,
        progress=progress,
    )
    return record, True


def hub_fetch_summary(
    dataset: str,
    dest: Path,
    repo_id: str,
    record: FetchRecord,
    fetched_now: bool,
    *,
    notes: tuple[str, ...] = (),
) -> FetchSummary:
    """The summary of an `hf_fetch_once` into `dest` (the Hub client counts its own downloads)."""
    return FetchSummary(
        dataset=dataset,
        raw_dir=str(dest),
        source=f"huggingface {repo_id}@{record.commit_sha}",
        files=len(record.files),
        total_bytes=record.total_bytes,
        downloaded=None if fetched_now else 0,
        failed=0,
        extracted_archives=0,
        up_to_date=not fetched_now,
        notes=notes,
    )


def is_archive_name(name: str) -> bool:
    return bool(_ARCHIVE_NAME.search(name))


def first_volumes(paths: Iterable[Path]) -> list[Path]:
    """The archives among `paths`, one per volume set (its first volume), sorted."""
    firsts = set()
    for path in paths:
        if path.is_file() and is_archive_name(path.name):
            firsts.add(find_volumes(path)[0])
    return sorted(firsts)


def extract_in_place(
    archives: Sequence[Path], *, remove_archive: bool, on_corrupt_member: str, progress: bool
) -> list[Path]:
    """Extract each archive into its own folder; returns the archives extracted by this call."""
    done = []
    for archive in archives:
        if is_extracted(archive, archive.parent):
            if remove_archive:  # an earlier run stopped between extraction and removal
                extract_archive(archive, archive.parent, remove_archive=True, progress=False)
            continue
        extract_archive(
            archive,
            archive.parent,
            remove_archive=remove_archive,
            on_corrupt_member=on_corrupt_member,
            progress=progress,
        )
        done.append(archive)
    return done


def update_fetch_record(
    dest: Path,
    *,
    source: str,
    repo_id: str,
    revision: str,
    endpoint: str,
    relpaths: Iterable[str],
    options: Optional[dict] = None,
) -> FetchRecord:
    """Write `dest/fetch.json` for the files `relpaths` (downloaded by HTTP into `dest`).

    Files recorded by an earlier record of the same source keep their entry when they are
    unchanged in size or were extracted in place; every other present file is hashed now.
    Files neither present nor extracted are left out (the failure list names them).
    """
    previous = read_record_or_none(dest)
    known = {}
    if previous is not None and previous.source == source and previous.repo_id == repo_id:
        known = {entry.relpath: entry for entry in previous.files}
    files = []
    for relpath in sorted(set(relpaths)):
        path = dest / relpath
        entry = known.get(relpath)
        if entry is not None and file_accounted(dest, entry):
            files.append(entry)
        elif path.is_file():
            files.append(
                FetchedFile(
                    relpath=relpath, size_bytes=path.stat().st_size, sha256=sha256_file(path)
                )
            )
    record = FetchRecord(
        source=source,
        repo_id=repo_id,
        revision=revision,
        commit_sha="",
        endpoint=endpoint,
        allow_patterns=None,
        files=tuple(files),
        fetched_at_utc=now_utc(),
        options=dict(options or {}),
    )
    write_fetch_record(record, dest)
    return record
