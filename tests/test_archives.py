"""vfcache.pipelines.fetch.archives and volumes: formats, volume sets, junk, hostile archives."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vfcache.pipelines.fetch.archives import (
    detect_format,
    extract_archive,
    extraction_marker_path,
    is_extracted,
    read_extraction_marker,
    safe_member_path,
)
from vfcache.pipelines.fetch.errors import ArchiveError, UnsafeArchiveError
from vfcache.pipelines.fetch.volumes import find_volumes, open_volumes

FILES = {
    "Real/a.mp4": os.urandom(3000),
    "Fake/Sora/b.mp4": os.urandom(5000),
    "Fake/Sora/empty.mp4": b"",
}
BOMB_BYTES = 8 << 20  # zeros: deflate/gzip shrink them about 1000x


def _zip_bytes(files: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, payload in files.items():
            zf.writestr(name, payload)
    return buffer.getvalue()


def _tar_bytes(files: dict[str, bytes], mode: str = "w:gz", extra: list | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tf:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
        for info in extra or []:
            tf.addfile(info)
    return buffer.getvalue()


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".extracted" not in p.parts
    }


def _everything(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    download, dest = tmp_path / "download", tmp_path / "out" / "genvideo"
    download.mkdir()
    return download, dest


FORMATS = {
    "X.zip": lambda: _zip_bytes(FILES),
    "X.stored.zip": lambda: _zip_bytes(FILES, zipfile.ZIP_STORED),
    "X.tar": lambda: _tar_bytes(FILES, "w"),
    "X.tar.gz": lambda: _tar_bytes(FILES, "w:gz"),
    "X.tar.bz2": lambda: _tar_bytes(FILES, "w:bz2"),
    "X.tar.xz": lambda: _tar_bytes(FILES, "w:xz"),
    "Real_blob": lambda: _tar_bytes(FILES, "w:gz"),  # gzip'd tar without extension
    "misnamed.tar.gz": lambda: _zip_bytes(FILES),  # magic bytes win over the suffix
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_each_format_is_extracted_in_place_of_the_download(dirs, name):
    download, dest = dirs
    archive = download / name
    archive.write_bytes(FORMATS[name]())
    extracted = extract_archive(archive, dest, progress=False)
    assert extracted == sorted(dest / p for p in FILES)
    assert _tree(dest) == FILES
    assert not archive.exists()
    marker = read_extraction_marker(archive, dest)
    assert marker["files"] == sorted(FILES) and marker["volumes"] == [name]
    assert not list(dest.glob(".extract-*"))


@pytest.mark.parametrize(
    "names, payload",
    [
        (
            ["X.tar.gz.split.aa", "X.tar.gz.split.ab", "X.tar.gz.split.ac"],
            lambda: _tar_bytes(FILES),
        ),
        (["X.zip.001", "X.zip.002", "X.zip.003"], lambda: _zip_bytes(FILES)),
        (["Real_part_aa", "Real_part_ab"], lambda: _tar_bytes(FILES)),
    ],
)
def test_multi_volume_sets_are_read_as_one(dirs, names, payload):
    download, dest = dirs
    blob = payload()
    step = len(blob) // len(names) + 1
    for index, name in enumerate(names):
        (download / name).write_bytes(blob[index * step : (index + 1) * step])
    (download / "Other.split.aa").write_bytes(b"not part of the set")
    extract_archive(download / names[0], dest)
    assert _tree(dest) == FILES
    assert sorted(p.name for p in download.iterdir()) == ["Other.split.aa"]
    assert read_extraction_marker(download / names[0], dest)["volumes"] == names


def test_volume_gaps_and_missing_first_volume_are_errors(dirs):
    download, dest = dirs
    for suffix in ("aa", "ac"):
        (download / f"X.split.{suffix}").write_bytes(b"x")
    with pytest.raises(ArchiveError, match="gap before X.split.ac"):
        extract_archive(download / "X.split.aa", dest)
    (download / "X.split.aa").unlink()
    with pytest.raises(ArchiveError, match="does not start"):
        extract_archive(download / "X.split.ac", dest)


def test_volumes_sort_past_z(tmp_path):
    names = [a + b for a in "ab" for b in "abcdefghijklmnopqrstuvwxyz"][:28]
    for name in reversed(names):
        (tmp_path / f"V.split.{name}").write_bytes(name.encode())
    volumes = find_volumes(tmp_path / "V.split.aa")
    assert [v.name[-2:] for v in volumes] == names
    assert find_volumes(tmp_path / "plain.zip") == [tmp_path / "plain.zip"]


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=300),
    cuts=st.lists(st.integers(0, 300), max_size=5),
    reads=st.lists(st.tuples(st.integers(-20, 320), st.integers(0, 64)), max_size=8),
)
def test_concatenated_volumes_read_like_one_file(tmp_path_factory, data, cuts, reads):
    folder = tmp_path_factory.mktemp("vol")
    bounds = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    paths = []
    for index, (start, end) in enumerate(zip(bounds, bounds[1:], strict=False)):
        paths.append(folder / f"v{index:03d}")
        paths[-1].write_bytes(data[start:end])
    with open_volumes(paths, buffer_bytes=16) as stream:
        assert stream.read() == data
        for position, count in reads:
            position = max(0, position)
            stream.seek(position)
            assert stream.read(count) == data[position : position + count]
        stream.seek(-min(5, len(data)), io.SEEK_END)
        assert stream.read() == data[len(data) - min(5, len(data)) :]


def test_macos_junk_is_stripped(dirs):
    download, dest = dirs
    junk = {
        "__MACOSX/Real/._a.mp4": b"resource fork",
        "Real/._a.mp4": b"fork",
        "Fake/.DS_Store": b"finder",
        "__MACOSX/": b"",
    }
    archive = download / "GenVideo-Val.zip"
    archive.write_bytes(_zip_bytes({**FILES, **junk}))
    extract_archive(archive, dest, progress=False)
    assert _tree(dest) == FILES
    assert not (dest / "__MACOSX").exists()
    assert read_extraction_marker(archive, dest)["junk_entries_skipped"] == 4


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def _hardlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info


def _fifo(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.FIFOTYPE
    return info


def _zip_symlink() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("Real/a.mp4", FILES["Real/a.mp4"])
        info = zipfile.ZipInfo("Real/link.mp4")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    return buffer.getvalue()


HOSTILE = {
    "zip ../": ("evil.zip", lambda: _zip_bytes({**FILES, "../evil.txt": b"x"}), "../evil.txt"),
    "zip absolute": ("evil.zip", lambda: _zip_bytes({"/tmp/evil.txt": b"x"}), "/tmp/evil.txt"),
    "zip backslash ..": ("evil.zip", lambda: _zip_bytes({r"a\..\..\evil": b"x"}), r"a\..\..\evil"),
    "zip symlink": ("evil.zip", _zip_symlink, "Real/link.mp4"),
    "zip bomb": ("bomb.zip", lambda: _zip_bytes({"bomb.bin": bytes(BOMB_BYTES)}), "bomb.bin"),
    "tar ../": ("evil.tar.gz", lambda: _tar_bytes({**FILES, "a/../../evil": b"x"}), "a/../../evil"),
    "tar absolute": ("evil.tar", lambda: _tar_bytes({"/etc/evil": b"x"}, "w"), "/etc/evil"),
    "tar symlink out": (
        "evil.tar.gz",
        lambda: _tar_bytes(FILES, extra=[_symlink("s", "/etc")]),
        "s",
    ),
    "tar symlink in": (
        "evil.tar.gz",
        lambda: _tar_bytes(FILES, extra=[_symlink("t", "Real/a.mp4")]),
        "t",
    ),
    "tar hardlink": ("evil.tar.gz", lambda: _tar_bytes(FILES, extra=[_hardlink("h", "../x")]), "h"),
    "tar fifo": ("evil.tar", lambda: _tar_bytes(FILES, "w", extra=[_fifo("p")]), "p"),
    "tar.gz bomb": (
        "bomb.tar.gz",
        lambda: _tar_bytes({"ok.mp4": b"1", "z.bin": bytes(BOMB_BYTES)}),
        "z.bin",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_and_nothing_lands(tmp_path, case):
    name, build, member = HOSTILE[case]
    download, dest = tmp_path / "download", tmp_path / "out" / "ds"
    download.mkdir()
    archive = download / name
    archive.write_bytes(build())
    before = _everything(tmp_path)
    with pytest.raises(UnsafeArchiveError) as refused:
        extract_archive(archive, dest, progress=False)
    assert refused.value.member == member and repr(member) in str(refused.value)
    assert _everything(tmp_path) - before <= {"out", "out/ds"}
    assert archive.exists() and not extraction_marker_path(archive, dest).exists()


def test_total_size_cap(dirs):
    download, dest = dirs
    archive = download / "X.tar"
    archive.write_bytes(_tar_bytes(FILES, "w"))
    with pytest.raises(UnsafeArchiveError, match="max_total_bytes=4000"):
        extract_archive(archive, dest, max_total_bytes=4000)
    assert _tree(dest) == {}


def test_compressible_but_small_members_are_not_called_bombs(dirs):
    download, dest = dirs
    archive = download / "text.zip"
    archive.write_bytes(_zip_bytes({"captions.csv": b"a,b\n" * 100_000}))  # 400 kB, ratio ~ 400
    extract_archive(archive, dest, progress=False)
    assert (dest / "captions.csv").stat().st_size == 400_000


def test_rerun_uses_the_marker_and_does_nothing(dirs):
    download, dest = dirs
    archive = download / "X.zip"
    payload = _zip_bytes(FILES)
    archive.write_bytes(payload)
    first = extract_archive(archive, dest, progress=False)
    assert is_extracted(archive, dest)
    mtimes = {p: p.stat().st_mtime_ns for p in first}
    assert extract_archive(archive, dest, progress=False) == first  # archive already gone
    archive.write_bytes(payload)  # downloaded again by a careless caller
    assert extract_archive(archive, dest, progress=False) == first
    assert not archive.exists()
    assert {p: p.stat().st_mtime_ns for p in first} == mtimes


def test_missing_output_is_restored_when_the_archive_is_back(dirs):
    download, dest = dirs
    archive = download / "X.tar.gz"
    payload = _tar_bytes(FILES)
    archive.write_bytes(payload)
    extract_archive(archive, dest, progress=False)
    (dest / "Real/a.mp4").unlink()
    assert not is_extracted(archive, dest)
    archive.write_bytes(payload)
    extract_archive(archive, dest, progress=False)
    assert _tree(dest) == FILES


def test_existing_different_file_is_never_overwritten(dirs):
    download, dest = dirs
    (dest / "Real").mkdir(parents=True)
    (dest / "Real/a.mp4").write_bytes(b"someone else's video")
    archive = download / "X.zip"
    archive.write_bytes(_zip_bytes(FILES))
    with pytest.raises(ArchiveError, match="already exists with other content"):
        extract_archive(archive, dest, progress=False)
    assert _tree(dest) == {"Real/a.mp4": b"someone else's video"}
    assert archive.exists()


def test_identical_existing_file_is_accepted(dirs):
    download, dest = dirs
    (dest / "Real").mkdir(parents=True)
    (dest / "Real/a.mp4").write_bytes(FILES["Real/a.mp4"])
    archive = download / "X.zip"
    archive.write_bytes(_zip_bytes(FILES))
    extract_archive(archive, dest, progress=False)
    assert _tree(dest) == FILES


def _zip_with_bad_crc() -> bytes:
    good = {**FILES, "Real/bad.mp4": os.urandom(4000)}
    blob = bytearray(_zip_bytes(good, zipfile.ZIP_STORED))
    with zipfile.ZipFile(io.BytesIO(bytes(blob))) as zf:
        info = zf.getinfo("Real/bad.mp4")
    data_start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    blob[data_start + 100] ^= 0xFF
    return bytes(blob)


def test_corrupt_zip_member_raises_or_is_skipped_by_policy(dirs):
    download, dest = dirs
    archive = download / "0_real.zip"
    archive.write_bytes(_zip_with_bad_crc())
    with pytest.raises(ArchiveError, match="Real/bad.mp4"):
        extract_archive(archive, dest, progress=False)
    assert _tree(dest) == {}
    extracted = extract_archive(archive, dest, on_corrupt_member="skip")
    assert extracted == sorted(dest / p for p in FILES) and _tree(dest) == FILES
    marker = read_extraction_marker(archive, dest)
    assert [c["member"] for c in marker["corrupt_members"]] == ["Real/bad.mp4"]


def test_truncated_archive_is_an_archive_error(dirs):
    download, dest = dirs
    archive = download / "X.tar.gz"
    archive.write_bytes(_tar_bytes(FILES)[:-200])
    with pytest.raises(ArchiveError):
        extract_archive(archive, dest, progress=False)
    assert _tree(dest) == {}


def test_unknown_format_is_named(dirs):
    download, dest = dirs
    (download / "notes.txt").write_bytes(b"hello, not an archive" * 30)
    with pytest.raises(ArchiveError, match="not a zip or tar"):
        extract_archive(download / "notes.txt", dest)
    plain_gzip = gzip.compress(b"just text" * 100)
    (download / "x.gz").write_bytes(plain_gzip)
    with pytest.raises(ArchiveError, match="x.gz"):
        extract_archive(download / "x.gz", dest)


def test_missing_archive_without_marker_is_an_error(dirs):
    download, dest = dirs
    with pytest.raises(ArchiveError, match="does not exist"):
        extract_archive(download / "never-downloaded.zip", dest)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("a/b.mp4", "a/b.mp4"),
        ("./a//b.mp4", "a/b.mp4"),
        ("a\\b.mp4", "a/b.mp4"),
        ("__MACOSX/a", None),
        ("x/__MACOSX/a", None),
        ("a/._b.mp4", None),
        ("./", None),
    ],
)
def test_safe_member_path(raw, expected):
    assert safe_member_path(raw, "arch") == expected


@pytest.mark.parametrize("raw", ["../a", "a/../../b", "/abs", "C:\\x", "c:/x", "\\\\server\\x"])
def test_unsafe_member_path(raw):
    with pytest.raises(UnsafeArchiveError, match="arch"):
        safe_member_path(raw, "arch")


def test_detect_format_by_magic():
    assert detect_format(_zip_bytes(FILES)[:512]) == "zip"
    assert detect_format(_tar_bytes(FILES, "w")[:512]) == "tar"
    assert detect_format(_tar_bytes(FILES, "w:gz")[:512]) == "tar.gz"
    assert detect_format(_tar_bytes(FILES, "w:bz2")[:512]) == "tar.bz2"
    assert detect_format(_tar_bytes(FILES, "w:xz")[:512]) == "tar.xz"
