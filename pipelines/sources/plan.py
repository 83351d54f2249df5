"""`vfcache fetch NAME --dry-run`: what a fetch would download, before anything is downloaded.

Each source kind answers `plan_fetch(root) -> FetchPlan`: the files it would fetch with their
size where the host announces one (Hub tree listing, HTTP HEAD), which are already on disk,
which the host refuses, and the dataset's terms. Nothing is downloaded and the raw folder is
not touched; the plan is kept as `<root>/plans/<dataset>.json` so that `vfcache datasets` can
show the download size before the first fetch. Nobody should start a 2 TB download blind.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from vfcache.pipelines.fetch import remote_size
from vfcache.pipelines.fetch._transfer import SIZE_UNKNOWN
from vfcache.pipelines.fetch.diagnose import human_bytes

from vfcache.atomic import write_json_atomic
from vfcache.layout import DataRoot

PLANS_DIR = "plans"


@dataclass(frozen=True)
class PlannedFile:
    relpath: str  # where it lands below the raw folder
    size_bytes: Optional[int]  # None: the host does not say (or is not asked, e.g. per-video URLs)
    present: bool = False  # already on disk (or extracted there): a fetch skips it
    problem: str = ""  # e.g. "HTTP 404" (the host refuses it now) or "unreachable (...)"


@dataclass(frozen=True)
class FetchPlan:
    dataset: str
    source: str  # the source in words
    terms: str
    expected_size: str  # the config's own estimate
    files: tuple[PlannedFile, ...] = ()
    notes: tuple[str, ...] = ()
    access: tuple[
        str, ...
    ] = ()  # the host's answers before a download: listing, token, a first file
    planned_at_utc: str = field(
        default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    )

    @property
    def to_fetch(self) -> list[PlannedFile]:
        return [f for f in self.files if not f.present and not f.problem]

    @property
    def bytes_to_fetch(self) -> int:
        return sum(f.size_bytes or 0 for f in self.to_fetch)

    @property
    def unknown_sizes(self) -> int:
        return sum(f.size_bytes is None for f in self.to_fetch)

    def to_json(self) -> dict:
        return {
            **asdict(self),
            "bytes_to_fetch": self.bytes_to_fetch,
            "files_to_fetch": len(self.to_fetch),
            "unknown_sizes": self.unknown_sizes,
            "files_unavailable": sum(bool(f.problem) for f in self.files),
        }


def planned_http_files(
    items: Iterable[tuple[str, str]], raw_dir: Path, present: Iterable[str] = ()
) -> list[PlannedFile]:
    """(url, relpath) pairs: HEAD for the size of each file not already `present`."""
    already = set(present)
    planned = []
    for url, relpath in items:
        if relpath in already or (raw_dir / relpath).is_file():
            size = (raw_dir / relpath).stat().st_size if (raw_dir / relpath).is_file() else None
            planned.append(PlannedFile(relpath, size, present=True))
            continue
        size, problem = remote_size(url)
        planned.append(
            PlannedFile(relpath, size, problem=problem if problem != SIZE_UNKNOWN else "")
        )
    return planned


def plan_path(root: DataRoot, dataset: str) -> Path:
    return root.path / PLANS_DIR / f"{dataset}.json"


def write_plan(root: DataRoot, plan: FetchPlan) -> Path:
    path = plan_path(root, plan.dataset)
    write_json_atomic(path, plan.to_json())
    return path


def read_plan_summary(root: DataRoot, dataset: str) -> Optional[dict]:
    """The kept plan's JSON, or None when no dry run was made (or it is unreadable)."""
    try:
        return json.loads(plan_path(root, dataset).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def format_plan(plan: FetchPlan, *, listed: int = 20) -> str:
    """What the CLI prints: totals, the first files, refusals, notes and terms."""
    todo = plan.to_fetch
    present = [f for f in plan.files if f.present]
    refused = [f for f in plan.files if f.problem]
    unknown = f" (+{plan.unknown_sizes} files of unknown size)" if plan.unknown_sizes else ""
    lines = [
        f"{plan.dataset}: {plan.source}",
        f"  would fetch {len(todo)} files, {human_bytes(plan.bytes_to_fetch)}{unknown}; "
        f"{len(present)} already here; {len(refused)} not available (refused or unreachable)",
    ]
    for entry in todo[:listed]:
        size = human_bytes(entry.size_bytes) if entry.size_bytes is not None else "size unknown"
        lines.append(f"    {entry.relpath}  {size}")
    if len(todo) > listed:
        lines.append(f"    ... and {len(todo) - listed} more")
    for entry in refused[:listed]:
        lines.append(f"    not available: {entry.relpath} ({entry.problem})")
    lines += [f"  {line}" for line in plan.access]
    lines += [f"  note: {note}" for note in plan.notes]
    if plan.expected_size:
        lines.append(f"  disk needed (config): {plan.expected_size}")
    lines.append(f"  terms: {plan.terms or 'none stated'}")
    return "\n".join(lines)


def planned_hub_files(
    repo_id: str, revision: str, allow_patterns, endpoint, raw_dir: Path
) -> tuple[str, list[PlannedFile]]:
    """(commit, files) a Hub snapshot fetch would bring: the tree listing's sizes; files already
    on disk with that size, or extracted there, are present."""
    from vfcache.pipelines.fetch.hf import list_hf_dataset  # the Hub client loads only when used
    from vfcache.pipelines.sources._fetching import extracted_volume_names

    commit, listing = list_hf_dataset(
        repo_id,
        revision=revision,
        endpoint=endpoint,
        allow_patterns=list(allow_patterns) if allow_patterns else None,
    )
    planned = []
    for relpath, size in listing:
        path = raw_dir / relpath
        here = (path.is_file() and path.stat().st_size == size) or (
            path.parent.is_dir() and path.name in extracted_volume_names(path.parent)
        )
        planned.append(PlannedFile(relpath, size, present=here))
    return commit, planned


def hub_access_lines(
    repo_id: str, revision: str, endpoint, files: list[PlannedFile]
) -> tuple[str, ...]:
    """The dry run's access lines for a Hub snapshot (`vfcache.pipelines.fetch.hf.hub_access`),
    probed
    on the first file still to fetch (or the first file when all are here)."""
    from vfcache.pipelines.fetch.hf import hub_access

    pending = [f for f in files if not f.present] or files
    if not pending:
        return ()
    return hub_access(repo_id, revision=revision, path=pending[0].relpath, endpoint=endpoint)
