"""vfcache.pipelines.fetch.record: fetch.json round trip, hashing, atomic writes."""

from __future__ import annotations

import hashlib
import os

import pytest
from vfcache.pipelines.fetch.record import (
    FETCH_RECORD_NAME,
    FetchedFile,
    FetchRecord,
    atomic_write_jsonl,
    read_fetch_record,
    read_jsonl,
    sha256_file,
    write_fetch_record,
)


def _record(patterns=("data/*",)) -> FetchRecord:
    return FetchRecord(
        source="huggingface",
        repo_id="org/ds",
        revision="main",
        commit_sha="a" * 40,
        endpoint="http://127.0.0.1:1",
        allow_patterns=patterns,
        files=(FetchedFile("data/x.parquet", 3, "b" * 64), FetchedFile("data/y", 0, "c" * 64)),
        fetched_at_utc="2026-01-01T00:00:00+00:00",
    )


@pytest.mark.parametrize("patterns", [("data/*", "*.md"), None])
def test_fetch_record_round_trip(tmp_path, patterns):
    record = _record(patterns)
    path = write_fetch_record(record, tmp_path)
    assert path == tmp_path / FETCH_RECORD_NAME
    assert read_fetch_record(tmp_path) == record and record.total_bytes == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [FETCH_RECORD_NAME]


def test_malformed_fetch_record_names_the_file(tmp_path):
    (tmp_path / FETCH_RECORD_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="fetch.json"):
        read_fetch_record(tmp_path)
    (tmp_path / FETCH_RECORD_NAME).write_text('{"source": "huggingface"}')
    with pytest.raises(ValueError, match="repo_id"):
        read_fetch_record(tmp_path)


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 10_000])
def test_sha256_file_matches_hashlib_across_chunks(tmp_path, size):
    payload = os.urandom(size)
    (tmp_path / "f").write_bytes(payload)
    assert sha256_file(tmp_path / "f", chunk_bytes=4096) == hashlib.sha256(payload).hexdigest()


def test_jsonl_round_trip_replaces_atomically(tmp_path):
    path = tmp_path / "rows.jsonl"
    atomic_write_jsonl(path, [{"a": 1}, {"b": [2]}])
    atomic_write_jsonl(path, [{"c": 3}])
    assert read_jsonl(path) == [{"c": 3}]
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]
