"""GASBench's scores of a set of predictions, with GASBench's field names (pure numpy).

What `gasbench run` reports for a video model (its `benchmarks/recording.py`
`compute_metrics_from_df` and `utils/metrics.py` `Metrics`, as studied in
`shared/docs/gasbench.md` section 5): the binary probability of the synthetic class (`p[1]`, or
`1 - p[0]` with three classes), the prediction `argmax != real`, accuracy (its
`benchmark_score` and `overall_score`), MCC (0 when a margin of the confusion matrix is empty, as
its code does, so a one-class dataset has MCC 0 rather than n/a), Brier, cross-entropy clipped
at 1e-7, the sn34 score with its 1e-12 floor, and the mean and p95 of the per-sample inference
time (batch time / batch size). GASBench breaks only accuracy down per dataset; here every
metric is given per dataset as well, under the same names.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from vfcache.trainers import metrics

MEDIA_TYPES = {0: "real", 1: "synthetic"}


def binary_probability(probs: np.ndarray) -> np.ndarray:
    """P(synthetic) from softmax probabilities (N, 2) or (N, 3), as GASBench takes it."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] not in (2, 3):
        raise ValueError(f"expected (N, 2) or (N, 3) probabilities, got shape {probs.shape}")
    return probs[:, 1] if probs.shape[1] == 2 else 1.0 - probs[:, 0]


def binary_prediction(probs: np.ndarray) -> np.ndarray:
    """1 (AI-generated) when the most probable class is not `real` (ties go to real)."""
    return (np.argmax(np.asarray(probs), axis=1) != 0).astype(np.int64)


def score_block(labels: np.ndarray, prob_fake: np.ndarray, predictions: np.ndarray) -> dict:
    labels = np.asarray(labels, dtype=np.int64)
    mcc = metrics.mcc(labels, predictions)
    brier = metrics.brier(labels, prob_fake)
    correct = int(np.sum(labels == predictions))
    return {
        "total": int(labels.size),
        "correct": correct,
        "accuracy": correct / labels.size,
        "mcc": mcc,
        "brier": brier,
        "cross_entropy": metrics.binary_cross_entropy(labels, prob_fake, eps=1e-7),
        "sn34_score": metrics.sn34_score(mcc, brier),
        "real_predictions": int(np.sum(predictions == 0)),
        "synthetic_predictions": int(np.sum(predictions == 1)),
    }


def gasbench_scores(
    labels: Sequence[int],
    probs: np.ndarray,
    datasets: Sequence[str],
    ms_per_sample: Sequence[float],
) -> dict:
    """The results block of a run: overall metrics, `per_dataset`, `accuracy_by_media_type`
    and the inference time, keyed by GASBench's names."""
    labels = np.asarray(labels, dtype=np.int64)
    prob_fake, predictions = binary_probability(probs), binary_prediction(probs)
    datasets = np.asarray(datasets, dtype=object)
    times = np.asarray(ms_per_sample, dtype=np.float64)
    overall = score_block(labels, prob_fake, predictions)
    per_dataset = {
        str(name): score_block(
            labels[datasets == name], prob_fake[datasets == name], predictions[datasets == name]
        )
        for name in sorted(set(datasets.tolist()))
    }
    by_media = {
        MEDIA_TYPES[label]: float(np.mean(predictions[labels == label] == label))
        for label in (0, 1)
        if np.any(labels == label)
    }
    return {
        "overall_score": overall["accuracy"],
        "benchmark_score": overall["accuracy"],
        **overall,
        "avg_inference_time_ms": float(times.mean()) if times.size else None,
        "p95_inference_time_ms": float(np.percentile(times, 95)) if times.size else None,
        "per_dataset": per_dataset,
        "accuracy_by_media_type": by_media,
    }


__all__ = ["binary_prediction", "binary_probability", "gasbench_scores", "score_block"]
