"""Parquet read/write of records, always through a temporary file and a rename."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable, Sequence, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from vfcache.manifests.records import arrow_schema, drop_empty_optional, optional_columns

from vfcache.atomic import atomic_write

R = TypeVar("R")


def records_to_table(records: Sequence, record_type: type) -> pa.Table:
    schema = arrow_schema(record_type)
    columns = {name: [getattr(rec, name) for rec in records] for name in schema.names}
    return drop_empty_optional(pa.Table.from_pydict(columns, schema=schema), record_type)


def write_records(path: str | os.PathLike, records: Iterable, record_type: type) -> Path:
    records = list(records)
    for rec in records:
        if not isinstance(rec, record_type):
            raise TypeError(f"expected {record_type.__name__}, got {type(rec).__name__}")
    table = records_to_table(records, record_type)
    with atomic_write(path, "wb") as handle:
        pq.write_table(table, handle, compression="zstd")
    return Path(path)


def read_table(path: str | os.PathLike, record_type: type) -> pa.Table:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"manifest {path} does not exist")
    table = pq.read_table(path)
    expected = arrow_schema(record_type)
    absent = [name for name in optional_columns(record_type) if name not in table.schema.names]
    if set(table.schema.names) | set(absent) != set(expected.names):
        raise ValueError(
            f"{path} has columns {sorted(table.schema.names)}, "
            f"a {record_type.__name__} manifest needs {sorted(expected.names)}"
        )
    for name in absent:  # an optional column no row of this file has a value for
        table = table.append_column(
            expected.field(name), pa.nulls(table.num_rows, expected.field(name).type)
        )
    return table.select(expected.names)


def read_records(path: str | os.PathLike, record_type: type[R]) -> list[R]:
    """Every row as a record. Column by column: `read_table` has checked the columns, so the
    records are built positionally (list columns become tuples), without a dict per row."""
    table = read_table(path, record_type)
    columns = []
    for name, field in zip(table.schema.names, table.schema):
        values = table.column(name).to_pylist()
        if pa.types.is_list(field.type):
            values = [None if v is None else tuple(v) for v in values]
        columns.append(values)
    return [record_type(*row) for row in zip(*columns)] if columns else []


def record_dicts(records: Iterable) -> list[dict]:
    return [dataclasses.asdict(rec) for rec in records]
