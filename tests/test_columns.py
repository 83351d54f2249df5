"""Columnar manifests (manifests/columns.py): split files written from Arrow columns are byte for
byte what the entry-by-entry writer writes, JSON escapes included; the fast reader gives the
same entries and, on a broken file, the entry reader's error naming the line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vfcache.manifests.columns import codes, read_split_table, split_lines, write_split_table
from vfcache.manifests.records import SplitEntry
from vfcache.manifests.split_files import SplitFileError, entry_line, read_split, write_split_file

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


def entry(i: int, **changes) -> SplitEntry:
    base = SplitEntry(
        clip_id=f"c{i:05d}",
        shard="shards/shard-0000-0000.npy.zst",
        offset=i * 100,
        nbytes=100,
        label=i % 2,
        domain="studio",
        generator="camera",
        group=f"g{i // 2}",
        video_id=f"v{i}",
        dataset="ds",
        clip_index=i % 3,
    )
    return dataclasses.replace(base, **changes)


def table_of(entries: list[SplitEntry]) -> pa.Table:
    return pa.Table.from_pylist([dataclasses.asdict(e) for e in entries])


@settings(max_examples=60, deadline=None)
@given(domain=TEXT, generator=TEXT, group=TEXT, offset=st.integers(0, 2**62))
def test_lines_equal_the_entry_writer_for_any_strings(domain, generator, group, offset):
    entries = [entry(0, domain=domain, generator=generator, group=group, offset=offset), entry(1)]
    lines = split_lines(table_of(entries)).to_pylist()
    assert lines == [entry_line(e) for e in entries]


def test_escapes_quotes_backslashes_controls_and_keeps_unicode():
    tricky = entry(0, domain='a"b\\c\n\x01', generator="génerateur \x7f", group="\u2028")
    assert split_lines(table_of([tricky])).to_pylist() == [entry_line(tricky)]
    # a column the caller calls clean is trusted (no check); a clean value gives the same line
    plain = entry(1)
    assert split_lines(table_of([plain]), clean={"domain", "generator"}).to_pylist() == [
        entry_line(plain)
    ]


def test_written_file_is_byte_identical_and_reads_back(tmp_path, monkeypatch):
    import vfcache.manifests.columns

    monkeypatch.setattr(
        vfcache.manifests.columns, "WRITE_CHUNK_ROWS", 300
    )  # several chunks, written in order
    entries = [entry(i, domain=("street" if i % 3 else 'q"uote')) for i in range(2500)]
    write_split_file(tmp_path / "slow.jsonl", entries)
    write_split_table(tmp_path / "fast.jsonl", table_of(entries))
    assert (tmp_path / "fast.jsonl").read_bytes() == (tmp_path / "slow.jsonl").read_bytes()
    back = read_split_table(tmp_path / "fast.jsonl")
    assert [SplitEntry(**row) for row in back.to_pylist()] == read_split(tmp_path / "slow.jsonl")
    write_split_table(tmp_path / "empty.jsonl", table_of([entry(0)]).slice(0, 0))
    assert (tmp_path / "empty.jsonl").read_bytes() == b""
    assert read_split_table(tmp_path / "empty.jsonl").num_rows == 0


def test_a_repeated_clip_is_refused(tmp_path):
    with pytest.raises(ValueError, match="appears twice"):
        write_split_table(tmp_path / "x.jsonl", table_of([entry(1), entry(2), entry(1)]))


def test_broken_file_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = [entry_line(entry(i)) for i in range(3)]
    path.write_text(lines[0] + lines[1].replace('"label":1', '"label":"one"') + lines[2])
    with pytest.raises(SplitFileError, match=r"bad\.jsonl:2: "):
        read_split_table(path)
    path.write_text(lines[0] + lines[1].replace(',"label":1', ""))
    with pytest.raises(SplitFileError, match=r"bad\.jsonl:2: "):
        read_split_table(path)
    with pytest.raises(SplitFileError, match="does not exist"):
        read_split_table(tmp_path / "missing.jsonl")


def test_codes_are_ranks_of_sorted_categories():
    values, categories = codes(pa.array(["b", "a", "c", "a", "b"]))
    assert categories == ["a", "b", "c"]
    assert values.tolist() == [1, 0, 2, 0, 1]
    words = ["é", "z", "Z", "ab", "a", "\u2028", "😀", ""]
    assert codes(pa.array(words))[1] == sorted(words)  # UTF-8 byte order is Python's order
    assert np.array(categories, dtype=object)[values].tolist() == ["b", "a", "c", "a", "b"]


def test_entries_reader_is_as_strict_as_the_line_reader(tmp_path):
    from vfcache.manifests.columns import read_split_entries

    lines = [entry_line(entry(i)) for i in range(4)]
    good = tmp_path / "good.jsonl"
    good.write_text("".join(lines))
    assert read_split_entries(good) == read_split(good)
    cases = {
        "truncated": ("".join(lines)[:-1], "no newline"),
        "empty_line": (lines[0] + "\n" + "".join(lines[1:]), "2: empty line"),
        "repeated": (lines[0] + lines[1] + lines[0], "already listed on line 1"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text(text)
        with pytest.raises(SplitFileError, match=message):
            read_split_entries(path)
