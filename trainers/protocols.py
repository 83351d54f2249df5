"""The evaluation protocols as pure functions over per-clip model outputs (numpy arrays).

- Prototype protocol (R(2+1)D card): per domain, the real and the fake prototype are the
  L2-normalised means of the L2-normalised embeddings of that domain's support clips; a
  query clip scores `sim_fake - sim_real` (cosine similarities) against its own domain's
  prototypes and is called fake when the score >= threshold (0.0 on the card). AUROC, EER
  and accuracy per domain. As an option the prototypes are pooled across domains.
- Softmax protocols: P(fake) = softmax(logits)[:, 1]; the clip is called fake when P(fake)
  > 0.5 (the argmax). Rank metrics (AUROC, EER) use the logit margin `logit_fake -
  logit_real`, which orders clips exactly as P(fake) but never saturates to ties. The
  benchmark protocol of the multi-modal card groups by dataset and adds accuracy, MCC,
  Brier, cross-entropy and the combined score, plus inference time per clip.

Inference lives in `vfcache.trainers.evaluate`; this module never touches a model or a file.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np
from vfcache.trainers import metrics

log = logging.getLogger(__name__)

ALL_ROW = "all"


@dataclass(frozen=True)
class ModelOutputs:
    """What a model produced for each clip of an evaluated dataset, in dataset order."""

    clip_ids: tuple[str, ...]
    labels: np.ndarray  # int64 (N,), 1 = fake
    domains: np.ndarray  # object (N,)
    datasets: np.ndarray  # object (N,)
    generators: np.ndarray  # object (N,)
    logits: Optional[np.ndarray]  # float32 (N, C), columns (real, fake); None for a one-class model
    embeddings: Optional[np.ndarray]  # float32 (N, E) or None when the model has no embedding
    seconds_per_clip: np.ndarray  # float64 (N,): forward time of the clip's batch / batch size
    scores: Optional[np.ndarray] = None  # float64 (N,): anomaly scores of a one-class model


@dataclass(frozen=True)
class Prototypes:
    domain: str
    real: np.ndarray  # (E,), unit norm
    fake: np.ndarray
    num_real: int  # support clips behind each prototype
    num_fake: int

    @property
    def cosine_real_fake(self) -> float:
        """How close the two prototypes are (the card notes they are close)."""
        return float(self.real @ self.fake)


@dataclass(frozen=True)
class DetectionRow:
    """Metrics of one group of clips (a domain, a dataset, or `all`); None where undefined
    (rank metrics need both classes) or not part of the protocol (Brier needs probabilities)."""

    name: str
    num_clips: int
    num_real: int
    num_fake: int
    accuracy: float
    mcc: Optional[float]  # None for a group of one class
    auroc: Optional[float]
    eer: Optional[float]
    brier: Optional[float] = None
    cross_entropy: Optional[float] = None
    combined_score: Optional[float] = None
    precision: Optional[float] = None  # the anomaly protocol's extra rates
    recall: Optional[float] = None
    f1: Optional[float] = None
    fpr: Optional[float] = None


@dataclass(frozen=True)
class InferenceTiming:
    mean_ms_per_clip: float
    p95_ms_per_clip: float
    num_clips: int


@dataclass(frozen=True)
class ProtocolResult:
    protocol: str  # prototype | softmax | benchmark
    group_by: str  # domain | dataset
    rows: tuple[DetectionRow, ...]  # one per group (sorted), then `all`
    scores: np.ndarray  # the per-clip score the rows were computed from
    predictions: np.ndarray  # 0/1 per clip
    prob_fake: Optional[np.ndarray]  # softmax protocols only
    groups: np.ndarray  # the group of each clip
    labels: np.ndarray
    clip_ids: tuple[str, ...]
    threshold: float
    timing: Optional[InferenceTiming] = None
    prototypes: tuple[Prototypes, ...] = ()
    # each fake generator of a domain against all that domain's real clips (DVF's test rule)
    generator_rows: tuple[DetectionRow, ...] = ()
    score_stats: tuple["ScoreStats", ...] = ()  # anomaly protocol: score distributions

    def row(self, name: str) -> DetectionRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no row {name!r}; rows are {[r.name for r in self.rows]}")


def l2_normalise(vectors: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, eps)


def build_prototypes(
    embeddings: np.ndarray, labels: np.ndarray, domains: Sequence[str]
) -> dict[str, Prototypes]:
    """Per domain: normalised mean of the normalised embeddings of each class."""
    embeddings = l2_normalise(embeddings)
    labels = np.asarray(labels)
    domains = np.asarray(domains, dtype=object)
    if embeddings.ndim != 2 or len(embeddings) != len(labels) or len(labels) != len(domains):
        raise ValueError(
            f"support embeddings {embeddings.shape}, {len(labels)} labels and "
            f"{len(domains)} domains do not line up"
        )
    prototypes = {}
    for domain in sorted(set(domains.tolist())):
        in_domain = domains == domain
        real, fake = in_domain & (labels == 0), in_domain & (labels == 1)
        if not real.any() or not fake.any():
            raise ValueError(
                f"support bank of domain {domain!r} has {int(real.sum())} real and "
                f"{int(fake.sum())} fake clips; the prototype protocol needs both"
            )
        prototypes[domain] = Prototypes(
            domain=domain,
            real=l2_normalise(embeddings[real].mean(axis=0)),
            fake=l2_normalise(embeddings[fake].mean(axis=0)),
            num_real=int(real.sum()),
            num_fake=int(fake.sum()),
        )
    return prototypes


def prototype_scores(
    embeddings: np.ndarray, domains: Sequence[str], prototypes: Mapping[str, Prototypes]
) -> np.ndarray:
    """`cos(e, fake prototype) - cos(e, real prototype)` against each clip's own domain."""
    embeddings = l2_normalise(embeddings)
    domains = np.asarray(domains, dtype=object)
    missing = sorted(set(domains.tolist()) - set(prototypes))
    if missing:
        raise ValueError(
            f"query domains {missing} have no prototypes; the support bank covers "
            f"{sorted(prototypes)}"
        )
    scores = np.empty(len(domains), dtype=np.float64)
    for domain, proto in prototypes.items():
        rows = domains == domain
        scores[rows] = embeddings[rows] @ proto.fake - embeddings[rows] @ proto.real
    return scores


