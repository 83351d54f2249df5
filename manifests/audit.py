"""Audit of one or more cache folders and their split: the figures a model card reports, and leakage checks.

Figures: clips per dataset x domain x part (total/train/val/test/support) x label x
generator, padded or looped clips, and failed or skipped videos by reason. Checks (each
`AuditCheck(name, passed, detail, dataset)`): the split files exist and were made from the
current clips.parquet; train/val/test are disjoint and cover clips.parquet; no group and no
video (across all audited datasets) sits in two parts; every split entry names a clip of
clips.parquet inside a final shard; the support bank lies in train; every part got the
number of clips asked; the support bank has N real + N fake clips per domain.
`format_table` prints the figures in the shape of the R(2+1)D card.
"""
from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Optional, Sequence

from cache_tools.checksums import sha256_file
from cache_tools.verify import shard_path_problem
from manifests.layout import SPLIT_PARTS, CacheDir
from manifests.parquet_io import read_records
from manifests.records import (
    LABEL_FAKE,
    LABEL_NAMES,
    LABEL_REAL,
    ClipRecord,
    FailureRecord,
    VideoRecord,
    split_entry_from_clip,
)
from manifests.split_files import (
    SplitFileError,
    SplitMeta,
    read_split,
    read_split_meta,
)
from vfcache.errors import StageError

TABLE_PARTS = ("total", "train", "val", "test", "support")
DISJOINT_PARTS = ("train", "val", "test")
SHOWN_OFFENDERS = 5


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

    @property
    def ok(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed_checks(self) -> list[AuditCheck]:
        return [check for check in self.checks if not check.passed]

    def count(self, *, dataset: str, part: str, domain: str | None = None, label: int | None = None,
              generator: str | None = None) -> int:
        """Clips in the cells matching the given keys."""
        return sum(
            cell.clips for cell in self.cells
            if cell.dataset == dataset and cell.part == part and domain in (None, cell.domain)
            and label in (None, cell.label) and generator in (None, cell.generator)
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
        }


def _offenders(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN_OFFENDERS])
    more = f" and {len(items) - SHOWN_OFFENDERS} more" if len(items) > SHOWN_OFFENDERS else ""
    return f"{len(items)}: {shown}{more}"


def _check(name: str, dataset: Optional[str], problems: list[str], ok_detail: str) -> AuditCheck:
    if problems:
        return AuditCheck(name, False, _offenders(problems), dataset)
    return AuditCheck(name, True, ok_detail, dataset)


def _cells(dataset: str, part: str, clips: Sequence) -> list[AuditCell]:
    clips_by_key: Counter = Counter()
    videos_by_key: dict[tuple, set] = defaultdict(set)
    for clip in clips:
        key = (clip.domain, clip.label, clip.generator)
        clips_by_key[key] += 1
        videos_by_key[key].add(clip.video_id)
    return [AuditCell(dataset, d, part, lab, g, n, len(videos_by_key[(d, lab, g)]))
            for (d, lab, g), n in sorted(clips_by_key.items())]


def _short_clips(dataset: str, clips: Sequence[ClipRecord]) -> list[ShortClipCount]:
    counts: Counter = Counter()
    padded: Counter = Counter()
    for clip in clips:
        if clip.short_policy != "none":
            counts[(clip.domain, clip.short_policy)] += 1
            padded[(clip.domain, clip.short_policy)] += clip.padded_frames
    return [ShortClipCount(dataset, d, policy, n, padded[(d, policy)]) for (d, policy), n in sorted(counts.items())]


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
    return [FailureCount(dataset, source, reason, n) for (source, reason), n in sorted(counts.items())]


def _load_split(cache: CacheDir, split_name: str) -> tuple[SplitMeta, dict[str, list]]:
    meta = read_split_meta(cache.split_dir(split_name))
    return meta, {part: read_split(cache.split_file(split_name, part)) for part in SPLIT_PARTS}


def _check_current(dataset: str, cache: CacheDir, meta: SplitMeta) -> AuditCheck:
    problems = []
    spec_hash = cache.read_spec().spec_hash
    if meta.spec_hash != spec_hash:
        problems.append(f"split.json spec hash {meta.spec_hash} != spec.json {spec_hash}")
    if meta.clips_parquet_sha256 != sha256_file(cache.clips_parquet):
        problems.append("clips.parquet changed since the split was made (re-run split)")
    return _check("split_current", dataset, problems, "made from the current clips.parquet and spec")


