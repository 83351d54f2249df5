"""Detection metrics as pure numpy functions (label 1 = fake is the positive class).

Used by both evaluation protocols: the prototype protocol of the R(2+1)D card (AUROC,
EER, accuracy on scores = sim_fake - sim_real) and the benchmark protocol of the
multi-modal card (accuracy, MCC, Brier, cross-entropy and the combined score on softmax
probabilities of the fake class). No sklearn: AUROC is the rank (Mann-Whitney) statistic
with ties counted one half, EER is read off the ROC polyline where FPR = FNR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class RocCurve:
    """ROC points for thresholds in decreasing order; a sample is called fake when its
    score >= threshold. The first point (threshold +inf) is (0, 0), the last is (1, 1)."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


def _labels(labels: ArrayLike) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {array.shape}")
    if array.dtype == bool:
        return array.astype(np.int64)
    if not np.all((array == 0) | (array == 1)):
        bad = np.unique(array[(array != 0) & (array != 1)])[:5]
        raise ValueError(f"labels must be 0 (real) or 1 (fake), got values {bad.tolist()}")
    return array.astype(np.int64)


def _values(values: ArrayLike, size: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},) like labels, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contain non-finite values (nan or inf)")
    return array


def _probabilities(prob_fake: ArrayLike, size: int) -> np.ndarray:
    array = _values(prob_fake, size, "prob_fake")
    if np.any((array < 0) | (array > 1)):
        raise ValueError(
            f"prob_fake must lie in [0, 1], got range [{array.min()}, {array.max()}]; "
            "pass softmax probabilities, not logits"
        )
    return array


def _require_both_classes(labels: np.ndarray, metric: str) -> tuple[int, int]:
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError(
            f"{metric} needs both classes, got {negatives} real and {positives} fake labels"
        )
    return positives, negatives


def auroc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve: P(score_fake > score_real) + 0.5 P(equal)."""
    y = _labels(labels)
    s = _values(scores, y.size, "scores")
    positives, negatives = _require_both_classes(y, "AUROC")
    ranks = _average_ranks(s)
    rank_sum = ranks[y == 1].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # start of each run of equal values, and the run's average 1-based rank
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.size]
    run_ranks = (starts + 1 + ends) / 2.0
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(run_ranks, ends - starts)
    return ranks


def roc_curve(labels: ArrayLike, scores: ArrayLike) -> RocCurve:
    """One ROC point per distinct score (plus the origin), like sklearn without pruning."""
    y = _labels(labels)
    s = _values(scores, y.size, "scores")
    positives, negatives = _require_both_classes(y, "ROC")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_run = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    true_pos = np.cumsum(y_sorted)[last_of_run]
    false_pos = np.cumsum(1 - y_sorted)[last_of_run]
    return RocCurve(
        fpr=np.r_[0.0, false_pos / negatives],
        tpr=np.r_[0.0, true_pos / positives],
        thresholds=np.r_[np.inf, s_sorted[last_of_run]],
    )


def eer(labels: ArrayLike, scores: ArrayLike) -> float:
    """Equal error rate: where FPR = FNR on the ROC polyline, linearly interpolated
    between the two ROC points that bracket the crossing."""
    curve = roc_curve(labels, scores)
    gap = (1.0 - curve.tpr) - curve.fpr  # FNR - FPR: starts at 1, ends at -1, non-increasing
    k = int(np.argmax(gap <= 0.0))
    if gap[k] == 0.0:
        return float(curve.fpr[k])
    fraction = gap[k - 1] / (gap[k - 1] - gap[k])
    return float(curve.fpr[k - 1] + fraction * (curve.fpr[k] - curve.fpr[k - 1]))


def accuracy(labels: ArrayLike, predictions: ArrayLike) -> float:
    """Share of predictions (0/1) equal to the labels."""
    y = _labels(labels)
    p = _labels(predictions)
    if p.size != y.size:
        raise ValueError(f"{p.size} predictions for {y.size} labels")
    return float(np.mean(y == p))


def mcc(labels: ArrayLike, predictions: ArrayLike) -> float:
    """Matthews correlation of binary predictions, in [-1, 1]; 0 when any margin of the
    confusion matrix is empty (e.g. every prediction is the same class)."""
    y = _labels(labels)
    p = _labels(predictions)
    if p.size != y.size:
        raise ValueError(f"{p.size} predictions for {y.size} labels")
    tp = float(np.sum((y == 1) & (p == 1)))
    tn = float(np.sum((y == 0) & (p == 0)))
    fp = float(np.sum((y == 0) & (p == 1)))
    fn = float(np.sum((y == 1) & (p == 0)))
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    if denominator == 0.0:
        return 0.0
    return (tp * tn - fp * fn) / denominator


def brier(labels: ArrayLike, prob_fake: ArrayLike) -> float:
    """Mean squared error between P(fake) and the label; 0.25 for a constant 0.5."""
    y = _labels(labels)
    p = _probabilities(prob_fake, y.size)
    return float(np.mean((p - y) ** 2))


def binary_cross_entropy(labels: ArrayLike, prob_fake: ArrayLike, eps: float = 1e-7) -> float:
    """Mean negative log-likelihood of the labels, probabilities clipped to [eps, 1 - eps]."""
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps!r}")
    y = _labels(labels)
    p = np.clip(_probabilities(prob_fake, y.size), eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def combined_score(mcc: float, brier: float) -> float:
    """The multi-modal benchmark's score:
    sqrt(((mcc + 1) / 2) ** 1.2 * max(0, (0.25 - brier) / 0.25) ** 1.8)."""
    if not -1.0 <= mcc <= 1.0:
        raise ValueError(f"mcc must be in [-1, 1], got {mcc!r}")
    if not 0.0 <= brier <= 1.0:
        raise ValueError(f"brier must be in [0, 1], got {brier!r}")
    discrimination = (mcc + 1.0) / 2.0
    calibration = max(0.0, (0.25 - brier) / 0.25)
    return math.sqrt(discrimination**1.2 * calibration**1.8)


SN34_ALPHA, SN34_BETA = 1.2, 1.8


def sn34_score(mcc: float, brier: float) -> float:
    """GASBench's sn34 score exactly as its code computes it (`Metrics`, geomean aggregation):
    sqrt(max(1e-12, clip((mcc + 1) / 2, 0, 1) ** 1.2 * max(0, (0.25 - brier) / 0.25) ** 1.8)).
    Unlike `combined_score` it never returns 0 (the 1e-12 floor gives 1e-6)."""
    discrimination = min(1.0, max(0.0, (mcc + 1.0) / 2.0))
    calibration = max(0.0, (0.25 - brier) / 0.25)
    return math.sqrt(max(1e-12, discrimination**SN34_ALPHA * calibration**SN34_BETA))
