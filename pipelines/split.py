"""The split stage: clips.parquet -> splits/<name>/{train,val,test,support}.jsonl + split.json.

Sizes count records, as the model cards report them (AEGIS 436 -> 50/50/336): videos by
default, so a spec with several clips per video keeps every clip of a video in the part its
video went to and sizes are always reachable; `unit="clips"` counts clips instead. A size is a
count ("50"), a fraction of all records ("0.25") or "rest"; without a "rest" part, records
beyond the asked sizes stay unassigned. With `subset=N`, a seeded, stratified, group-aware
subset of N records is taken first (`take_subset`: the card's DVF 1004 of ~6.7k videos) and
split; split.json records it.

Assignment (`assign_splits`, pure, deterministic for a seed, independent of input order):
1. part targets: counts as given, fractions of the total by largest-remainder rounding;
2. stratum quotas: every part gets every stratum (label x generator by default) in
   proportion, rounded so that part totals and stratum totals are both exact and every
   quota is within one clip of its exact share (`_allocation.round_matrix`);
3. groups (a group never crosses parts; all clips of a video share its group) are shuffled
   once with `numpy.random.default_rng(seed)`, then each explicit part is carved out of the
   pool in one pass: a group is taken when it fits the quotas of its strata, while a
   subset-sum guard (`SuffixReach`) keeps the part's exact total reachable, forcing or
   refusing a group when needed. The last part ("rest", or the unassigned clips) keeps what
   is left.
With one clip per group every quota is met exactly. With large groups the totals stay exact
whenever the pool left for that part can make them (several shuffles are tried before
giving up); otherwise the part gets the largest total below its target that the groups can
make, the shortfall goes to the rest, `split.json` records target and obtained, and the
audit flags it. Large groups also loosen the stratum shares: a group bigger than what its
stratum still needs in a part is left for a later part.

Sizes `official` (every part) take the dataset's own split instead (`official_parts`): each part
holds the clips whose `source_split` names it (FF++ pairs, DVF train.json/val.json), the rest
stay unassigned, and a group found in two official parts is an error.

The support bank (`pick_support`) is N real + N fake clips per domain drawn from train and
kept in train: the card's counts (50 + 50 + 336 = 436) leave no room for a fourth disjoint
part, and prototypes are built from labelled training data.
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from cache_tools.checksums import sha256_file
from cache_tools.writer_lock import writer_lock
from manifests.layout import SPLIT_PARTS, CacheDir
from manifests.parquet_io import read_records
from manifests.records import LABEL_FAKE, LABEL_NAMES, LABEL_REAL, ClipRecord, split_entry_from_clip
from manifests.split_files import (
    SIZE_UNITS,
    PartSummary,
    SplitMeta,
    SubsetInfo,
    write_split_file,
    write_split_meta,
)
from pipelines._allocation import SuffixReach, largest_remainder, round_matrix
from vfcache.config import OFFICIAL_SIZE, parse_split_sizes
from vfcache.errors import StageError, VfcacheError

log = logging.getLogger(__name__)

STRATIFY_KEYS = ("label", "generator", "domain")
UNASSIGNED = "unassigned"
SHUFFLE_ATTEMPTS = 16


class SplitSizeError(VfcacheError, ValueError):
    """The asked sizes cannot be met by the clips available."""


def normalize_sizes(sizes: Any) -> tuple[tuple[str, str], ...]:
    """`"train=50,val=50,test=rest"`, a mapping, or (part, size) pairs -> validated pairs."""
    if isinstance(sizes, (str, dict)):
        return parse_split_sizes(sizes, "split sizes", "sizes")
    text = ",".join(f"{part}={size}" for part, size in sizes)
    return parse_split_sizes(text, "split sizes", "sizes")


def _size_kind(size: str) -> tuple[str, Fraction | int | None]:
    if size == OFFICIAL_SIZE:
        raise ValueError("'official' sizes are not counts: the parts come from the clips "
                         "(see official_parts)")
    if size == "rest":
        return "rest", None
    if size.isdigit():
        return "count", int(size)
    return "fraction", Fraction(size)


def part_targets(sizes: Sequence[tuple[str, str]], total_clips: int) -> dict[str, int]:
    """Clip count per part (fractions of `total_clips` by largest remainder); may add UNASSIGNED."""
    kinds = {part: _size_kind(size) for part, size in sizes}
    counted = sum(value for kind, value in kinds.values() if kind == "count")
    fraction_parts = [part for part, (kind, _) in kinds.items() if kind == "fraction"]
    shares = [kinds[part][1] * total_clips for part in fraction_parts]
    slack = total_clips - counted - sum(shares)
    if slack < 0:
        asked = ",".join(f"{part}={size}" for part, size in sizes)
        raise SplitSizeError(
            f"split sizes {asked} ask for {float(counted + sum(shares)):g} records but only "
            f"{total_clips} are available; lower the sizes or use 'rest'"
        )
    rest_part = next((part for part, (kind, _) in kinds.items() if kind == "rest"), UNASSIGNED)
    rounded = largest_remainder([*shares, slack], total_clips - counted)
    targets = {}
    for part, (kind, value) in kinds.items():
        if kind == "count":
            targets[part] = value
        elif kind == "fraction":
            targets[part] = rounded[fraction_parts.index(part)]
    targets[rest_part] = rounded[-1]
    return targets


@dataclass(frozen=True)
class SplitUnit:
    """What split sizes count: one video (unit "videos", all its clips) or one clip (unit "clips")."""

    key: str  # video_id or clip_id: the sort key that makes assignment independent of input order
    video_id: str
    label: int
    generator: str
    domain: str
    group: str
    clips: tuple  # the ClipRecords (or anything clip-like) this unit stands for


def split_units(clips: Sequence, unit: str) -> list[SplitUnit]:
    """The records that sizes count, sorted by key; a video's clips share its label, domain, group."""
    if unit not in SIZE_UNITS:
        raise ValueError(f"split unit {unit!r} is not one of {SIZE_UNITS}")
    if unit == "clips":
        return sorted((SplitUnit(c.clip_id, c.video_id, c.label, c.generator, c.domain, c.group, (c,))
                       for c in clips), key=lambda u: u.key)
    by_video: dict[str, list] = defaultdict(list)
    for clip in clips:
        by_video[clip.video_id].append(clip)
    units = []
    for video_id in sorted(by_video):
        members = sorted(by_video[video_id], key=lambda c: c.clip_id)
        first = members[0]
        units.append(SplitUnit(video_id, video_id, first.label, first.generator, first.domain,
                               first.group, tuple(members)))
    return units


