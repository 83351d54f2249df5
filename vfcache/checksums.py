"""The sha256 of a file, read in chunks so a large video never sits in memory.

One helper for every place that fingerprints a file: video ids, fetch records and download
checks, and the clips.parquet a split was made from.
"""

from __future__ import annotations

import hashlib
import os

HASH_CHUNK_BYTES = 1 << 20


def sha256_file(path: str | os.PathLike, *, chunk_bytes: int = HASH_CHUNK_BYTES) -> str:
    """Hex sha256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
