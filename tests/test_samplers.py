"""Batch samplers: quotas, balance, domain frequencies, determinism, rank split, mid-epoch
resume."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vfcache.trainers.samplers import (
    ClassBalancedBatchSampler,
    DomainWeightedBatchSampler,
    GeneratorQuotaBatchSampler,
    WeightedRandomBatchSampler,
    batch_quotas,
)

FAST = settings(max_examples=40, deadline=None)


def labels_of(real: int, fake: int) -> np.ndarray:
    return np.array([0] * real + [1] * fake)


# -- batch_quotas ------------------------------------------------------------------------------
@FAST
@given(
    batch_size=st.integers(0, 64),
    weights=st.lists(st.floats(0, 10), min_size=1, max_size=6),
    batch_number=st.integers(0, 100),
)
def test_quotas_sum_to_batch_and_stay_within_one_of_the_exact_share(
    batch_size, weights, batch_number
):
    if sum(weights) <= 0:
        with pytest.raises(ValueError):
            batch_quotas(batch_size, weights, batch_number)
        return
    counts = batch_quotas(batch_size, weights, batch_number)
    exact = batch_size * np.array(weights) / sum(weights)
    assert counts.sum() == batch_size
    assert np.all(counts >= np.floor(exact - 1e-6)) and np.all(counts <= np.ceil(exact + 1e-6))
    assert np.all(counts[np.array(weights) == 0] == 0)


def test_quotas_rotate_the_odd_slot_between_equal_classes():
    assert batch_quotas(25, [1, 1], 0).tolist() == [13, 12]
    assert batch_quotas(25, [1, 1], 1).tolist() == [12, 13]
    assert batch_quotas(24, [0.5, 0.3, 0.2]).tolist() == [12, 7, 5]


# -- class balance -----------------------------------------------------------------------------
@FAST
@given(
    real=st.integers(1, 40),
    fake=st.integers(1, 40),
    half=st.integers(1, 8),
    seed=st.integers(0, 2**32 - 1),
)
def test_class_balanced_batches_are_exactly_half_real_half_fake(real, fake, half, seed):
    labels = labels_of(real, fake)
    sampler = ClassBalancedBatchSampler(labels, 2 * half, seed=seed, num_batches=5)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5
    for batch in batches:
        assert len(batch) == 2 * half
        assert Counter(labels[batch].tolist()) == {0: half, 1: half}
        if min(real, fake) >= half:
            assert len(set(batch)) == len(
                batch
            )  # no clip twice in a batch while a class has enough


def test_class_proportions_are_respected_in_every_batch():
    labels = labels_of(30, 30)
    sampler = ClassBalancedBatchSampler(labels, 8, class_proportions={0: 1, 1: 3}, seed=3)
    for batch in sampler:
        assert Counter(labels[batch].tolist()) == {0: 2, 1: 6}


def test_each_clip_once_per_cycle_when_the_epoch_is_one_pass():
    labels = labels_of(12, 12)
    sampler = ClassBalancedBatchSampler(labels, 6, seed=0)  # 4 batches of 3 + 3 = every clip once
    seen = [i for batch in sampler for i in batch]
    assert sorted(seen) == list(range(24))


def test_minority_class_is_oversampled_in_full_cycles():
    labels = labels_of(40, 5)
    sampler = ClassBalancedBatchSampler(
        labels, 10, num_batches=4, seed=9
    )  # 20 fake slots over 5 fakes
    fake_counts = Counter(i for batch in sampler for i in batch if labels[i] == 1)
    assert set(fake_counts.values()) == {4}


def test_unknown_class_in_proportions_is_an_error():
    with pytest.raises(ValueError, match=r"\[2\]"):
        ClassBalancedBatchSampler(labels_of(3, 3), 2, class_proportions={0: 1, 1: 1, 2: 1})


# -- domain weights ----------------------------------------------------------------------------
DOMAINS = np.array(["aegis"] * 50 + ["dvf"] * 200 + ["genvideo"] * 300, dtype=object)
WEIGHTS = {"aegis": 0.5, "dvf": 0.3, "genvideo": 0.2}


def test_domain_frequencies_follow_the_weights_over_many_batches():
    sampler = DomainWeightedBatchSampler(
        DOMAINS, 24, domain_weights=WEIGHTS, num_batches=1500, seed=4
    )
    counts = Counter(DOMAINS[i] for batch in sampler for i in batch)
    total = sum(counts.values())
    assert total == 1500 * 24
    for domain, weight in WEIGHTS.items():
        assert abs(counts[domain] / total - weight) < 0.01, (domain, counts[domain] / total)


def test_domain_draws_vary_between_batches_but_quota_mode_is_fixed():
    drawn = DomainWeightedBatchSampler(DOMAINS, 24, domain_weights=WEIGHTS, num_batches=50, seed=1)
    compositions = {tuple(sorted(Counter(DOMAINS[b]).items())) for b in drawn}
    assert len(compositions) > 1
    fixed = DomainWeightedBatchSampler(
        DOMAINS, 24, domain_weights=WEIGHTS, composition="quota", num_batches=50, seed=1
    )
    for batch in fixed:
        assert Counter(DOMAINS[batch].tolist()) == {"aegis": 12, "dvf": 7, "genvideo": 5}


def test_domain_weights_must_name_every_domain_of_the_dataset():
    with pytest.raises(ValueError, match="genvideo"):
        DomainWeightedBatchSampler(DOMAINS, 24, domain_weights={"aegis": 0.5, "dvf": 0.5})
    with pytest.raises(ValueError, match="ff"):
        DomainWeightedBatchSampler(DOMAINS, 24, domain_weights={**WEIGHTS, "ff": 0.1})


# -- generator quotas --------------------------------------------------------------------------
@FAST
@given(
    real_gens=st.lists(st.integers(1, 15), min_size=1, max_size=3),
    fake_gens=st.lists(st.integers(1, 15), min_size=1, max_size=6),
    half=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
)
def test_generator_quotas_hold_in_every_batch_and_over_the_epoch(real_gens, fake_gens, half, seed):
    labels, generators = [], []
    for label, sizes in ((0, real_gens), (1, fake_gens)):
        for g, size in enumerate(sizes):
            labels += [label] * size
            generators += [f"{label}-gen{g}"] * size
    labels, generators = np.array(labels), np.array(generators, dtype=object)
    sampler = GeneratorQuotaBatchSampler(labels, generators, 2 * half, seed=seed, num_batches=7)
    epoch_counts: Counter = Counter()
    for batch in sampler:
        assert Counter(labels[batch].tolist()) == {0: half, 1: half}
        per_generator = Counter(generators[batch].tolist())
        epoch_counts.update(per_generator)
        for label, sizes in ((0, real_gens), (1, fake_gens)):
            shares = [per_generator.get(f"{label}-gen{g}", 0) for g in range(len(sizes))]
            assert (
                max(shares) - min(shares) <= 1
            )  # equal share within the class, up to the odd slot
    for label, sizes in ((0, real_gens), (1, fake_gens)):
        totals = [epoch_counts.get(f"{label}-gen{g}", 0) for g in range(len(sizes))]
        assert (
            max(totals) - min(totals) <= 1
        )  # round-robin: the odd slots are spread over the epoch


def test_generator_quota_needs_matching_lengths():
    with pytest.raises(ValueError, match="generators"):
        GeneratorQuotaBatchSampler([0, 1], ["a"], 2)


def test_generator_quotas_apply_within_each_domain():
    """`sora` of two domains is two generators, each with its share of the fake slots."""
    labels = np.array([1] * 12 + [0] * 12)
    generators = np.array(["sora"] * 6 + ["kling"] * 6 + ["camera"] * 12, dtype=object)
    domains = np.array(
        ["aegis"] * 3 + ["dvf"] * 3 + ["aegis"] * 6 + ["aegis"] * 6 + ["dvf"] * 6, dtype=object
    )
    pooled = GeneratorQuotaBatchSampler(labels, generators, 6, seed=0, num_batches=60)
    per_domain = GeneratorQuotaBatchSampler(
        labels, generators, 6, seed=0, num_batches=60, domains=domains
    )

    def fake_shares(sampler) -> Counter:
        picked = [i for batch in sampler.epoch_batches(0) for i in batch if labels[i] == 1]
        return Counter(f"{domains[i]}/{generators[i]}" for i in picked)

    assert fake_shares(per_domain) == {"aegis/sora": 60, "dvf/sora": 60, "aegis/kling": 60}
    pooled_shares = fake_shares(pooled)  # sora pooled by name: half of the fake slots in all
    assert (
        pooled_shares["aegis/sora"] + pooled_shares["dvf/sora"]
        == pooled_shares["aegis/kling"]
        == 90
    )


def test_weighted_random_draws_with_replacement_by_inverse_class_frequency():
    labels = labels_of(20, 80)  # 1:4 imbalance, as the DFD card's 363 real / 3068 fake
    sampler = WeightedRandomBatchSampler(labels, 16, seed=42, num_batches=500)
    drawn = np.concatenate([np.asarray(b) for b in sampler.epoch_batches(0)])
    assert len(drawn) == 8000
    real_share = float(np.mean(labels[drawn] == 0))
    assert abs(real_share - 0.5) < 0.03  # classes equal on average, not 20%
    per_clip = np.bincount(drawn, minlength=100)
    assert (
        abs(per_clip[:20].mean() / per_clip[20:].mean() - 4.0) < 0.4
    )  # each real clip 4x as often
    assert any(len(set(b)) < len(b) for b in sampler.epoch_batches(0))  # with replacement
    assert sampler.epoch_batches(0) == WeightedRandomBatchSampler(
        labels, 16, seed=42, num_batches=500
    ).epoch_batches(0)


# -- determinism, ranks, resume (shared base class; checked on every sampler) ------------------
def make_sampler(
    kind: str, *, seed: int = 7, rank: int = 0, world_size: int = 1, num_batches: int = 12
):
    labels = labels_of(30, 42)
    if kind == "class":
        return ClassBalancedBatchSampler(
            labels, 6, seed=seed, rank=rank, world_size=world_size, num_batches=num_batches
        )
    if kind == "domain":
        domains = np.array(["a", "b", "c"] * 24, dtype=object)
        return DomainWeightedBatchSampler(
            domains,
            6,
            domain_weights={"a": 2, "b": 1, "c": 1},
            seed=seed,
            rank=rank,
            world_size=world_size,
            num_batches=num_batches,
        )
    if kind == "weighted":
        return WeightedRandomBatchSampler(
            labels, 6, seed=seed, rank=rank, world_size=world_size, num_batches=num_batches
        )
    generators = np.array([f"g{i % 4}" for i in range(len(labels))], dtype=object)
    return GeneratorQuotaBatchSampler(
        labels, generators, 6, seed=seed, rank=rank, world_size=world_size, num_batches=num_batches
    )


KINDS = ["class", "domain", "generator", "weighted"]


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_and_epoch_give_the_same_batches_and_other_epochs_differ(kind):
    first, second = make_sampler(kind), make_sampler(kind)
    first.set_epoch(3)
    second.set_epoch(3)
    assert list(first) == list(second)
    assert list(first) == list(first)  # iterating again repeats the epoch
    second.set_epoch(4)
    assert list(second) != list(first)
    assert list(make_sampler(kind, seed=8)) != list(make_sampler(kind, seed=7))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("world_size", [2, 3, 5])
def test_ranks_get_disjoint_equal_parts_covering_the_epoch(kind, world_size):
    reference = make_sampler(kind, num_batches=13)
    reference.set_epoch(2)
    everything = reference.epoch_batches(2)
    parts = []
    for rank in range(world_size):
        sampler = make_sampler(kind, rank=rank, world_size=world_size, num_batches=13)
        sampler.set_epoch(2)
        parts.append(list(sampler))
        assert len(parts[-1]) == len(sampler) == 13 // world_size
    positions = [[everything.index(b) for b in part] for part in parts]
    flat = [p for part in positions for p in part]
    assert len(set(flat)) == len(flat)  # disjoint
    assert sorted(flat) == list(
        range(13 // world_size * world_size)
    )  # drop-last union covers the epoch


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("world_size,consumed", [(1, 0), (1, 5), (2, 3), (3, 4), (2, 6)])
def test_resume_from_state_gives_exactly_the_remaining_batches(kind, world_size, consumed):
    for rank in range(world_size):
        original = make_sampler(kind, rank=rank, world_size=world_size)
        original.set_epoch(5)
        full = list(original)
        running = make_sampler(kind, rank=rank, world_size=world_size)
        running.set_epoch(5)
        iterator = iter(running)
        head = [next(iterator) for _ in range(min(consumed + 2, len(full)))]  # a loader runs ahead
        state = running.state_dict(batches_consumed=consumed)
        assert head[:consumed] == full[:consumed]
        resumed = make_sampler(kind, rank=rank, world_size=world_size)
        resumed.load_state_dict(state)
        resumed.set_epoch(5)  # the usual call at the top of the epoch loop keeps the resume point
        assert len(resumed) == len(full) - consumed
        assert list(resumed) == full[consumed:]
        assert list(resumed) == full  # the next pass over the same epoch starts from its beginning


def test_resume_with_a_different_world_size_continues_the_global_order():
    ranks = [make_sampler("class", rank=r, world_size=2) for r in range(2)]
    for sampler in ranks:
        iterator = iter(sampler)
        for _ in range(2):
            next(iterator)
    state = ranks[0].state_dict()
    assert state == ranks[1].state_dict() and state["global_batches_done"] == 4
    single = make_sampler("class")
    single.load_state_dict(state)
    assert list(single) == single.epoch_batches(0)[4:]


def test_a_new_epoch_drops_the_resume_point():
    sampler = make_sampler("class")
    sampler.load_state_dict({**make_sampler("class").state_dict(), "global_batches_done": 6})
    sampler.set_epoch(1)
    assert list(sampler) == sampler.epoch_batches(1)


def test_state_from_another_sampler_or_seed_is_refused():
    state = make_sampler("class").state_dict()
    with pytest.raises(ValueError, match="seed"):
        make_sampler("class", seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="sampler"):
        make_sampler("domain").load_state_dict(state)
    with pytest.raises(ValueError, match="batches_consumed"):
        make_sampler("class").state_dict(batches_consumed=1)  # nothing handed out yet


def test_too_few_batches_for_the_ranks_is_an_error():
    with pytest.raises(ValueError, match="cannot feed 4 ranks"):
        make_sampler("class", world_size=4, rank=1, num_batches=3)
    with pytest.raises(ValueError, match="rank 2"):
        make_sampler("class", world_size=2, rank=2)
