"""Audit of one or more cache folders and their split: the figures a model card reports, and
leakage checks.

Figures: clips per dataset x domain x part (total/train/val/test/support) x label x
generator, padded or looped clips, and failed or skipped videos by reason. Checks (each
`AuditCheck(name, passed, detail, dataset)`): the split files exist and were made from the
current clips.parquet; train/val/test are disjoint and cover clips.parquet; no group and no
video (across all audited datasets) sits in two parts; every split entry names a clip of
clips.parquet inside a final shard; the support bank lies in train; every part got the
number of clips asked; the support bank has N real + N fake clips per domain. Given the
videos shared across the audited datasets (`vfcache.pipelines.shared_videos` finds them, by bytes
and by
frame hashes), the report lists each pair and checks that no group of them sits in two parts.
`format_table` prints the figures in the shape of the R(2+1)D card.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from vfcache.manifests.columns import (
    SPLIT_FIELDS,
    SPLIT_SCHEMA,
    codes,
    duplicated_values,
    read_split_table,
)
from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import (
    LABEL_FAKE,
    LABEL_NAMES,
    LABEL_REAL,
    FailureRecord,
    VideoRecord,
)
from vfcache.manifests.shared_videos import SharedVideo, group_leaks
from vfcache.manifests.split_files import SplitFileError, SplitMeta, read_split_meta

from vfcache.checksums import sha256_file
from vfcache.errors import StageError
from vfcache.layout import SPLIT_PARTS, CacheDir, shard_path_problem

TABLE_PARTS = ("total", "train", "val", "test", "support")
DISJOINT_PARTS = ("train", "val", "test")
SHOWN_OFFENDERS = 5
MANIFEST_COLUMNS = (*SPLIT_FIELDS, "short_policy", "padded_frames")


@dataclass(frozen=True)
class AuditCell:
    dataset: str
    domain: str
    part: str  # total / train / val / test / support
    label: int
    generator: str
    clips: int
    videos: int


@dataclass(frozen=True)
class ShortClipCount:
    dataset: str
    domain: str
    short_policy: str  # pad_last / loop
    clips: int
    padded_frames: int


@dataclass(frozen=True)
class FailureCount:
    dataset: str
    source: str  # "failures.parquet:<stage>" or "videos.parquet:<status>"
    reason: str
    videos: int


@dataclass(frozen=True)
class AuditCheck:
    name: str
    passed: bool
    detail: str
    dataset: Optional[str] = None  # None for checks across datasets


@dataclass(frozen=True)
class AuditReport:
    split_name: str
    datasets: tuple[str, ...]
    cells: tuple[AuditCell, ...]
    short_clips: tuple[ShortClipCount, ...]
    failures: tuple[FailureCount, ...]
    checks: tuple[AuditCheck, ...]
    shared: Optional[tuple[SharedVideo, ...]] = None  # None: not looked for

    @property
    def ok(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed_checks(self) -> list[AuditCheck]:
        return [check for check in self.checks if not check.passed]

    def count(
        self,
        *,
        dataset: str,
        part: str,
        domain: str | None = None,
        label: int | None = None,
        generator: str | None = None,
    ) -> int:
        """Clips in the cells matching the given keys."""
        return sum(
            cell.clips
            for cell in self.cells
            if cell.dataset == dataset
            and cell.part == part
            and domain in (None, cell.domain)
            and label in (None, cell.label)
            and generator in (None, cell.generator)
        )

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "split_name": self.split_name,
            "datasets": list(self.datasets),
            "cells": [dataclasses.asdict(c) for c in self.cells],
            "short_clips": [dataclasses.asdict(c) for c in self.short_clips],
            "failures": [dataclasses.asdict(c) for c in self.failures],
            "checks": [dataclasses.asdict(c) for c in self.checks],
            **(
                {}
                if self.shared is None
                else {"shared": [dataclasses.asdict(p) for p in self.shared]}
            ),
        }


def _offenders(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN_OFFENDERS])
    more = f" and {len(items) - SHOWN_OFFENDERS} more" if len(items) > SHOWN_OFFENDERS else ""
    return f"{len(items)}: {shown}{more}"


def _check(name: str, dataset: Optional[str], problems: list[str], ok_detail: str) -> AuditCheck:
    if problems:
        return AuditCheck(name, False, _offenders(problems), dataset)
    return AuditCheck(name, True, ok_detail, dataset)


def _np(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


def _cells(dataset: str, part: str, table: pa.Table) -> list[AuditCell]:
    """Clips and videos per (domain, label, generator), sorted by that key."""
    if table.num_rows == 0:
        return []
    grouped = table.group_by(["domain", "label", "generator"]).aggregate(
        [("clip_id", "count"), ("video_id", "count_distinct")]
    )
    rows = zip(
        *(
            grouped.column(name).to_pylist()
            for name in ("domain", "label", "generator", "clip_id_count", "video_id_count_distinct")
        )
    )
    return [AuditCell(dataset, d, part, lab, g, n, v) for d, lab, g, n, v in sorted(rows)]


def _short_clips(dataset: str, table: pa.Table) -> list[ShortClipCount]:
    """Padded or looped clips and their repeated frames per (domain, short policy), sorted."""
    short = table.filter(pc.not_equal(table.column("short_policy"), "none"))
    if short.num_rows == 0:
        return []
    grouped = short.group_by(["domain", "short_policy"]).aggregate(
        [("clip_id", "count"), ("padded_frames", "sum")]
    )
    rows = zip(
        *(
            grouped.column(name).to_pylist()
            for name in ("domain", "short_policy", "clip_id_count", "padded_frames_sum")
        )
    )
    return [ShortClipCount(dataset, d, policy, n, frames) for d, policy, n, frames in sorted(rows)]


def _failures(dataset: str, cache: CacheDir) -> list[FailureCount]:
    """Failures by reason, each video once: extraction's failures.parquet already carries the
    probe failures of videos.parquet, which is only read before the first extraction."""
    counts: Counter = Counter()
    if cache.failures_parquet.exists():
        for failure in read_records(cache.failures_parquet, FailureRecord):
            counts[(f"failures.parquet:{failure.stage}", failure.reason)] += 1
    elif cache.videos_parquet.exists():
        for video in read_records(cache.videos_parquet, VideoRecord):
            if video.status != "ok":
                counts[(f"videos.parquet:{video.status}", video.reason or "")] += 1
    return [
        FailureCount(dataset, source, reason, n) for (source, reason), n in sorted(counts.items())
    ]


def _load_split(cache: CacheDir, split_name: str) -> tuple[SplitMeta, dict[str, pa.Table]]:
    meta = read_split_meta(cache.split_dir(split_name))
    return meta, {
        part: read_split_table(cache.split_file(split_name, part)) for part in SPLIT_PARTS
    }


def _check_current(dataset: str, cache: CacheDir, meta: SplitMeta) -> AuditCheck:
    problems = []
    spec_hash = cache.read_spec().spec_hash
    if meta.spec_hash != spec_hash:
        problems.append(f"split.json spec hash {meta.spec_hash} != spec.json {spec_hash}")
    if meta.clips_parquet_sha256 != sha256_file(cache.clips_parquet):
        problems.append("clips.parquet changed since the split was made (re-run split)")
    return _check(
        "split_current", dataset, problems, "made from the current clips.parquet and spec"
    )


def _disjoint(parts: dict[str, pa.Table], column: str) -> tuple[pa.Array, np.ndarray]:
    """`column` of train, val and test one after the other, and the part index of each row."""
    tables = [parts[part] for part in DISJOINT_PARTS]
    values = (
        pa.concat_arrays([t.column(column).combine_chunks() for t in tables])
        if tables
        else pa.array([])
    )
    return values, np.repeat(np.arange(len(tables)), [t.num_rows for t in tables])


def _manifest_rows(manifest: pa.Table, parts: dict[str, pa.Table]) -> dict[str, np.ndarray]:
    """For every entry of every part, its row in clips.parquet (-1: not there); one hash lookup."""
    ids = pa.concat_arrays(
        [parts[p].column("clip_id").combine_chunks().cast(pa.string()) for p in SPLIT_PARTS]
    )
    index = (
        pc.index_in(ids, value_set=manifest.column("clip_id"))
        .fill_null(-1)
        .to_numpy(zero_copy_only=False)
    )
    bounds = np.cumsum([parts[p].num_rows for p in SPLIT_PARTS])[:-1]
    return dict(zip(SPLIT_PARTS, np.split(index.astype(np.int64), bounds)))


def _check_partition(
    dataset: str, manifest: pa.Table, parts: dict, rows: dict, meta: SplitMeta
) -> AuditCheck:
    problems = []
    placed = np.concatenate([rows[part] for part in DISJOINT_PARTS])
    hits = np.bincount(placed[placed >= 0], minlength=manifest.num_rows)
    repeated = bool((hits > 1).any())
    if not repeated and (placed < 0).any():  # ids outside clips.parquet may repeat too
        outside = pa.concat_arrays(
            [
                parts[p].column("clip_id").combine_chunks().filter(pa.array(rows[p] < 0))
                for p in DISJOINT_PARTS
            ]
        )
        repeated = bool(duplicated_values(outside, shown=1))
    if repeated:  # rare: say where each repeat is, in file order
        placed: dict[str, str] = {}
        for part in DISJOINT_PARTS:
            for clip_id in parts[part].column("clip_id").to_pylist():
                if clip_id in placed:
                    problems.append(f"clip {clip_id} in {placed[clip_id]} and {part}")
                placed[clip_id] = part
    unplaced = int((hits == 0).sum())
    recorded = meta.part("unassigned").clips if meta.part("unassigned") else 0
    if unplaced != recorded:
        problems.append(
            f"{unplaced} clips of clips.parquet are in no part, split.json records {recorded} "
            f"unassigned"
        )
    return _check(
        "partition",
        dataset,
        problems,
        f"train/val/test disjoint; {unplaced} clips unassigned as recorded",
    )


def _places(
    values: pa.Array, place: np.ndarray, names: Sequence[str]
) -> tuple[int, dict[str, list[str]]]:
    """(distinct values, {value: sorted place names} for the values found in more than one
    place)."""
    table = pa.table({"value": values, "place": pa.array(place, pa.int64())})
    distinct = table.group_by("value").aggregate([("place", "count_distinct")])
    shared = distinct.filter(pc.greater(distinct.column("place_count_distinct"), 1)).column("value")
    found: dict[str, set] = {}
    if len(shared):
        rows = table.filter(pc.is_in(table.column("value"), value_set=shared))
        for value, where in zip(rows.column("value").to_pylist(), rows.column("place").to_pylist()):
            found.setdefault(value, set()).add(names[where])
    return distinct.num_rows, {value: sorted(where) for value, where in sorted(found.items())}


def _check_groups(dataset: str, parts: dict) -> AuditCheck:
    groups, part_of = _disjoint(parts, "group")
    total, shared = _places(groups, part_of, DISJOINT_PARTS)
    problems = [f"group {group!r} in {where}" for group, where in shared.items()]
    return _check("no_group_across_splits", dataset, problems, f"{total} groups, each in one part")


def _check_in_final_shards(
    dataset: str,
    cache: CacheDir,
    manifest: pa.Table,
    parts: dict,
    manifest_rows: dict,
    remote_sizes: Optional[dict[str, int]],
) -> AuditCheck:
    """Every entry names a clip of clips.parquet, equals its row, and lies inside a final shard
    (on disk, or in the remote home of a mirrored cache folder: `remote_sizes`)."""
    problems = []
    shards_seen: set[str] = set()
    total = 0
    size_of: dict[str, Optional[int]] = {}
    path_problem: dict[str, Optional[str]] = {}
    for part in SPLIT_PARTS:
        table = parts[part]
        total += table.num_rows
        if table.num_rows == 0:
            continue
        missing = manifest_rows[part] < 0
        rows = pa.array(np.where(missing, 0, manifest_rows[part]))
        differs = np.zeros(table.num_rows, dtype=bool)
        for name in SPLIT_FIELDS:
            same = pc.equal(table.column(name), manifest.column(name).take(rows))
            differs |= ~same.to_numpy(zero_copy_only=False)
        differs &= ~missing
        shard, shard_names = codes(table.column("shard"))
        for name in shard_names:
            if name not in path_problem:
                path_problem[name] = shard_path_problem(name)
                if path_problem[name] is None:
                    if remote_sizes is not None:  # a mirror: the shards are in its remote home
                        size_of[name] = remote_sizes.get(Path(name).name)
                    else:
                        path = cache.resolve_shard(name)
                        size_of[name] = path.stat().st_size if path.is_file() else None
        bad_path = np.array([path_problem[n] is not None for n in shard_names], dtype=bool)[shard]
        sizes = np.array(
            [-1 if path_problem[n] or size_of[n] is None else size_of[n] for n in shard_names],
            dtype=np.int64,
        )[shard]
        end = _np(table, "offset") + _np(table, "nbytes")
        checked = ~missing & ~bad_path
        shards_seen.update(shard_names[c] for c in np.unique(shard[checked]).tolist())
        beyond = checked & ((sizes < 0) | (end > sizes))
        for row in np.flatnonzero(missing | differs | (~missing & bad_path) | beyond).tolist():
            clip_id, shard_name = table.column("clip_id")[row].as_py(), shard_names[shard[row]]
            where = f"{part}.jsonl clip {clip_id}"
            if missing[row]:
                problems.append(f"{where} is not in clips.parquet")
                continue
            if differs[row]:
                problems.append(f"{where} differs from its clips.parquet row")
            if bad_path[row]:
                problems.append(f"{where} names {shard_name!r}: {path_problem[shard_name]}")
            elif size_of[shard_name] is None:
                problems.append(f"{where}: shard {shard_name} does not exist")
            elif beyond[row]:
                offset, nbytes = int(_np(table, "offset")[row]), int(_np(table, "nbytes")[row])
                problems.append(
                    f"{where}: bytes {offset}+{nbytes} lie beyond the end "
                    f"of {shard_name} ({size_of[shard_name]} bytes)"
                )
    return _check(
        "clips_in_final_shards",
        dataset,
        problems,
        f"{total} entries in {len(shards_seen)} final shards",
    )


def _check_support_in_train(dataset: str, parts: dict) -> AuditCheck:
    support = parts["support"].column("clip_id")
    outside = pc.invert(pc.is_in(support, value_set=parts["train"].column("clip_id")))
    problems = [
        f"support clip {c} is not in train" for c in pc.filter(support, outside).to_pylist()
    ]
    return _check(
        "support_in_train",
        dataset,
        problems,
        f"{parts['support'].num_rows} support clips, all in train",
    )


def _videos_in(table: pa.Table) -> int:
    return len(pc.unique(table.column("video_id"))) if table.num_rows else 0


def _check_sizes(dataset: str, meta: SplitMeta, parts: dict) -> AuditCheck:
    """Each part holds what split.json says, and what was asked, in the unit asked (videos or
    clips)."""
    problems = []
    for summary in meta.parts:
        if summary.part == "unassigned":
            continue
        in_file = parts.get(summary.part, SPLIT_SCHEMA.empty_table())
        have = in_file.num_rows if summary.unit == "clips" else _videos_in(in_file)
        if have != summary.obtained or in_file.num_rows != summary.clips:
            problems.append(
                f"{summary.part}.jsonl has {have} {summary.unit} ({in_file.num_rows} clips), "
                f"split.json says {summary.obtained} ({summary.clips} clips)"
            )
        if summary.obtained != summary.target:
            problems.append(
                f"{summary.part}: asked {summary.asked} = {summary.target} {summary.unit}, "
                f"got {summary.obtained}"
            )
    subset = meta.subset
    if subset is not None and subset.obtained != subset.asked:
        problems.append(f"subset: asked {subset.asked} {meta.unit}, got {subset.obtained}")
    obtained = ", ".join(f"{s.part} {s.obtained}" for s in meta.parts)
    taken = f"; subset {subset.obtained} of {subset.of} (seed {subset.seed})" if subset else ""
    return _check("sizes_as_asked", dataset, problems, f"{meta.unit}: {obtained}{taken}")


def _check_support_size(dataset: str, meta: SplitMeta, parts: dict) -> AuditCheck:
    want = meta.support_per_class
    support = parts["support"]
    have = Counter(zip(support.column("domain").to_pylist(), support.column("label").to_pylist()))
    domains = sorted(
        set(pc.unique(parts["train"].column("domain")).to_pylist()) | {d for d, _ in have}
    )
    problems = [
        f"domain {d!r}: {have[(d, lab)]} {LABEL_NAMES[lab]} support clips, asked {want}"
        for d in domains
        for lab in (LABEL_REAL, LABEL_FAKE)
        if have[(d, lab)] != want
    ]
    return _check(
        "support_per_class",
        dataset,
        problems,
        f"{want} real + {want} fake per domain, {len(domains)} domains",
    )


def _check_videos(placements: list[tuple[str, str, pa.Array]]) -> AuditCheck:
    """No video in two parts, across every audited dataset; `placements`: (dataset, part, video
    ids).
    A video in the same part of two datasets is not a leak."""
    if not placements:
        return _check("no_video_across_splits", None, [], "0 videos, each in one part")
    ids = pa.concat_arrays([v.cast(pa.string()) for _, _, v in placements])
    part_names = sorted({part for _, part, _ in placements})
    part_code = np.repeat(
        [part_names.index(part) for _, part, _ in placements], [len(v) for _, _, v in placements]
    )
    total, shared = _places(ids, part_code, part_names)
    problems = []
    for video in shared:
        places = sorted(
            {f"{d}/{p}" for d, p, v in placements if pc.any(pc.equal(v, video)).as_py()}
        )
        problems.append(f"video {video[:12]} in {places}")
    return _check("no_video_across_splits", None, problems, f"{total} videos, each in one part")


def _check_shared(
    shared: Sequence[SharedVideo], placements: list[tuple[str, str, pa.Array]]
) -> AuditCheck:
    problems = group_leaks(shared, placements)
    return _check(
        "no_shared_video_across_splits",
        None,
        problems,
        f"{len(shared)} videos shared across datasets, none in two parts",
    )


def audit(
    cache_dirs: Sequence[tuple[str, CacheDir]],
    split_name: str = "default",
    shared: Optional[Sequence[SharedVideo]] = None,
    remote_shard_sizes: Optional[Callable[[Path], Optional[dict[str, int]]]] = None,
) -> AuditReport:
    """Figures and checks for each (dataset, cache folder); video leakage is checked across all of
    them,
    and, when `shared` (videos found in two datasets) is given, the leakage of those.
    A mirrored cache folder (on object storage) needs `remote_shard_sizes` (folder -> {shard
    file name: bytes} of its remote home: `vfcache.cache_tools.remote.remote_shard_sizes`)."""
    cells, short, failures, checks = [], [], [], []
    placements: list[tuple[str, str, pa.Array]] = []
    for dataset, cache in cache_dirs:
        if not cache.clips_parquet.exists():
            raise StageError(
                f"{dataset}: {cache.clips_parquet} does not exist; extract the dataset before "
                f"auditing"
            )
        manifest = pq.read_table(
            cache.clips_parquet, columns=list(MANIFEST_COLUMNS)
        ).combine_chunks()
        cells += _cells(dataset, "total", manifest)
        short += _short_clips(dataset, manifest)
        failures += _failures(dataset, cache)
        try:
            meta, parts = _load_split(cache, split_name)
        except SplitFileError as err:
            checks.append(AuditCheck("split_present", False, str(err), dataset))
            continue
        checks.append(AuditCheck("split_present", True, str(cache.split_dir(split_name)), dataset))
        for part in SPLIT_PARTS:
            cells += _cells(dataset, part, parts[part])
        placements += [
            (dataset, part, parts[part].column("video_id").combine_chunks())
            for part in DISJOINT_PARTS
            if parts[part].num_rows
        ]
        rows = _manifest_rows(manifest, parts)
        remote_sizes = None
        if cache.remote_url() is not None:
            if remote_shard_sizes is None:
                raise StageError(
                    f"{cache.path} mirrors {cache.remote_url()}: its shards are there; "
                    "pass remote_shard_sizes (vfcache.cache_tools.remote.remote_shard_sizes)"
                )
            remote_sizes = remote_shard_sizes(cache.path)
        checks += [
            _check_current(dataset, cache, meta),
            _check_partition(dataset, manifest, parts, rows, meta),
            _check_groups(dataset, parts),
            _check_in_final_shards(dataset, cache, manifest, parts, rows, remote_sizes),
            _check_support_in_train(dataset, parts),
            _check_sizes(dataset, meta, parts),
            _check_support_size(dataset, meta, parts),
        ]
    checks.append(_check_videos(placements))
    if shared is not None:
        checks.append(_check_shared(shared, placements))
    return AuditReport(
        split_name,
        tuple(d for d, _ in cache_dirs),
        tuple(cells),
        tuple(short),
        tuple(failures),
        tuple(checks),
        None if shared is None else tuple(shared),
    )


def format_table(report: AuditReport) -> str:
    """Per dataset and domain: clips per part for all, real, fake and each (label, generator); then
    checks."""
    lines = []
    header = f"{'':32}" + "".join(f"{part:>9}" for part in TABLE_PARTS)
    for dataset in report.datasets:
        domains = sorted({c.domain for c in report.cells if c.dataset == dataset})
        for domain in domains:
            lines += [f"{dataset} / {domain}", header]

            def row(title: str, **keys) -> str:
                counts = [
                    report.count(dataset=dataset, part=p, domain=domain, **keys)
                    for p in TABLE_PARTS
                ]
                return f"  {title:30}" + "".join(f"{n:>9}" for n in counts)

            lines.append(row("all"))
            for label in (LABEL_REAL, LABEL_FAKE):
                lines.append(row(LABEL_NAMES[label], label=label))
                generators = sorted(
                    {
                        c.generator
                        for c in report.cells
                        if c.dataset == dataset and c.domain == domain and c.label == label
                    }
                )
                lines += [
                    row(f"  {generator}", label=label, generator=generator)
                    for generator in generators
                ]
            lines.append("")
    for entry in report.short_clips:
        lines.append(
            f"short videos: {entry.dataset}/{entry.domain}: {entry.clips} clips "
            f"{entry.short_policy} "
            f"({entry.padded_frames} repeated frames)"
        )
    for entry in report.failures:
        lines.append(
            f"not extracted: {entry.dataset} {entry.source}: {entry.videos} videos: {entry.reason}"
        )
    for pair in report.shared or ():
        lines.append(f"shared video: {pair.describe()}")
    if report.short_clips or report.failures or report.shared:
        lines.append("")
    for check in report.checks:
        where = f"[{check.dataset}] " if check.dataset else ""
        lines.append(f"{'PASS' if check.passed else 'FAIL'} {where}{check.name}: {check.detail}")
    lines.append(
        "audit " + ("passed" if report.ok else f"FAILED ({len(report.failed_checks)} checks)")
    )
    return "\n".join(lines)
