"""Tests for vfcache.trainers.losses against direct loop formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from vfcache.trainers.losses import (
    CARD_DOMAIN_LOSS_WEIGHTS,
    SupConLoss,
    WeightedCrossEntropy,
    domain_sample_weights,
    weighted_cross_entropy,
)


def supcon_by_loops(
    z: torch.Tensor, labels: list[int], temperature: float, weights: list[float] | None = None
) -> float:
    """Khosla et al. L_out, written anchor by anchor in float64."""
    z = z.double()
    n = len(labels)
    total, weight_sum = 0.0, 0.0
    for i in range(n):
        positives = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(math.exp(float(z[i] @ z[a]) / temperature) for a in range(n) if a != i)
        anchor = -sum(
            math.log(math.exp(float(z[i] @ z[p]) / temperature) / denominator) for p in positives
        ) / len(positives)
        w = 1.0 if weights is None else weights[i]
        total += w * anchor
        weight_sum += w
    return total / weight_sum


@pytest.mark.parametrize("temperature", [0.07, 0.5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_supcon_matches_loop_formula(temperature, seed):
    generator = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(9, 6, generator=generator), dim=1)
    labels = [0, 1, 1, 0, 2, 1, 0, 0, 1]  # label 2 is an anchor without positives
    weights = [0.5, 0.3, 0.2, 0.5, 0.3, 0.2, 0.5, 0.3, 0.2]
    loss = SupConLoss(temperature)
    got = loss(z, torch.tensor(labels))
    assert got.item() == pytest.approx(supcon_by_loops(z, labels, temperature), rel=1e-5)
    got_weighted = loss(z, torch.tensor(labels), torch.tensor(weights))
    expected = supcon_by_loops(z, labels, temperature, weights)
    assert got_weighted.item() == pytest.approx(expected, rel=1e-5)
    assert abs(got_weighted.item() - got.item()) > 1e-6  # weights really change the loss


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.integers(0, 2), min_size=2, max_size=12),
    seed=st.integers(0, 10_000),
    data=st.data(),
)
def test_supcon_property_against_loops(labels, seed, data):
    generator = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(len(labels), 5, generator=generator, dtype=torch.float64), dim=1)
    weights = data.draw(st.lists(st.floats(0.05, 2.0), min_size=len(labels), max_size=len(labels)))
    has_pair = any(labels.count(v) > 1 for v in labels)
    got = SupConLoss(0.2)(z, torch.tensor(labels), torch.tensor(weights, dtype=torch.float64))
    if has_pair:
        assert got.item() == pytest.approx(supcon_by_loops(z, labels, 0.2, weights), rel=1e-9)
    else:
        assert got.item() == 0.0


def test_supcon_is_zero_but_differentiable_without_positives():
    z = F.normalize(torch.randn(3, 4), dim=1).requires_grad_(True)
    loss = SupConLoss()(z, torch.tensor([0, 1, 2]))
    loss.backward()
    assert loss.item() == 0.0 and z.grad is not None


def test_supcon_gradient_pulls_positives_together():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], requires_grad=True)
    SupConLoss(0.5)(z, torch.tensor([0, 0, 1])).backward()
    # anchor 0's positive is sample 1 along +y: descending the gradient moves z0 towards it
    assert z.grad[0, 1] < 0


def test_supcon_validates_inputs():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        SupConLoss(0.0)
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        SupConLoss()(torch.randn(4), torch.zeros(4))
    with pytest.raises(ValueError, match="labels hold 3 values for a batch of 4"):
        SupConLoss()(z, torch.zeros(3))
    with pytest.raises(ValueError, match="finite and >= 0"):
        SupConLoss()(z, torch.zeros(4), torch.tensor([1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="sum to 0"):
        SupConLoss()(z, torch.tensor([0, 0, 1, 1]), torch.zeros(4))


def test_domain_sample_weights_use_the_card_values():
    weights = domain_sample_weights(["aegis", "dvf", "genvideo", "aegis"], CARD_DOMAIN_LOSS_WEIGHTS)
    torch.testing.assert_close(weights, torch.tensor([0.5, 0.3, 0.2, 0.5]))
    with pytest.raises(ValueError, match=r"no loss weight for domains \['ff\+\+'\]"):
        domain_sample_weights(["dvf", "ff++"], CARD_DOMAIN_LOSS_WEIGHTS)
    with pytest.raises(ValueError, match="domain 'dvf' must be >= 0"):
        domain_sample_weights(["dvf"], {"dvf": -1.0})


def ce_by_loops(
    logits: torch.Tensor,
    targets: list[int],
    class_weights: list[float],
    smoothing: float,
    sample_weights: list[float] | None = None,
) -> float:
    num_classes = logits.shape[1]
    numerator, denominator = 0.0, 0.0
    for i, y in enumerate(targets):
        log_p = torch.log_softmax(logits[i].double(), dim=0)
        nll = -float(log_p[y])
        smooth = -sum(class_weights[c] * float(log_p[c]) for c in range(num_classes))
        per_sample = (1 - smoothing) * class_weights[y] * nll + smoothing / num_classes * smooth
        s = 1.0 if sample_weights is None else sample_weights[i]
        numerator += s * per_sample
        denominator += s * class_weights[y]
    return numerator / denominator


def test_weighted_cross_entropy_matches_loops_and_torch():
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(7, 2, generator=generator) * 3
    targets = [0, 1, 1, 0, 1, 0, 1]
    t = torch.tensor(targets)
    got = weighted_cross_entropy(logits, t)  # card defaults: (1.0, 1.5), smoothing 0.2
    assert got.item() == pytest.approx(ce_by_loops(logits, targets, [1.0, 1.5], 0.2), rel=1e-5)
    torch.testing.assert_close(
        got, F.cross_entropy(logits, t, weight=torch.tensor([1.0, 1.5]), label_smoothing=0.2)
    )
    samples = [0.5, 0.3, 0.2, 0.5, 0.3, 0.2, 0.5]
    got_weighted = WeightedCrossEntropy()(logits, t, torch.tensor(samples))
    expected = ce_by_loops(logits, targets, [1.0, 1.5], 0.2, samples)
    assert got_weighted.item() == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(weighted_cross_entropy(logits, t, sample_weights=torch.ones(7)), got)
    plain = weighted_cross_entropy(logits, t, class_weights=None, label_smoothing=0.0)
    torch.testing.assert_close(plain, F.cross_entropy(logits, t))


def test_weighted_cross_entropy_validates_inputs():
    logits = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="3 class weights for 2 classes"):
        weighted_cross_entropy(logits, torch.zeros(3), class_weights=(1, 1, 1))
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        weighted_cross_entropy(logits, torch.zeros(3), label_smoothing=1.0)
    with pytest.raises(ValueError, match="2 targets for 3 logits rows"):
        weighted_cross_entropy(logits, torch.zeros(2))
    with pytest.raises(ValueError, match="sum to 0"):
        weighted_cross_entropy(logits, torch.zeros(3), sample_weights=torch.zeros(3))


def _card_batch(seed: int = 0):
    """2 AEGIS, 11 DVF and 11 GenVideo clips: the issue's example batch."""
    generator = torch.Generator().manual_seed(seed)
    domains = ["aegis"] * 2 + ["dvf"] * 11 + ["genvideo"] * 11
    labels = torch.tensor([0, 1] + [0, 1] * 5 + [1] + [1, 0] * 5 + [0])
    return domains, labels, generator


