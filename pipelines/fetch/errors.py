"""Errors of the fetch stage that a user can act on (bad credentials, a revision that does
not exist, a hostile archive, a host that cannot be reached). Per-file download failures
are not errors: they are recorded in the fetch report and the failure list.

Every error carries its exit code: 2 when the user must change something (a setting, a
token, the terms, free disk), 1 when the host kept failing after the retries (rerunning
later resumes). The CLI prefixes the dataset's name (`dataset`)."""

from __future__ import annotations

from vfcache.errors import VfcacheError


class FetchError(VfcacheError):
    """The fetch cannot go on; the message says what to change."""

    exit_code = 2
    dataset: str | None = None

    def __str__(self) -> str:
        text = super().__str__()
        return f"{self.dataset}: {text}" if self.dataset else text


class FetchFailed(FetchError):
    """The host kept failing (5xx, 429, dropped or refused connections) after the retries;
    nothing to change but the time: a rerun resumes."""

    exit_code = 1


class HubAccessError(FetchError):
    """The Hub refused or could not find the repo, the revision or a file."""


class HubUnavailable(HubAccessError, FetchFailed):
    """The Hub kept failing after the retries (5xx, 429, network)."""


class IntegrityError(FetchError):
    """Downloaded bytes do not match the size or hash the source announced."""

    exit_code = 1


class DiskFullError(FetchError):
    """The disk under the raw folder filled up (ENOSPC) mid-download."""


class ArchiveError(FetchError):
    """An archive cannot be read or extracted (unknown format, missing volume, bad member)."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would escape the destination, is a link, or decompresses too far."""

    def __init__(self, archive: str, member: str, reason: str):
        self.archive, self.member, self.reason = archive, member, reason
        super().__init__(f"{archive}: refusing member {member!r}: {reason}")
