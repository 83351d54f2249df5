"""Plain-HTTP download of many files: bounded concurrency, retries, resume, verification.

Used for archives served over HTTP (GenVideo volumes, the FaceForensics++ server) and for
URL lists (WebVid). Built on the standard library (`urllib.request`), so it adds no
dependency. Per file:

- an existing final file that matches the expected size/sha256 is skipped (a re-run fetches
  only what is missing or damaged); with neither known, presence is enough;
- bytes go to `<file>.part`; a later attempt or run resumes it with `Range: bytes=N-` and
  keeps the bytes only when the server answers 206 from byte N (a 200 restarts the file);
- 5xx, 408, 429, timeouts, connection errors and short bodies are retried with exponential
  backoff; other 4xx (403, 404, 410...) are permanent and never retried;
- a size or sha256 mismatch deletes the part and counts as a failed attempt;
- the final name appears only through `os.replace` after verification.

Failures of the run are written to `<dest_dir>/_failures.jsonl` (atomically, one JSON object
per line). Two processes must not download into the same folder at once.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from tqdm.auto import tqdm
from vfcache.pipelines.fetch._transfer import (
    MAX_BACKOFF_S,
    PART_SUFFIX,
    ByteProgress,
    DownloadItem,
    Interrupted,
    PermanentError,
    Tally,
    TransferPolicy,
    TransientError,
    parse_content_range,
    remote_json,
    remote_size,
    transfer,
    verify_part,
)
from vfcache.pipelines.fetch.diagnose import RERUN, disk_errors, host_of
from vfcache.pipelines.fetch.errors import FetchError, FetchFailed
from vfcache.pipelines.fetch.record import atomic_write_jsonl, read_jsonl, sha256_file

__all__ = [
    "FAILURES_NAME",
    "DownloadItem",
    "DownloadOutcome",
    "FetchReport",
    "backoff_delay_s",
    "download_failure",
    "download_files",
    "parse_content_range",
    "remote_json",
    "remote_size",
    "validate_relpath",
]

logger = logging.getLogger(__name__)

FAILURES_NAME = "_failures.jsonl"

OutcomeStatus = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True)
class DownloadOutcome:
    """What happened to one item. `permanent` failures (403, 404...) were not retried;
    `resumed` means bytes from an earlier attempt or run were kept (Range answered 206)."""

    url: str
    relpath: str
    status: OutcomeStatus
    reason: str
    attempts: int = 0
    http_status: int | None = None
    bytes_received: int = 0
    resumed: bool = False
    permanent: bool = False


@dataclass(frozen=True)
class FetchReport:
    """Outcomes of one `download_files` call, each tuple sorted by relpath."""

    ok: tuple[DownloadOutcome, ...]
    failed: tuple[DownloadOutcome, ...]
    skipped: tuple[DownloadOutcome, ...]
    failures_path: Path

    @property
    def all_ok(self) -> bool:
        return not self.failed


def backoff_delay_s(attempt: int, base_s: float, cap_s: float = MAX_BACKOFF_S) -> float:
    """Sleep before retry number `attempt` (1-based): base, 2*base, 4*base... capped."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    return min(cap_s, base_s * 2 ** (attempt - 1))


def validate_relpath(relpath: str) -> str:
    """Refuse paths that would land outside the destination folder."""
    pure = PurePosixPath(relpath)
    if not relpath or pure.is_absolute() or "\\" in relpath or ".." in pure.parts:
        raise ValueError(
            f"download relpath must be a relative POSIX path without '..', got {relpath!r}"
        )
    if pure.name.endswith(PART_SUFFIX) or pure.name == FAILURES_NAME:
        raise ValueError(f"download relpath {relpath!r} collides with a name the fetcher uses")
    return str(pure)


def _validate_items(items: list[DownloadItem]) -> None:
    seen: set[str] = set()
    for item in items:
        if not item.url.startswith(("http://", "https://")):
            raise ValueError(f"only http(s) URLs can be downloaded, got {item.url!r}")
        relpath = validate_relpath(item.relpath)
        if relpath in seen:
            raise ValueError(f"two download items target the same relpath {relpath!r}")
        seen.add(relpath)


