"""Safe extraction of downloaded archives, in place of the download.

`extract_archive` handles zip, tar, tar.gz/.bz2/.xz (recognised by magic bytes, never by
suffix, so GenVideo's extension-less `Real_part_aa` works) and multi-volume sets (see
`volumes.py`). Policy, chosen for datasets that are plain folders of videos:

- members are written only below the destination: absolute names, drive letters and `..`
  components are refused, and so is every link (symlink or hardlink, zip or tar) and every
  device or fifo; a refusal raises `UnsafeArchiveError` naming the member, before any byte
  of the archive reaches the destination;
- decompression bombs: a zip member whose size exceeds `max_ratio` x its compressed size,
  or a running total that exceeds `max_ratio` x the archive's bytes (checks start above
  `RATIO_CHECK_FLOOR_BYTES`, so small text files are not flagged) or `max_total_bytes`;
- `__MACOSX/`, `._*` and `.DS_Store` entries are dropped;
- members go to a temporary folder inside the destination, then are moved into place; an
  existing file with other content is never overwritten (ArchiveError); then a marker
  `.extracted/<archive>.json` records what was extracted and the archive volumes are
  deleted, so a re-run returns the recorded files without touching anything.
"""

from __future__ import annotations

import datetime as dt
import filecmp
import json
import logging
import os
import shutil
import stat
import tarfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from tqdm.auto import tqdm
from vfcache.pipelines.fetch.errors import ArchiveError, UnsafeArchiveError
from vfcache.pipelines.fetch.volumes import find_volumes, open_volumes, open_zip_volumes

from vfcache import archive_paths
from vfcache.atomic import write_json_atomic

logger = logging.getLogger(__name__)

MARKER_DIR = ".extracted"
RATIO_CHECK_FLOOR_BYTES = 1 << 20
_CHUNK_BYTES = 1 << 20
_TAR_MODES = {"tar": "r|", "tar.gz": "r|gz", "tar.bz2": "r|bz2", "tar.xz": "r|xz"}

ArchiveFormat = Literal["zip", "tar", "tar.gz", "tar.bz2", "tar.xz"]
CorruptPolicy = Literal["raise", "skip"]


def detect_format(head: bytes) -> ArchiveFormat:
    """Archive format from the first bytes of the (concatenated) file."""
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    if head[:3] == b"BZh":
        return "tar.bz2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "tar.xz"
    if head[257:262] == b"ustar":
        return "tar"
    raise ArchiveError(f"not a zip or tar archive (first bytes {head[:8]!r})")


def safe_member_path(raw_name: str, archive: str) -> str | None:
    """Normalised relative path of a member, None for macOS junk; raises UnsafeArchiveError
    when unsafe (the rule is `vfcache.archive_paths`)."""
    try:
        return archive_paths.safe_member_path(raw_name, archive)
    except archive_paths.UnsafeMemberError as err:
        raise UnsafeArchiveError(err.archive, err.member, err.reason) from err


@dataclass(frozen=True)
class _Member:
    """One archive entry, format-neutral."""

    raw_name: str
    relpath: str | None  # None: junk, skipped
    kind: Literal["file", "dir"]
    size_bytes: int
    mtime_s: float


class _Budget:
    """Counts uncompressed bytes and stops a decompression bomb mid-member."""

    def __init__(
        self, archive: str, compressed_bytes: int, max_ratio: float, max_total_bytes: int | None
    ):
        self.archive, self.compressed_bytes = archive, compressed_bytes
        self.max_ratio, self.max_total_bytes = max_ratio, max_total_bytes
        self.total_bytes = 0

    def add(self, member: str, count: int) -> None:
        self.total_bytes += count
        if self.max_total_bytes is not None and self.total_bytes > self.max_total_bytes:
            raise UnsafeArchiveError(
                self.archive, member, f"output exceeds max_total_bytes={self.max_total_bytes}"
            )
        if (
            self.total_bytes > RATIO_CHECK_FLOOR_BYTES
            and self.total_bytes > self.max_ratio * self.compressed_bytes
        ):
            raise UnsafeArchiveError(
                self.archive,
                member,
                f"output {self.total_bytes} bytes > {self.max_ratio}x the "
                f"{self.compressed_bytes} archive bytes (decompression bomb?)",
            )


def _zip_mtime_s(info: zipfile.ZipInfo) -> float:
    try:
        return time.mktime(info.date_time + (0, 0, -1))
    except (OverflowError, ValueError):
        return time.time()  # a nonsense DOS date: the extraction time is as good as any


