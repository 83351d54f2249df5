"""The split stage: clips.parquet -> splits/<name>/{train,val,test,support}.jsonl + split.json.

Sizes count records, as the model cards report them (AEGIS 436 -> 50/50/336): videos by
default, so a spec with several clips per video keeps every clip of a video in the part its
video went to and sizes are always reachable; `unit="clips"` counts clips instead. A size is a
count ("50"), a fraction of all records ("0.25") or "rest"; without a "rest" part, records
beyond the asked sizes stay unassigned. With `subset=N`, a seeded, stratified, group-aware
subset of N records is taken first (`subset_sizes`: the card's DVF 1004 of ~6.7k videos) and
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
import os
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from vfcache.cache_tools.writer_lock import writer_lock
from vfcache.manifests.columns import JSON_NEEDS_ESCAPE, SPLIT_FIELDS, codes, write_split_table
from vfcache.manifests.records import LABEL_FAKE, LABEL_NAMES, LABEL_REAL, ClipRecord, arrow_schema
from vfcache.manifests.split_files import (
    SIZE_UNITS,
    JointInfo,
    PartSummary,
    SplitMeta,
    SubsetInfo,
    write_split_meta,
)
from vfcache.pipelines.extract._allocation import SuffixReach, largest_remainder, round_matrix
from vfcache.pipelines.split.pins import after_pins, group_pins, keep, pinned_to, unit_pins

from vfcache.checksums import sha256_file
from vfcache.config import OFFICIAL_SIZE, parse_split_sizes
from vfcache.errors import StageError, VfcacheError
from vfcache.layout import SPLIT_PARTS, CacheDir

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


def assign_splits(
    clips: Sequence[ClipRecord],
    sizes: Any,
    *,
    seed: int,
    stratify: Sequence[str] = ("label", "generator"),
    unit: str = "videos",
) -> dict[str, list[ClipRecord]]:
    """Group-disjoint, stratified parts of `clips` with sizes counted in `unit`, each sorted by
    clip_id; unassigned clips are left out. The split stage's own code, on records."""
    sizes = normalize_sizes(sizes)
    table = _Clips(_records_table(clips), "the clips given")
    unit_of_row, group, stratum = table.unit_codes(unit, stratify)
    return {part: [clips[row] for row in table.rows_of_units(unit_of_row, units).tolist()]
            for part, units in assign_codes(group, stratum, sizes, seed=seed).items()}


def _records_table(clips: Sequence) -> pa.Table:
    """The split stage's columns of clip records (anything with ClipRecord's fields)."""
    schema = arrow_schema(ClipRecord)
    names = [*SPLIT_FIELDS, "source_split"]
    return pa.table({name: pa.array([getattr(c, name) for c in clips], schema.field(name).type) for name in names})


def _check_stratify(stratify: Sequence[str]) -> None:
    bad_keys = [key for key in stratify if key not in STRATIFY_KEYS]
    if bad_keys:
        raise ValueError(f"stratify keys {bad_keys} are not among {STRATIFY_KEYS}")


