"""Split assignment, support bank and split files: invariants (Hypothesis), exact sizes, bytes."""

from __future__ import annotations

import json
import random
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from cache_fixtures import VideoPlan, build_cache, card_like_plans, make_clip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vfcache.manifests.records import SplitEntry
from vfcache.manifests.split_files import (
    SplitFileError,
    entry_line,
    read_split,
    read_split_meta,
    write_split_file,
)
from vfcache.pipelines.extract._allocation import SuffixReach, largest_remainder, round_matrix
from vfcache.pipelines.split import (
    SplitSizeError,
    assign_codes,
    assign_splits,
    part_targets,
    pick_support,
    write_split,
)
from vfcache.pipelines.split.pins import PinConflict

from vfcache.errors import ConfigError, StageError
from vfcache.layout import SPLIT_PARTS

GENERATORS = ("sora", "pika", "kling")
HYPOTHESIS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def clips_from_groups(groups: list[tuple[int, int, int]]) -> list:
    """groups: (label, generator index, clips in the group); each clip its own video."""
    clips = []
    for g, (label, gen, size) in enumerate(groups):
        generator = "youtube" if label == 0 else GENERATORS[gen]
        for v in range(size):
            plan = VideoPlan("d", label, generator, f"g{g:03d}", name=f"g{g:03d}-v{v}")
            clips.append(make_clip(plan, 0))
    return clips


group_lists = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 2), st.integers(1, 3)), min_size=1, max_size=40
)
singleton_lists = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 2), st.just(1)), min_size=1, max_size=60
)


def subset_sums(sizes: list[int]) -> set[int]:
    sums = {0}
    for size in sizes:
        sums |= {s + size for s in sums}
    return sums


def ids(parts: dict) -> dict[str, list[str]]:
    return {part: [c.clip_id for c in clips] for part, clips in parts.items()}


@HYPOTHESIS
@given(
    groups=group_lists,
    train=st.integers(0, 30),
    val=st.integers(0, 30),
    seed=st.integers(0, 2**32 - 1),
)
def test_parts_are_a_group_disjoint_partition(groups, train, val, seed):
    clips = clips_from_groups(groups)
    sizes = (("train", str(max(train, 1))), ("val", str(max(val, 1))), ("test", "rest"))
    if max(train, 1) + max(val, 1) > len(clips):
        with pytest.raises(SplitSizeError):
            assign_splits(clips, sizes, seed=seed)
        return
    parts = assign_splits(clips, sizes, seed=seed)
    placed = [c.clip_id for part in parts.values() for c in part]
    assert sorted(placed) == sorted(c.clip_id for c in clips)  # complete and disjoint
    where: dict[str, set] = {}
    for part, members in parts.items():
        for clip in members:
            where.setdefault(clip.group, set()).add(part)
    assert all(len(p) == 1 for p in where.values())
    # never more than asked; the first part is exact whenever some groups add up to it
    assert len(parts["train"]) <= int(sizes[0][1]) and len(parts["val"]) <= int(sizes[1][1])
    group_sizes = list(Counter(c.group for c in clips).values())
    assert (len(parts["train"]) == int(sizes[0][1])) == (
        int(sizes[0][1]) in subset_sums(group_sizes)
    )


