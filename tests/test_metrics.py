"""Tests for vfcache.trainers.metrics: hand-computed cases and pairwise-count invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from vfcache.trainers.metrics import (
    accuracy,
    auroc,
    binary_cross_entropy,
    brier,
    combined_score,
    eer,
    mcc,
    roc_curve,
)


def mann_whitney(labels, scores) -> float:
    fakes = [s for y, s in zip(labels, scores) if y == 1]
    reals = [s for y, s in zip(labels, scores) if y == 0]
    wins = sum(1.0 if f > r else 0.5 if f == r else 0.0 for f in fakes for r in reals)
    return wins / (len(fakes) * len(reals))


def test_auroc_hand_cases():
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # ties: (0.5 vs 0.5) counts one half -> (0.5 + 1 + 1 + 1) / 4
    assert auroc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)
    assert auroc([1, 0, 1, 0], [3, 3, 3, 3]) == pytest.approx(0.5)
    assert auroc(np.array([True, False]), [0.9, 0.1]) == 1.0


labelled_scores = st.integers(2, 30).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        st.lists(st.integers(-5, 5).map(lambda v: v / 4), min_size=n, max_size=n),
    )
)


@settings(max_examples=150, deadline=None)
@given(labelled_scores)
def test_auroc_is_the_pairwise_count(case):
    labels, scores = case
    assume(0 < sum(labels) < len(labels))
    expected = mann_whitney(labels, scores)
    assert auroc(labels, scores) == pytest.approx(expected, abs=1e-12)
    assert auroc(labels, [-s for s in scores]) == pytest.approx(1 - expected, abs=1e-12)
    assert auroc(labels, [math.exp(s) for s in scores]) == pytest.approx(expected, abs=1e-12)
    curve = roc_curve(labels, scores)
    assert np.trapezoid(curve.tpr, curve.fpr) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(labelled_scores)
def test_eer_invariants(case):
    labels, scores = case
    assume(0 < sum(labels) < len(labels))
    value = eer(labels, scores)
    assert 0.0 <= value <= 1.0
    assert eer(labels, [-s for s in scores]) == pytest.approx(1.0 - value, abs=1e-12)
    # every ROC point has one error rate >= EER and one <= EER (the polyline crosses once)
    curve = roc_curve(labels, scores)
    fnr = 1 - curve.tpr
    assert np.max(np.minimum(curve.fpr, fnr)) - 1e-12 <= value
    assert value <= np.min(np.maximum(curve.fpr, fnr)) + 1e-12


def test_roc_curve_hand_case():
    curve = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    np.testing.assert_allclose(curve.fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(curve.tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(curve.thresholds, [np.inf, 0.8, 0.4, 0.35, 0.1])
    tied = roc_curve([0, 1, 1, 0], [0.2, 0.2, 0.9, 0.1])
    np.testing.assert_allclose(tied.fpr, [0, 0, 0.5, 1])
    np.testing.assert_allclose(tied.tpr, [0, 0.5, 1, 1])


def test_eer_hand_cases():
    assert eer([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert eer([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.5)
    assert eer([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    # ROC (0,0) (0,1/3) (1/3,1) ...: FNR - FPR goes 2/3 -> -1/3 on the tied segment,
    # crossing at 2/3 of it, where FPR = FNR = 2/9
    labels = [1, 1, 1, 0, 0, 0]
    scores = [0.9, 0.5, 0.5, 0.5, 0.1, 0.2]
    assert eer(labels, scores) == pytest.approx(2 / 9)
    assert eer([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 1.0


def test_accuracy_and_mcc_hand_cases():
    labels = [1, 1, 1, 0, 0, 0, 0, 1]
    predictions = [1, 0, 1, 0, 0, 1, 0, 1]  # tp 3, fn 1, tn 3, fp 1
    assert accuracy(labels, predictions) == pytest.approx(0.75)
    assert mcc(labels, predictions) == pytest.approx((9 - 1) / 16)
    assert mcc([0, 1, 1], [0, 1, 0]) == pytest.approx((1 * 1 - 0 * 1) / math.sqrt(1 * 2 * 2 * 1))
    assert mcc(labels, labels) == 1.0
    assert mcc(labels, [1 - v for v in labels]) == -1.0
    assert mcc(labels, [1] * 8) == 0.0  # no "real" predictions: undefined, reported as 0


def test_brier_and_cross_entropy_hand_cases():
    assert brier([0, 1, 1], [0.2, 0.7, 1.0]) == pytest.approx((0.04 + 0.09 + 0.0) / 3)
    assert brier([0, 1], [0.5, 0.5]) == pytest.approx(0.25)
    assert binary_cross_entropy([0, 1], [0.2, 0.7]) == pytest.approx(
        -(math.log(0.8) + math.log(0.7)) / 2
    )
    clipped = binary_cross_entropy([0], [1.0], eps=1e-7)
    assert clipped == pytest.approx(-math.log(1e-7), rel=1e-6)


def test_combined_score_hand_cases():
    assert combined_score(1.0, 0.0) == pytest.approx(1.0)
    assert combined_score(-1.0, 0.0) == 0.0
    assert combined_score(0.9, 0.25) == 0.0
    assert combined_score(0.9, 0.4) == 0.0  # worse than chance calibration is floored
    # sqrt(0.75 ** 1.2 * 0.6 ** 1.8) = sqrt(0.708075 * 0.398726)
    assert combined_score(0.5, 0.1) == pytest.approx(0.5313404550753159, rel=1e-9)
    assert combined_score(mcc=0.0, brier=0.0625) == pytest.approx(0.5092571551821692, rel=1e-9)
    with pytest.raises(ValueError, match="mcc must be in"):
        combined_score(1.5, 0.1)
    with pytest.raises(ValueError, match="brier must be in"):
        combined_score(0.5, -0.1)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: auroc([1, 1, 1], [0.1, 0.2, 0.3]),
            "AUROC needs both classes, got 0 real and 3 fake",
        ),
        (lambda: eer([0, 0], [0.1, 0.2]), "ROC needs both classes, got 2 real and 0 fake"),
        (lambda: auroc([0, 2], [0.1, 0.2]), r"0 \(real\) or 1 \(fake\), got values \[2\]"),
        (lambda: auroc([0, 1], [0.1]), r"scores must have shape \(2,\)"),
        (lambda: auroc([0, 1], [0.1, float("nan")]), "non-finite"),
        (lambda: auroc([], []), "non-empty 1-D"),
        (lambda: brier([0, 1], [0.1, 1.2]), "pass softmax probabilities, not logits"),
        (lambda: binary_cross_entropy([0, 1], [0.1, 0.2], eps=0.0), "eps must be in"),
        (lambda: accuracy([0, 1], [0, 1, 1]), "3 predictions for 2 labels"),
        (lambda: mcc([0, 1], [0, 1, 1]), "3 predictions for 2 labels"),
    ],
)
def test_bad_inputs_fail_clearly(call, message):
    with pytest.raises(ValueError, match=message):
        call()
