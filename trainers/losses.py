"""Losses of the card's two recipes.

- `SupConLoss`: supervised contrastive loss (Khosla et al., 2020, the L_out form) on
  L2-normalised embeddings, with optional per-sample weights; the mixed-domain transfer
  weights each anchor by its domain (`domain_sample_weights`, AEGIS 0.5 / DVF 0.3 /
  GenVideo 0.2 in the card).
- `weighted_cross_entropy` / `WeightedCrossEntropy`: the supervised baseline's
  cross-entropy with class weights (1.0 real / 1.5 fake) and label smoothing 0.2, also
  accepting per-sample weights.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

CARD_DOMAIN_LOSS_WEIGHTS: Mapping[str, float] = {"aegis": 0.5, "dvf": 0.3, "genvideo": 0.2}
CARD_CLASS_WEIGHTS: tuple[float, float] = (1.0, 1.5)
CARD_LABEL_SMOOTHING = 0.2


class SupConLoss(nn.Module):
    """Supervised contrastive loss over a batch of embeddings.

    For anchor i, positives P(i) are the other samples with i's label and A(i) all other
    samples:  l_i = -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p / t) / sum_{a in A(i)}
    exp(z_i.z_a / t) ).  Anchors without positives are left out. The batch loss is the
    weighted mean sum_i w_i l_i / sum_i w_i over the anchors that remain (w_i = 1 without
    weights, i.e. the plain mean). With `base_temperature` equal to `temperature`, as here,
    Khosla et al.'s extra factor t / base_t is 1.

    Expects embeddings already L2-normalised (the detectors return them so). A batch in
    which no anchor has a positive gives a zero loss that still backpropagates.
    """

    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.temperature = float(temperature)

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        sample_weights: Optional[torch.Tensor] = None,
        *,
        check: bool = True,
    ) -> torch.Tensor:
        """`check=False` skips the checks that read values back from the device (weights
        finite, >= 0, not all 0): the trainer validates its weights once at setup, so a
        training step never waits on the GPU here. Unchecked, all-zero weights give 0."""
        batch = _check_batch(embeddings, labels, sample_weights, check=check)
        logits = embeddings @ embeddings.T / self.temperature
        self_mask = torch.eye(batch, dtype=torch.bool, device=embeddings.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)

        labels = labels.reshape(-1)
        positive_mask = (labels[:, None] == labels[None, :]) & ~self_mask
        positive_counts = positive_mask.sum(dim=1)
        has_positive = positive_counts > 0
        # Branch-free (no read-back): anchors without a positive get weight 0, and a batch
        # with none at all gives 0 (still attached to the graph).
        # where() instead of a product: the diagonal of log_prob is -inf and -inf * 0 is nan.
        positive_log_prob = torch.where(positive_mask, log_prob, torch.zeros_like(log_prob))
        anchor_loss = -positive_log_prob.sum(dim=1) / positive_counts.clamp_min(1)
        weights = has_positive.to(anchor_loss.dtype)
        if sample_weights is not None:
            weights = weights * sample_weights.reshape(-1).to(anchor_loss.dtype)
        total_weight = weights.sum()
        if (
            check
            and sample_weights is not None
            and bool(has_positive.any())
            and not total_weight > 0
        ):
            raise ValueError("sample_weights of the anchors with positives sum to 0")
        return (weights * anchor_loss).sum() / total_weight.clamp_min(1e-12)


def _check_batch(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    sample_weights: Optional[torch.Tensor],
    *,
    check: bool = True,
) -> int:
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be shaped (B, D), got {tuple(embeddings.shape)}")
    batch = embeddings.shape[0]
    if labels.numel() != batch:
        raise ValueError(f"labels hold {labels.numel()} values for a batch of {batch}")
    if sample_weights is not None:
        if sample_weights.numel() != batch:
            raise ValueError(
                f"sample_weights hold {sample_weights.numel()} values for a batch of {batch}"
            )
        if check and (
            not bool(torch.isfinite(sample_weights).all()) or bool((sample_weights < 0).any())
        ):
            raise ValueError("sample_weights must be finite and >= 0")
    return batch


def domain_sample_weights(
    domains: Sequence[str],
    weights_by_domain: Mapping[str, float],
    *,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """Per-sample weights from each sample's domain, e.g. `CARD_DOMAIN_LOSS_WEIGHTS`."""
    for name, weight in weights_by_domain.items():
        if not weight >= 0:
            raise ValueError(f"loss weight of domain {name!r} must be >= 0, got {weight!r}")
    unknown = sorted(set(domains) - set(weights_by_domain))
    if unknown:
        raise ValueError(
            f"no loss weight for domains {unknown}; weights are given for "
            f"{sorted(weights_by_domain)}"
        )
    return torch.tensor(
        [float(weights_by_domain[d]) for d in domains], dtype=torch.float32, device=device
    )