def _present_reason(final: Path, item: DownloadItem) -> str | None:
    """Why an existing final file can be kept, or None when it must be (re)fetched."""
    if not final.is_file():
        return None
    size = final.stat().st_size
    if item.size_bytes is not None and size != item.size_bytes:
        logger.warning(
            "%s: %d bytes on disk, expected %d; refetching", final, size, item.size_bytes
        )
        return None
    if item.sha256 is not None:
        if sha256_file(final) != item.sha256.lower():
            logger.warning("%s: sha256 differs from the expected one; refetching", final)
            return None
        return "present, size and sha256 verified"
    return "present, size verified" if item.size_bytes is not None else "present"


def _fetch_one(
    item: DownloadItem, dest_dir: Path, policy: TransferPolicy, progress: ByteProgress
) -> DownloadOutcome:
    final = dest_dir / item.relpath
    present = _present_reason(final, item)
    if present is not None:
        progress.adjust_total(-(item.size_bytes or 0))
        return DownloadOutcome(item.url, item.relpath, "skipped", present)
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + PART_SUFFIX)
    if part.exists() and item.size_bytes is not None:
        progress.adjust_total(-min(part.stat().st_size, item.size_bytes))
    tally = Tally()
    last: TransientError | None = None
    attempts = 0
    for attempts in range(1, policy.retries + 2):
        try:
            transfer(item, part, policy, progress, tally)
            verify_part(part, item, progress)
            os.replace(part, final)
            return DownloadOutcome(
                item.url,
                item.relpath,
                "ok",
                "downloaded",
                attempts,
                tally.last_status,
                tally.bytes_received,
                tally.resumed,
            )
        except PermanentError as err:
            return DownloadOutcome(
                item.url,
                item.relpath,
                "failed",
                err.reason,
                attempts,
                err.http_status,
                tally.bytes_received,
                tally.resumed,
                permanent=True,
            )
        except TransientError as err:
            last = err
            logger.info("%s: attempt %d failed: %s", item.url, attempts, err.reason)
        except Interrupted:
            return DownloadOutcome(
                item.url,
                item.relpath,
                "failed",
                "interrupted; the part is kept for a re-run",
                attempts,
                tally.last_status,
                tally.bytes_received,
                tally.resumed,
            )
        delay_s = max(backoff_delay_s(attempts, policy.backoff_s), last.retry_after_s)
        if attempts > policy.retries or policy.stop.wait(delay_s):
            break
    assert last is not None
    return DownloadOutcome(
        item.url,
        item.relpath,
        "failed",
        f"gave up after {attempts} attempts: {last.reason}",
        attempts,
        last.http_status,
        tally.bytes_received,
        tally.resumed,
    )


def _run_pool(
    todo: list[DownloadItem],
    dest: Path,
    policy: TransferPolicy,
    progress: ByteProgress,
    concurrency: int,
) -> list[DownloadOutcome]:
    """Fetch `todo` with `concurrency` threads, keeping at most a few items per thread
    queued, so a list of millions of URLs costs no more memory than its outcomes."""
    outcomes: list[DownloadOutcome] = []
    pending: set = set()
    queue = iter(todo)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        try:
            while True:
                for item in itertools.islice(queue, 4 * concurrency - len(pending)):
                    pending.add(pool.submit(_fetch_one, item, dest, policy, progress))
                if not pending:
                    return outcomes
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                outcomes.extend(future.result() for future in done)
        except BaseException:  # Ctrl-C: the workers stop at their next chunk
            policy.stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _recorded_permanent(failures_path: Path) -> dict[tuple[str, str], dict]:
    if not failures_path.is_file():
        return {}
    return {
        (row["url"], row["relpath"]): row
        for row in read_jsonl(failures_path)
        if row.get("permanent")
    }


def _failure_row(outcome: DownloadOutcome) -> dict:
    return {
        "url": outcome.url,
        "relpath": outcome.relpath,
        "reason": outcome.reason,
        "http_status": outcome.http_status,
        "attempts": outcome.attempts,
        "permanent": outcome.permanent,
    }


