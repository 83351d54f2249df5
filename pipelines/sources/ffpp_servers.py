"""The FaceForensics++ servers: several of them, fail-over between them, and remembering them.

The email's download script names three servers (EU, EU2, CA), and users report each failing
in its own way: refused connections, 404 on originals, expired TLS certificates
(ondyari/FaceForensics issues 96, 104, 106, 111, 118). So `source.server_url` (and `--server`)
takes one URL or several: a download goes to the first, and whatever it could not serve is
asked of the next, and so on; what no server could serve is one line per server naming its
failure.

What the user gave once (`vfcache fetch ffpp --server URL --accept-terms`) is kept in the raw
folder's fetch record (`options`), so later stages and `make cache DATASET=ffpp` go on
without the flags; the YAML or the command line, when given, wins.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from vfcache.pipelines.fetch import DownloadItem, DownloadOutcome, download_files
from vfcache.pipelines.sources._fetching import read_record_or_none

RECORD_SOURCE = "ffpp"


@dataclass(frozen=True)
class FailoverReport:
    ok: list[DownloadOutcome]
    failed: list[DownloadOutcome]  # what the last server asked could not serve either
    per_server: dict[str, str]  # server -> one line: what it failed, and why
    failures_path: Path


def server_urls(value: object) -> Optional[tuple[str, ...]]:
    """`server_url` as a tuple of URLs without trailing slash; None when unset; ValueError if
    bad."""
    if value is None:
        return None
    urls = [value] if isinstance(value, str) else value
    if (
        not isinstance(urls, (list, tuple))
        or not urls
        or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls)
    ):
        raise ValueError(
            "an http(s) URL or a list of them (the servers of the FaceForensics email)"
        )
    return tuple(dict.fromkeys(u.rstrip("/") for u in urls))


def remembered_options(raw_dir: Path) -> dict:
    """What an earlier `vfcache fetch ffpp --server ... --accept-terms` recorded in `raw_dir`."""
    record = read_record_or_none(raw_dir)
    if record is None or record.source != RECORD_SOURCE:
        return {}
    return dict(record.options)


def _reason_line(server: str, failed: Sequence[DownloadOutcome]) -> str:
    reasons = Counter(o.reason for o in failed)
    top = ", ".join(f"{reason} ({count} files)" for reason, count in reasons.most_common(3))
    return f"server {server}: {len(failed)} files failed: {top}"


def download_with_failover(
    relpaths: Sequence[str],
    servers: Sequence[str],
    url_of: Callable[[str, str], str],
    raw_dir: Path,
    *,
    concurrency: int,
    retries: int,
    progress: bool,
) -> FailoverReport:
    """Each relpath from the first server that serves it (`url_of(server, relpath)`)."""
    todo, ok, per_server = list(relpaths), [], {}
    failed: list[DownloadOutcome] = []
    failures_path = raw_dir / "_failures.jsonl"
    for server in servers:
        if not todo:
            break
        items = [DownloadItem(url_of(server, rel), rel) for rel in todo]
        report = download_files(
            items, raw_dir, concurrency=concurrency, retries=retries, progress=progress
        )
        ok += report.ok
        failed = list(report.failed)
        failures_path = report.failures_path
        if failed:
            per_server[server] = _reason_line(server, failed)
        todo = [o.relpath for o in failed]
    return FailoverReport(ok, failed, per_server, failures_path)
