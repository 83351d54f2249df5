"""What the listing of a raw folder left out, so that nothing disappears silently.

Every file below `raw/<dataset>` is either a video candidate (or, for a keyframe table, the
table its rows come from) or counted here: by extension, with a few example paths each.
vfcache's own bookkeeping (fetch.json, extraction markers, download failure lists, partial
and temporary files, the Hub client's `.cache/`) is counted apart, so the summary a user reads
lists only what came with
the dataset. `build-manifest` prints it and writes it as `ignored_files.json` beside
videos.parquet.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from vfcache.pipelines.fetch.archives import MARKER_DIR
from vfcache.pipelines.fetch.http import FAILURES_NAME, PART_SUFFIX
from vfcache.pipelines.fetch.record import FETCH_RECORD_NAME

from vfcache.atomic import TEMP_MARK, write_json_atomic

IGNORED_FILES_NAME = "ignored_files.json"
EXAMPLES_PER_EXTENSION = 5
NO_EXTENSION = "(none)"
HUB_CLIENT_DIR = ".cache"  # huggingface_hub's download metadata in a local_dir


@dataclass(frozen=True)
class IgnoredFiles:
    """Files below a raw folder that are not videos of the dataset."""

    by_extension: dict[str, int] = field(default_factory=dict)  # ".txt" -> 3, "(none)" -> 1
    examples: dict[str, list[str]] = field(default_factory=dict)  # extension -> a few relpaths
    bookkeeping: int = 0  # vfcache's own files (fetch record, markers, partial downloads)

    @property
    def total(self) -> int:
        return sum(self.by_extension.values())

    def to_json(self) -> dict:
        return {
            "total": self.total,
            "by_extension": self.by_extension,
            "examples": self.examples,
            "bookkeeping_files": self.bookkeeping,
        }

    def describe(self) -> str:
        """One line: `3 files not taken as videos: .txt 2, .json 1`."""
        if not self.total:
            return "every file is a video candidate"
        counts = ", ".join(
            f"{ext} {n}"
            for ext, n in sorted(self.by_extension.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        return f"{self.total} files not taken as videos: {counts}"


def _is_bookkeeping(relpath: str) -> bool:
    parts = relpath.split("/")
    name = parts[-1]
    return (
        MARKER_DIR in parts[:-1]
        or parts[0] == HUB_CLIENT_DIR
        or name in (FETCH_RECORD_NAME, FAILURES_NAME)
        or name.endswith(PART_SUFFIX)
        or TEMP_MARK in name
    )


def _extension(name: str) -> str:
    """ ".txt" for notes.TXT; a dot-file is its own kind (".DS_Store"); "(none)" for README."""
    ext = os.path.splitext(name)[1].lower()
    if ext:
        return ext
    return name if name.startswith(".") else NO_EXTENSION


def find_ignored(raw_dir: Path, candidate_relpaths: Iterable[str]) -> IgnoredFiles:
    """Count the files of `raw_dir` that no candidate uses (`table.parquet#row` uses the table)."""
    used = {relpath.split("#", 1)[0] for relpath in candidate_relpaths}
    counts: dict[str, int] = defaultdict(int)
    examples: dict[str, list[str]] = defaultdict(list)
    bookkeeping = 0
    for folder, subdirs, files in os.walk(raw_dir):
        subdirs.sort()
        for filename in sorted(files):
            relpath = Path(folder, filename).relative_to(raw_dir).as_posix()
            if relpath in used:
                continue
            if _is_bookkeeping(relpath):
                bookkeeping += 1
                continue
            ext = _extension(filename)
            counts[ext] += 1
            if len(examples[ext]) < EXAMPLES_PER_EXTENSION:
                examples[ext].append(relpath)
    return IgnoredFiles(dict(sorted(counts.items())), dict(sorted(examples.items())), bookkeeping)


def write_ignored(path: Path, ignored: IgnoredFiles) -> Path:
    write_json_atomic(path, ignored.to_json())
    return path
