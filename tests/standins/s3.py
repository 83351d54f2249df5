"""An S3-compatible server on 127.0.0.1 for the tests: moto's server mode behind a small proxy
that logs every request and can cut a connection in the middle of a response (reset).

    with S3Standin() as s3:
        s3.endpoint            # http://127.0.0.1:PORT (the proxy)
        s3.reset_next(ranged_gets=1, after_bytes=100)  # the next ranged GET is cut after 100 body
        bytes
        s3.requests            # [(method, path, range header or None, outcome)]

Credentials: moto accepts any key pair; the tests put one in the environment, as a user would.
The proxy speaks HTTP/1.1 one request per connection (it asks both sides to close), which is
all that the S3 clients need and keeps the fault exact.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Optional


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """(head up to the blank line, bytes already read past it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data, b""
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head + b"\r\n\r\n", rest


def _header(head: bytes, name: str) -> Optional[str]:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower().encode():
            return value.strip().decode()
    return None


def _with_close(head: bytes) -> bytes:
    lines = [
        line for line in head.split(b"\r\n") if line and not line.lower().startswith(b"connection:")
    ]
    return b"\r\n".join(lines + [b"Connection: close"]) + b"\r\n\r\n"


class S3Standin:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Optional[str], str]] = []
        self._lock = threading.Lock()
        self._resets: list[int] = []  # after_bytes of each armed reset, in order
        self._moto = None
        self._listener: Optional[socket.socket] = None
        self._moto_port = 0

    # -- control --------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def reset_next(self, ranged_gets: int = 1, after_bytes: int = 100) -> None:
        """Cut each of the next `ranged_gets` ranged GETs after `after_bytes` bytes of body."""
        with self._lock:
            self._resets.extend([after_bytes] * ranged_gets)

    def ranged_gets(self) -> list[tuple[str, str, Optional[str], str]]:
        return [r for r in self.requests if r[0] == "GET" and r[2]]

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> "S3Standin":
        from moto.server import ThreadedMotoServer

        self._moto_port = _free_port()
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self._moto_port, verbose=False)
        self._moto.start()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._moto is not None:
            self._moto.stop()

    # -- proxy ----------------------------------------------------------------------------------
    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head, body = _read_head(client)
            if not head:
                return
            if (_header(head, "Expect") or "").lower() == "100-continue":
                client.sendall(
                    b"HTTP/1.1 100 Continue\r\n\r\n"
                )  # botocore waits for it before the body
                head = b"\r\n".join(
                    line for line in head.split(b"\r\n") if not line.lower().startswith(b"expect:")
                )
            if (_header(head, "Transfer-Encoding") or "").lower() == "chunked":
                while (
                    not body.endswith(b"\r\n\r\n") or b"0\r\n" not in body
                ):  # up to the last chunk
                    chunk = client.recv(65536)
                    if not chunk:
                        break
                    body += chunk
            else:
                length = int(_header(head, "Content-Length") or 0)
                while len(body) < length:
                    chunk = client.recv(65536)
                    if not chunk:
                        break
                    body += chunk
            method, path = head.split(b" ", 2)[:2]
            method, path = method.decode(), path.decode()
            ranged = _header(head, "Range")
            cut_after = None
            if method == "GET" and ranged:
                with self._lock:
                    cut_after = self._resets.pop(0) if self._resets else None
            with socket.create_connection(("127.0.0.1", self._moto_port)) as upstream:
                upstream.sendall(_with_close(head) + body)
                response = b""
                while True:
                    chunk = upstream.recv(65536)
                    if not chunk:
                        break
                    response += chunk
            outcome = "ok"
            resp_head, _, resp_body = response.partition(b"\r\n\r\n")
            if cut_after is not None:
                resp_body = resp_body[:cut_after]
                outcome = f"reset after {cut_after} body bytes"
            response = _with_close(resp_head + b"\r\n\r\n") + resp_body
            with self._lock:
                self.requests.append((method, path, ranged, outcome))
            try:
                if cut_after is not None:
                    client.sendall(response)
                    # RST instead of FIN: the client sees "connection reset by peer" mid-body
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                client.sendall(response)
            except OSError:
                pass
