"""Where an archive member may land: the one rule every unpacker of the project applies (the
fetch stage's archives, a zipped GASBench model directory). Ground layer: imports nothing."""

from __future__ import annotations

JUNK_NAMES = frozenset({"__MACOSX", ".DS_Store"})


class UnsafeMemberError(ValueError):
    """An archive member whose name would escape the destination."""

    def __init__(self, archive: str, member: str, reason: str):
        self.archive, self.member, self.reason = archive, member, reason
        super().__init__(f"{archive}: refusing member {member!r}: {reason}")


def safe_member_path(raw_name: str, archive: str) -> str | None:
    """Normalised relative path of a member, None for macOS junk; raises when unsafe."""
    name = raw_name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        raise UnsafeMemberError(archive, raw_name, "absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeMemberError(archive, raw_name, "'..' would leave the destination")
    if not parts or any(p in JUNK_NAMES for p in parts) or parts[-1].startswith("._"):
        return None
    return "/".join(parts)