def _zip_members(zf: zipfile.ZipFile, archive: str, max_ratio: float) -> list[_Member]:
    members = []
    for info in zf.infolist():
        relpath = safe_member_path(info.filename, archive)
        mode = info.external_attr >> 16
        if relpath is None:
            members.append(_Member(info.filename, None, "file", 0, 0.0))
            continue
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(archive, info.filename, "links are not extracted")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"{archive}: member {info.filename!r} is encrypted")
        if info.file_size > RATIO_CHECK_FLOOR_BYTES and info.file_size > max_ratio * max(
            info.compress_size, 1
        ):
            raise UnsafeArchiveError(
                archive,
                info.filename,
                f"{info.file_size} bytes from {info.compress_size} compressed "
                f"(ratio above {max_ratio}, decompression bomb?)",
            )
        kind = "dir" if info.is_dir() else "file"
        members.append(_Member(info.filename, relpath, kind, info.file_size, _zip_mtime_s(info)))
    return members


def _tar_member(info: tarfile.TarInfo, archive: str) -> _Member:
    relpath = safe_member_path(info.name, archive)
    if relpath is None:
        return _Member(info.name, None, "file", 0, 0.0)
    if info.issym() or info.islnk():
        raise UnsafeArchiveError(archive, info.name, "links are not extracted")
    if not (info.isfile() or info.isdir()):
        raise UnsafeArchiveError(archive, info.name, "device, fifo or other special file")
    return _Member(
        info.name, relpath, "dir" if info.isdir() else "file", info.size, float(info.mtime)
    )


def _iter_zip(stream: IO[bytes], archive: str, max_ratio: float, budget: _Budget):
    try:
        zf = zipfile.ZipFile(stream)
    except zipfile.BadZipFile as err:
        raise ArchiveError(f"{archive}: unreadable zip ({err}); a volume may be missing") from err
    with zf:
        members = _zip_members(zf, archive, max_ratio)
        for member in members:  # declared sizes: refuse a bomb before writing anything
            if member.relpath is not None:
                budget.add(member.raw_name, member.size_bytes)
        budget.total_bytes = 0
        for member in members:
            if member.relpath is None or member.kind == "dir":
                yield member, None
            else:
                yield member, _LazyZipMember(zf, member.raw_name)


class _LazyZipMember:
    """A zip member opened at its first read, so that a damaged local header is an error of
    that member (skippable under on_corrupt_member="skip"), not of the whole archive."""

    def __init__(self, zf: zipfile.ZipFile, name: str):
        self._zf, self._name, self._handle = zf, name, None

    def read(self, size: int = -1) -> bytes:
        if self._handle is None:
            self._handle = self._zf.open(self._name)
        data = self._handle.read(size)
        if not data:
            self._handle.close()
        return data


def _iter_tar(stream: IO[bytes], archive: str, archive_format: ArchiveFormat):
    try:
        with tarfile.open(fileobj=stream, mode=_TAR_MODES[archive_format]) as tf:
            for info in tf:
                member = _tar_member(info, archive)
                if member.relpath is None or member.kind == "dir":
                    yield member, None
                else:
                    yield member, tf.extractfile(info)
    except (tarfile.TarError, zlib.error, EOFError, OSError) as err:
        raise ArchiveError(f"{archive}: unreadable {archive_format} ({err})") from err


def _write_member(
    member: _Member, source: IO[bytes], target: Path, budget: _Budget, bar: tqdm
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        while chunk := source.read(_CHUNK_BYTES):
            budget.add(member.raw_name, len(chunk))
            out.write(chunk)
            bar.update(len(chunk))
    try:
        os.utime(target, (member.mtime_s, member.mtime_s))
    except (OverflowError, ValueError, OSError) as err:
        logger.debug("%s: keeping the extraction time as mtime (%s)", target, err)


def _extract_to(
    volumes: list[Path],
    tmp_root: Path,
    archive: str,
    max_ratio: float,
    max_total_bytes: int | None,
    on_corrupt_member: CorruptPolicy,
    bar: tqdm,
):
    """Extract into `tmp_root`; returns (relpaths, junk count, corrupt members, format)."""
    compressed = sum(v.stat().st_size for v in volumes)
    budget = _Budget(archive, compressed, max_ratio, max_total_bytes)
    written: set[str] = set()
    junk, corrupt = 0, []
    with open_volumes(volumes) as stream:
        archive_format = detect_format(stream.peek(512)[:512])
    opened = open_zip_volumes(volumes) if archive_format == "zip" else open_volumes(volumes)
    with opened as stream:
        members = (
            _iter_zip(stream, archive, max_ratio, budget)
            if archive_format == "zip"
            else _iter_tar(stream, archive, archive_format)
        )
        for member, source in members:
            if member.relpath is None:
                junk += 1
                continue
            target = tmp_root / member.relpath
            try:
                if member.kind == "dir":
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if member.relpath in written:
                    logger.warning(
                        "%s: member %s appears twice; the last one wins", archive, member.relpath
                    )
                _write_member(member, source, target, budget, bar)
            except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as err:
                if archive_format != "zip" or on_corrupt_member == "raise":
                    raise ArchiveError(f"{archive}: member {member.raw_name!r}: {err}") from err
                logger.warning("%s: skipping corrupt member %s: %s", archive, member.raw_name, err)
                target.unlink(missing_ok=True)
                written.discard(member.relpath)
                corrupt.append({"member": member.raw_name, "reason": str(err)})
                continue
            except (NotADirectoryError, FileExistsError, IsADirectoryError) as err:
                raise ArchiveError(
                    f"{archive}: member {member.raw_name!r} clashes with another member ({err})"
                ) from err
            written.add(member.relpath)
    return sorted(written), junk, corrupt, archive_format


def _move_into_place(tmp_root: Path, dest: Path, relpaths: list[str]) -> None:
    """Move extracted files to `dest`; an existing identical file is kept, a different
    one stops everything before anything moved."""
    for relpath in relpaths:
        target = dest / relpath
        for parent in Path(relpath).parents:
            if (dest / parent).exists() and not (dest / parent).is_dir():
                raise ArchiveError(f"{dest / parent} is a file but the archive has {relpath}")
        if target.exists() and not (
            target.is_file() and filecmp.cmp(tmp_root / relpath, target, shallow=False)
        ):
            raise ArchiveError(f"{target} already exists with other content; not overwriting")
    for relpath in relpaths:
        target = dest / relpath
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_root / relpath, target)
    for folder, _, _ in sorted(os.walk(tmp_root), reverse=True):  # empty folders of members
        relative = Path(folder).relative_to(tmp_root)
        if relative != Path("."):
            (dest / relative).mkdir(parents=True, exist_ok=True)


