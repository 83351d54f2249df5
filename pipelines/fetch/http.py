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

import http.client
import logging
import os
import re
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from tqdm.auto import tqdm

from pipelines.fetch.record import atomic_write_jsonl, read_jsonl, sha256_file

logger = logging.getLogger(__name__)

FAILURES_NAME = "_failures.jsonl"
PART_SUFFIX = ".part"
_CHUNK_BYTES = 1 << 16
_MAX_BACKOFF_S = 60.0
_RETRYABLE_4XX = frozenset({408, 425, 429})
_USER_AGENT = "vfcache-fetch/0.1 (python-urllib)"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")

OutcomeStatus = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True)
class DownloadItem:
    """One file to fetch: `url` lands at `dest_dir / relpath` (a relative POSIX path)."""

    url: str
    relpath: str
    size_bytes: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class DownloadOutcome:
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
    ok: tuple[DownloadOutcome, ...]
    failed: tuple[DownloadOutcome, ...]
    skipped: tuple[DownloadOutcome, ...]
    failures_path: Path

    @property
    def all_ok(self) -> bool:
        return not self.failed


class _TransientError(Exception):
    def __init__(self, reason: str, http_status: int | None = None, retry_after_s: float = 0.0):
        super().__init__(reason)
        self.reason = reason
        self.http_status = http_status
        self.retry_after_s = retry_after_s


class _Interrupted(Exception):
    """The caller was interrupted (Ctrl-C): stop now, keep the part for the next run."""


