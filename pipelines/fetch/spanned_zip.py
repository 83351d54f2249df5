"""Zip archives split across disks (Info-ZIP `zip -s`: `X.z01, X.z02, ..., X.zip`), read as one.

In such a set every offset is relative to the start of its own volume and every header names
its volume ("disk"), so the plain concatenation of the volumes is not a zip Python can read:
its central directory points into the wrong places. `single_disk_tail` reads the central
directory of the set (APPNOTE 4.3.12, 4.3.14-16, and the Zip64 extra field 4.5.3) and returns
a new central directory and end record for the concatenation, with every local header
offset made global (volume start + offset) and every disk number 0. Appended after the
concatenated volumes (`volumes.open_volumes(..., tail=...)`), it makes a single-disk zip that
`zipfile` reads; nothing is copied on disk. The split signature `PK\\x07\\x08` that starts the
first volume stays in place: offsets on disk 0 already count it.

7-Zip style volumes (`X.zip.001, .002`) are byte cuts of a single-disk zip and need none of
this; `single_disk_tail` returns None for them.
"""

from __future__ import annotations

import io
import struct
from typing import IO, Sequence

from vfcache.pipelines.fetch.errors import ArchiveError

_EOCD = struct.Struct(
    "<4s4H2LH"
)  # signature, disk, cd disk, entries here, entries, cd size, cd offset, comment
_EOCD_SIG = b"PK\x05\x06"
_LOCATOR = struct.Struct("<4sLQL")  # signature, zip64 eocd disk, zip64 eocd offset, disks
_LOCATOR_SIG = b"PK\x06\x07"
_EOCD64 = struct.Struct(
    "<4sQ2H2L4Q"
)  # signature, size, made by, needed, disk, cd disk, entries x2, cd size, cd offset
_EOCD64_SIG = b"PK\x06\x06"
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # zipfile's structCentralDir
_CENTRAL_SIG = b"PK\x01\x02"
_ZIP64_EXTRA = 0x0001
_MAX32, _MAX16 = 0xFFFFFFFF, 0xFFFF
_TAIL_SEARCH = 22 + 0xFFFF  # the end record plus the longest comment


def _read_at(stream: IO[bytes], offset: int, size: int) -> bytes:
    stream.seek(offset)
    data = stream.read(size)
    if len(data) != size:
        raise ArchiveError(f"spanned zip: {size} bytes at {offset} run past the end of the volumes")
    return data


def _end_record(stream: IO[bytes], total: int) -> tuple[tuple, int]:
    start = max(0, total - _TAIL_SEARCH)
    tail = _read_at(stream, start, total - start)
    at = tail.rfind(_EOCD_SIG)
    if at < 0 or at + _EOCD.size > len(tail):
        raise ArchiveError("not a zip: no end of central directory record in the last volume")
    return _EOCD.unpack_from(tail, at), start + at


def _split_extra(extra: bytes) -> tuple[bytes, bytes]:
    """(the Zip64 field's data, every other field as is)."""
    zip64, others, at = b"", [], 0
    while at + 4 <= len(extra):
        tag, size = struct.unpack_from("<2H", extra, at)
        field = extra[at : at + 4 + size]
        if tag == _ZIP64_EXTRA:
            zip64 = field[4:]
        else:
            others.append(field)
        at += 4 + size
    return zip64, b"".join(others)