def _stratum(unit, stratify: Sequence[str]) -> tuple:
    return tuple(getattr(unit, key) for key in stratify)


def assign_splits(
    clips: Sequence[ClipRecord],
    sizes: Any,
    *,
    seed: int,
    stratify: Sequence[str] = ("label", "generator"),
    unit: str = "videos",
) -> dict[str, list[ClipRecord]]:
    """Group-disjoint, stratified parts of `clips` with sizes counted in `unit`, each sorted by
    clip_id; unassigned clips are left out."""
    sizes = normalize_sizes(sizes)
    units = split_units(clips, unit)
    duplicated = [key for key, n in Counter(u.key for u in units).items() if n > 1]
    if duplicated:
        raise ValueError(f"clip ids appear more than once: {sorted(duplicated)[:5]}")
    parts = assign_units(units, sizes, seed=seed, stratify=stratify)
    return {part: _clips_of(chosen) for part, chosen in parts.items()}


def _clips_of(units: Sequence[SplitUnit]) -> list:
    return sorted((clip for u in units for clip in u.clips), key=lambda clip: clip.clip_id)


def assign_units(
    units: Sequence[SplitUnit],
    sizes: Sequence[tuple[str, str]],
    *,
    seed: int,
    stratify: Sequence[str],
) -> dict[str, list[SplitUnit]]:
    """The assignment itself, on validated (part, size) pairs; parts' units sorted by key.

    Part names are free here (the subset uses "subset" / "dropped"); the rest part, or
    UNASSIGNED when no part is "rest", takes what the others leave, and UNASSIGNED is dropped.
    """
    bad_keys = [key for key in stratify if key not in STRATIFY_KEYS]
    if bad_keys:
        raise ValueError(f"stratify keys {bad_keys} are not among {STRATIFY_KEYS}")
    units = sorted(units, key=lambda u: u.key)
    targets = part_targets(sizes, len(units))
    rest_part = next((part for part, size in sizes if size == "rest"), UNASSIGNED)
    parts = [part for part, size in sizes if size != "rest"] + [rest_part]
    strata = sorted({_stratum(u, stratify) for u in units})
    stratum_sizes = Counter(_stratum(u, stratify) for u in units)
    quotas = round_matrix([targets[p] for p in parts], [stratum_sizes[s] for s in strata])
    groups: dict[str, list[SplitUnit]] = defaultdict(list)
    for u in units:
        groups[u.group].append(u)
    names = sorted(groups)
    rng = np.random.default_rng(seed)
    first: dict[str, list[str]] = {}
    for _ in range(SHUFFLE_ATTEMPTS):
        order = [names[i] for i in rng.permutation(len(names))]
        assignment, exact = _carve_all(order, groups, parts, targets, quotas, strata, stratify)
        if exact:
            break
        first = first or assignment
    else:
        # no shuffle met every size; keep the first one, whose shortfalls split.json records
        assignment = first
    result = {part: sorted((u for g in assignment[part] for u in groups[g]), key=lambda u: u.key)
              for part in parts}
    result.pop(UNASSIGNED, None)
    return result


