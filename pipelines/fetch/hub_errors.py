"""The Hugging Face client's failures as one line each that names the host and the next step.

huggingface_hub raises (`huggingface_hub.errors`, 2.x; `utils/_http.py: hf_raise_for_status`):
`GatedRepoError` (X-Error-Code GatedRepo: 401 without a token, 403 for a user not on the
authorized list), `RepositoryNotFoundError` (RepoNotFound, and any 401 on a repo URL other
than "Invalid credentials in Authorization header"), `RevisionNotFoundError`,
`RemoteEntryNotFoundError` (a file), `HfHubHTTPError` for the rest (401 bad token, 403, 429,
5xx), `OfflineModeIsEnabled` when `HF_HUB_OFFLINE` is set, and its transport's errors
(httpx: `ConnectError`, `ReadTimeout`, `ProxyError`...) when the host cannot be reached.
It retries 429/5xx/network errors itself on tree pages and downloads (honouring
Retry-After), not on the repo-info call: `with_hub_retries` adds that.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from vfcache.pipelines.fetch.diagnose import RERUN, diagnose_connection, is_disk_full
from vfcache.pipelines.fetch.errors import HubAccessError, HubUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
HUB_ATTEMPTS = 4
FIRST_DELAY_S = 1.0
MAX_WAIT_S = 60.0
LOGIN = "run `hf auth login` (or set HF_TOKEN)"


def _transport_errors() -> tuple[type[Exception], ...]:
    """The client's transport errors: huggingface_hub 2.x ships httpx as `httpx2`, 1.x used
    `httpx`."""
    for name in ("httpx2", "httpx"):
        try:
            return (importlib.import_module(name).TransportError,)
        except ImportError:
            continue
    return ()


TRANSPORT_ERRORS = _transport_errors()


def token_source() -> str | None:
    """Where the client finds a token ("HF_TOKEN", "stored login"), or None."""
    import os

    from huggingface_hub import get_token

    if os.environ.get("HF_TOKEN"):
        return "HF_TOKEN"
    return "stored login" if get_token() else None


def _status(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _retry_after_s(err: BaseException) -> float | None:
    response = getattr(err, "response", None)
    value = response.headers.get("Retry-After", "") if response is not None else ""
    return min(float(value), MAX_WAIT_S) if value.strip().isdigit() else None


class _Retried(Exception):
    """`with_hub_retries` gave up: carries the last error and how the waits went."""

    def __init__(self, last: BaseException, attempts: int, waits: str):
        super().__init__(str(last))
        self.last, self.attempts, self.waits = last, attempts, waits


def with_hub_retries(call: Callable[[], T], *, attempts: int | None = None) -> T:
    """`call()`, again after a 429 (waiting its Retry-After), a 5xx or a network failure
    (exponential backoff); raises `_Retried` from the last error when every attempt failed."""
    attempts = attempts or HUB_ATTEMPTS
    waited: list[str] = []
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except (HfHubHTTPError, OSError, *TRANSPORT_ERRORS) as err:
            status = _status(err)
            diagnosis = diagnose_connection(err, "") if status is None else None
            network = diagnosis is not None and diagnosis.transient
            if isinstance(err, OfflineModeIsEnabled) or not (
                network or status == 429 or (status or 0) >= 500
            ):
                raise
            if attempt == attempts:
                raise _Retried(err, attempts, ", ".join(waited)) from err
            retry_after = _retry_after_s(err)
            delay = retry_after if retry_after is not None else FIRST_DELAY_S * 2 ** (attempt - 1)
            waited.append(f"{delay:.0f} s" + (" (Retry-After)" if retry_after is not None else ""))
            log.info(
                "Hub answered %s; retrying in %.1f s (%d/%d)",
                status or type(err).__name__,
                delay,
                attempt,
                attempts - 1,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def _page(endpoint: str, repo_id: str) -> str:
    return f"{endpoint}/datasets/{repo_id}"


def translate(
    err: BaseException, what: str, repo_id: str, revision: str, endpoint: str
) -> HubAccessError | None:
    """The one-line error for `err`, or None when it is none of the Hub's known failures."""
    token = token_source()
    page = _page(endpoint, repo_id)
    status = _status(err)
    if isinstance(err, OfflineModeIsEnabled):
        return HubAccessError(
            f"HF_HUB_OFFLINE is set, so {endpoint} is not contacted to {what} {repo_id}: unset "
            "HF_HUB_OFFLINE to fetch (a raw folder fetched completely before is reused offline)"
        )
    if isinstance(err, GatedRepoError):
        step = (
            f"your token ({token}) is not on its authorized list yet: accept the terms on {page} "
            "with that account"
            if token
            else f"accept the terms on {page}, then {LOGIN}"
        )
        return HubAccessError(
            f"{repo_id} on {endpoint} is gated (HTTP {status}); {step}, and rerun"
        )
    if isinstance(err, RevisionNotFoundError):
        return HubAccessError(
            f"{repo_id} has no revision {revision!r} on {endpoint}: fix source.revision "
            "in the dataset config (a branch, tag or commit sha listed on "
            f"{page}/tree/main)"
        )
    if isinstance(err, RepositoryNotFoundError):
        step = (
            f"your token ({token}) cannot see it"
            if token
            else f"a private repo needs a token: {LOGIN}"
        )
        return HubAccessError(
            f"dataset repo {repo_id!r} not found on {endpoint} (HTTP {status}): check "
            f"source.repo in the dataset config; {step}"
        )
    if isinstance(err, RemoteEntryNotFoundError):
        return HubAccessError(
            f"{repo_id}@{revision} on {endpoint}: a listed file answers 404 "
            f"({_url_of(err)}): check source.revision and source.allow_patterns "
            "in the dataset config, then rerun"
        )
    if status == 401:
        step = (
            f"the token from {token} is invalid or expired: {LOGIN} again"
            if token
            else f"this needs a token: {LOGIN}"
        )
        return HubAccessError(
            f"{endpoint} refused the credentials to {what} {repo_id} (HTTP 401); {step}"
        )
    if status == 407:
        from vfcache.pipelines.fetch.diagnose import proxy_for

        return HubAccessError(
            f"the proxy {proxy_for(endpoint)} refused to reach {endpoint} (HTTP 407 "
            "Proxy Authentication Required): put the proxy's credentials in "
            "HTTPS_PROXY / HTTP_PROXY (http://user:password@host:port), or add the host "
            "to NO_PROXY"
        )
    if status == 403:
        return HubAccessError(
            f"{endpoint} refused to let you {what} {repo_id} (HTTP 403): accept the "
            f"terms on {page}; a fine-grained token needs read access to public "
            "gated repos"
        )
    return None