def _check_partition(dataset: str, manifest: dict, parts: dict, meta: SplitMeta) -> AuditCheck:
    problems = []
    placed: dict[str, str] = {}
    for part in DISJOINT_PARTS:
        for entry in parts[part]:
            if entry.clip_id in placed:
                problems.append(f"clip {entry.clip_id} in {placed[entry.clip_id]} and {part}")
            placed[entry.clip_id] = part
    unplaced = len(set(manifest) - set(placed))
    recorded = meta.part("unassigned").clips if meta.part("unassigned") else 0
    if unplaced != recorded:
        problems.append(f"{unplaced} clips of clips.parquet are in no part, split.json records {recorded} unassigned")
    return _check("partition", dataset, problems, f"train/val/test disjoint; {unplaced} clips unassigned as recorded")


def _check_groups(dataset: str, parts: dict) -> AuditCheck:
    where: dict[str, set] = defaultdict(set)
    for part in DISJOINT_PARTS:
        for entry in parts[part]:
            where[entry.group].add(part)
    problems = [f"group {g!r} in {sorted(p)}" for g, p in sorted(where.items()) if len(p) > 1]
    return _check("no_group_across_splits", dataset, problems, f"{len(where)} groups, each in one part")


def _check_in_final_shards(dataset: str, cache: CacheDir, manifest: dict, parts: dict) -> AuditCheck:
    problems = []
    shard_sizes: dict[str, Optional[int]] = {}
    for part in SPLIT_PARTS:
        for entry in parts[part]:
            where = f"{part}.jsonl clip {entry.clip_id}"
            clip = manifest.get(entry.clip_id)
            if clip is None:
                problems.append(f"{where} is not in clips.parquet")
                continue
            if split_entry_from_clip(clip) != entry:
                problems.append(f"{where} differs from its clips.parquet row")
            bad_path = shard_path_problem(entry.shard)
            if bad_path:
                problems.append(f"{where} names {entry.shard!r}: {bad_path}")
                continue
            if entry.shard not in shard_sizes:
                path = cache.resolve_shard(entry.shard)
                shard_sizes[entry.shard] = path.stat().st_size if path.is_file() else None
            size = shard_sizes[entry.shard]
            if size is None:
                problems.append(f"{where}: shard {entry.shard} does not exist")
            elif entry.offset + entry.nbytes > size:
                problems.append(f"{where}: bytes {entry.offset}+{entry.nbytes} lie beyond the end "
                                f"of {entry.shard} ({size} bytes)")
    total = sum(len(parts[p]) for p in SPLIT_PARTS)
    return _check("clips_in_final_shards", dataset, problems, f"{total} entries in {len(shard_sizes)} final shards")


def _check_support_in_train(dataset: str, parts: dict) -> AuditCheck:
    train = {entry.clip_id for entry in parts["train"]}
    problems = [f"support clip {e.clip_id} is not in train" for e in parts["support"] if e.clip_id not in train]
    return _check("support_in_train", dataset, problems, f"{len(parts['support'])} support clips, all in train")


def _check_sizes(dataset: str, meta: SplitMeta, parts: dict) -> AuditCheck:
    """Each part holds what split.json says, and what was asked, in the unit asked (videos or clips)."""
    problems = []
    for summary in meta.parts:
        if summary.part == "unassigned":
            continue
        in_file = parts.get(summary.part, [])
        have = len(in_file) if summary.unit == "clips" else len({e.video_id for e in in_file})
        if have != summary.obtained or len(in_file) != summary.clips:
            problems.append(f"{summary.part}.jsonl has {have} {summary.unit} ({len(in_file)} clips), "
                            f"split.json says {summary.obtained} ({summary.clips} clips)")
        if summary.obtained != summary.target:
            problems.append(f"{summary.part}: asked {summary.asked} = {summary.target} {summary.unit}, "
                            f"got {summary.obtained}")
    subset = meta.subset
    if subset is not None and subset.obtained != subset.asked:
        problems.append(f"subset: asked {subset.asked} {meta.unit}, got {subset.obtained}")
    obtained = ", ".join(f"{s.part} {s.obtained}" for s in meta.parts)
    taken = f"; subset {subset.obtained} of {subset.of} (seed {subset.seed})" if subset else ""
    return _check("sizes_as_asked", dataset, problems, f"{meta.unit}: {obtained}{taken}")