def take_subset(units: Sequence[SplitUnit], count: int, *, seed: int,
                stratify: Sequence[str]) -> list[SplitUnit]:
    """A seeded subset of `count` units, stratified like a split part, whole groups only.

    It is the first part of a two-part split ("subset" = count, the rest dropped), so it has
    the same guarantees: exact when the groups allow it, every stratum in proportion.
    """
    if count > len(units):
        raise SplitSizeError(f"subset of {count} asked, but only {len(units)} are available")
    chosen = assign_units(units, (("subset", str(count)), ("dropped", "rest")), seed=seed,
                          stratify=stratify)
    return chosen["subset"]


def _carve_all(order, groups, parts, targets, quotas, strata, stratify) -> tuple[dict[str, list[str]], bool]:
    pool = order
    assignment, exact = {}, True
    for row, part in enumerate(parts[:-1]):
        needs = dict(zip(strata, quotas[row]))
        chosen, pool = _carve(pool, groups, targets[part], needs, stratify)
        assignment[part] = chosen
        exact &= sum(len(groups[g]) for g in chosen) == targets[part]
    assignment[parts[-1]] = pool
    return assignment, exact


def _carve(pool: list[str], groups: dict, target: int, needs: dict, stratify) -> tuple[list[str], list[str]]:
    """One pass over `pool`: take groups that fit the stratum needs, steered to an exact total."""
    sizes = [len(groups[name]) for name in pool]
    reach = SuffixReach(sizes, target)
    gap = reach.best_at_most(target)
    chosen, left = [], []
    for i, name in enumerate(pool):
        size = sizes[i]
        can_take = size <= gap and reach.reachable(i + 1, gap - size)
        can_skip = reach.reachable(i + 1, gap)
        composition = Counter(_stratum(clip, stratify) for clip in groups[name])
        wanted = all(needs.get(stratum, 0) >= n for stratum, n in composition.items())
        if can_take and (wanted or not can_skip):
            chosen.append(name)
            gap -= size
            for stratum, n in composition.items():
                needs[stratum] = needs.get(stratum, 0) - n
        else:
            left.append(name)
    return chosen, left


def is_official(sizes: Sequence[tuple[str, str]]) -> bool:
    return bool(sizes) and all(size == OFFICIAL_SIZE for _, size in sizes)


def official_parts(clips: Sequence[ClipRecord],
                   parts: Sequence[str]) -> dict[str, list[ClipRecord]]:
    """The dataset's own split: each part gets the clips whose `source_split` names it, sorted by
    clip_id.

    Clips without an official split stay unassigned. Raises SplitSizeError when no clip has
    one, or when a group has clips in two official parts (the official split would leak).
    """
    result: dict[str, list[ClipRecord]] = {part: [] for part in parts}
    parts_of_group: dict[str, set] = defaultdict(set)
    for clip in sorted(clips, key=lambda c: c.clip_id):
        if clip.source_split in result:
            result[clip.source_split].append(clip)
            parts_of_group[clip.group].add(clip.source_split)
    if not any(result.values()):
        found = sorted({str(c.source_split) for c in clips})
        raise SplitSizeError(
            f"split sizes 'official' need clips whose source_split is one of {list(parts)}; "
            f"clips.parquet has source_split {found[:5]}: this dataset has no official split here")
    leaking = sorted(group for group, where in parts_of_group.items() if len(where) > 1)
    if leaking:
        raise SplitSizeError(
            f"{len(leaking)} groups have clips in two official parts, e.g. {leaking[:3]}; "
            "the dataset's official split does not keep its groups apart")
    return result


