"""Bringing raw datasets to disk: plain-HTTP downloads with retries and resume
(`download_files`), Hugging Face dataset snapshots pinned to a commit (`fetch_hf_dataset`),
safe extraction of zip/tar archives and multi-volume sets (`extract_archive`), and the fetch
record (`fetch.json`) that says which bytes were fetched. Dataset-specific layouts live in
`pipelines/sources/`.

`fetch_hf_dataset` is imported on first use, so the HTTP and archive tools do not pay for
importing the Hugging Face client.
"""

from __future__ import annotations

from typing import Any

from vfcache.pipelines.fetch.archives import (
    extract_archive,
    extraction_marker_path,
    is_extracted,
    read_extraction_marker,
)
from vfcache.pipelines.fetch.errors import (
    ArchiveError,
    FetchError,
    HubAccessError,
    IntegrityError,
    UnsafeArchiveError,
)
from vfcache.pipelines.fetch.http import (
    DownloadItem,
    DownloadOutcome,
    FetchReport,
    download_files,
    remote_size,
)
from vfcache.pipelines.fetch.record import (
    FetchedFile,
    FetchRecord,
    read_fetch_record,
    sha256_file,
    write_fetch_record,
)
from vfcache.pipelines.fetch.volumes import find_volumes, open_volumes

__all__ = [
    "ArchiveError",
    "DownloadItem",
    "DownloadOutcome",
    "FetchError",
    "FetchRecord",
    "FetchReport",
    "FetchedFile",
    "HubAccessError",
    "IntegrityError",
    "UnsafeArchiveError",
    "download_files",
    "extract_archive",
    "extraction_marker_path",
    "fetch_hf_dataset",
    "find_volumes",
    "is_extracted",
    "open_volumes",
    "read_extraction_marker",
    "read_fetch_record",
    "remote_size",
    "sha256_file",
    "write_fetch_record",
]


def __getattr__(name: str) -> Any:
    if name == "fetch_hf_dataset":
        from vfcache.pipelines.fetch.hf import fetch_hf_dataset

        return fetch_hf_dataset
    raise AttributeError(f"module 'vfcache.pipelines.fetch' has no attribute {name!r}")
