"""Manifests as Arrow columns: how split, audit and the loader's index read and write them at
scale (millions of clips), without a Python object per row.

The frozen dataclasses of `vfcache.manifests.records` stay the schema (`arrow_schema`) and the form
of
single records. Stages read `clips.parquet` with `pyarrow.parquet.read_table(columns=...)`;
this module reads split JSONL files into tables, turns string columns into sorted category
codes for numpy, and writes split JSONL files from columns, byte for byte what
`split_files.entry_line` writes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
from vfcache.manifests.records import SplitEntry, arrow_schema
from vfcache.manifests.split_files import SplitFileError, read_split

from vfcache.atomic import atomic_write

SPLIT_FIELDS = tuple(f.name for f in dataclasses.fields(SplitEntry))
SPLIT_SCHEMA = arrow_schema(SplitEntry)
JSON_NEEDS_ESCAPE = r'["\\\x00-\x1f]'  # what json.dumps(ensure_ascii=False) escapes in a string
WRITE_CHUNK_ROWS = 1 << 18


def duplicated_values(column: pa.ChunkedArray | pa.Array, shown: int = 5) -> list[str]:
    """Up to `shown` values that appear more than once, sorted."""
    counts = pc.value_counts(column)
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    return sorted(repeated.to_pylist())[:shown]


def codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list]:
    """(int64 codes, categories): categories sorted as Python sorts them (Arrow sorts strings by
    their UTF-8 bytes, which is code point order, as Python does), codes index them."""
    encoded = pc.dictionary_encode(
        column if isinstance(column, pa.Array) else column.combine_chunks()
    )
    order = pc.sort_indices(encoded.dictionary).to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[encoded.indices.to_numpy(zero_copy_only=False)], encoded.dictionary.take(
        order
    ).to_pylist()


def _lit(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def _escaped_strings(column: pa.Array) -> pa.Array:
    """Each string as json.dumps(value, ensure_ascii=False) writes it, quotes included."""
    values = column.to_pylist()
    return pa.array([json.dumps(v, ensure_ascii=False) for v in values], pa.large_string())


def split_lines(table: pa.Table, clean: frozenset[str] | set[str] = frozenset()) -> pa.Array:
    """The JSONL line of every row of `table` (SplitEntry columns): sorted keys, compact, UTF-8.

    One element-wise join builds every line: the keys, quotes and commas are literals, the
    values the columns. A string column goes between literal quotes when no value needs a JSON
    escape (`clean` names the columns the caller already checked; the others are checked
    here), else every value is written by json.dumps."""
    parts: list = []
    pending = "{"  # literal text waiting for the next value
    for name in sorted(SPLIT_FIELDS):
        column = table.column(name).combine_chunks()
        if column.null_count:
            raise ValueError(f"split column {name} has {column.null_count} empty values")
        pending += json.dumps(name) + ":"
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            plain = (
                name in clean
                or not pc.any(pc.match_substring_regex(column, JSON_NEEDS_ESCAPE)).as_py()
            )
            if plain:
                parts += [_lit(pending + '"'), column.cast(pa.large_string())]
                pending = '",'
            else:
                parts += [_lit(pending), _escaped_strings(column)]
                pending = ","
        else:
            parts += [_lit(pending), column.cast(pa.large_string())]
            pending = ","
    parts.append(_lit(pending[:-1] + "}\n"))
    return pc.binary_join_element_wise(*parts, _lit(""))


def write_split_table(
    path: str | os.PathLike,
    table: pa.Table,
    *,
    unique: bool = False,
    clean: frozenset[str] | set[str] = frozenset(),
) -> Path:
    """Write the rows of `table` in their order as a split JSONL file (temporary name + rename);
    the bytes equal `split_files.write_split_file` of the same entries. `unique`: the caller
    checked that no clip id repeats; `clean`: see `split_lines`."""
    if table.num_rows and not unique:
        repeated = duplicated_values(table.column("clip_id"))
        if repeated:
            raise ValueError(f"clip {repeated[0]} appears twice in {path}")

    def chunk(start: int) -> memoryview:
        lines = split_lines(table.slice(start, WRITE_CHUNK_ROWS), clean)
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[
            lines.offset : lines.offset + len(lines) + 1
        ]
        return memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]]

    # Arrow's kernels release the GIL: chunks are built on two threads and written in order,
    # at most three in memory at once
    with atomic_write(path, "wb") as handle, ThreadPoolExecutor(max_workers=2) as pool:
        pending: deque = deque()
        for start in range(0, table.num_rows, WRITE_CHUNK_ROWS):
            pending.append(pool.submit(chunk, start))
            if len(pending) == 3:
                handle.write(pending.popleft().result())
        while pending:
            handle.write(pending.popleft().result())
    return Path(path)


def read_split_table(path: str | os.PathLike) -> pa.Table:
    """A split JSONL file as a table of SplitEntry columns, as strict as `split_files.read_split`:
    a file the fast reader refuses, or whose lines do not all hold one entry (an empty line, a
    last line without its newline), is read again entry by entry, whose error names the line."""
    path = Path(path)
    try:
        newlines, last = _newlines(path)
    except FileNotFoundError as err:
        raise SplitFileError(
            f"split file {path} does not exist (run `vfcache split` first)"
        ) from err
    if last is None:
        return SPLIT_SCHEMA.empty_table()
    try:
        table = pa_json.read_json(
            path,
            parse_options=pa_json.ParseOptions(
                explicit_schema=SPLIT_SCHEMA, unexpected_field_behavior="error"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        read_split(path)  # raises the precise error
        raise
    if (
        last != b"\n"
        or newlines != table.num_rows
        or any(table.column(name).null_count for name in SPLIT_FIELDS)
    ):
        read_split(path)  # names the line
        raise SplitFileError(f"{path}: not one entry per line")
    return table.select(list(SPLIT_FIELDS)).combine_chunks()


def _newlines(path: Path, chunk_bytes: int = 1 << 24) -> tuple[int, bytes | None]:
    """(newline count, last byte or None for an empty file), reading the file in chunks."""
    count, last = 0, None
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count, last


def read_split_entries(path: str | os.PathLike) -> list[SplitEntry]:
    """`split_files.read_split`, through the columnar reader: the same entries and errors, faster
    (one Arrow read instead of a JSON parse and checks per line), and a repeated clip id refused."""
    table = read_split_table(path)
    columns = [table.column(name).to_pylist() for name in SPLIT_FIELDS]
    clip_ids = columns[SPLIT_FIELDS.index("clip_id")]
    if len(set(clip_ids)) != len(
        clip_ids
    ):  # a set, not Arrow's value_counts: that imports pandas (0.2 s)
        read_split(path)  # names both lines
        seen: set[str] = set()
        repeated = next(clip_id for clip_id in clip_ids if clip_id in seen or seen.add(clip_id))
        raise SplitFileError(f"{path}: clip {repeated} is listed twice")
    return [SplitEntry(*row) for row in zip(*columns)]