def _entry(data: bytes, at: int, starts: Sequence[int]) -> tuple[bytes, int]:
    """One central directory entry rewritten for the concatenation, and where the next one
    starts."""
    fields = list(_CENTRAL.unpack_from(data, at))
    if fields[0] != _CENTRAL_SIG:
        raise ArchiveError(f"spanned zip: no central directory header at {at}")
    name_len, extra_len, comment_len = fields[12], fields[13], fields[14]
    body = at + _CENTRAL.size
    name = data[body : body + name_len]
    extra = data[body + name_len : body + name_len + extra_len]
    comment = data[body + name_len + extra_len : body + name_len + extra_len + comment_len]
    zip64, others = _split_extra(extra)
    values = iter(struct.unpack_from(f"<{len(zip64) // 8}Q", zip64)) if zip64 else iter(())
    file_size = next(values) if fields[11] == _MAX32 else fields[11]
    compress_size = next(values) if fields[10] == _MAX32 else fields[10]
    offset = next(values) if fields[18] == _MAX32 else fields[18]
    if fields[15] == _MAX16:  # disk start lives in the Zip64 field as 4 bytes after the 8-byte ones
        tail = zip64[8 * sum(v == _MAX32 for v in (fields[11], fields[10], fields[18])) :]
        disk = struct.unpack_from("<L", tail)[0]
    else:
        disk = fields[15]
    if disk >= len(starts):
        raise ArchiveError(
            f"spanned zip: member {name!r} starts on disk {disk + 1} of {len(starts)}"
        )
    offset += starts[disk]
    big = [v for v in (file_size, compress_size, offset) if v >= _MAX32]
    fields[11] = _MAX32 if file_size >= _MAX32 else file_size
    fields[10] = _MAX32 if compress_size >= _MAX32 else compress_size
    fields[18] = _MAX32 if offset >= _MAX32 else offset
    fields[15] = 0
    if big:
        others += struct.pack(f"<2H{len(big)}Q", _ZIP64_EXTRA, 8 * len(big), *big)
    fields[13] = len(others)
    entry = _CENTRAL.pack(*fields) + name + others + comment
    return entry, body + name_len + extra_len + comment_len


def single_disk_tail(stream: IO[bytes], volume_sizes: Sequence[int]) -> bytes | None:
    """The central directory and end records that turn the concatenated volumes in `stream`
    into a single-disk zip, or None when the set already is one (one volume, or 7-Zip cuts)."""
    starts = [sum(volume_sizes[:i]) for i in range(len(volume_sizes))]
    total = sum(volume_sizes)
    eocd, eocd_at = _end_record(stream, total)
    _, disk, cd_disk, _, entries, cd_size, cd_offset, _ = eocd
    if disk == 0:
        return None
    if len(volume_sizes) != disk + 1:
        raise ArchiveError(
            f"spanned zip: the end record names {disk + 1} volumes, "
            f"{len(volume_sizes)} are here; a volume is missing"
        )
    if _MAX32 in (cd_size, cd_offset) or _MAX16 in (entries, cd_disk):
        locator = _LOCATOR.unpack(_read_at(stream, eocd_at - _LOCATOR.size, _LOCATOR.size))
        if locator[0] != _LOCATOR_SIG:
            raise ArchiveError("spanned zip: Zip64 values without a Zip64 locator")
        record = _EOCD64.unpack(_read_at(stream, starts[locator[1]] + locator[2], _EOCD64.size))
        if record[0] != _EOCD64_SIG:
            raise ArchiveError("spanned zip: the Zip64 locator points at no Zip64 end record")
        cd_disk, entries, cd_size, cd_offset = record[5], record[7], record[8], record[9]
    directory = _read_at(stream, starts[cd_disk] + cd_offset, cd_size)
    out, at = io.BytesIO(), 0
    for _ in range(entries):
        entry, at = _entry(directory, at, starts)
        out.write(entry)
    new_cd = out.getvalue()
    if entries >= _MAX16 or total >= _MAX32 or len(new_cd) >= _MAX32:
        eocd64_at = total + len(new_cd)
        zip64 = _EOCD64.pack(
            _EOCD64_SIG, _EOCD64.size - 12, 45, 45, 0, 0, entries, entries, len(new_cd), total
        )
        locator = _LOCATOR.pack(_LOCATOR_SIG, 0, eocd64_at, 1)
        end = _EOCD.pack(_EOCD_SIG, 0, 0, _MAX16, _MAX16, _MAX32, _MAX32, 0)
        return new_cd + zip64 + locator + end
    return new_cd + _EOCD.pack(_EOCD_SIG, 0, 0, entries, entries, len(new_cd), total, 0)
