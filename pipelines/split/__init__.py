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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
    read_split_meta,
    write_split_meta,
)
from vfcache.pipelines.split.assign import (  # noqa: F401  (the stage's public names)
    SHUFFLE_ATTEMPTS,
    STRATIFY_KEYS,
    UNASSIGNED,
    SplitSizeError,
    _check_stratify,
    assign_codes,
    is_official,
    normalize_sizes,
    part_targets,
    pick_support,
    subset_sizes,
)
from vfcache.pipelines.split.pins import keep, pinned_to, unit_pins

from vfcache.checksums import sha256_file
from vfcache.config import SplitPreset
from vfcache.errors import StageError
from vfcache.layout import SPLIT_PARTS, CacheDir

log = logging.getLogger(__name__)


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
    return {
        part: [clips[row] for row in table.rows_of_units(unit_of_row, units).tolist()]
        for part, units in assign_codes(group, stratum, sizes, seed=seed).items()
    }


def _records_table(clips: Sequence) -> pa.Table:
    """The split stage's columns of clip records (anything with ClipRecord's fields)."""
    schema = arrow_schema(ClipRecord)
    names = [*SPLIT_FIELDS, "source_split"]
    return pa.table(
        {
            name: pa.array([getattr(c, name) for c in clips], schema.field(name).type)
            for name in names
        }
    )