def pick_support(train: Sequence, n_per_class: int, *, seed: int) -> list:
    """N real + N fake clips per domain of `train`, one clip per video first, round-robin over generators.

    Works on anything with clip_id, video_id, domain, label and generator (ClipRecord, SplitEntry).
    The picked clips stay in train (see the module docstring). Sorted by (domain, label, generator, clip_id).
    """
    if n_per_class < 0:
        raise ValueError(f"support size {n_per_class} must be >= 0")
    if n_per_class == 0:
        return []
    rng = np.random.default_rng(seed)
    by_cell: dict[tuple[str, int], list] = defaultdict(list)
    for clip in sorted(train, key=lambda c: c.clip_id):
        by_cell[(clip.domain, clip.label)].append(clip)
    picked = []
    for domain in sorted({domain for domain, _ in by_cell}):
        for label in (LABEL_REAL, LABEL_FAKE):
            candidates = by_cell.get((domain, label), [])
            if len(candidates) < n_per_class:
                raise SplitSizeError(
                    f"support bank asks {n_per_class} {LABEL_NAMES[label]} clips of domain {domain!r} "
                    f"but train has {len(candidates)}; lower the support size or enlarge train"
                )
            picked.extend(_spread_pick(candidates, n_per_class, rng))
    return sorted(picked, key=lambda c: (c.domain, c.label, c.generator, c.clip_id))


def _spread_pick(candidates: list, count: int, rng: np.random.Generator) -> list:
    queues = []
    generators = sorted({clip.generator for clip in candidates})
    for generator in [generators[i] for i in rng.permutation(len(generators))]:
        by_video: dict[str, list] = defaultdict(list)
        for clip in candidates:
            if clip.generator == generator:
                by_video[clip.video_id].append(clip)
        videos = sorted(by_video)
        shuffled = []
        for i in rng.permutation(len(videos)):
            clips = by_video[videos[i]]
            shuffled.append([clips[j] for j in rng.permutation(len(clips))])
        depth = max(len(clips) for clips in shuffled)
        # the first clip of every video, then the second of every video, ...
        queues.append(deque(clips[d] for d in range(depth) for clips in shuffled if d < len(clips)))
    picked = []
    while len(picked) < count:
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.popleft())
    return picked


@dataclass(frozen=True)
class SplitReport:
    """What `write_split` wrote: the folder, the files and the metadata recorded in split.json."""

    name: str
    split_dir: Path
    files: tuple[Path, ...]
    meta: SplitMeta

    @property
    def exact(self) -> bool:
        return all(p.obtained == p.target for p in self.meta.parts if p.part != UNASSIGNED)

    def to_json(self) -> dict:
        return {"name": self.name, "split_dir": str(self.split_dir), "files": [str(f) for f in self.files],
                "exact": self.exact, "meta": self.meta.to_json()}


def _counts(clips: Sequence) -> dict[str, dict[str, int]]:
    return {
        "label": dict(sorted(Counter(LABEL_NAMES.get(c.label, str(c.label)) for c in clips).items())),
        "generator": dict(sorted(Counter(c.generator for c in clips).items())),
        "domain": dict(sorted(Counter(c.domain for c in clips).items())),
        "domain_label": dict(sorted(Counter(f"{c.domain}/{LABEL_NAMES.get(c.label, c.label)}"
                                            for c in clips).items())),
    }


def count_in_unit(clips: Sequence, unit: str) -> int:
    """How many records `clips` make in `unit`: clips, or distinct videos."""
    return len(clips) if unit == "clips" else len({c.video_id for c in clips})


def _summary(part: str, asked: str, unit: str, target: int, clips: Sequence) -> PartSummary:
    return PartSummary(part=part, asked=asked, unit=unit, target=target,
                       obtained=count_in_unit(clips, unit), clips=len(clips),
                       groups=len({c.group for c in clips}), videos=len({c.video_id for c in clips}))