def _check_support_size(dataset: str, meta: SplitMeta, parts: dict) -> AuditCheck:
    want = meta.support_per_class
    have = Counter((e.domain, e.label) for e in parts["support"])
    domains = sorted({e.domain for e in parts["train"]} | {d for d, _ in have})
    problems = [f"domain {d!r}: {have[(d, lab)]} {LABEL_NAMES[lab]} support clips, asked {want}"
                for d in domains for lab in (LABEL_REAL, LABEL_FAKE) if have[(d, lab)] != want]
    return _check("support_per_class", dataset, problems,
                  f"{want} real + {want} fake per domain, {len(domains)} domains")


def _check_videos(video_parts: dict[str, set]) -> AuditCheck:
    problems = [f"video {vid[:12]} in {sorted(f'{d}/{p}' for d, p in where)}"
                for vid, where in sorted(video_parts.items()) if len({p for _, p in where}) > 1]
    return _check("no_video_across_splits", None, problems, f"{len(video_parts)} videos, each in one part")


def audit(cache_dirs: Sequence[tuple[str, CacheDir]], split_name: str = "default") -> AuditReport:
    """Figures and checks for each (dataset, cache folder); video leakage is checked across all of them."""
    cells, short, failures, checks = [], [], [], []
    video_parts: dict[str, set] = defaultdict(set)
    for dataset, cache in cache_dirs:
        if not cache.clips_parquet.exists():
            raise StageError(f"{dataset}: {cache.clips_parquet} does not exist; extract the dataset before auditing")
        clips = read_records(cache.clips_parquet, ClipRecord)
        manifest = {clip.clip_id: clip for clip in clips}
        cells += _cells(dataset, "total", clips)
        short += _short_clips(dataset, clips)
        failures += _failures(dataset, cache)
        try:
            meta, parts = _load_split(cache, split_name)
        except SplitFileError as err:
            checks.append(AuditCheck("split_present", False, str(err), dataset))
            continue
        checks.append(AuditCheck("split_present", True, str(cache.split_dir(split_name)), dataset))
        for part in SPLIT_PARTS:
            cells += _cells(dataset, part, parts[part])
        for part in DISJOINT_PARTS:
            for entry in parts[part]:
                video_parts[entry.video_id].add((dataset, part))
        checks += [
            _check_current(dataset, cache, meta),
            _check_partition(dataset, manifest, parts, meta),
            _check_groups(dataset, parts),
            _check_in_final_shards(dataset, cache, manifest, parts),
            _check_support_in_train(dataset, parts),
            _check_sizes(dataset, meta, parts),
            _check_support_size(dataset, meta, parts),
        ]
    checks.append(_check_videos(video_parts))
    return AuditReport(split_name, tuple(d for d, _ in cache_dirs), tuple(cells), tuple(short),
                       tuple(failures), tuple(checks))


def format_table(report: AuditReport) -> str:
    """Per dataset and domain: clips per part for all, real, fake and each (label, generator); then checks."""
    lines = []
    header = f"{'':32}" + "".join(f"{part:>9}" for part in TABLE_PARTS)
    for dataset in report.datasets:
        domains = sorted({c.domain for c in report.cells if c.dataset == dataset})
        for domain in domains:
            lines += [f"{dataset} / {domain}", header]

            def row(title: str, **keys) -> str:
                counts = [report.count(dataset=dataset, part=p, domain=domain, **keys) for p in TABLE_PARTS]
                return f"  {title:30}" + "".join(f"{n:>9}" for n in counts)

            lines.append(row("all"))
            for label in (LABEL_REAL, LABEL_FAKE):
                lines.append(row(LABEL_NAMES[label], label=label))
                generators = sorted({c.generator for c in report.cells
                                     if c.dataset == dataset and c.domain == domain and c.label == label})
                lines += [row(f"  {generator}", label=label, generator=generator) for generator in generators]
            lines.append("")
    for entry in report.short_clips:
        lines.append(f"short videos: {entry.dataset}/{entry.domain}: {entry.clips} clips {entry.short_policy} "
                     f"({entry.padded_frames} repeated frames)")
    for entry in report.failures:
        lines.append(f"not extracted: {entry.dataset} {entry.source}: {entry.videos} videos: {entry.reason}")
    if report.short_clips or report.failures:
        lines.append("")
    for check in report.checks:
        where = f"[{check.dataset}] " if check.dataset else ""
        lines.append(f"{'PASS' if check.passed else 'FAIL'} {where}{check.name}: {check.detail}")
    lines.append("audit " + ("passed" if report.ok else f"FAILED ({len(report.failed_checks)} checks)"))
    return "\n".join(lines)