def download_files(
    items: list[DownloadItem],
    dest_dir: Path | str,
    *,
    concurrency: int = 4,
    retries: int = 5,
    backoff_s: float = 0.5,
    timeout_s: float = 30.0,
    progress: bool = True,
    skip_recorded_permanent: bool = False,
) -> FetchReport:
    """Download `items` into `dest_dir`; never raises for a single bad URL.

    `retries` is the number of retries after the first attempt. With
    `skip_recorded_permanent`, items that the previous run's `_failures.jsonl` lists as
    permanent failures (403/404...) are skipped and stay listed, so a re-run over millions
    of rotting URLs does not ask for them again.
    """
    if concurrency < 1 or retries < 0 or backoff_s < 0 or timeout_s <= 0:
        raise ValueError(
            f"need concurrency >= 1, retries >= 0, backoff_s >= 0, timeout_s > 0; got "
            f"{concurrency}, {retries}, {backoff_s}, {timeout_s}"
        )
    _validate_items(items)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    failures_path = dest / FAILURES_NAME
    carried = _recorded_permanent(failures_path) if skip_recorded_permanent else {}
    policy = TransferPolicy(retries, backoff_s, timeout_s, stop=threading.Event())

    outcomes: list[DownloadOutcome] = []
    todo: list[DownloadItem] = []
    for item in items:
        row = carried.get((item.url, item.relpath))
        if row is None:
            todo.append(item)
        else:
            outcomes.append(
                DownloadOutcome(
                    item.url,
                    item.relpath,
                    "skipped",
                    f"recorded permanent failure: {row['reason']}",
                    http_status=row["http_status"],
                    permanent=True,
                )
            )

    total = sum(item.size_bytes or 0 for item in todo)
    with (
        tqdm(
            total=total or None,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"download {dest.name}",
            disable=not progress,
        ) as bar,
        disk_errors(dest, total),
    ):
        outcomes += _run_pool(todo, dest, policy, ByteProgress(bar), concurrency)

    outcomes.sort(key=lambda o: o.relpath)
    ok = tuple(o for o in outcomes if o.status == "ok")
    failed = tuple(o for o in outcomes if o.status == "failed")
    skipped = tuple(o for o in outcomes if o.status == "skipped")
    still_listed = {(o.url, o.relpath) for o in skipped if o.permanent}
    rows = [_failure_row(o) for o in failed]
    rows += [row for key, row in carried.items() if key in still_listed]
    atomic_write_jsonl(failures_path, sorted(rows, key=lambda r: r["relpath"]))
    logger.info(
        "download into %s: %d ok, %d failed, %d skipped", dest, len(ok), len(failed), len(skipped)
    )
    return FetchReport(ok=ok, failed=failed, skipped=skipped, failures_path=failures_path)


_STATUS_HINTS = {
    401: "the host wants credentials: check the address you were given (links expire)",
    403: "the host refuses these files (an expired or wrong link, terms not accepted, a blocked "
    "network): check the address in the dataset config or --server",
    404: "the files are not at that address: check the base URL in the dataset config or --server",
    407: "the proxy wants credentials: check HTTPS_PROXY / HTTP_PROXY (`vfcache doctor`)",
    410: "the files were removed from the host: check the address in the dataset config",
}


def download_failure(report: FetchReport, what: str, *, command: str) -> FetchError:
    """One line for the failed items of `report`: how many of what, from which host, the first
    reasons, where the list is and what to do. `FetchFailed` (exit 1) when every failure was
    retried to the end (5xx, 429, dropped connections: a rerun resumes); `FetchError` (exit 2)
    when a host refused outright (401/403/404, TLS, a proxy), which needs a change first."""
    failed = report.failed
    hosts = sorted({host_of(o.url) for o in failed})
    reasons = "; ".join(f"{o.relpath}: {o.reason}" for o in failed[:3])
    more = f" (+{len(failed) - 3} more)" if len(failed) > 3 else ""
    refused = [o for o in failed if o.permanent]
    if refused:
        hint = _STATUS_HINTS.get(
            refused[0].http_status or 0, "another attempt ends the same way: fix the cause above"
        )
        hint = f"{hint}, then run `{command}` again"
    else:
        hint = f"the host kept failing after the retries; {RERUN} (`{command}`)"
    line = (
        f"{len(failed)} {what} could not be downloaded from {', '.join(hosts)}: {reasons}{more}; "
        f"{hint}; the list is in {report.failures_path}"
    )
    return FetchError(line) if refused else FetchFailed(line)