class _PermanentError(Exception):
    def __init__(self, reason: str, http_status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.http_status = http_status


def backoff_delay_s(attempt: int, base_s: float, cap_s: float = _MAX_BACKOFF_S) -> float:
    """Sleep before retry number `attempt` (1-based): base, 2*base, 4*base... capped."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    return min(cap_s, base_s * 2 ** (attempt - 1))


def parse_content_range(header: str | None) -> tuple[int, int | None]:
    """`bytes START-END/TOTAL` -> (START, TOTAL or None when the total is `*`)."""
    match = _CONTENT_RANGE.fullmatch((header or "").strip())
    if match is None:
        raise ValueError(f"unparseable Content-Range header: {header!r}")
    total = match.group(3)
    return int(match.group(1)), None if total == "*" else int(total)


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
        logger.warning("%s: %d bytes on disk, expected %d; refetching", final, size,
                       item.size_bytes)
        return None
    if item.sha256 is not None:
        if sha256_file(final) != item.sha256.lower():
            logger.warning("%s: sha256 differs from the expected one; refetching", final)
            return None
        return "present, size and sha256 verified"
    return "present, size verified" if item.size_bytes is not None else "present"


def _open(url: str, offset: int, timeout_s: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as err:
        code = err.code
        retry_after = err.headers.get("Retry-After", "") if err.headers else ""
        err.close()
        if code >= 500 or code in _RETRYABLE_4XX or (code == 416 and offset):
            wait_s = float(retry_after) if retry_after.isdigit() else 0.0
            raise _TransientError(f"HTTP {code}", code, min(wait_s, _MAX_BACKOFF_S)) from err
        raise _PermanentError(f"HTTP {code}", code) from err
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise _TransientError(f"connection failed: {err}") from err


class _ByteProgress:
    """A shared tqdm byte bar. Its total is the bytes still to fetch: it shrinks by what is
    already on disk (skipped files, resumed parts) and grows back by what gets discarded."""

    def __init__(self, bar: tqdm):
        self._bar = bar
        self._lock = threading.Lock()

    def advance(self, count: int) -> None:
        with self._lock:
            self._bar.update(count)

    def adjust_total(self, delta: int) -> None:
        with self._lock:
            if self._bar.total is not None:
                self._bar.total = max(0, self._bar.total + delta)
                self._bar.refresh()


@dataclass(frozen=True)
class _Policy:
    retries: int
    backoff_s: float
    timeout_s: float
    stop: threading.Event


@dataclass
class _Tally:
    """What the attempts on one file did so far (mutable, owned by one worker thread)."""

    bytes_received: int = 0
    resumed: bool = False
    last_status: int | None = None


def _transfer(
    item: DownloadItem, part: Path, policy: _Policy, progress: _ByteProgress, tally: _Tally
) -> None:
    """One GET into `part`, resuming from its current size; raises on anything short."""
    offset = part.stat().st_size if part.exists() else 0
    if item.size_bytes is not None and offset > item.size_bytes:
        part.unlink()
        offset = 0
    if item.size_bytes is not None and part.exists() and offset == item.size_bytes:
        tally.resumed = True  # a previous run got every byte but stopped before verifying
        return
    try:
        response = _open(item.url, offset, policy.timeout_s)
    except _TransientError as err:
        if err.http_status == 416:
            part.unlink(missing_ok=True)  # our part is longer than the file: start over
        raise
    with response:
        tally.last_status = response.status
        resumed, expected_total, mode = _plan_write(response, offset, part)
        tally.resumed = tally.resumed or resumed
        if not resumed and offset:
            progress.adjust_total(offset)  # the kept bytes are thrown away: fetch them again
        with open(part, mode) as fh:
            while True:
                try:
                    chunk = response.read(_CHUNK_BYTES)
                except (http.client.HTTPException, OSError) as err:
                    raise _TransientError(f"body interrupted: {err}") from err
                if not chunk:
                    break
                if policy.stop.is_set():
                    raise _Interrupted()
                fh.write(chunk)
                tally.bytes_received += len(chunk)
                progress.advance(len(chunk))
            fh.flush()
            os.fsync(fh.fileno())
    size_now = part.stat().st_size
    if expected_total is not None and size_now < expected_total:
        raise _TransientError(f"short body: have {size_now} of {expected_total} bytes")
    if expected_total is not None and size_now > expected_total:
        part.unlink()
        raise _TransientError(f"body longer than announced ({size_now} > {expected_total})")


def _plan_write(response: http.client.HTTPResponse, offset: int, part: Path):
    """Decide from the status line whether the body continues `part` or replaces it."""
    length = response.headers.get("Content-Length")
    if response.status == 206 and offset:
        try:
            start, total = parse_content_range(response.headers.get("Content-Range"))
        except ValueError as err:
            raise _TransientError(str(err), 206) from err
        if start != offset:
            part.unlink()
            raise _TransientError(f"asked to resume at byte {offset}, server sent {start}", 206)
        if total is None and length is not None:
            total = offset + int(length)
        return True, total, "ab"
    if response.status == 200:
        if offset:
            logger.info("%s: server ignored Range (200); restarting from byte 0", part.name)
        return False, int(length) if length is not None else None, "wb"
    raise _TransientError(f"unexpected HTTP {response.status} for a GET", response.status)


def _verify_part(part: Path, item: DownloadItem, progress: _ByteProgress) -> None:
    size = part.stat().st_size
    if item.size_bytes is not None and size != item.size_bytes:
        part.unlink()
        progress.adjust_total(size)
        raise _TransientError(f"size mismatch: expected {item.size_bytes} bytes, got {size}")
    if item.sha256 is not None:
        digest = sha256_file(part)
        if digest != item.sha256.lower():
            part.unlink()
            progress.adjust_total(size)
            raise _TransientError(f"sha256 mismatch: expected {item.sha256}, got {digest}")


def _fetch_one(
    item: DownloadItem, dest_dir: Path, policy: _Policy, progress: _ByteProgress
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
    tally = _Tally()
    last: _TransientError | None = None
    attempts = 0
    for attempts in range(1, policy.retries + 2):
        try:
            _transfer(item, part, policy, progress, tally)
            _verify_part(part, item, progress)
            os.replace(part, final)
            return DownloadOutcome(
                item.url, item.relpath, "ok", "downloaded", attempts, tally.last_status,
                tally.bytes_received, tally.resumed,
            )
        except _PermanentError as err:
            return DownloadOutcome(
                item.url, item.relpath, "failed", err.reason, attempts, err.http_status,
                tally.bytes_received, tally.resumed, permanent=True,
            )
        except _TransientError as err:
            last = err
            logger.info("%s: attempt %d failed: %s", item.url, attempts, err.reason)
        except _Interrupted:
            return DownloadOutcome(
                item.url, item.relpath, "failed", "interrupted; the part is kept for a re-run",
                attempts, tally.last_status, tally.bytes_received, tally.resumed,
            )
        delay_s = max(backoff_delay_s(attempts, policy.backoff_s), last.retry_after_s)
        if attempts > policy.retries or policy.stop.wait(delay_s):
            break
    assert last is not None
    return DownloadOutcome(
        item.url, item.relpath, "failed", f"gave up after {attempts} attempts: {last.reason}",
        attempts, last.http_status, tally.bytes_received, tally.resumed,
    )


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
    policy = _Policy(retries, backoff_s, timeout_s, stop=threading.Event())

    outcomes: list[DownloadOutcome] = []
    todo: list[DownloadItem] = []
    for item in items:
        row = carried.get((item.url, item.relpath))
        if row is None:
            todo.append(item)
        else:
            outcomes.append(DownloadOutcome(
                item.url, item.relpath, "skipped",
                f"recorded permanent failure: {row['reason']}", http_status=row["http_status"],
                permanent=True,
            ))

    total = sum(item.size_bytes or 0 for item in todo)
    with tqdm(total=total or None, unit="B", unit_scale=True, unit_divisor=1024,
              desc=f"download {dest.name}", disable=not progress) as bar:
        byte_progress = _ByteProgress(bar)
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            futures = [pool.submit(_fetch_one, item, dest, policy, byte_progress) for item in todo]
            try:
                outcomes.extend(future.result() for future in as_completed(futures))
            except BaseException:  # Ctrl-C: let the workers stop at their next chunk
                policy.stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
                raise

    ok = tuple(o for o in outcomes if o.status == "ok")
    failed = tuple(o for o in outcomes if o.status == "failed")
    skipped = tuple(o for o in outcomes if o.status == "skipped")
    still_listed = {(o.url, o.relpath) for o in skipped if o.permanent}
    rows = [_failure_row(o) for o in failed]
    rows += [row for key, row in carried.items() if key in still_listed]
    atomic_write_jsonl(failures_path, sorted(rows, key=lambda r: r["relpath"]))
    logger.info("download into %s: %d ok, %d failed, %d skipped", dest, len(ok), len(failed),
                len(skipped))
    return FetchReport(ok=ok, failed=failed, skipped=skipped, failures_path=failures_path)
