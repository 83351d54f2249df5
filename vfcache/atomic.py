"""Atomic file writes: every file vfcache writes goes to a temporary name, is fsynced and renamed.

A crash therefore leaves either the old file, the new file, or a `*.tmp-*` file that the
next run removes (`remove_stale_temp_files`); never a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import IO, Iterator

TEMP_MARK = ".tmp-"


def temp_path_for(path: Path) -> Path:
    """A unique temporary sibling of `path` (same folder, so the rename is atomic)."""
    return path.with_name(f"{path.name}{TEMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of `path` for writing; on clean exit fsync and rename it over
    `path`."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(final)
    encoding = None if "b" in mode else "utf-8"
    try:
        with open(tmp, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        fsync_dir(final.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | os.PathLike, payload: bytes) -> None:
    with atomic_write(path, "wb") as handle:
        handle.write(payload)


def write_json_atomic(path: str | os.PathLike, obj: object) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    with atomic_write(path, "w") as handle:
        handle.write(text)


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files left by interrupted writers below `folder`; returns what was
    removed."""
    removed = []
    root = Path(folder)
    if not root.exists():
        return removed
    for candidate in root.rglob(f"*{TEMP_MARK}*"):
        if candidate.is_file():
            candidate.unlink()
            removed.append(candidate)
    return removed
