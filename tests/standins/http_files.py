"""A plain HTTP file server over a folder, with fault injection per path.

Stands in for the archive hosts (GenVideo volumes, the FaceForensics++ server) and the
WebVid stock-preview URLs. Faults are queued per path and consumed in order, one per
request, so "500 twice, then a truncated body, then the file" is three `add_fault` calls.
Every request is logged (method, path, Range header, status) for the test to assert on.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.standins._server import (
    LoggedRequest,
    QuietHandler,
    RequestLog,
    ThreadedServer,
    make_handler,
    parse_range,
    send_payload,
)

_CHUNK_BYTES = 16 * 1024


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or on top of) serving the file, for `times` requests
    (None: every request from now on).

    status: answer this status with a short body instead of the file (403, 404, 500...).
    truncate_after_bytes: announce the full Content-Length, send this many bytes, close.
    delay_s: sleep before answering.
    throttle_bytes_per_s: pace the body.
    ignore_range: answer 200 with the whole file even when a Range was asked.
    corrupt: flip one byte of the body (same length).
    retry_after_s: with `status`, also send a Retry-After header.
    headers: with `status`, also send these headers (the Hub's X-Error-Code, X-Error-Message).
    """

    times: int | None = 1
    status: int | None = None
    truncate_after_bytes: int | None = None
    delay_s: float = 0.0
    throttle_bytes_per_s: float | None = None
    ignore_range: bool = False
    corrupt: bool = False
    retry_after_s: int | None = None
    headers: tuple[tuple[str, str], ...] = ()  # with `status`: more headers (X-Error-Code...)


def fault_headers(fault: Fault) -> dict[str, str]:
    """The headers an injected status answer carries (Retry-After and the fault's own)."""
    extra = {"Retry-After": str(fault.retry_after_s)} if fault.retry_after_s else {}
    return {**extra, **dict(fault.headers)}


class FaultQueue:
    """Faults queued per key (a path, a route), consumed in order, one per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, list[Fault]] = {}

    def add(self, key: str, fault: Fault) -> None:
        with self._lock:
            self._faults.setdefault(key, []).append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def next(self, key: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(key, [])
            if not queue:
                return None
            fault = queue[0]
            if fault.times is not None:
                if fault.times <= 1:
                    queue.pop(0)
                else:
                    queue[0] = replace(fault, times=fault.times - 1)
            return fault


def path_route(parsed: urllib.parse.SplitResult) -> str | None:
    """The default mapping: the URL path is the file's path below the root."""
    return urllib.parse.unquote(parsed.path).lstrip("/")


class HttpFileServer:
    """Serve `root` at `base_url/<relpath>`; use as a context manager.

    `route` maps a request URL to the relpath it serves (None: 404), for hosts whose URLs
    name the file in the query string (ModelScope's `.../repo?FilePath=<file>`).
    """

    def __init__(
        self, root: Path, *, route: Callable[[urllib.parse.SplitResult], str | None] = path_route
    ):
        self.root = Path(root)
        self._route = route
        self.log = RequestLog()
        self._faults = FaultQueue()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.max_in_flight = 0  # most requests served at the same time
        self._server = ThreadedServer(make_handler(QuietHandler, self._serve))

    def __enter__(self) -> HttpFileServer:
        self._server.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.stop()

    @property
    def base_url(self) -> str:
        return self._server.base_url

    def url(self, relpath: str) -> str:
        return f"{self.base_url}/{urllib.parse.quote(relpath)}"

    def add_fault(self, relpath: str, fault: Fault) -> None:
        self._faults.add(relpath, fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    def requests(self, relpath: str, method: str = "GET") -> list[LoggedRequest]:
        return self.log.for_path(relpath, method)

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            self._answer(handler, method)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urllib.parse.urlsplit(handler.path)
        relpath = self._route(parsed) or ""
        range_header = handler.headers.get("Range")

        def log(status: int) -> None:
            self.log.add(
                LoggedRequest(
                    method,
                    relpath,
                    parsed.query,
                    range_header,
                    handler.headers.get("Authorization"),
                    status,
                )
            )

        target = (self.root / relpath).resolve()
        fault = self._faults.next(relpath) or Fault(times=None)
        if fault.delay_s:
            time.sleep(fault.delay_s)
        if fault.status is not None:
            log(fault.status)
            extra = fault_headers(fault)
            _send_text(handler, fault.status, f"injected {fault.status}\n", extra)
            return
        if self.root.resolve() not in target.parents or not target.is_file():
            log(404)
            _send_text(handler, 404, "not found\n")
            return
        payload = target.read_bytes()
        try:
            byte_range = None if fault.ignore_range else parse_range(range_header, len(payload))
        except ValueError:
            log(416)
            _send_text(
                handler,
                416,
                "range not satisfiable\n",
                {"Content-Range": f"bytes */{len(payload)}"},
            )
            return
        start, end = byte_range if byte_range else (0, len(payload) - 1)
        status = 206 if byte_range else 200
        log(status)
        body = payload[start : end + 1]
        if fault.corrupt and body:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Accept-Ranges", "bytes")
        if byte_range:
            handler.send_header("Content-Range", f"bytes {start}-{end}/{len(payload)}")
        handler.end_headers()
        if method == "HEAD":
            return
        if fault.truncate_after_bytes is not None:
            body = body[: fault.truncate_after_bytes]
        _send_body(handler, body, fault.throttle_bytes_per_s)


def _send_text(
    handler: BaseHTTPRequestHandler,
    status: int,
    text: str,
    extra_headers: dict[str, str] | None = None,
) -> None:
    send_payload(handler, status, text.encode(), "text/plain", extra_headers)


def _send_body(handler: BaseHTTPRequestHandler, body: bytes, bytes_per_s: float | None) -> None:
    chunk_bytes = _CHUNK_BYTES if bytes_per_s is None else max(1, int(bytes_per_s / 20))
    try:
        for offset in range(0, len(body), chunk_bytes):
            handler.wfile.write(body[offset : offset + chunk_bytes])
            handler.wfile.flush()
            if bytes_per_s:
                time.sleep(chunk_bytes / bytes_per_s)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client went away (a test killed it): nothing to answer