def softmax_fake_probability(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise ValueError(f"expected (N, 2) logits (real, fake), got shape {logits.shape}")
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp[:, 1] / exp.sum(axis=1)


def detection_row(
    name: str,
    labels: np.ndarray,
    scores: np.ndarray,
    predictions: np.ndarray,
    prob_fake: Optional[np.ndarray] = None,
) -> DetectionRow:
    labels = np.asarray(labels, dtype=np.int64)
    num_fake = int(labels.sum())
    both = 0 < num_fake < len(labels)
    # MCC (and the combined score built on it) means nothing for a group of one class, such
    # as most of GASBench's datasets: n/a rather than a number
    row = dict(
        name=name,
        num_clips=len(labels),
        num_real=len(labels) - num_fake,
        num_fake=num_fake,
        accuracy=metrics.accuracy(labels, predictions),
        mcc=metrics.mcc(labels, predictions) if both else None,
        auroc=metrics.auroc(labels, scores) if both else None,
        eer=metrics.eer(labels, scores) if both else None,
    )
    if prob_fake is not None:
        brier = metrics.brier(labels, prob_fake)
        row.update(
            brier=brier,
            cross_entropy=metrics.binary_cross_entropy(labels, prob_fake),
            combined_score=metrics.combined_score(row["mcc"], brier) if both else None,
        )
    return DetectionRow(**row)


def grouped_rows(
    groups: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    predictions: np.ndarray,
    prob_fake: Optional[np.ndarray] = None,
) -> tuple[DetectionRow, ...]:
    """One row per group (sorted by name) and a last row `all` over every clip."""
    groups = np.asarray(groups, dtype=object)
    rows = []
    for name in sorted(set(groups.tolist())):
        pick = groups == name
        rows.append(
            detection_row(
                str(name),
                labels[pick],
                scores[pick],
                predictions[pick],
                None if prob_fake is None else prob_fake[pick],
            )
        )
    rows.append(detection_row(ALL_ROW, labels, scores, predictions, prob_fake))
    return tuple(rows)


def fake_generator_rows(
    domains: np.ndarray,
    generators: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    predictions: np.ndarray,
    prob_fake: Optional[np.ndarray] = None,
) -> tuple[DetectionRow, ...]:
    """One row `<domain>/<generator>` per fake generator: its fakes scored against every real
    clip of the domain, the paper's protocol for DVF (one real pool, each fake class against it)."""
    domains = np.asarray(domains, dtype=object)
    generators = np.asarray(generators, dtype=object)
    rows = []
    for domain in sorted(set(domains.tolist())):
        in_domain = domains == domain
        reals = in_domain & (labels == 0)
        for generator in sorted(set(generators[in_domain & (labels == 1)].tolist())):
            pick = reals | (in_domain & (labels == 1) & (generators == generator))
            rows.append(
                detection_row(
                    f"{domain}/{generator}",
                    labels[pick],
                    scores[pick],
                    predictions[pick],
                    None if prob_fake is None else prob_fake[pick],
                )
            )
    return tuple(rows)


def inference_timing(seconds_per_clip: np.ndarray) -> Optional[InferenceTiming]:
    seconds = np.asarray(seconds_per_clip, dtype=np.float64)
    if seconds.size == 0 or not np.all(np.isfinite(seconds)):
        return None
    return InferenceTiming(
        mean_ms_per_clip=float(seconds.mean() * 1e3),
        p95_ms_per_clip=float(np.percentile(seconds, 95) * 1e3),
        num_clips=int(seconds.size),
    )


PROTOTYPE_POOLING = ("per_domain", "pooled")
POOLED_DOMAIN = "pooled"  # the one prototype pair's name with `pooling: pooled`


def prototype_protocol(
    query: ModelOutputs,
    support: ModelOutputs,
    *,
    threshold: float = 0.0,
    pooling: str = "per_domain",
) -> ProtocolResult:
    """`pooling: per_domain` (the card): each query clip against its own domain's prototypes;
    `pooled`: one real and one fake prototype from the whole support bank, for every query
    clip (rows are still reported per domain)."""
    if pooling not in PROTOTYPE_POOLING:
        raise ValueError(f"prototype pooling must be one of {PROTOTYPE_POOLING}, got {pooling!r}")
    if query.embeddings is None or support.embeddings is None:
        raise ValueError(
            "the prototype protocol needs embeddings; this model returns none "
            "(use the benchmark protocol, or a model with a projection head)"
        )
    support_domains, query_domains = support.domains, query.domains
    if pooling == "pooled":
        support_domains = np.full(len(support.labels), POOLED_DOMAIN, dtype=object)
        query_domains = np.full(len(query.labels), POOLED_DOMAIN, dtype=object)
    prototypes = build_prototypes(support.embeddings, support.labels, support_domains)
    scores = prototype_scores(query.embeddings, query_domains, prototypes)
    predictions = (scores >= threshold).astype(np.int64)
    return ProtocolResult(
        protocol="prototype",
        group_by="domain",
        rows=grouped_rows(query.domains, query.labels, scores, predictions),
        scores=scores,
        predictions=predictions,
        prob_fake=None,
        groups=query.domains,
        labels=query.labels,
        clip_ids=query.clip_ids,
        threshold=threshold,
        timing=inference_timing(query.seconds_per_clip),
        prototypes=tuple(prototypes[d] for d in sorted(prototypes)),
        generator_rows=fake_generator_rows(
            query.domains, query.generators, query.labels, scores, predictions
        ),
    )


@dataclass(frozen=True)
class ScoreStats:
    """Anomaly scores of one group: real and fake mean and standard deviation, and their ratio
    (the TimeSformer card: real 0.1445 +- 0.0846, fake 0.5559 +- 0.0949, ratio 3.85)."""

    name: str
    real_mean: Optional[float]
    real_std: Optional[float]
    fake_mean: Optional[float]
    fake_std: Optional[float]
    separation_ratio: Optional[float]  # fake mean / real mean


def score_stats(name: str, labels: np.ndarray, scores: np.ndarray) -> ScoreStats:
    real, fake = scores[labels == 0], scores[labels == 1]

    def stat(values: np.ndarray, fn) -> Optional[float]:
        return float(fn(values)) if len(values) else None

    ratio = (
        float(fake.mean() / real.mean()) if len(real) and len(fake) and real.mean() > 0 else None
    )
    return ScoreStats(
        name,
        stat(real, np.mean),
        stat(real, np.std),
        stat(fake, np.mean),
        stat(fake, np.std),
        ratio,
    )


def best_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold (fake when score >= it) that maximises TPR - FPR (Youden's J) on a
    calibration set with both classes; ties go to the lowest threshold."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.min() == labels.max():
        raise ValueError("choosing an anomaly threshold needs real and fake calibration clips")
    candidates = np.unique(scores)
    positives, negatives = labels.sum(), (1 - labels).sum()
    best, best_j = float(candidates[0]), -np.inf
    for threshold in candidates:
        predicted = scores >= threshold
        j = (predicted & (labels == 1)).sum() / positives - (
            predicted & (labels == 0)
        ).sum() / negatives
        if j > best_j:
            best, best_j = float(threshold), j
    return best


def _rates(labels: np.ndarray, predictions: np.ndarray) -> dict:
    tp = int(((predictions == 1) & (labels == 1)).sum())
    fp = int(((predictions == 1) & (labels == 0)).sum())
    fn = int(((predictions == 0) & (labels == 1)).sum())
    tn = int(((predictions == 0) & (labels == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall > 0
        else None
    )
    return dict(precision=precision, recall=recall, f1=f1, fpr=fp / (fp + tn) if fp + tn else None)


def anomaly_protocol(
    query: ModelOutputs,
    *,
    threshold: Optional[float] = None,
    calibration: Optional[ModelOutputs] = None,
) -> ProtocolResult:
    """One-class detection: the score is the model's anomaly score (reconstruction error), fake
    when score >= threshold. The threshold is fixed (`threshold`, e.g. the card's 0.3137) or
    chosen on `calibration` outputs (a validation split with both classes). Per domain: AUROC,
    EER, accuracy, precision, recall, F1 and FPR, and the real and fake score distributions."""
    if query.scores is None:
        raise ValueError(
            "the anomaly protocol needs a model that returns an anomaly score "
            "(a reconstruction error); this one returns none"
        )
    if threshold is None:
        if calibration is None or calibration.scores is None:
            raise ValueError(
                "the anomaly protocol needs a threshold, or calibration clips to choose it"
            )
        threshold = best_threshold(calibration.labels, calibration.scores)
    scores = np.asarray(query.scores, dtype=np.float64)
    labels = np.asarray(query.labels, dtype=np.int64)
    predictions = (scores >= threshold).astype(np.int64)
    rows = []
    names = sorted(set(query.domains.tolist())) + [ALL_ROW]
    for name in names:
        pick = np.ones(len(labels), bool) if name == ALL_ROW else query.domains == name
        row = detection_row(str(name), labels[pick], scores[pick], predictions[pick])
        rows.append(dataclasses.replace(row, **_rates(labels[pick], predictions[pick])))
    return ProtocolResult(
        protocol="anomaly",
        group_by="domain",
        rows=tuple(rows),
        scores=scores,
        predictions=predictions,
        prob_fake=None,
        groups=query.domains,
        labels=labels,
        clip_ids=query.clip_ids,
        threshold=float(threshold),
        timing=inference_timing(query.seconds_per_clip),
        generator_rows=fake_generator_rows(
            query.domains, query.generators, labels, scores, predictions
        ),
        score_stats=tuple(
            score_stats(str(name), labels[pick], scores[pick])
            for name, pick in [
                (n, np.ones(len(labels), bool) if n == ALL_ROW else query.domains == n)
                for n in names
            ]
        ),
    )


def softmax_protocol(
    query: ModelOutputs, *, group_by: str = "domain", protocol: str = "softmax"
) -> ProtocolResult:
    if group_by not in ("domain", "dataset"):
        raise ValueError(f"group_by must be 'domain' or 'dataset', got {group_by!r}")
    logits = np.asarray(query.logits, dtype=np.float64)
    prob_fake = softmax_fake_probability(logits)
    margin = logits[:, 1] - logits[:, 0]
    predictions = (margin > 0).astype(np.int64)  # argmax; a tie goes to real, as argmax does
    groups = query.domains if group_by == "domain" else query.datasets
    return ProtocolResult(
        protocol=protocol,
        group_by=group_by,
        rows=grouped_rows(groups, query.labels, margin, predictions, prob_fake),
        scores=margin,
        predictions=predictions,
        prob_fake=prob_fake,
        groups=groups,
        labels=query.labels,
        clip_ids=query.clip_ids,
        threshold=0.0,
        timing=inference_timing(query.seconds_per_clip),
        generator_rows=fake_generator_rows(
            query.domains, query.generators, query.labels, margin, predictions, prob_fake
        ),
    )


def benchmark_protocol(query: ModelOutputs) -> ProtocolResult:
    """The multi-modal card's benchmark: softmax probabilities, per-dataset breakdown."""
    return softmax_protocol(query, group_by="dataset", protocol="benchmark")


def metric_value(row: DetectionRow, metric: str) -> Optional[float]:
    """A row's value of a selection metric, oriented so that higher is better."""
    if metric == "eer":
        return None if row.eer is None else 1.0 - row.eer
    if metric == "combined":
        return row.combined_score
    if metric in ("auroc", "accuracy", "mcc"):
        return getattr(row, metric)
    raise ValueError(f"unknown selection metric {metric!r}")


def selection_score(
    result: ProtocolResult, metric: str, domain_weights: Optional[Mapping[str, float]] = None
) -> float:
    """Weighted mean of `metric` over the groups (`domain_weights`, default equal); groups
    where the metric is undefined (one class only) are left out with a warning."""
    rows = [row for row in result.rows if row.name != ALL_ROW]
    names = {row.name for row in rows}
    if domain_weights is not None:
        absent = sorted(set(domain_weights) - names)
        if absent:
            raise ValueError(
                f"selection weights name domains {absent} that the validation "
                f"clips do not have ({sorted(names)})"
            )
    total = weight_sum = 0.0
    for row in rows:
        weight = 1.0 if domain_weights is None else float(domain_weights.get(row.name, 0.0))
        value = metric_value(row, metric)
        if weight <= 0:
            continue
        if value is None or not math.isfinite(value):
            log.warning(
                "selection metric %s is undefined for %s (%d real, %d fake); left out",
                metric,
                row.name,
                row.num_real,
                row.num_fake,
            )
            continue
        total += weight * value
        weight_sum += weight
    if weight_sum == 0:
        raise ValueError(
            f"selection metric {metric} is undefined for every weighted group of "
            f"{sorted(names)}; each needs real and fake validation clips"
        )
    return total / weight_sum
