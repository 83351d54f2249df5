"""One file over HTTP: a GET that resumes `<file>.part` with Range, checks what the
server answered, and verifies size and sha256. `http.py` runs many of these in a pool and
owns the retry loop; this module owns a single attempt and the errors that decide whether
another attempt is worth it (`TransientError`) or not (`PermanentError`).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm
from vfcache.pipelines.fetch.diagnose import diagnose_connection, proxy_for
from vfcache.pipelines.fetch.record import sha256_file

logger = logging.getLogger(__name__)

PART_SUFFIX = ".part"
MAX_BACKOFF_S = 60.0
_CHUNK_BYTES = 1 << 16
_RETRYABLE_4XX = frozenset({408, 425, 429})
_USER_AGENT = "vfcache-fetch/0.1 (python-urllib)"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class DownloadItem:
    """One file to fetch: `url` lands at `dest_dir / relpath` (a relative POSIX path)."""

    url: str
    relpath: str
    size_bytes: int | None = None
    sha256: str | None = None


class TransientError(Exception):
    """Worth another attempt: 5xx, 408/425/429, timeouts, resets, short or damaged bodies."""

    def __init__(self, reason: str, http_status: int | None = None, retry_after_s: float = 0.0):
        super().__init__(reason)
        self.reason = reason
        self.http_status = http_status
        self.retry_after_s = retry_after_s


class Interrupted(Exception):
    """The caller was interrupted (Ctrl-C): stop now, keep the part for the next run."""


class _AlreadyComplete(Exception):
    """A 416 whose `Content-Range: bytes */N` says the part already holds all N bytes."""


class PermanentError(Exception):
    """Not worth another attempt: 401, 403, 404, 410 and the other 4xx."""

    def __init__(self, reason: str, http_status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.http_status = http_status


def parse_content_range(header: str | None) -> tuple[int, int | None]:
    """`bytes START-END/TOTAL` -> (START, TOTAL or None when the total is `*`)."""
    match = _CONTENT_RANGE.fullmatch((header or "").strip())
    if match is None:
        raise ValueError(f"unparseable Content-Range header: {header!r}")
    total = match.group(3)
    return int(match.group(1)), None if total == "*" else int(total)


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
        content_range = err.headers.get("Content-Range", "") if err.headers else ""
        err.close()
        if code == 416 and offset and content_range == f"bytes */{offset}":
            raise _AlreadyComplete() from err
        if code >= 500 or code in _RETRYABLE_4XX or (code == 416 and offset):
            wait_s = float(retry_after) if retry_after.isdigit() else 0.0
            raise TransientError(f"HTTP {code}", code, min(wait_s, MAX_BACKOFF_S)) from err
        if code == 407:
            raise PermanentError(f"HTTP 407 from the proxy {proxy_for(url)}", code) from err
        raise PermanentError(f"HTTP {code}", code) from err
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        diagnosis = diagnose_connection(err, url)
        if diagnosis is None:
            raise TransientError(f"connection failed: {err}") from err
        if not diagnosis.transient:  # TLS or a refusing proxy: another attempt ends the same way
            raise PermanentError(diagnosis.what) from err
        raise TransientError(diagnosis.what) from err


SIZE_UNKNOWN = "size not announced"


def remote_json(url: str, *, max_bytes: int = 16 << 20, timeout_s: float = 30.0) -> object:
    """A small JSON document read into memory (file lists of a dry run); PermanentError or
    TransientError like a download when the host refuses."""
    response = _open(url, 0, timeout_s)
    with response:
        payload = response.read(max_bytes + 1)
    if len(payload) > max_bytes:
        raise PermanentError(f"{url}: more than {max_bytes} bytes, not a file list")
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PermanentError(f"{url}: not JSON ({err})") from err


def remote_size(url: str, timeout_s: float = 30.0) -> tuple[int | None, str]:
    """(Content-Length, "") of a HEAD on `url`, or (None, why) when the host does not say."""
    request = urllib.request.Request(
        url, method="HEAD", headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            length = response.headers.get("Content-Length")
            return (int(length), "") if length and length.isdigit() else (None, SIZE_UNKNOWN)
    except urllib.error.HTTPError as err:
        err.close()
        return None, f"HTTP {err.code}"
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        diagnosis = diagnose_connection(err, url)
        return None, diagnosis.what if diagnosis else f"unreachable ({err})"


class ByteProgress:
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
class TransferPolicy:
    """Retry and timeout settings of a run, and the event that stops it on Ctrl-C."""

    retries: int
    backoff_s: float
    timeout_s: float
    stop: threading.Event


@dataclass
class Tally:
    """What the attempts on one file did so far (mutable, owned by one worker thread)."""

    bytes_received: int = 0
    resumed: bool = False
    last_status: int | None = None


def transfer(
    item: DownloadItem, part: Path, policy: TransferPolicy, progress: ByteProgress, tally: Tally
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
    except _AlreadyComplete:
        tally.resumed = True  # size unknown to us, but the server says nothing is missing
        return
    except TransientError as err:
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
                    chunk = response.read1(_CHUNK_BYTES)  # whatever has arrived
                except (http.client.HTTPException, OSError) as err:
                    raise TransientError(f"body interrupted: {err}") from err
                if not chunk:
                    break
                if policy.stop.is_set():
                    raise Interrupted()
                fh.write(chunk)
                tally.bytes_received += len(chunk)
                progress.advance(len(chunk))
            fh.flush()
            os.fsync(fh.fileno())
    size_now = part.stat().st_size
    if expected_total is not None and size_now < expected_total:
        raise TransientError(f"short body: have {size_now} of {expected_total} bytes")
    if expected_total is not None and size_now > expected_total:
        part.unlink()
        raise TransientError(f"body longer than announced ({size_now} > {expected_total})")


def _plan_write(response: http.client.HTTPResponse, offset: int, part: Path):
    """Decide from the status line whether the body continues `part` or replaces it."""
    length = response.headers.get("Content-Length")
    if response.status == 206 and offset:
        try:
            start, total = parse_content_range(response.headers.get("Content-Range"))
        except ValueError as err:
            raise TransientError(str(err), 206) from err
        if start != offset:
            part.unlink()
            raise TransientError(f"asked to resume at byte {offset}, server sent {start}", 206)
        if total is None and length is not None:
            total = offset + int(length)
        return True, total, "ab"
    if response.status == 200:
        if offset:
            logger.info("%s: server ignored Range (200); restarting from byte 0", part.name)
        return False, int(length) if length is not None else None, "wb"
    raise TransientError(f"unexpected HTTP {response.status} for a GET", response.status)


def verify_part(part: Path, item: DownloadItem, progress: ByteProgress) -> None:
    size = part.stat().st_size
    if item.size_bytes is not None and size != item.size_bytes:
        part.unlink()
        progress.adjust_total(size)
        raise TransientError(f"size mismatch: expected {item.size_bytes} bytes, got {size}")
    if item.sha256 is not None:
        digest = sha256_file(part)
        if digest != item.sha256.lower():
            part.unlink()
            progress.adjust_total(size)
            raise TransientError(f"sha256 mismatch: expected {item.sha256}, got {digest}")