def official_parts(
    clips: Sequence[ClipRecord], parts: Sequence[str]
) -> dict[str, list[ClipRecord]]:
    """The dataset's own split: each part gets the clips whose `source_split` names it, sorted by
    clip_id (the split stage's `_Clips.official`, on records).

    Clips without an official split stay unassigned. Raises SplitSizeError when no clip has
    one, or when a group has clips in two official parts (the official split would leak).
    """
    table = _Clips(_records_table(clips), "the clips given")
    rows = table.official(table.in_order(np.arange(len(table))), parts)
    return {part: [clips[row] for row in rows[part].tolist()] for part in parts}


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
        return {
            "name": self.name,
            "split_dir": str(self.split_dir),
            "files": [str(f) for f in self.files],
            "exact": self.exact,
            "meta": self.meta.to_json(),
        }


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
        self.codes = {
            name: codes(self.table.column(name))
            for name in ("video_id", "generator", "domain", "group")
        }
        self.clean = {
            name
            for name in SPLIT_FIELDS
            if not _needs_escape(
                pa.array(self.codes[name][1], pa.string())
                if name in self.codes
                else self.table.column(name)
            )
        }

    @classmethod
    def read(cls, path: Path) -> "_Clips":
        return cls(pq.read_table(path, columns=[*SPLIT_FIELDS, "source_split"]), str(path))

    def __len__(self) -> int:
        return self.table.num_rows

    def code(self, name: str) -> np.ndarray:
        return self.codes[name][0]

    def unit_codes(
        self, unit: str, stratify: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The records sizes count, as arrays: (unit of each row, group code and stratum code of
        each unit). A unit is a video (all its clips) or a clip; units are numbered in key order
        (video id, or clip id); a video's group and stratum are those of its first clip by clip
        id."""
        if unit not in SIZE_UNITS:
            raise ValueError(f"split unit {unit!r} is not one of {SIZE_UNITS}")
        _check_stratify(stratify)
        if unit == "clips":
            unit_of_row = self.rank
            firsts = np.argsort(self.rank)
        else:
            unit_of_row = self.code("video_id")  # ranks of the sorted video ids
            order = np.lexsort((self.rank, unit_of_row))
            starts = (
                np.flatnonzero(np.diff(unit_of_row[order], prepend=-1)) if len(order) else order
            )
            firsts = order[starts]
        columns = {
            "label": np.unique(self.label, return_inverse=True)[1].reshape(-1)
            if len(self)
            else self.label,
            "generator": self.code("generator"),
            "domain": self.code("domain"),
        }
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
        where = {
            part: rows[pc.equal(source, part).fill_null(False).to_numpy(zero_copy_only=False)]
            for part in parts
        }
        if not any(len(r) for r in where.values()):
            found = sorted({str(v) for v in source.unique().to_pylist()})
            raise SplitSizeError(
                f"split sizes 'official' need clips whose source_split is one of {list(parts)}; "
                f"clips.parquet has source_split {found[:5]}: this dataset has no official split "
                f"here"
            )
        group = self.code("group")
        part_of = np.concatenate([np.full(len(r), i) for i, r in enumerate(where.values())])
        groups = np.concatenate([group[r] for r in where.values()])
        pairs = (
            np.unique(np.stack([groups, part_of]), axis=1)
            if len(groups)
            else np.zeros((2, 0), np.int64)
        )
        names, counts = np.unique(pairs[0], return_counts=True)
        leaking = sorted(self.codes["group"][1][g] for g in names[counts > 1].tolist())
        if leaking:
            raise SplitSizeError(
                f"{len(leaking)} groups have clips in two official parts, e.g. {leaking[:3]}; "
                "the dataset's official split does not keep its groups apart"
            )
        return where

    def support_rows(self, train: np.ndarray, support: int, seed: int) -> np.ndarray:
        """`pick_support` over the train rows (one light record per train clip)."""
        clip_ids = self.table.column("clip_id").combine_chunks().take(pa.array(train)).to_pylist()
        fields = {
            n: [self.codes[n][1][c] for c in self.code(n)[train].tolist()]
            for n in ("video_id", "domain", "generator")
        }
        rows = [
            _Row(
                clip_ids[i],
                fields["video_id"][i],
                fields["domain"][i],
                int(self.label[r]),
                fields["generator"][i],
                r,
            )
            for i, r in enumerate(train.tolist())
        ]
        return np.asarray(
            [row.row for row in pick_support(rows, support, seed=seed)], dtype=np.int64
        )

    def distinct(self, name: str, rows: np.ndarray) -> int:
        """How many different values of coded column `name` the rows hold."""
        return int(
            np.count_nonzero(np.bincount(self.code(name)[rows], minlength=len(self.codes[name][1])))
        )

    def count(self, rows: np.ndarray, unit: str) -> int:
        return len(rows) if unit == "clips" else self.distinct("video_id", rows)

    def summary(
        self, part: str, asked: str, unit: str, target: int, rows: np.ndarray
    ) -> PartSummary:
        return PartSummary(
            part=part,
            asked=asked,
            unit=unit,
            target=target,
            obtained=self.count(rows, unit),
            clips=len(rows),
            groups=self.distinct("group", rows),
            videos=self.distinct("video_id", rows),
        )

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
            "generator": tally(
                self.code("generator")[rows], self.codes["generator"][1].__getitem__
            ),
            "domain": tally(domain, domains.__getitem__),
            "domain_label": tally(
                domain * 2 + (label == LABEL_FAKE),
                lambda v: f"{domains[v // 2]}/{LABEL_NAMES[LABEL_FAKE if v % 2 else LABEL_REAL]}",
            ),
        }

    def write(self, path: Path, rows: np.ndarray) -> Path:
        """The split file of `rows` (clip ids unique: checked once, at load)."""
        return write_split_table(
            path,
            self.table.select(list(SPLIT_FIELDS)).take(pa.array(rows, pa.int64())),
            unique=True,
            clean=self.clean,
        )


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


def split_options(
    preset: SplitPreset,
    *,
    sizes: Optional[Sequence[tuple[str, str]]] = None,
    seed: Optional[int] = None,
    support: Optional[int] = None,
    name: Optional[str] = None,
    unit: Optional[str] = None,
    subset: Optional[int] = None,
) -> dict:
    """`write_split`'s keyword arguments: a dataset's split preset with what a user gave over
    it (None keeps the preset's value; `subset=0` asks for no subset)."""
    return {
        "sizes": sizes if sizes else preset.sizes,
        "seed": preset.seed if seed is None else seed,
        "support": preset.support if support is None else support,
        "stratify": preset.stratify,
        "name": name or preset.name,
        "unit": unit or preset.unit,
        "subset": preset.subset if subset is None else (subset or None),
    }


def split_is_current(cache_dir: CacheDir, options: dict) -> bool:
    """Whether the split `options` name was written with these options from the current
    clips.parquet (so `vfcache cache` need not write it again)."""
    split_dir = cache_dir.split_dir(options["name"])
    if not (split_dir / "split.json").exists():
        return False
    meta = read_split_meta(split_dir)
    return (
        meta.clips_parquet_sha256 == sha256_file(cache_dir.clips_parquet)
        and tuple(meta.sizes) == tuple(options["sizes"])
        and meta.seed == options["seed"]
        and meta.support_per_class == options["support"]
        and tuple(meta.stratify) == tuple(options["stratify"])
        and meta.unit == options["unit"]
        and (meta.subset.asked if meta.subset else None) == options["subset"]
    )


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
        return _split_locked(
            cache_dir,
            sizes=normalize_sizes(sizes),
            seed=seed,
            support=support,
            stratify=stratify,
            name=name,
            unit=unit,
            subset=subset,
            pins=pins or {},
            joint=joint,
        )


def _split_locked(
    cache_dir: CacheDir,
    *,
    sizes: Sequence[tuple[str, str]],
    seed: int,
    support: int,
    stratify: Sequence[str],
    name: str,
    unit: str,
    subset: Optional[int],
    pins: dict[str, str],
    joint: Optional[JointInfo],
) -> SplitReport:
    spec_hash = cache_dir.read_spec().spec_hash
    manifest_sha = sha256_file(cache_dir.clips_parquet)
    clips = _Clips.read(cache_dir.clips_parquet)
    unit_of_row, group, stratum = clips.unit_codes(unit, stratify)
    pinned = unit_pins(clips.video_of_units(unit_of_row, len(group)), pins) if pins else None
    if pinned is not None and is_official(sizes):
        raise SplitSizeError(
            f"{cache_dir.path}: a joint split cannot follow the official split of a later "
            "dataset; name the dataset with the official split first, or give it sizes"
        )
    kept = np.arange(len(group))  # the units split (all, or the subset)
    subset_info = None
    if subset is not None:
        if subset > len(kept):
            raise SplitSizeError(f"subset of {subset} asked, but only {len(kept)} are available")
        kept = assign_codes(
            group, stratum, subset_sizes(subset), seed=seed, pinned=pinned_to(pinned, "subset")
        )["subset"]
        subset_info = SubsetInfo(
            asked=subset, obtained=len(kept), of=len(group), seed=seed, stratify=tuple(stratify)
        )
        if len(kept) != subset:
            log.warning(
                "split %s: subset asked %d %s, obtained %d (groups too large)",
                name,
                subset,
                unit,
                len(kept),
            )
    if is_official(sizes):
        parts = clips.official(clips.rows_of_units(unit_of_row, kept), [part for part, _ in sizes])
        targets = {part: clips.count(parts[part], unit) for part, _ in sizes}
    else:
        targets = part_targets(sizes, len(kept))
        parts = {
            part: clips.rows_of_units(unit_of_row, kept[positions])
            for part, positions in assign_codes(
                group[kept], stratum[kept], sizes, seed=seed, pinned=keep(pinned, kept)
            ).items()
        }
    if support and "train" not in parts:
        raise SplitSizeError(
            "a support bank is drawn from train, but the split sizes name no train part"
        )
    no_rows = np.zeros(0, dtype=np.int64)
    bank = clips.support_rows(parts.get("train", no_rows), support, seed)
    parts["support"] = bank
    split_dir = cache_dir.split_dir(name)
    # Arrow's kernels and the file writes release the GIL: the parts are written side by side
    with ThreadPoolExecutor(max_workers=min(len(SPLIT_PARTS), os.cpu_count() or 1)) as pool:
        files = list(
            pool.map(
                lambda part: clips.write(
                    cache_dir.split_file(name, part), parts.get(part, no_rows)
                ),
                SPLIT_PARTS,
            )
        )
    asked = dict(sizes)
    summaries = [
        clips.summary(part, asked[part], unit, targets[part], parts[part]) for part, _ in sizes
    ]
    domains = np.unique(clips.code("domain")[parts["train"]]) if support else []
    summaries.append(
        clips.summary(
            "support",
            f"{support} clips per class per domain",
            "clips",
            2 * support * len(domains),
            bank,
        )
    )
    placed = np.zeros(len(clips), dtype=bool)
    for part, _ in sizes:
        placed[parts[part]] = True
    left_out = clips.in_order(np.flatnonzero(~placed))
    if len(left_out):
        summaries.append(clips.summary(UNASSIGNED, "", unit, clips.count(left_out, unit), left_out))
    meta = SplitMeta(
        name=name,
        seed=seed,
        sizes=sizes,
        stratify=tuple(stratify),
        support_per_class=support,
        spec_hash=spec_hash,
        clips_parquet_sha256=manifest_sha,
        clips_total=len(clips),
        parts=tuple(summaries),
        counts={part: clips.counts(parts.get(part, no_rows)) for part in SPLIT_PARTS},
        unit=unit,
        subset=subset_info,
        joint=joint,
    )
    files.append(write_split_meta(split_dir, meta))
    report = SplitReport(name=name, split_dir=split_dir, files=tuple(files), meta=meta)
    for summary in summaries:
        if summary.part != UNASSIGNED and summary.obtained != summary.target:
            log.warning(
                "split %s: part %s asked %s = %d %s, obtained %d (groups too large)",
                name,
                summary.part,
                summary.asked,
                summary.target,
                summary.unit,
                summary.obtained,
            )
    return report
