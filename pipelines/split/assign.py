"""The split assignment itself, pure arithmetic on codes: part sizes from a `sizes` spec, the
group-disjoint, stratified assignment of units to parts (`assign_codes`), and the support bank
(`pick_support`). No file is read or written here; the split stage (`vfcache.pipelines.split`)
reads clips.parquet, calls this, and writes the split files.
"""

from __future__ import annotations

from collections import defaultdict, deque
from fractions import Fraction
from typing import Any, Optional, Sequence

import numpy as np
from vfcache.manifests.records import LABEL_FAKE, LABEL_NAMES, LABEL_REAL
from vfcache.pipelines.extract._allocation import SuffixReach, largest_remainder, round_matrix
from vfcache.pipelines.split.pins import after_pins, group_pins

from vfcache.config import OFFICIAL_SIZE, parse_split_sizes
from vfcache.errors import VfcacheError

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
        raise ValueError(
            "'official' sizes are not counts: the parts come from the clips (see official_parts)"
        )
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


def _check_stratify(stratify: Sequence[str]) -> None:
    bad_keys = [key for key in stratify if key not in STRATIFY_KEYS]
    if bad_keys:
        raise ValueError(f"stratify keys {bad_keys} are not among {STRATIFY_KEYS}")


def assign_codes(
    group: np.ndarray,
    stratum: np.ndarray,
    sizes: Sequence[tuple[str, str]],
    *,
    seed: int,
    pinned: Optional[Sequence[Optional[str]]] = None,
) -> dict[str, np.ndarray]:
    """The assignment itself, on validated (part, size) pairs and one entry per unit in key order:
    `group` and `stratum` are codes ordered as the group names and stratum tuples sort. Returns
    each part's unit positions, ascending (so in key order); UNASSIGNED is dropped. Part names
    are free here (the subset uses "subset" / "dropped"). Codes are re-ranked here, so a
    subset's codes work as they are. `pinned` (one part name or None per unit) fixes the part of
    some units and of their groups (`vfcache.pipelines.split.pins`); without it the result is
    unchanged."""
    group = np.unique(group, return_inverse=True)[1].astype(np.int64) if len(group) else group
    stratum_codes, stratum = (
        np.unique(stratum, return_inverse=True) if len(stratum) else (stratum, stratum)
    )
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
        assignment, exact = _carve_all(
            order, group_size, composition, parts, free_targets, free_quotas, strata
        )
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


def _carve_all(
    order, group_size, composition, parts, targets, quotas, strata
) -> tuple[dict[str, list], bool]:
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
        can_take = size <= gap and reach.reachable(
            i + 1, gap - size
        )  # by the groups after this one
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


def pick_support(train: Sequence, n_per_class: int, *, seed: int) -> list:
    """N real + N fake clips per domain of `train`, one clip per video first, round-robin over
    generators.

    Works on anything with clip_id, video_id, domain, label and generator (ClipRecord, SplitEntry).
    The picked clips stay in train (see the module docstring). Sorted by (domain, label, generator,
    clip_id).
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
                    f"support bank asks {n_per_class} {LABEL_NAMES[label]} clips of domain "
                    f"{domain!r} "
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
