"""Multi-volume archives: find every volume of a split set and read them as one stream.

Datasets ship big archives cut into byte-wise volumes that must be concatenated before
extraction: `X.tar.gz.split.aa, .ab, ...` (GenVideo), `Real_part_aa, _ab, ...` (a gzip'd
tar without extension), `X.zip.001, .002, ...` (7-Zip style), and Info-ZIP split sets
`X.z01, X.z02, ..., X.zip` (`zip -s`; DVF's per-class zips), whose last volume is the `.zip`
and whose offsets are per volume (see `spanned_zip.py`). The volumes are never joined on
disk: `open_volumes` returns a seekable file object that reads across them (plus an optional
tail of bytes), so a 13 GB set needs no second 13 GB copy and zip's central directory can be
reached by seeking.
"""

from __future__ import annotations

import bisect
import io
import re
import string
from pathlib import Path

from vfcache.pipelines.fetch.errors import ArchiveError

# (pattern, index alphabet). The index is the last group; volumes must start at the first
# index (aa / 000 or 001) and follow each other without gaps.
_VOLUME_PATTERNS = (
    (re.compile(r"^(?P<stem>.+\.split\.)(?P<index>[a-z]{2,})$"), "letters"),
    (re.compile(r"^(?P<stem>.+_part_)(?P<index>[a-z]{2,})$"), "letters"),
    (re.compile(r"^(?P<stem>.+\.)(?P<index>\d{3})$"), "digits"),
)


def _index_value(index: str, alphabet: str) -> int:
    if alphabet == "digits":
        return int(index)
    value = 0
    for char in index:
        value = value * 26 + string.ascii_lowercase.index(char)
    return value


_INFOZIP_PART = re.compile(r"^(?P<stem>.+)\.[zZ](?P<index>\d{2,})$")


def _infozip_volumes(path: Path) -> list[Path] | None:
    """`X.z01, ..., X.zNN, X.zip` when `path` is one of them and `X.z01` exists, else None."""
    match = _INFOZIP_PART.match(path.name)
    if match is not None:
        stem = match["stem"]
    elif path.suffix.lower() == ".zip":
        stem = path.name[:-4]
    else:
        return None
    parts = []
    for candidate in path.parent.iterdir():
        other = _INFOZIP_PART.match(candidate.name)
        if other and other["stem"] == stem:
            parts.append((int(other["index"]), candidate))
    if not parts:
        return None
    parts.sort()
    for expected, (value, candidate) in enumerate(parts, start=1):
        if value != expected:
            raise ArchiveError(f"split zip {stem}.z01 ... has a gap before {candidate.name}")
    last = [c for c in path.parent.iterdir() if c.name.lower() == f"{stem}.zip".lower()]
    if not last:
        raise ArchiveError(
            f"split zip {stem}.z01 ... has no last volume {stem}.zip (it holds the "
            "central directory); download it too"
        )
    return [candidate for _, candidate in parts] + last


def find_volumes(path: Path) -> list[Path]:
    """Every volume of the set `path` belongs to, in order; `[path]` for a single file.

    Raises ArchiveError when the set has a gap or does not start at its first volume.
    """
    path = Path(path)
    infozip = _infozip_volumes(path)
    if infozip is not None:
        return infozip
    for pattern, alphabet in _VOLUME_PATTERNS:
        match = pattern.match(path.name)
        if match is None:
            continue
        stem, width = match["stem"], len(match["index"])
        siblings = []
        for candidate in path.parent.iterdir():
            other = pattern.match(candidate.name)
            if other and other["stem"] == stem and len(other["index"]) == width:
                siblings.append((_index_value(other["index"], alphabet), candidate))
        if not siblings:
            raise ArchiveError(f"archive volume {path} does not exist")
        siblings.sort()
        values = [value for value, _ in siblings]
        first = values[0]
        if first not in ((0,) if alphabet == "letters" else (0, 1)):
            raise ArchiveError(
                f"volume set {stem}* does not start at its first volume "
                f"(found {siblings[0][1].name} first)"
            )
        for expected, (value, candidate) in enumerate(siblings, start=first):
            if value != expected:
                raise ArchiveError(f"volume set {stem}* has a gap before {candidate.name}")
        return [candidate for _, candidate in siblings]
    return [path]


class _ConcatenatedVolumes(io.RawIOBase):
    """Read-only, seekable view of several files one after another, then `tail`."""

    def __init__(self, paths: list[Path], tail: bytes = b""):
        super().__init__()
        self._paths = list(paths)
        sizes = [p.stat().st_size for p in self._paths]
        self._starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self._sizes = sizes
        self._volumes_end = sum(sizes)
        self._tail = tail
        self._total = self._volumes_end + len(tail)
        self._pos = 0
        self._open_index: int | None = None
        self._handle = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._total}[whence]
        if base + offset < 0:
            raise OSError(f"seek before the start of the volume set ({base + offset})")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        if self._pos >= self._total:
            return 0
        if self._pos >= self._volumes_end:
            within = self._pos - self._volumes_end
            count = min(len(buffer), len(self._tail) - within)
            memoryview(buffer)[:count] = self._tail[within : within + count]
            self._pos += count
            return count
        index = bisect.bisect_right(self._starts, self._pos) - 1
        if index != self._open_index:
            if self._handle is not None:
                self._handle.close()
            self._handle = open(self._paths[index], "rb")
            self._open_index = index
        within = self._pos - self._starts[index]
        self._handle.seek(within)
        view = memoryview(buffer)[: min(len(buffer), self._sizes[index] - within)]
        count = self._handle.readinto(view)
        self._pos += count
        return count

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        super().close()


def open_volumes(
    paths: list[Path], buffer_bytes: int = 1 << 20, *, tail: bytes = b""
) -> io.BufferedReader:
    """A buffered, seekable reader over the concatenation of `paths`, then `tail`."""
    return io.BufferedReader(_ConcatenatedVolumes(paths, tail), buffer_size=buffer_bytes)


def open_zip_volumes(paths: list[Path]) -> io.BufferedReader:
    """A reader over a zip volume set that `zipfile` can open: a plain concatenation for byte
    cuts (`.zip.001`), with a rewritten central directory for disk-spanned sets (`.z01`)."""
    from vfcache.pipelines.fetch.spanned_zip import single_disk_tail

    if len(paths) == 1:
        return open_volumes(paths)
    with open_volumes(paths) as stream:
        tail = single_disk_tail(stream, [p.stat().st_size for p in paths])
    return open_volumes(paths, tail=tail or b"")