def test_domain_shares_weight_each_domains_mean_cross_entropy():
    from vfcache.trainers.losses import domain_share_weights

    domains, labels, generator = _card_batch()
    logits = torch.randn(len(domains), 2, generator=generator)
    class_weights = (1.0, 1.5)
    per_sample = F.cross_entropy(
        logits, labels, weight=torch.tensor(class_weights), reduction="none"
    )
    mass = torch.tensor(class_weights)[labels]
    expected = sum(
        CARD_DOMAIN_LOSS_WEIGHTS[d]
        * per_sample[[i for i, x in enumerate(domains) if x == d]].sum()
        / mass[[i for i, x in enumerate(domains) if x == d]].sum()
        for d in ("aegis", "dvf", "genvideo")
    ) / sum(CARD_DOMAIN_LOSS_WEIGHTS.values())
    shares = domain_share_weights(domains, CARD_DOMAIN_LOSS_WEIGHTS, mass)
    got = weighted_cross_entropy(
        logits, labels, class_weights=class_weights, label_smoothing=0.0, sample_weights=shares
    )
    torch.testing.assert_close(got, expected)
    # per anchor, AEGIS's 2 clips would weigh 0.15 of the batch, not 0.5
    per_anchor = domain_sample_weights(domains, CARD_DOMAIN_LOSS_WEIGHTS)
    share_of = {
        d: float(per_anchor[[i for i, x in enumerate(domains) if x == d]].sum() / per_anchor.sum())
        for d in ("aegis", "dvf", "genvideo")
    }
    assert [round(share_of[d], 2) for d in ("aegis", "dvf", "genvideo")] == [0.15, 0.51, 0.34]
    effective = {
        d: float((shares * mass)[[i for i, x in enumerate(domains) if x == d]].sum())
        for d in ("aegis", "dvf", "genvideo")
    }
    assert effective == pytest.approx({"aegis": 0.5, "dvf": 0.3, "genvideo": 0.2})


def test_domain_shares_of_supcon_count_anchors_with_a_positive():
    from vfcache.trainers.losses import domain_share_weights

    domains, labels, generator = _card_batch(1)
    labels = labels.clone()
    labels[0] = 2  # an AEGIS anchor with no positive: it is left out of AEGIS's mean
    embeddings = F.normalize(torch.randn(len(domains), 8, generator=generator), dim=1)
    loss = SupConLoss(0.07)
    anchors = [
        loss(embeddings, labels, F.one_hot(torch.tensor(i), len(domains)).float())
        for i in range(1, len(domains))
    ]  # l_i of every anchor that has a positive
    anchor_loss = dict(zip(range(1, len(domains)), anchors))
    means = {
        d: torch.stack([anchor_loss[i] for i, x in enumerate(domains) if x == d and i > 0]).mean()
        for d in ("aegis", "dvf", "genvideo")
    }
    expected = sum(CARD_DOMAIN_LOSS_WEIGHTS[d] * means[d] for d in means)
    mass = ((labels[:, None] == labels[None, :]).sum(dim=1) > 1).float()
    got = loss(embeddings, labels, domain_share_weights(domains, CARD_DOMAIN_LOSS_WEIGHTS, mass))
    torch.testing.assert_close(got, expected / sum(CARD_DOMAIN_LOSS_WEIGHTS.values()))