def domain_share_weights(
    domains: Sequence[str], weights_by_domain: Mapping[str, float], mass: torch.Tensor
) -> torch.Tensor:
    """Per-sample weights that give each domain its share of the loss, as the card means it:
    L = sum_d w_d * mean(loss over d's samples) / sum of w_d over the domains present.

    Sample i of domain d gets w_d / M_d, where M_d is the summed `mass` of d's samples: the
    mass is what the loss's weighted mean divides by per sample (1 for a SupCon anchor with a
    positive and 0 for one without; the class weight of the target for cross-entropy). Fed as
    `sample_weights` to `SupConLoss` or `weighted_cross_entropy`, their weighted mean becomes
    the share-weighted mean. Per-anchor weighting (`domain_sample_weights`) instead gives a
    domain a share proportional to w_d times its count in the batch.
    """
    per_sample = domain_sample_weights(domains, weights_by_domain, device=mass.device).to(
        mass.dtype
    )
    codes = {name: index for index, name in enumerate(sorted(set(domains)))}
    index = torch.tensor([codes[d] for d in domains], device=mass.device)
    totals = torch.zeros(len(codes), dtype=mass.dtype, device=mass.device).index_add_(
        0, index, mass
    )
    denominators = totals[index]
    return torch.where(
        denominators > 0, per_sample / denominators.clamp_min(1e-12), torch.zeros_like(per_sample)
    )


def weighted_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    class_weights: Optional[Sequence[float]] = CARD_CLASS_WEIGHTS,
    label_smoothing: float = CARD_LABEL_SMOOTHING,
    sample_weights: Optional[torch.Tensor] = None,
    check: bool = True,
) -> torch.Tensor:
    """Class-weighted, label-smoothed cross-entropy with optional per-sample weights.

    `check=False` skips the read-back check that the weights do not sum to 0 (see
    `SupConLoss.forward`); unchecked, an all-zero batch gives 0.

    Per sample, with class weights w and smoothing e over C classes:
    l_i = (1 - e) * w[y_i] * -log p_i[y_i] + e / C * sum_c w[c] * -log p_i[c].
    The batch loss is sum_i s_i l_i / sum_i s_i w[y_i] (s_i = sample weight, default 1),
    which without sample weights is exactly `F.cross_entropy(weight=w, label_smoothing=e)`.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be shaped (B, C), got {tuple(logits.shape)}")
    num_classes = logits.shape[1]
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    targets = targets.reshape(-1).long()
    if targets.numel() != logits.shape[0]:
        raise ValueError(f"{targets.numel()} targets for {logits.shape[0]} logits rows")
    if class_weights is None:
        weight = torch.ones(num_classes, dtype=logits.dtype, device=logits.device)
    else:
        if len(class_weights) != num_classes:
            raise ValueError(f"{len(class_weights)} class weights for {num_classes} classes")
        weight = torch.as_tensor(class_weights, dtype=logits.dtype, device=logits.device)
    if sample_weights is None:
        return F.cross_entropy(logits, targets, weight=weight, label_smoothing=label_smoothing)
    if sample_weights.numel() != logits.shape[0]:
        raise ValueError(f"{sample_weights.numel()} sample weights for {logits.shape[0]} rows")
    per_sample = F.cross_entropy(
        logits, targets, weight=weight, label_smoothing=label_smoothing, reduction="none"
    )
    sample_weights = sample_weights.reshape(-1).to(logits.dtype)
    denominator = (sample_weights * weight[targets]).sum()
    if check and not denominator > 0:
        raise ValueError("sample_weights * class_weights of the batch sum to 0")
    return (sample_weights * per_sample).sum() / denominator.clamp_min(1e-12)


class WeightedCrossEntropy(nn.Module):
    """Module form of `weighted_cross_entropy`; defaults are the card's baseline recipe."""

    def __init__(
        self,
        class_weights: Optional[Sequence[float]] = CARD_CLASS_WEIGHTS,
        label_smoothing: float = CARD_LABEL_SMOOTHING,
    ) -> None:
        super().__init__()
        self.class_weights = None if class_weights is None else tuple(map(float, class_weights))
        self.label_smoothing = float(label_smoothing)

    def forward(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        sample_weights: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        return weighted_cross_entropy(
            logits,
            targets,
            class_weights=self.class_weights,
            label_smoothing=self.label_smoothing,
            sample_weights=sample_weights,
        )
