"""Multi-volume archives: find every volume of a split set and read them as one stream.

Datasets ship big archives cut into byte-wise volumes that must be concatenated before
extraction: `X.tar.gz.split.aa, .ab, ...` (GenVideo), `Real_part_aa, _ab, ...` (a gzip'd
tar without extension), `X.zip.001, .002, ...` (7-Zip style). The volumes are never joined
on disk: `open_volumes` returns a seekable file object that reads across them, so a 13 GB
set needs no second 13 GB copy and zip's central directory can be reached by seeking.
"""

from __future__ import annotations

import bisect
import io
import re
import string
from pathlib import Path

from pipelines.fetch.errors import ArchiveError

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


def find_volumes(path: Path) -> list[Path]:
    """Every volume of the set `path` belongs to, in order; `[path]` for a single file.

    Raises ArchiveError when the set has a gap or does not start at its first volume.
    """
    path = Path(path)
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
            raise ArchiveError(f"volume set {stem}* does not start at its first volume "
                               f"(found {siblings[0][1].name} first)")
        for expected, (value, candidate) in enumerate(siblings, start=first):
            if value != expected:
                raise ArchiveError(f"volume set {stem}* has a gap before {candidate.name}")
        return [candidate for _, candidate in siblings]
    return [path]


class _ConcatenatedVolumes(io.RawIOBase):
    """Read-only, seekable view of several files one after another."""

    def __init__(self, paths: list[Path]):
        super().__init__()
        self._paths = list(paths)
        sizes = [p.stat().st_size for p in self._paths]
        self._starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self._sizes = sizes
        self._total = sum(sizes)
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


def open_volumes(paths: list[Path], buffer_bytes: int = 1 << 20) -> io.BufferedReader:
    """A buffered, seekable reader over the concatenation of `paths`."""
    return io.BufferedReader(_ConcatenatedVolumes(paths), buffer_size=buffer_bytes)