def assign_codes(group: np.ndarray, stratum: np.ndarray, sizes: Sequence[tuple[str, str]], *,
                 seed: int, pinned: Optional[Sequence[Optional[str]]] = None) -> dict[str, np.ndarray]:
    """The assignment itself, on validated (part, size) pairs and one entry per unit in key order:
    `group` and `stratum` are codes ordered as the group names and stratum tuples sort. Returns
    each part's unit positions, ascending (so in key order); UNASSIGNED is dropped. Part names
    are free here (the subset uses "subset" / "dropped"). Codes are re-ranked here, so a
    subset's codes work as they are. `pinned` (one part name or None per unit) fixes the part of
    some units and of their groups (`vfcache.pipelines.split.pins`); without it the result is unchanged."""
    group = np.unique(group, return_inverse=True)[1].astype(np.int64) if len(group) else group
    stratum_codes, stratum = np.unique(stratum, return_inverse=True) if len(stratum) else (stratum, stratum)
    stratum = stratum.astype(np.int64)
    targets = part_targets(sizes, len(group))
    rest_part = next((part for part, size in sizes if size == "rest"), UNASSIGNED)
    parts = [part for part, size in sizes if size != "rest"] + [rest_part]
    strata = list(range(len(stratum_codes)))
    stratum_sizes = np.bincount(stratum, minlength=len(strata)).tolist()
    quotas = round_matrix([targets[p] for p in parts], stratum_sizes)
    n_groups = int(group.max()) + 1 if len(group) else 0
    group_size = np.bincount(group, minlength=n_groups).tolist()
    pairs, pair_units = np.unique(group * max(len(strata), 1) + stratum, return_counts=True)
    composition: list[list] = [[] for _ in range(n_groups)]
    for pair, n in zip(pairs.tolist(), pair_units.tolist()):
        composition[pair // max(len(strata), 1)].append((pair % max(len(strata), 1), n))
    pins = group_pins(group, pinned)
    free_targets, free_quotas = after_pins(pins, parts, targets, quotas, composition, group_size)
    rng = np.random.default_rng(seed)
    first: dict[str, list[int]] = {}
    for _ in range(SHUFFLE_ATTEMPTS):
        order = [g for g in rng.permutation(n_groups).tolist() if g not in pins]
        assignment, exact = _carve_all(order, group_size, composition, parts, free_targets, free_quotas, strata)
        if exact:
            break
        first = first or assignment
    else:
        # no shuffle met every size; keep the first one, whose shortfalls split.json records
        assignment = first
    for code, part in pins.items():
        if part in assignment:  # pinned to a part this split lacks: in no part
            assignment[part].append(code)
    part_of_group = np.full(n_groups, -1, dtype=np.int64)
    for number, part in enumerate(parts):
        part_of_group[np.asarray(assignment[part], dtype=np.int64)] = number
    part_of_unit = part_of_group[group]
    result = {part: np.flatnonzero(part_of_unit == number) for number, part in enumerate(parts)}
    result.pop(UNASSIGNED, None)
    return result


def subset_sizes(count: int) -> tuple[tuple[str, str], ...]:
    """A seeded subset of `count` units is the first part of a two-part split ("subset" = count,
    the rest dropped), so it has a part's guarantees: exact when the groups allow it, every
    stratum in proportion, whole groups only."""
    return (("subset", str(count)), ("dropped", "rest"))


def _carve_all(order, group_size, composition, parts, targets, quotas, strata) -> tuple[dict[str, list], bool]:
    pool = order
    assignment, exact = {}, True
    for row, part in enumerate(parts[:-1]):
        needs = dict(zip(strata, quotas[row]))
        chosen, pool = _carve(pool, group_size, composition, targets[part], needs)
        assignment[part] = chosen
        exact &= sum(group_size[g] for g in chosen) == targets[part]
    assignment[parts[-1]] = pool
    return assignment, exact


def _carve(pool: list, group_size, composition, target: int, needs: dict) -> tuple[list, list]:
    """One pass over `pool`: take groups that fit the stratum needs, steered to an exact total
    (`group_size[g]`: units of group g; `composition[g]`: its (stratum, units) pairs)."""
    sizes = [group_size[name] for name in pool]
    reach = SuffixReach(sizes, target)
    gap = reach.best_at_most(target)
    chosen, left = [], []
    for i, name in enumerate(pool):
        size = sizes[i]
        can_take = size <= gap and reach.reachable(i + 1, gap - size)  # by the groups after this one
        can_skip = reach.reachable(i + 1, gap)
        wanted = all(needs.get(stratum, 0) >= n for stratum, n in composition[name])
        if can_take and (wanted or not can_skip):
            chosen.append(name)
            gap -= size
            for stratum, n in composition[name]:
                needs[stratum] = needs.get(stratum, 0) - n
        else:
            left.append(name)
    return chosen, left


def is_official(sizes: Sequence[tuple[str, str]]) -> bool:
    return bool(sizes) and all(size == OFFICIAL_SIZE for _, size in sizes)


def official_parts(clips: Sequence[ClipRecord],
                   parts: Sequence[str]) -> dict[str, list[ClipRecord]]:
    """The dataset's own split: each part gets the clips whose `source_split` names it, sorted by
    clip_id (the split stage's `_Clips.official`, on records).

    Clips without an official split stay unassigned. Raises SplitSizeError when no clip has
    one, or when a group has clips in two official parts (the official split would leak).
    """
    table = _Clips(_records_table(clips), "the clips given")
    rows = table.official(table.in_order(np.arange(len(table))), parts)
    return {part: [clips[row] for row in rows[part].tolist()] for part in parts}


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


class _Clips:
    """The columns of clips.parquet the split stage uses, rows sorted by clip_id, with the string
    columns as sorted category codes (manifests/columns.py): no Python object per clip."""

    def __init__(self, table: pa.Table, where: str):
        """`table`: the split columns of clips.parquet (`read`), or of records; `where` names it
        in errors. Rows stay in their order; `rank` is each row's place in clip_id order
        (cheaper than reordering every column), and every row list handed out is in that order."""
        self.table = table.combine_chunks()
        order = pc.sort_indices(self.table.column("clip_id"))
        ids = self.table.column("clip_id").take(order)
        if len(ids) > 1:
            repeats = pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1))
            if pc.any(repeats).as_py():
                shown = sorted(set(pc.filter(ids.slice(1), repeats).to_pylist()))[:5]
                raise SplitSizeError(f"{where}: clip ids appear more than once: {shown}")
        order = order.to_numpy()
        self.rank = np.empty(len(order), dtype=np.int64)
        self.rank[order] = np.arange(len(order))
        self.label = self.table.column("label").to_numpy()
        self.codes = {name: codes(self.table.column(name))
                      for name in ("video_id", "generator", "domain", "group")}
        self.clean = {name for name in SPLIT_FIELDS if not _needs_escape(
            pa.array(self.codes[name][1], pa.string()) if name in self.codes else self.table.column(name))}

    @classmethod
    def read(cls, path: Path) -> "_Clips":
        return cls(pq.read_table(path, columns=[*SPLIT_FIELDS, "source_split"]), str(path))

    def __len__(self) -> int:
        return self.table.num_rows

    def code(self, name: str) -> np.ndarray:
        return self.codes[name][0]

    def unit_codes(self, unit: str, stratify: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The records sizes count, as arrays: (unit of each row, group code and stratum code of
        each unit). A unit is a video (all its clips) or a clip; units are numbered in key order
        (video id, or clip id); a video's group and stratum are those of its first clip by clip id."""
        if unit not in SIZE_UNITS:
            raise ValueError(f"split unit {unit!r} is not one of {SIZE_UNITS}")
        _check_stratify(stratify)
        if unit == "clips":
            unit_of_row = self.rank
            firsts = np.argsort(self.rank)
        else:
            unit_of_row = self.code("video_id")  # ranks of the sorted video ids
            order = np.lexsort((self.rank, unit_of_row))
            starts = np.flatnonzero(np.diff(unit_of_row[order], prepend=-1)) if len(order) else order
            firsts = order[starts]
        columns = {"label": np.unique(self.label, return_inverse=True)[1].reshape(-1) if len(self) else self.label,
                   "generator": self.code("generator"), "domain": self.code("domain")}
        key = np.zeros(len(firsts), dtype=np.int64)
        for name in stratify:
            values = columns[name][firsts]
            key = key * (int(columns[name].max()) + 1 if len(self) else 1) + values
        return unit_of_row, self.code("group")[firsts], key

    def video_of_units(self, unit_of_row: np.ndarray, units: int) -> list[str]:
        """The video id of each unit (a video, or a clip of it)."""
        video = np.zeros(units, dtype=np.int64)
        video[unit_of_row] = self.code("video_id")
        names = self.codes["video_id"][1]
        return [names[v] for v in video.tolist()]

    def rows_of_units(self, unit_of_row: np.ndarray, units: np.ndarray) -> np.ndarray:
        """The clip rows of `units` (unit numbers), in clip_id order."""
        chosen = np.zeros(int(unit_of_row.max()) + 1 if len(unit_of_row) else 0, dtype=bool)
        chosen[units] = True
        return self.in_order(np.flatnonzero(chosen[unit_of_row]))

    def in_order(self, rows: np.ndarray) -> np.ndarray:
        return rows[np.argsort(self.rank[rows])]

    def official(self, rows: np.ndarray, parts: Sequence[str]) -> dict[str, np.ndarray]:
        """`official_parts` on rows: each part the rows whose source_split names it."""
        source = self.table.column("source_split").combine_chunks().take(pa.array(rows))
        where = {part: rows[pc.equal(source, part).fill_null(False).to_numpy(zero_copy_only=False)]
                 for part in parts}
        if not any(len(r) for r in where.values()):
            found = sorted({str(v) for v in source.unique().to_pylist()})
            raise SplitSizeError(
                f"split sizes 'official' need clips whose source_split is one of {list(parts)}; "
                f"clips.parquet has source_split {found[:5]}: this dataset has no official split here")
        group = self.code("group")
        part_of = np.concatenate([np.full(len(r), i) for i, r in enumerate(where.values())])
        groups = np.concatenate([group[r] for r in where.values()])
        pairs = np.unique(np.stack([groups, part_of]), axis=1) if len(groups) else np.zeros((2, 0), np.int64)
        names, counts = np.unique(pairs[0], return_counts=True)
        leaking = sorted(self.codes["group"][1][g] for g in names[counts > 1].tolist())
        if leaking:
            raise SplitSizeError(
                f"{len(leaking)} groups have clips in two official parts, e.g. {leaking[:3]}; "
                "the dataset's official split does not keep its groups apart")
        return where

    def support_rows(self, train: np.ndarray, support: int, seed: int) -> np.ndarray:
        """`pick_support` over the train rows (one light record per train clip)."""
        clip_ids = self.table.column("clip_id").combine_chunks().take(pa.array(train)).to_pylist()
        fields = {n: [self.codes[n][1][c] for c in self.code(n)[train].tolist()]
                  for n in ("video_id", "domain", "generator")}
        rows = [_Row(clip_ids[i], fields["video_id"][i], fields["domain"][i], int(self.label[r]),
                     fields["generator"][i], r) for i, r in enumerate(train.tolist())]
        return np.asarray([row.row for row in pick_support(rows, support, seed=seed)], dtype=np.int64)

    def distinct(self, name: str, rows: np.ndarray) -> int:
        """How many different values of coded column `name` the rows hold."""
        return int(np.count_nonzero(np.bincount(self.code(name)[rows], minlength=len(self.codes[name][1]))))

    def count(self, rows: np.ndarray, unit: str) -> int:
        return len(rows) if unit == "clips" else self.distinct("video_id", rows)

    def summary(self, part: str, asked: str, unit: str, target: int, rows: np.ndarray) -> PartSummary:
        return PartSummary(part=part, asked=asked, unit=unit, target=target, obtained=self.count(rows, unit),
                           clips=len(rows), groups=self.distinct("group", rows),
                           videos=self.distinct("video_id", rows))

    def counts(self, rows: np.ndarray) -> dict[str, dict[str, int]]:
        """What `_counts` gives for these clips: per label name, generator, domain, domain/label."""
        def tally(values: np.ndarray, name_of) -> dict[str, int]:
            if values.dtype.kind in "iu" and len(values) and values.min() >= 0:
                n = np.bincount(values)
                found = np.flatnonzero(n)
                n = n[found]
            else:
                found, n = np.unique(values, return_counts=True)
            return dict(sorted((name_of(v), int(k)) for v, k in zip(found.tolist(), n.tolist())))

        label = self.label[rows]
        label_name = lambda v: LABEL_NAMES.get(v, str(v))  # noqa: E731
        domain_codes, domains = self.codes["domain"]
        domain = domain_codes[rows]
        return {
            "label": tally(label, label_name),
            "generator": tally(self.code("generator")[rows], self.codes["generator"][1].__getitem__),
            "domain": tally(domain, domains.__getitem__),
            "domain_label": tally(domain * 2 + (label == LABEL_FAKE),
                                  lambda v: f"{domains[v // 2]}/{LABEL_NAMES[LABEL_FAKE if v % 2 else LABEL_REAL]}"),
        }

    def write(self, path: Path, rows: np.ndarray) -> Path:
        """The split file of `rows` (clip ids unique: checked once, at load)."""
        return write_split_table(path, self.table.select(list(SPLIT_FIELDS)).take(pa.array(rows, pa.int64())),
                                 unique=True, clean=self.clean)


def _needs_escape(column: pa.Array) -> bool:
    """Whether some string of `column` needs a JSON escape (non-string columns never do)."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return False
    return bool(pc.any(pc.match_substring_regex(column, JSON_NEEDS_ESCAPE)).as_py())


@dataclass(frozen=True)
class _Row:
    """One train clip as `pick_support` sees it."""

    clip_id: str
    video_id: str
    domain: str
    label: int
    generator: str
    row: int


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
    pins: Optional[dict[str, str]] = None,
    joint: Optional[JointInfo] = None,
) -> SplitReport:
    """Assign the clips of `cache_dir` to parts and write the split files; same seed -> same bytes.

    Sizes count `unit` (videos, as the model cards do, or clips). With `subset`, a seeded,
    stratified, group-aware subset of that many records is taken first and the split is made
    of it (the card's DVF 1004 of the full release); the clips left out are unassigned.
    `pins` ({video_id: part}, from a joint split) put those videos in those parts, and in the
    subset; `joint` is recorded in split.json.
    """
    if not cache_dir.clips_parquet.exists():
        raise StageError(f"{cache_dir.clips_parquet} does not exist; run extraction first")
    if unit not in SIZE_UNITS:
        raise StageError(f"split unit {unit!r} is not one of {list(SIZE_UNITS)}")
    what = f"split {name} of {cache_dir.path.parent.name}/{cache_dir.path.name}"
    with writer_lock(cache_dir.path, what, wait=wait):
        return _split_locked(cache_dir, sizes=normalize_sizes(sizes), seed=seed, support=support,
                             stratify=stratify, name=name, unit=unit, subset=subset, pins=pins or {},
                             joint=joint)


def _split_locked(cache_dir: CacheDir, *, sizes: Sequence[tuple[str, str]], seed: int, support: int,
                  stratify: Sequence[str], name: str, unit: str, subset: Optional[int],
                  pins: dict[str, str], joint: Optional[JointInfo]) -> SplitReport:
    spec_hash = cache_dir.read_spec().spec_hash
    manifest_sha = sha256_file(cache_dir.clips_parquet)
    clips = _Clips.read(cache_dir.clips_parquet)
    unit_of_row, group, stratum = clips.unit_codes(unit, stratify)
    pinned = unit_pins(clips.video_of_units(unit_of_row, len(group)), pins) if pins else None
    if pinned is not None and is_official(sizes):
        raise SplitSizeError(f"{cache_dir.path}: a joint split cannot follow the official split of a later "
                             "dataset; name the dataset with the official split first, or give it sizes")
    kept = np.arange(len(group))  # the units split (all, or the subset)
    subset_info = None
    if subset is not None:
        if subset > len(kept):
            raise SplitSizeError(f"subset of {subset} asked, but only {len(kept)} are available")
        kept = assign_codes(group, stratum, subset_sizes(subset), seed=seed,
                            pinned=pinned_to(pinned, "subset"))["subset"]
        subset_info = SubsetInfo(asked=subset, obtained=len(kept), of=len(group), seed=seed,
                                 stratify=tuple(stratify))
        if len(kept) != subset:
            log.warning("split %s: subset asked %d %s, obtained %d (groups too large)",
                        name, subset, unit, len(kept))
    if is_official(sizes):
        parts = clips.official(clips.rows_of_units(unit_of_row, kept), [part for part, _ in sizes])
        targets = {part: clips.count(parts[part], unit) for part, _ in sizes}
    else:
        targets = part_targets(sizes, len(kept))
        parts = {part: clips.rows_of_units(unit_of_row, kept[positions])
                 for part, positions in assign_codes(group[kept], stratum[kept], sizes, seed=seed,
                                                     pinned=keep(pinned, kept)).items()}
    if support and "train" not in parts:
        raise SplitSizeError("a support bank is drawn from train, but the split sizes name no train part")
    no_rows = np.zeros(0, dtype=np.int64)
    bank = clips.support_rows(parts.get("train", no_rows), support, seed)
    parts["support"] = bank
    split_dir = cache_dir.split_dir(name)
    # Arrow's kernels and the file writes release the GIL: the parts are written side by side
    with ThreadPoolExecutor(max_workers=min(len(SPLIT_PARTS), os.cpu_count() or 1)) as pool:
        files = list(pool.map(lambda part: clips.write(cache_dir.split_file(name, part), parts.get(part, no_rows)),
                              SPLIT_PARTS))
    asked = dict(sizes)
    summaries = [clips.summary(part, asked[part], unit, targets[part], parts[part]) for part, _ in sizes]
    domains = np.unique(clips.code("domain")[parts["train"]]) if support else []
    summaries.append(clips.summary("support", f"{support} clips per class per domain", "clips",
                                   2 * support * len(domains), bank))
    placed = np.zeros(len(clips), dtype=bool)
    for part, _ in sizes:
        placed[parts[part]] = True
    left_out = clips.in_order(np.flatnonzero(~placed))
    if len(left_out):
        summaries.append(clips.summary(UNASSIGNED, "", unit, clips.count(left_out, unit), left_out))
    meta = SplitMeta(
        name=name, seed=seed, sizes=sizes, stratify=tuple(stratify), support_per_class=support,
        spec_hash=spec_hash, clips_parquet_sha256=manifest_sha, clips_total=len(clips),
        parts=tuple(summaries), counts={part: clips.counts(parts.get(part, no_rows)) for part in SPLIT_PARTS},
        unit=unit, subset=subset_info, joint=joint,
    )
    files.append(write_split_meta(split_dir, meta))
    report = SplitReport(name=name, split_dir=split_dir, files=tuple(files), meta=meta)
    for summary in summaries:
        if summary.part != UNASSIGNED and summary.obtained != summary.target:
            log.warning("split %s: part %s asked %s = %d %s, obtained %d (groups too large)",
                        name, summary.part, summary.asked, summary.target, summary.unit,
                        summary.obtained)
    return report
