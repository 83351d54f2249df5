"""What was fetched: the fetch record written beside downloaded data, and the file helpers
every fetch module shares (chunked sha256, atomic writes).

A fetch record answers "which bytes are these?" for a raw dataset folder: the source, the
revision that was asked for, the commit it resolved to, and every file with its size and
sha256 computed locally. It is written as `fetch.json` through a temporary name + rename.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vfcache.atomic import write_bytes_atomic, write_json_atomic
from vfcache.checksums import sha256_file  # noqa: F401  (part of the fetch API)

FETCH_RECORD_NAME = "fetch.json"


@dataclass(frozen=True)
class FetchedFile:
    """One file of a fetched dataset, relative to the dataset folder."""

    relpath: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class FetchRecord:
    """Provenance of a raw dataset folder.

    `revision` is what the caller asked for (branch, tag or commit); `commit_sha` is the
    commit it resolved to at fetch time, so a later run can pin it. `options` keeps what the
    user gave on the command line that later runs need again (FF++: the servers of the email and
    the accepted terms), so `vfcache cache NAME` goes on without them; records written before
    it existed read as `{}`.
    """

    source: str
    repo_id: str
    revision: str
    commit_sha: str
    endpoint: str
    allow_patterns: tuple[str, ...] | None
    files: tuple[FetchedFile, ...]
    fetched_at_utc: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)


def atomic_write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    write_bytes_atomic(path, text.encode("utf-8"))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def fetch_record_to_json(record: FetchRecord) -> dict[str, Any]:
    payload = dataclasses.asdict(record)
    payload["allow_patterns"] = (
        list(record.allow_patterns) if record.allow_patterns is not None else None
    )
    payload["total_bytes"] = record.total_bytes
    return payload


def fetch_record_from_json(payload: dict[str, Any]) -> FetchRecord:
    fields = {f.name for f in dataclasses.fields(FetchRecord)}
    payload = {"options": {}, **payload}
    missing = sorted(fields - set(payload))
    if missing:
        raise ValueError(f"malformed fetch record: missing fields {missing}")
    try:
        files = tuple(FetchedFile(**f) for f in payload["files"])
    except TypeError as err:
        raise ValueError(f"malformed fetch record: bad file entry ({err})") from err
    patterns = payload["allow_patterns"]
    return FetchRecord(
        **{
            **{name: payload[name] for name in fields},
            "allow_patterns": tuple(patterns) if patterns is not None else None,
            "files": files,
        }
    )


def write_fetch_record(record: FetchRecord, dest_dir: Path) -> Path:
    """Write `dest_dir/fetch.json` atomically and return its path."""
    path = Path(dest_dir) / FETCH_RECORD_NAME
    write_json_atomic(path, fetch_record_to_json(record))
    return path


def read_fetch_record(dest_dir: Path) -> FetchRecord:
    path = Path(dest_dir) / FETCH_RECORD_NAME
    with open(path, encoding="utf-8") as fh:
        try:
            payload = json.load(fh)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
    try:
        return fetch_record_from_json(payload)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
