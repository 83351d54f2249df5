"""The records of the cache: one frozen dataclass per row kind, and the Arrow schema derived from
it.

`VideoRecord` is a row of `videos.parquet` (one per source video), `ClipRecord` a row of
`clips.parquet` and of every shard index, `FailureRecord` a video that probe or extraction
could not turn into clips, `SplitEntry` one line of a split JSONL file (self-contained:
a training run needs only the JSONL and the shards), and `FrameHashRecord` a row of
`frame_hashes.parquet` (perceptual hashes of a few frames of a video). Field names carry their
units.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

import pyarrow as pa

LABEL_REAL = 0
LABEL_FAKE = 1
LABEL_NAMES = {LABEL_REAL: "real", LABEL_FAKE: "fake"}

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_SKIPPED = "skipped"

# A field with this metadata is a column only in files where some row has a value: files
# written before it existed, and files whose rows all leave it None, keep their bytes.
OPTIONAL_COLUMN = {"optional_column": True}


@dataclass(frozen=True)
class VideoRecord:
    video_id: str  # sha256 of the file bytes
    dataset: str
    domain: str
    relpath: str  # relative to raw/<dataset>/
    label: int  # 0 real, 1 fake
    generator: str  # generator or manipulation method; real sources keep their origin (youtube...)
    group: str  # what must never cross splits
    source_split: Optional[str]  # official split when the dataset has one
    bytes: int
    codec: Optional[str]
    width: Optional[int]  # displayed width, after rotation
    height: Optional[int]
    rotation: int  # degrees clockwise to apply to decoded frames
    fps: Optional[float]  # average frame rate
    num_frames: Optional[int]
    duration_s: Optional[float]
    status: str  # ok / failed / skipped
    reason: Optional[str]


@dataclass(frozen=True)
class ClipRecord:
    clip_id: str
    video_id: str
    clip_index: int
    frame_indices: tuple[
        int, ...
    ]  # presentation-order indices of the source frames used, one per clip frame
    timestamps_s: tuple[float, ...]  # presentation time of each source frame used
    padded_frames: int  # clip frames that repeat an earlier frame because the video was too short
    short_policy: str  # "none" when the video was long enough, else pad_last / loop
    shard: str  # relative to the cache folder, e.g. shards/shard-0003-0000.npy.zst
    offset: int
    nbytes: int
    dataset: str
    domain: str
    relpath: str
    label: int
    generator: str
    group: str
    source_split: Optional[str]
    # yuv420 clips only (vfcache.pixels): the matrix (bt601/bt709/bt2020) and range
    # (limited/full) their planes hold, which RGB is made with
    color_matrix: Optional[str] = field(default=None, metadata=OPTIONAL_COLUMN)
    color_range: Optional[str] = field(default=None, metadata=OPTIONAL_COLUMN)


@dataclass(frozen=True)
class FailureRecord:
    video_id: str
    relpath: str
    stage: str  # probe / extract
    reason: str


@dataclass(frozen=True)
class FrameHashRecord:
    """Perceptual hashes of a few decoded frames of one video (`vfcache.pipelines.frame_hash`)."""

    video_id: str  # sha256 of the file bytes: the row stays valid while the file is unchanged
    relpath: str
    method: str  # how the hashes were made; a row of another method is computed again
    frame_hashes: str  # one 16-digit hex pHash per hashed frame, concatenated ("" when failed)
    status: str  # ok / failed
    reason: Optional[str]


@dataclass(frozen=True)
class SplitEntry:
    clip_id: str
    shard: str  # relative to the cache folder
    offset: int
    nbytes: int
    label: int
    domain: str
    generator: str
    group: str
    video_id: str
    dataset: str
    clip_index: int


def make_clip_id(video_id: str, spec_hash: str, clip_index: int) -> str:
    """Derived from content, spec and position, so re-running an extraction is idempotent."""
    return hashlib.sha256(f"{video_id}:{spec_hash}:{clip_index}".encode()).hexdigest()[:24]


def split_entry_from_clip(clip: ClipRecord) -> SplitEntry:
    return SplitEntry(
        clip_id=clip.clip_id,
        shard=clip.shard,
        offset=clip.offset,
        nbytes=clip.nbytes,
        label=clip.label,
        domain=clip.domain,
        generator=clip.generator,
        group=clip.group,
        video_id=clip.video_id,
        dataset=clip.dataset,
        clip_index=clip.clip_index,
    )


_ARROW_SCALARS = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def _arrow_type(hint: Any) -> tuple[pa.DataType, bool]:
    """(arrow type, nullable) for one dataclass field's type hint."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(members) != 1:
            raise TypeError(f"unsupported union {hint}")
        return _arrow_type(members[0])[0], True
    if origin is tuple:
        element = typing.get_args(hint)[0]
        return pa.list_(_ARROW_SCALARS[element]), False
    if hint in _ARROW_SCALARS:
        return _ARROW_SCALARS[hint], False
    raise TypeError(f"no Arrow type for {hint}")


def arrow_schema(record_type: type) -> pa.Schema:
    """The one place where a record's parquet schema is derived from its dataclass."""
    hints = typing.get_type_hints(record_type)
    fields = []
    for record_field in dataclasses.fields(record_type):
        arrow, nullable = _arrow_type(hints[record_field.name])
        fields.append(pa.field(record_field.name, arrow, nullable=nullable))
    return pa.schema(fields)


def optional_columns(record_type: type) -> tuple[str, ...]:
    """The fields of `record_type` that are columns only where some row has a value."""
    return tuple(
        f.name for f in dataclasses.fields(record_type) if f.metadata.get("optional_column")
    )


def drop_empty_optional(table: pa.Table, record_type: type) -> pa.Table:
    """`table` without the optional columns that hold no value (see OPTIONAL_COLUMN)."""
    empty = [
        name
        for name in optional_columns(record_type)
        if name in table.column_names and table.column(name).null_count == table.num_rows
    ]
    return table.drop_columns(empty) if empty else table


def record_from_dict(record_type: type, row: dict) -> Any:
    """Build a record from a parquet/JSON row, turning lists back into tuples; unknown keys are
    errors."""
    names = {field.name for field in dataclasses.fields(record_type)}
    unknown = set(row) - names
    if unknown:
        raise ValueError(f"unknown {record_type.__name__} fields: {sorted(unknown)}")
    missing = names - set(row) - set(optional_columns(record_type))
    if missing:
        raise ValueError(f"missing {record_type.__name__} fields: {sorted(missing)}")
    values = {key: tuple(value) if isinstance(value, list) else value for key, value in row.items()}
    return record_type(**values)
