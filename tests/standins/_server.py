"""Shared plumbing of the stand-in servers: a threaded HTTP server on 127.0.0.1 (port 0)
that a test starts and stops as a context manager, a request log, Range parsing, and
whole-body answers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    query: str
    range_header: str | None
    authorization: str | None
    status: int


class RequestLog:
    """Thread-safe list of requests, with small query helpers for assertions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []

    def add(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    @property
    def entries(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._entries)

    def for_path(self, path: str, method: str | None = None) -> list[LoggedRequest]:
        return [
            e for e in self.entries if e.path == path and (method is None or e.method == method)
        ]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`bytes=A-B` / `bytes=A-` / `bytes=-N` -> inclusive (start, end), or None if absent.

    Raises ValueError when the range cannot be satisfied (the caller answers 416).
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        raise ValueError(f"unsupported Range {header!r}")
    first, _, last = spec.strip().partition("-")
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise ValueError(f"Range {header!r} outside a {size}-byte file")
    return start, end


def send_payload(
    handler: BaseHTTPRequestHandler,
    status: int,
    payload: bytes,
    content_type: str,
    extra_headers: dict[str, str] | None = None,
) -> None:
    """Answer with a whole (small) body; a HEAD request gets the headers only."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(payload)))
    for key, value in (extra_headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(payload)


class _QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass


class ThreadedServer:
    """Run `handler_class` on 127.0.0.1:<free port> in a daemon thread (start/stop)."""

    def __init__(self, handler_class: type[BaseHTTPRequestHandler]):
        self._handler_class = handler_class
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def make_handler(
    base: type[BaseHTTPRequestHandler],
    serve: Callable[[BaseHTTPRequestHandler, str], None],
    *,
    writes: bool = False,
) -> type[BaseHTTPRequestHandler]:
    """A handler class whose GET and HEAD (and with `writes`, POST and PUT) call
    `serve(handler, method)`."""

    class Handler(base):  # type: ignore[valid-type, misc]
        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            serve(self, "GET")

        def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
            serve(self, "HEAD")

    if writes:
        Handler.do_POST = lambda self: serve(self, "POST")  # type: ignore[attr-defined]
        Handler.do_PUT = lambda self: serve(self, "PUT")  # type: ignore[attr-defined]
    return Handler


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, sent with a Content-Length or with `Transfer-Encoding: chunked`
    (what an HTTP client streaming a file object sends)."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        body = bytearray()
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(body)
            body += handler.rfile.read(size)
            handler.rfile.readline()  # the CRLF after the chunk
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


QuietHandler = _QuietHandler


def refused_url() -> str:
    """An http:// address on 127.0.0.1 where nothing listens (a connection there is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class RefusingProxy:
    """An HTTP proxy that answers every request (CONNECT for https, absolute-form GET for
    http) with 407 Proxy Authentication Required, as a proxy wanting credentials does."""

    def __init__(self) -> None:
        def refuse(handler: BaseHTTPRequestHandler, method: str) -> None:
            send_payload(
                handler,
                407,
                b"proxy authentication required\n",
                "text/plain",
                {"Proxy-Authenticate": 'Basic realm="standin"'},
            )

        handler_class = make_handler(_QuietHandler, refuse)
        handler_class.do_CONNECT = lambda self: refuse(self, "CONNECT")  # type: ignore[attr-defined]
        self._server = ThreadedServer(handler_class)

    def __enter__(self) -> "RefusingProxy":
        self._server.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        return self._server.base_url