def extraction_marker_path(archive_path: Path | str, dest_dir: Path | str) -> Path:
    return Path(dest_dir) / MARKER_DIR / f"{Path(archive_path).name}.json"


def read_extraction_marker(archive_path: Path | str, dest_dir: Path | str) -> dict | None:
    marker = extraction_marker_path(archive_path, dest_dir)
    if not marker.is_file():
        return None
    with open(marker, encoding="utf-8") as fh:
        try:
            return json.load(fh)
        except json.JSONDecodeError as err:
            raise ArchiveError(f"{marker}: corrupt extraction marker ({err})") from err


def is_extracted(archive_path: Path | str, dest_dir: Path | str) -> bool:
    """True when the marker exists and every file it lists is present."""
    marker = read_extraction_marker(archive_path, dest_dir)
    return marker is not None and all((Path(dest_dir) / f).is_file() for f in marker["files"])


def extract_archive(
    path: Path | str,
    dest_dir: Path | str,
    *,
    max_ratio: float = 200,
    max_total_bytes: int | None = None,
    remove_archive: bool = True,
    on_corrupt_member: CorruptPolicy = "raise",
    progress: bool = True,
) -> list[Path]:
    """Extract the archive at `path` (or the volume set whose first volume it is) into
    `dest_dir`; return the extracted files, sorted.

    `on_corrupt_member="skip"` drops zip members that fail their CRC (recorded in the
    marker under `corrupt_members`) instead of failing the whole archive.
    """
    path, dest = Path(path), Path(dest_dir)
    if is_extracted(path, dest):
        marker = read_extraction_marker(path, dest)
        if remove_archive:
            for name in marker["volumes"]:
                (path.parent / name).unlink(missing_ok=True)
        return [dest / f for f in marker["files"]]
    if not path.is_file():
        raise ArchiveError(
            f"archive {path} does not exist and {dest} has no record of it "
            f"being extracted ({extraction_marker_path(path, dest)})"
        )
    volumes = find_volumes(path)
    archive = path.name
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob(f".extract-{archive}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp_root = dest / f".extract-{archive}.tmp-{os.getpid()}"
    tmp_root.mkdir()
    try:
        with tqdm(
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"extract {archive}",
            disable=not progress,
        ) as bar:
            relpaths, junk, corrupt, archive_format = _extract_to(
                volumes, tmp_root, archive, max_ratio, max_total_bytes, on_corrupt_member, bar
            )
        _move_into_place(tmp_root, dest, relpaths)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    write_json_atomic(
        extraction_marker_path(path, dest),
        {
            "archive": archive,
            "format": archive_format,
            "volumes": [v.name for v in volumes],
            "volume_bytes": [v.stat().st_size for v in volumes],
            "files": relpaths,
            "junk_entries_skipped": junk,
            "corrupt_members": corrupt,
            "extracted_at_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        },
    )
    if remove_archive:
        for volume in volumes:
            volume.unlink()
    logger.info(
        "%s: %d files extracted into %s (%d junk entries dropped)",
        archive,
        len(relpaths),
        dest,
        junk,
    )
    return [dest / relpath for relpath in relpaths]
