"""Why a host could not be reached, in words a user can act on.

Both clients the fetch stage uses wrap the operating system's error: `urllib` in a
`URLError` whose `reason` is the `OSError`, and httpx (the Hub client's transport, shipped
as `httpx2` with huggingface_hub 2.x) in `ConnectError` / `ReadTimeout` / `ProxyError`
raised `from` httpcore's error, itself raised `from` the `OSError`. So the cause chain is
walked down to the first error that names the failure: `socket.gaierror` (name
resolution), `ConnectionRefusedError`, a timeout, an `ssl.SSLError` (TLS), a refused proxy.

Which proxy applies to a URL is what `urllib.request.getproxies()` / `proxy_bypass` say
(HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY): httpx reads the same variables.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vfcache.pipelines.fetch.errors import DiskFullError

RERUN = "rerun the same command later: finished files are kept and partial ones resume"
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


@dataclass(frozen=True)
class Diagnosis:
    """What failed (`what`, naming the host), what to do (`hint`), and whether waiting can
    fix it (`transient`: exit 1 after the retries) or a setting must change (exit 2)."""

    what: str
    hint: str
    transient: bool

    @property
    def line(self) -> str:
        return f"{self.what}; {self.hint}"


def host_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts.netloc or url


def proxy_for(url: str) -> str | None:
    """The proxy URL the environment sets for `url`, or None (direct, or bypassed by NO_PROXY)."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return proxy


def causes(err: BaseException) -> Iterator[BaseException]:
    """`err`, then what it was raised from (`__cause__`, `__context__`, a URLError's reason)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        reason = (
            getattr(current, "reason", None) if isinstance(current, urllib.error.URLError) else None
        )
        current = (
            reason
            if isinstance(reason, BaseException)
            else (current.__cause__ or current.__context__)
        )


def _proxy_refused(err: BaseException) -> bool:
    # httpx: ProxyError; urllib/http.client: OSError("Tunnel connection failed: 407 ...")
    return type(err).__name__ == "ProxyError" or "Tunnel connection failed" in str(err)


def _is_timeout(err: BaseException) -> bool:
    return isinstance(err, (TimeoutError, socket.timeout)) or "Timeout" in type(err).__name__


def diagnose_connection(err: BaseException, url: str) -> Diagnosis | None:
    """A Diagnosis when `err` (or what it was raised from) is a network failure; else None."""
    host = host_of(url)
    proxy = proxy_for(url)
    via = f" through the proxy {proxy}" if proxy else ""
    proxy_hint = (
        "check HTTPS_PROXY / HTTP_PROXY / NO_PROXY (`vfcache doctor` shows them), then "
        if proxy
        else ""
    )
    for cause in causes(err):
        if _proxy_refused(cause):
            return Diagnosis(
                f"the proxy {proxy or ''} refused to connect to {host} ({_first_line(cause)})",
                "check the proxy address and its credentials in HTTPS_PROXY / "
                "HTTP_PROXY, or add the host to NO_PROXY",
                transient=False,
            )
        if isinstance(cause, (ssl.SSLError, ssl.CertificateError)):
            return Diagnosis(
                f"TLS handshake with {host}{via} failed ({_first_line(cause)})",
                "if your network inspects TLS, point SSL_CERT_FILE at its CA bundle; "
                "check the endpoint's https:// address",
                transient=False,
            )
        if isinstance(cause, socket.gaierror):
            target = proxy or host
            return Diagnosis(
                f"cannot resolve the host name {host_of(target)}{via and ' (the proxy)'}",
                f"check the address and this machine's DNS or network; {proxy_hint}{RERUN}",
                transient=True,
            )
        if isinstance(cause, ConnectionRefusedError):
            return Diagnosis(
                f"{host}{via} refused the connection",
                f"check the address and port (a service down, or a firewall); {proxy_hint}{RERUN}",
                transient=True,
            )
        if _is_timeout(cause):
            return Diagnosis(
                f"{host}{via} did not answer in time",
                f"the network or the host is slow or blocked; {proxy_hint}{RERUN}",
                transient=True,
            )
        if isinstance(cause, (ConnectionResetError, ConnectionAbortedError)) or type(
            cause
        ).__name__ in ("RemoteProtocolError", "ReadError"):
            return Diagnosis(
                f"{host}{via} dropped the connection ({_first_line(cause)})", RERUN, transient=True
            )
    return None


def is_disk_full(err: BaseException) -> bool:
    return any(
        isinstance(c, OSError) and c.errno in (errno.ENOSPC, errno.EDQUOT) for c in causes(err)
    )


def free_bytes(path: os.PathLike | str) -> int | None:
    """Free bytes on the file system holding `path` (its nearest existing parent)."""
    import shutil

    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


@contextlib.contextmanager
def disk_errors(dest: Path, bytes_needed: int) -> Iterator[None]:
    """ENOSPC (or a quota) inside the block -> `DiskFullError` saying how much was needed.
    What was being written stays a partial file (`.part`, the Hub client's `.incomplete`),
    which a rerun resumes and nothing counts as done."""
    try:
        yield
    except OSError as err:
        if not is_disk_full(err):
            raise
        free = free_bytes(dest)
        raise DiskFullError(
            f"the disk under {dest} is full (ENOSPC): this fetch needs {human_bytes(bytes_needed)} "
            f"more and {human_bytes(free) if free is not None else 'an unknown amount'} is free; "
            "free space or pass --root on a larger disk, then rerun (finished files are kept, "
            "partial ones resume)"
        ) from err


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