def _url_of(err: BaseException) -> str:
    response = getattr(err, "response", None)
    return str(getattr(response, "url", "")) or "no URL"


def _unavailable(
    err: BaseException, what: str, repo_id: str, endpoint: str, attempts: str
) -> HubAccessError | None:
    status = _status(err)
    if status == 429:
        return HubUnavailable(
            f"{endpoint} rate-limited the requests to {what} {repo_id} (HTTP 429) "
            f"{attempts}: wait a few minutes, then rerun (a token, `hf auth login`, "
            "raises the limit); finished files are kept"
        )
    if status is not None and status >= 500:
        return HubUnavailable(
            f"{endpoint} answered HTTP {status} to {what} {repo_id} {attempts}: the "
            f"Hub is having trouble; {RERUN}"
        )
    diagnosis = diagnose_connection(err, endpoint)
    if diagnosis is None:
        return None
    text = f"cannot {what} {repo_id}: {diagnosis.what} {attempts}; {diagnosis.hint}"
    return HubUnavailable(text) if diagnosis.transient else HubAccessError(text)


@contextlib.contextmanager
def hub_errors(what: str, repo_id: str, revision: str, endpoint: str) -> Iterator[None]:
    """Turn the client's errors inside the block into one `HubAccessError` line."""
    try:
        yield
    except _Retried as err:
        attempts = f"after {err.attempts} tries" + (f" (waited {err.waits})" if err.waits else "")
        mapped = translate(err.last, what, repo_id, revision, endpoint) or _unavailable(
            err.last, what, repo_id, endpoint, attempts
        )
        raise (
            mapped or HubUnavailable(f"cannot {what} {repo_id} on {endpoint}: {err}")
        ) from err.last
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, *TRANSPORT_ERRORS) as err:
        if is_disk_full(err):
            raise
        mapped = translate(err, what, repo_id, revision, endpoint) or _unavailable(
            err, what, repo_id, endpoint, "after the client's retries"
        )
        if mapped is None and isinstance(err, (HfHubHTTPError, LocalEntryNotFoundError)):
            mapped = HubAccessError(
                f"{endpoint} refused to {what} {repo_id}@{revision}: "
                f"{str(err).strip().splitlines()[0]}"
            )
        if mapped is None:
            raise
        raise mapped from err
