"""`vfcache datasets`: every configured dataset, where it comes from, its terms, and how far it got.

`dataset_status(root)` reads only what is on disk (configs, `fetch.json`, parquet footers,
split folders) and never the network, so it answers instantly; `format_status_table` prints
one row per dataset and cache spec, then the source and terms of each dataset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pyarrow.parquet as pq
from vfcache.manifests.records import STATUS_OK
from vfcache.pipelines.sources._fetching import read_record_or_none
from vfcache.pipelines.sources.base import get_source
from vfcache.pipelines.sources.plan import human_bytes, read_plan_summary

from vfcache.config import list_dataset_names, load_dataset_config
from vfcache.errors import VfcacheError
from vfcache.layout import VIDEOS_PARQUET_NAME, DataRoot

GENERATED_KINDS = frozenset({"sample", "local"})  # no fetch record: present means fetched


@dataclass(frozen=True)
class SpecStatus:
    """One cache folder (dataset x clip spec)."""

    spec_name: str
    videos: Optional[int]  # rows of videos.parquet (None: not probed)
    videos_ok: Optional[int]
    clips: Optional[int]  # rows of clips.parquet (None: not extracted)
    splits: tuple[str, ...]  # split names with a split.json


@dataclass(frozen=True)
class DatasetStatus:
    name: str
    kind: str
    source: str  # where the data comes from, in words
    expected_size: str  # disk needed when fetched, from the config
    terms: str
    raw_dir: str
    fetched: bool
    fetched_files: int
    fetched_bytes: int  # as recorded in fetch.json
    disk_bytes: int  # bytes under the raw folder now
    revision: str  # commit (Hub) or revision the fetch record holds
    specs: tuple[SpecStatus, ...] = ()
    planned: Optional[dict] = (
        None  # the last `fetch --dry-run` (vfcache.pipelines.sources.plan), if any
    )
    error: str = ""  # the config or source could not be read


def folder_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def _rows(path: Path) -> Optional[int]:
    return pq.read_metadata(path).num_rows if path.is_file() else None


def video_counts(dataset_dir: Path) -> tuple[Optional[int], Optional[int]]:
    """(videos, ok videos) of the dataset's videos.parquet; (None, None) before build-manifest."""
    videos = dataset_dir / VIDEOS_PARQUET_NAME
    if not videos.is_file():
        return None, None
    statuses = pq.read_table(videos, columns=["status"]).column(0).to_pylist()
    return len(statuses), sum(1 for s in statuses if s == STATUS_OK)


def spec_status(spec_dir: Path) -> SpecStatus:
    """One clip spec's folder; the probe counts are the dataset's (one manifest for every spec)."""
    videos, videos_ok = video_counts(spec_dir.parent)
    splits_dir = spec_dir / "splits"
    splits = (
        tuple(sorted(p.name for p in splits_dir.iterdir() if (p / "split.json").is_file()))
        if splits_dir.is_dir()
        else ()
    )
    return SpecStatus(
        spec_name=spec_dir.name,
        videos=videos,
        videos_ok=videos_ok,
        clips=_rows(spec_dir / "clips.parquet"),
        splits=splits,
    )


def one_status(root: DataRoot, name: str) -> DatasetStatus:
    try:
        config = load_dataset_config(name)
        source = get_source(config)
    except VfcacheError as err:
        return DatasetStatus(
            name=name,
            kind="?",
            source="",
            expected_size="",
            terms="",
            raw_dir="",
            fetched=False,
            fetched_files=0,
            fetched_bytes=0,
            disk_bytes=0,
            revision="",
            error=str(err),
        )
    raw_dir = Path(source.raw_dir(root))
    record = read_record_or_none(raw_dir)
    present = raw_dir.is_dir() and any(raw_dir.iterdir())
    fetched = record is not None or (config.kind in GENERATED_KINDS and present)
    cache_root = root.dataset_dir(name)
    specs = tuple(spec_status(cache_root / spec) for spec in root.extracted_specs(name))
    if not specs and (cache_root / VIDEOS_PARQUET_NAME).is_file():  # probed, nothing extracted yet
        videos, videos_ok = video_counts(cache_root)
        specs = (
            SpecStatus(spec_name="-", videos=videos, videos_ok=videos_ok, clips=None, splits=()),
        )
    describe = getattr(source, "describe", None)
    return DatasetStatus(
        name=name,
        kind=config.kind,
        source=describe() if describe else config.kind,
        expected_size=getattr(source, "expected_size", ""),
        terms=config.terms,
        raw_dir=str(raw_dir),
        fetched=fetched,
        fetched_files=len(record.files) if record else 0,
        fetched_bytes=record.total_bytes if record else 0,
        disk_bytes=folder_bytes(raw_dir) if present else 0,
        revision=(record.commit_sha or record.revision) if record else "",
        specs=specs,
        planned=read_plan_summary(root, name),
    )


def dataset_status(root: DataRoot) -> list[DatasetStatus]:
    """One status per dataset config in `configs/datasets/`, sorted by name."""
    return [one_status(root, name) for name in list_dataset_names()]


def format_status_table(statuses: list[DatasetStatus]) -> str:
    """A table (dataset, kind, fetched, on disk, then per spec: probed, clips, splits), then the
    source, disk needed and terms of each dataset."""
    header = (
        f"{'dataset':18}{'kind':17}{'fetched':9}{'on disk':>11}  "
        f"{'spec':20}{'probed':>13}{'clips':>8}  splits"
    )
    lines = [header, "-" * len(header)]
    for status in statuses:
        fetched = "error" if status.error else ("yes" if status.fetched else "no")
        disk = human_bytes(status.disk_bytes) if status.disk_bytes else "-"
        head = f"{status.name:18}{status.kind:17}{fetched:9}{disk:>11}  "
        specs = status.specs or (None,)
        for index, spec in enumerate(specs):
            prefix = head if index == 0 else " " * len(head)
            if spec is None:
                lines.append(f"{prefix}{'-':20}{'-':>13}{'-':>8}  -")
                continue
            probed = f"{spec.videos_ok}/{spec.videos} ok" if spec.videos is not None else "-"
            clips = str(spec.clips) if spec.clips is not None else "-"
            lines.append(
                f"{prefix}{spec.spec_name:20}{probed:>13}{clips:>8}  "
                f"{', '.join(spec.splits) or '-'}"
            )
    lines.append("")
    for status in statuses:
        if status.error:
            lines.append(f"{status.name}: cannot read its config: {status.error}")
            continue
        lines.append(f"{status.name}: {status.source}")
        if status.fetched and status.fetched_files:
            lines.append(
                f"    fetched: {status.fetched_files} files, {human_bytes(status.fetched_bytes)}"
                + (f", revision {status.revision}" if status.revision else "")
                + f" into {status.raw_dir}"
            )
        if status.planned and not status.fetched:
            plan = status.planned
            unknown = (
                f" (+{plan['unknown_sizes']} of unknown size)" if plan["unknown_sizes"] else ""
            )
            missing = plan.get("files_unavailable", 0)
            lines.append(
                f"    to download (dry run {plan['planned_at_utc']}): {plan['files_to_fetch']} "
                f"files, {human_bytes(plan['bytes_to_fetch'])}{unknown}"
                + (f"; {missing} not available" if missing else "")
            )
        if status.expected_size:
            lines.append(f"    disk needed: {status.expected_size}")
        if status.terms:
            lines.append(f"    terms: {status.terms}")
    return "\n".join(lines)


__all__ = ["DatasetStatus", "SpecStatus", "dataset_status", "format_status_table", "human_bytes"]
