"""Zip sets split across disks (Info-ZIP `zip -s`) extract as one archive.

`tests/data/infozip_split` is real `zip -s 64k` output (see its README), so the reader is
checked against the tool, with the member bytes known from their seeds.
"""

from __future__ import annotations

import random
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
from vfcache.pipelines.fetch import extract_archive, find_volumes
from vfcache.pipelines.fetch.errors import ArchiveError
from vfcache.pipelines.fetch.spanned_zip import _CENTRAL, _entry
from vfcache.pipelines.fetch.volumes import open_zip_volumes

FIXTURE = Path(__file__).parent / "data" / "infozip_split"
SIZES = (30000, 30000, 30000, 20000)


def expected_members() -> dict[str, bytes]:
    return {f"clips/0_real/v{i}.mp4": random.Random(i).randbytes(n) for i, n in enumerate(SIZES)}


@pytest.fixture
def split_set(tmp_path: Path) -> Path:
    folder = tmp_path / "download"
    shutil.copytree(FIXTURE, folder, ignore=shutil.ignore_patterns("README.md"))
    return folder


def test_volumes_are_found_from_either_end(split_set: Path):
    names = ["set.z01", "set.zip"]
    assert [p.name for p in find_volumes(split_set / "set.zip")] == names
    assert [p.name for p in find_volumes(split_set / "set.z01")] == names
    assert (split_set / "set.z01").read_bytes()[:4] == b"PK\x07\x08"  # the split signature


def test_the_set_reads_as_one_zip(split_set: Path):
    with (
        open_zip_volumes(find_volumes(split_set / "set.zip")) as stream,
        zipfile.ZipFile(stream) as zf,
    ):
        assert {
            name: zf.read(name) for name in zf.namelist() if not name.endswith("/")
        } == expected_members()
        assert zf.testzip() is None


def test_extract_archive_takes_the_set_and_removes_its_volumes(split_set: Path, tmp_path: Path):
    dest = tmp_path / "out"
    files = extract_archive(split_set / "set.z01", dest, progress=False)
    got = {p.relative_to(dest).as_posix(): p.read_bytes() for p in files}
    assert got == expected_members()
    assert not list(split_set.iterdir())


def test_a_damaged_member_is_skipped_and_recorded(split_set: Path, tmp_path: Path):
    first = split_set / "set.z01"
    data = bytearray(first.read_bytes())
    header = data.find(b"clips/0_real/v0.mp4") - 30  # v0's local header, on the first volume
    data[header + 30 + len("clips/0_real/v0.mp4") + 500] ^= 0x55  # inside v0's stored bytes
    first.write_bytes(bytes(data))
    dest = tmp_path / "out"
    files = extract_archive(first, dest, on_corrupt_member="skip", progress=False)
    assert sorted(p.name for p in files) == ["v1.mp4", "v2.mp4", "v3.mp4"]
    marker = next((dest / ".extracted").glob("*.json")).read_text()
    assert "clips/0_real/v0.mp4" in marker and "CRC" in marker


def test_a_missing_or_absent_volume_is_a_clear_error(split_set: Path, tmp_path: Path):
    (split_set / "set.zip").rename(split_set / "elsewhere.bin")
    with pytest.raises(ArchiveError, match="no last volume set.zip"):
        find_volumes(split_set / "set.z01")
    (split_set / "elsewhere.bin").rename(split_set / "set.zip")
    (split_set / "set.z01").rename(split_set / "set.z02")
    with pytest.raises(ArchiveError, match="gap before set.z02"):
        find_volumes(split_set / "set.zip")


def _central_entry(*, offset: int, disk: int, zip64: bytes = b"") -> bytes:
    name = b"a.mp4"
    return (
        _CENTRAL.pack(
            b"PK\x01\x02",
            45,
            3,
            45,
            0,
            0,
            0,
            0,
            0,
            0,
            10,
            10,
            len(name),
            len(zip64),
            0,
            disk,
            0,
            0,
            offset,
        )
        + name
        + zip64
    )


def test_zip64_fields_of_an_entry_are_read_and_rewritten():
    # offset and disk held in the Zip64 extra field (values 0xFFFFFFFF / 0xFFFF in the header)
    extra = struct.pack("<2HQL", 0x0001, 12, 5, 1)
    entry, end = _entry(_central_entry(offset=0xFFFFFFFF, disk=0xFFFF, zip64=extra), 0, [0, 100])
    fields = _CENTRAL.unpack_from(entry)
    assert (fields[15], fields[18], fields[13]) == (0, 105, 0) and end == len(entry) + len(extra)
    # a global offset past 4 GiB moves into a new Zip64 field
    entry, _ = _entry(_central_entry(offset=7, disk=1), 0, [0, 1 << 32])
    fields = _CENTRAL.unpack_from(entry)
    assert fields[18] == 0xFFFFFFFF
    assert struct.unpack_from("<2HQ", entry, _CENTRAL.size + 5) == (0x0001, 8, (1 << 32) + 7)