def write_split(
    cache_dir: CacheDir,
    *,
    sizes: Any,
    seed: int,
    support: int = 0,
    stratify: Sequence[str] = ("label", "generator"),
    name: str = "default",
    unit: str = "videos",
    subset: Optional[int] = None,
    wait: bool = True,
) -> SplitReport:
    """Assign the clips of `cache_dir` to parts and write the split files; same seed -> same bytes.

    Sizes count `unit` (videos, as the model cards do, or clips). With `subset`, a seeded,
    stratified, group-aware subset of that many records is taken first and the split is made
    of it (the card's DVF 1004 of the full release); the clips left out are unassigned.
    """
    if not cache_dir.clips_parquet.exists():
        raise StageError(f"{cache_dir.clips_parquet} does not exist; run extraction first")
    if unit not in SIZE_UNITS:
        raise StageError(f"split unit {unit!r} is not one of {list(SIZE_UNITS)}")
    what = f"split {name} of {cache_dir.path.parent.name}/{cache_dir.path.name}"
    with writer_lock(cache_dir.path, what, wait=wait):
        return _split_locked(cache_dir, sizes=normalize_sizes(sizes), seed=seed, support=support,
                             stratify=stratify, name=name, unit=unit, subset=subset)


def _split_locked(cache_dir: CacheDir, *, sizes: Sequence[tuple[str, str]], seed: int, support: int,
                  stratify: Sequence[str], name: str, unit: str, subset: Optional[int]) -> SplitReport:
    spec_hash = cache_dir.read_spec().spec_hash
    manifest_sha = sha256_file(cache_dir.clips_parquet)
    clips = read_records(cache_dir.clips_parquet, ClipRecord)
    units = split_units(clips, unit)
    subset_info = None
    if subset is not None:
        available = len(units)
        units = take_subset(units, subset, seed=seed, stratify=stratify)
        subset_info = SubsetInfo(asked=subset, obtained=len(units), of=available, seed=seed,
                                 stratify=tuple(stratify))
        if len(units) != subset:
            log.warning("split %s: subset asked %d %s, obtained %d (groups too large)",
                        name, subset, unit, len(units))
    if is_official(sizes):
        parts = official_parts(_clips_of(units), [part for part, _ in sizes])
        targets = {part: count_in_unit(parts[part], unit) for part, _ in sizes}
    else:
        targets = part_targets(sizes, len(units))
        parts = {part: _clips_of(chosen)
                 for part, chosen in assign_units(units, sizes, seed=seed, stratify=stratify).items()}
    if support and "train" not in parts:
        raise SplitSizeError("a support bank is drawn from train, but the split sizes name no train part")
    bank = pick_support(parts.get("train", []), support, seed=seed)
    parts["support"] = bank
    split_dir = cache_dir.split_dir(name)
    files = []
    for part in SPLIT_PARTS:
        entries = [split_entry_from_clip(clip) for clip in parts.get(part, [])]
        files.append(write_split_file(cache_dir.split_file(name, part), entries))
    asked = dict(sizes)
    summaries = [_summary(part, asked[part], unit, targets[part], parts[part]) for part, _ in sizes]
    domains = sorted({c.domain for c in parts.get("train", [])}) if support else []
    summaries.append(_summary("support", f"{support} clips per class per domain", "clips",
                              2 * support * len(domains), bank))
    placed = {c.clip_id for part, _ in sizes for c in parts[part]}
    left_out = [c for c in clips if c.clip_id not in placed]
    if left_out:
        summaries.append(_summary(UNASSIGNED, "", unit, count_in_unit(left_out, unit), left_out))
    meta = SplitMeta(
        name=name, seed=seed, sizes=sizes, stratify=tuple(stratify), support_per_class=support,
        spec_hash=spec_hash, clips_parquet_sha256=manifest_sha, clips_total=len(clips),
        parts=tuple(summaries), counts={part: _counts(parts.get(part, [])) for part in SPLIT_PARTS},
        unit=unit, subset=subset_info,
    )
    files.append(write_split_meta(split_dir, meta))
    report = SplitReport(name=name, split_dir=split_dir, files=tuple(files), meta=meta)
    for summary in summaries:
        if summary.part != UNASSIGNED and summary.obtained != summary.target:
            log.warning("split %s: part %s asked %s = %d %s, obtained %d (groups too large)",
                        name, summary.part, summary.asked, summary.target, summary.unit,
                        summary.obtained)
    return report
