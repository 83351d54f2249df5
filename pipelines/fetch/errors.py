"""Errors of the fetch stage that a user can act on (bad credentials, a revision that does
not exist, a hostile archive). Per-file download failures are not errors: they are
recorded in the fetch report and the failure list."""

from __future__ import annotations

from vfcache.errors import VfcacheError


class FetchError(VfcacheError):
    """The fetch cannot go on; the message says what to change."""


class HubAccessError(FetchError):
    """The Hub refused or could not find the repo, the revision or a file."""


class IntegrityError(FetchError):
    """Downloaded bytes do not match the size or hash the source announced."""


class ArchiveError(FetchError):
    """An archive cannot be read or extracted (unknown format, missing volume, bad member)."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would escape the destination, is a link, or decompresses too far."""

    def __init__(self, archive: str, member: str, reason: str):
        self.archive, self.member, self.reason = archive, member, reason
        super().__init__(f"{archive}: refusing member {member!r}: {reason}")