@HYPOTHESIS
@given(
    groups=group_lists,
    pins=st.lists(
        # one pin per unit: up to 40 groups of up to 3 units
        st.sampled_from([None, None, "train", "val", "test", "other"]),
        min_size=120,
        max_size=120,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_pinned_units_go_to_their_part_with_their_group(groups, pins, seed):
    """A joint split's pins: each pinned unit and its whole group in the pinned part (a part the
    split lacks: no part), the other groups carved as usual; no pins, the same as before."""
    group = np.array([g for g, (_, _, size) in enumerate(groups) for _ in range(size)])
    stratum = np.array([label * 3 + gen for label, gen, size in groups for _ in range(size)])
    sizes = (("train", "0.4"), ("val", "0.2"), ("test", "rest"))
    pinned = pins[: len(group)]
    by_group = {}
    for g, pin in zip(group.tolist(), pinned):
        if pin is not None:
            by_group.setdefault(g, set()).add(pin)
    if any(len(p) > 1 for p in by_group.values()):
        with pytest.raises(PinConflict, match="pinned to both"):
            assign_codes(group, stratum, sizes, seed=seed, pinned=pinned)
        return
    parts = assign_codes(group, stratum, sizes, seed=seed, pinned=pinned)
    part_of = {int(u): part for part, units in parts.items() for u in units}
    for unit, g in enumerate(group.tolist()):
        want = next(iter(by_group[g])) if g in by_group else None
        if want in ("train", "val", "test"):
            assert part_of.get(unit) == want
        elif want == "other":
            assert unit not in part_of
        else:
            assert unit in part_of
    unpinned = {p: u.tolist() for p, u in assign_codes(group, stratum, sizes, seed=seed).items()}
    assert {
        p: u.tolist()
        for p, u in assign_codes(
            group, stratum, sizes, seed=seed, pinned=[None] * len(group)
        ).items()
    } == unpinned


@HYPOTHESIS
@given(
    groups=singleton_lists,
    fractions=st.sampled_from(["0.5,0.25", "0.1,0.1", "0.7,0.3", "0.34,0.33"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_one_clip_groups_meet_sizes_and_strata_within_one_clip(groups, fractions, seed):
    clips = clips_from_groups(groups)
    f_train, f_val = fractions.split(",")
    sizes = (("train", f_train), ("val", f_val), ("test", "rest"))
    targets = part_targets(sizes, len(clips))
    parts = assign_splits(clips, sizes, seed=seed)
    assert {p: len(c) for p, c in parts.items()} == targets
    assert abs(targets["train"] - Fraction(f_train) * len(clips)) < 1
    strata = Counter((c.label, c.generator) for c in clips)
    for part, members in parts.items():
        got = Counter((c.label, c.generator) for c in members)
        for stratum, n in strata.items():
            assert abs(got[stratum] - Fraction(targets[part] * n, len(clips))) < 1, (part, stratum)


@HYPOTHESIS
@given(groups=group_lists, seed=st.integers(0, 2**32 - 1), shuffle_seed=st.integers(0, 1000))
def test_same_seed_same_parts_whatever_the_input_order(groups, seed, shuffle_seed):
    clips = clips_from_groups(groups)
    sizes = "train=0.5,val=0.25,test=rest"
    first = ids(assign_splits(clips, sizes, seed=seed))
    shuffled = list(clips)
    random.Random(shuffle_seed).shuffle(shuffled)
    assert ids(assign_splits(shuffled, sizes, seed=seed)) == first


def test_different_seeds_give_different_parts():
    clips = clips_from_groups([(i % 2, i % 3, 1) for i in range(60)])
    assert ids(assign_splits(clips, "train=20,test=rest", seed=1)) != ids(
        assign_splits(clips, "train=20,test=rest", seed=2)
    )


def test_mixed_group_sizes_meet_every_size_when_a_joint_solution_exists():
    # 2+1 in each part is the only solution; a part that takes 1+1+1 first leaves 2,2,2.
    clips = clips_from_groups([(1, 0, 2)] * 3 + [(1, 0, 1)] * 3)
    for seed in range(20):
        parts = assign_splits(clips, "train=3,val=3,test=rest", seed=seed)
        assert [len(parts[p]) for p in ("train", "val", "test")] == [3, 3, 3]


def test_groups_too_large_give_the_largest_total_below_the_target():
    clips = clips_from_groups([(0, 0, 3)] * 4)
    parts = assign_splits(clips, "train=4,test=rest", seed=0)
    assert len(parts["train"]) == 3 and len(parts["test"]) == 9


@pytest.mark.parametrize(
    "sizes,total,expected",
    [
        ("train=0.5,val=0.25,test=0.25", 7, {"train": 3, "val": 2, "test": 2, "unassigned": 0}),
        ("train=50,val=50,test=rest", 436, {"train": 50, "val": 50, "test": 336}),
        ("train=0.5,val=3,test=rest", 9, {"train": 5, "val": 3, "test": 1}),
        ("train=2,val=0.5", 10, {"train": 2, "val": 5, "unassigned": 3}),
    ],
)
def test_part_targets(sizes, total, expected):
    from vfcache.pipelines.split import normalize_sizes

    assert part_targets(normalize_sizes(sizes), total) == expected


def test_sizes_beyond_the_clips_available_are_refused():
    clips = clips_from_groups([(0, 0, 1)] * 10)
    with pytest.raises(SplitSizeError, match="ask for 11 records but only 10"):
        assign_splits(clips, "train=6,val=5,test=rest", seed=0)
    with pytest.raises(SplitSizeError):
        assign_splits(clips, "train=0.6,val=0.5", seed=0)
    with pytest.raises(ConfigError):
        assign_splits(clips, "train=6,train=2", seed=0)
    with pytest.raises(ValueError, match="stratify"):
        assign_splits(clips, "train=5,test=rest", seed=0, stratify=("colour",))


@HYPOTHESIS
@given(
    rows=st.lists(st.integers(0, 40), min_size=1, max_size=4),
    cols=st.lists(st.integers(0, 40), min_size=1, max_size=6),
)
def test_round_matrix_keeps_both_margins_and_rounds_each_cell(rows, cols):
    total = sum(cols)
    rows = (
        largest_remainder([Fraction(r, max(1, sum(rows))) * total for r in rows], total)
        if sum(rows)
        else [total] + [0] * (len(rows) - 1)
    )
    cells = round_matrix(rows, cols)
    assert [sum(r) for r in cells] == rows
    assert [sum(r[c] for r in cells) for c in range(len(cols))] == cols
    for r, row in enumerate(cells):
        for c, value in enumerate(row):
            assert abs(value - Fraction(rows[r] * cols[c], total or 1)) < 1


@HYPOTHESIS
@given(sizes=st.lists(st.integers(1, 5), max_size=30), cap=st.integers(0, 40))
def test_suffix_reach_matches_brute_force(sizes, cap):
    reach = SuffixReach(sizes, cap)
    for i in range(len(sizes) + 1):
        expected = {s for s in subset_sums(sizes[i:]) if s <= cap}
        assert {s for s in range(cap + 1) if reach.reachable(i, s)} == expected
    assert reach.best_at_most(cap) == max(s for s in subset_sums(sizes) if s <= cap)


def card_clips(domain: str, total: int) -> list:
    real = total // 2
    fake = total - real
    plans = card_like_plans(
        domain, real, {"g1": fake // 3, "g2": fake // 3, "g3": fake - 2 * (fake // 3)}
    )
    return [make_clip(plan, 0, dataset=domain) for plan in plans]


@pytest.mark.parametrize(
    "domain,total,sizes",
    [
        ("aegis", 436, (50, 50, 336)),
        ("dvf", 1004, (200, 200, 604)),
        ("genvideo100k", 2971, (200, 200, 2571)),
    ],
)
def test_card_split_sizes_and_support_bank(domain, total, sizes):
    clips = card_clips(domain, total)
    parts = assign_splits(clips, f"train={sizes[0]},val={sizes[1]},test=rest", seed=0)
    assert tuple(len(parts[p]) for p in ("train", "val", "test")) == sizes
    bank = pick_support(parts["train"], 10, seed=0)
    assert Counter(c.label for c in bank) == {0: 10, 1: 10}
    assert {c.clip_id for c in bank} <= {c.clip_id for c in parts["train"]}
    fake_generators = Counter(c.generator for c in bank if c.label == 1)
    assert (
        set(fake_generators) == {"g1", "g2", "g3"}
        and max(fake_generators.values()) - min(fake_generators.values()) <= 1
    )


def test_support_prefers_one_clip_per_video_and_covers_every_domain():
    plans = [
        VideoPlan(d, lab, "youtube" if lab == 0 else "sora", f"{d}{lab}{v}", clips=3)
        for d in ("a", "b")
        for lab in (0, 1)
        for v in range(5)
    ]
    train = [make_clip(p, i) for p in plans for i in range(p.clips)]
    bank = pick_support(train, 5, seed=3)
    assert Counter((c.domain, c.label) for c in bank) == {
        ("a", 0): 5,
        ("a", 1): 5,
        ("b", 0): 5,
        ("b", 1): 5,
    }
    assert len({c.video_id for c in bank}) == 20
    assert pick_support(list(reversed(train)), 5, seed=3) == bank
    assert (
        len({c.video_id for c in pick_support(train, 7, seed=3)}) == 20
    )  # 2 videos give a second clip
    with pytest.raises(SplitSizeError, match="asks 16 real clips of domain 'a' but train has 15"):
        pick_support(train, 16, seed=3)


def test_write_split_files_are_byte_identical_for_a_seed(tmp_path: Path):
    plans = card_like_plans("aegis", 30, {"sora": 15, "pika": 15})
    fixture = build_cache(tmp_path / "cache", plans, clips_per_shard=16)
    cache = fixture.cache_dir

    def written(seed: int) -> dict[str, bytes]:
        write_split(cache, sizes="train=20,val=10,test=rest", seed=seed, support=3)
        folder = cache.split_dir("default")
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}

    first = written(5)
    assert sorted(first) == [
        "split.json",
        "support.jsonl",
        "test.jsonl",
        "train.jsonl",
        "val.jsonl",
    ]
    assert written(5) == first
    assert written(6)["train.jsonl"] != first["train.jsonl"]
    meta = read_split_meta(cache.split_dir("default"))
    assert [(p.part, p.unit, p.target, p.obtained, p.clips) for p in meta.parts] == [
        ("train", "videos", 20, 20, 20),
        ("val", "videos", 10, 10, 10),
        ("test", "videos", 30, 30, 30),
        ("support", "clips", 6, 6, 6),
    ]
    assert meta.spec_hash == fixture.spec.spec_hash and meta.clips_total == 60
    assert meta.counts["support"]["label"] == {"fake": 3, "real": 3}
    entries = {p: read_split(cache.split_file("default", p)) for p in SPLIT_PARTS}
    assert sum(len(entries[p]) for p in ("train", "val", "test")) == 60
    by_id = {c.clip_id: c for c in fixture.clips}
    assert all(
        by_id[e.clip_id].offset == e.offset and by_id[e.clip_id].shard == e.shard
        for e in entries["test"]
    )


def test_write_split_refuses_what_cannot_be_met(tmp_path: Path):
    cache = build_cache(tmp_path / "cache", card_like_plans("aegis", 6, {"sora": 6})).cache_dir
    with pytest.raises(SplitSizeError, match="ask for 13 records but only 12"):
        write_split(cache, sizes="train=7,val=6,test=rest", seed=0)
    with pytest.raises(
        SplitSizeError, match="support bank asks 4 real clips of domain 'aegis' but train has 3"
    ):
        write_split(cache, sizes="train=6,test=rest", seed=0, support=4)
    with pytest.raises(StageError, match="clips.parquet does not exist"):
        write_split(type(cache)(tmp_path / "nothing"), sizes="train=1", seed=0)


def sample_entry(**changes) -> SplitEntry:
    values = dict(
        clip_id="c1",
        shard="shards/s.npy.zst",
        offset=0,
        nbytes=10,
        label=1,
        domain="d",
        generator="sora",
        group="g",
        video_id="v",
        dataset="ds",
        clip_index=0,
    )
    return SplitEntry(**{**values, **changes})


def test_split_file_round_trip_and_canonical_lines(tmp_path: Path):
    entries = [sample_entry(clip_id=f"c{i}", offset=10 * i, domain="dé") for i in range(3)]
    path = write_split_file(tmp_path / "train.jsonl", entries)
    assert read_split(path) == entries
    line = path.read_text(encoding="utf-8").splitlines()[0]
    assert line == entry_line(entries[0]).rstrip("\n")
    assert list(json.loads(line)) == sorted(json.loads(line)) and ", " not in line
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize(
    "bad_line,message",
    [
        ("{not json", "train.jsonl:2: not valid JSON"),
        ("[1, 2]", "train.jsonl:2: expected a JSON object"),
        (json.dumps({"clip_id": "x"}), "train.jsonl:2: unknown fields \\[\\], missing fields"),
        (
            entry_line(sample_entry(clip_id="c9", label=True)).strip(),
            "train.jsonl:2: field 'label' = True should be a int",
        ),
        (
            entry_line(sample_entry(clip_id="c9", offset=-1)).strip(),
            "train.jsonl:2: field 'offset' = -1",
        ),
        (entry_line(sample_entry()).strip(), "train.jsonl:2: clip c1 already listed on line 1"),
        ("", "train.jsonl:2: empty line"),
    ],
)
def test_read_split_names_the_bad_line(tmp_path: Path, bad_line: str, message: str):
    path = tmp_path / "train.jsonl"
    path.write_text(
        entry_line(sample_entry()) + bad_line + "\n" + entry_line(sample_entry(clip_id="c3")),
        encoding="utf-8",
    )
    with pytest.raises(SplitFileError, match=message):
        read_split(path)


def test_read_split_detects_truncation_and_absence(tmp_path: Path):
    path = tmp_path / "val.jsonl"
    path.write_text(entry_line(sample_entry()).rstrip("\n"), encoding="utf-8")
    with pytest.raises(SplitFileError, match="no newline"):
        read_split(path)
    with pytest.raises(SplitFileError, match="does not exist"):
        read_split(tmp_path / "missing.jsonl")
