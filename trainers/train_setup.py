"""The parts a training run is built from: sampler, decoded-clip cache, initial weights, loss.

Small pure-ish builders used by `vfcache.trainers.train`, each reading one section of a TrainConfig.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Optional

import torch
from torch import nn
from vfcache.cache_tools.decoded_cache import budget_bytes_from_gb
from vfcache.trainers.dataset import ClipDataset, open_decode_cache
from vfcache.trainers.distributed import DistInfo, barrier
from vfcache.trainers.losses import (
    SupConLoss,
    domain_sample_weights,
    domain_share_weights,
    weighted_cross_entropy,
)
from vfcache.trainers.models import read_checkpoint, to_detector_output, transfer_backbone
from vfcache.trainers.samplers import (
    ClassBalancedBatchSampler,
    DomainWeightedBatchSampler,
    EpochBatchSampler,
    GeneratorQuotaBatchSampler,
    WeightedRandomBatchSampler,
)
from vfcache.trainers.train_config import OptimizerConfig, TrainConfig, resolve_path

from vfcache.errors import StageError

log = logging.getLogger(__name__)


def learning_rate(opt: OptimizerConfig, step: int, total_steps: int) -> float:
    """Linear warmup over `warmup_steps` (or `warmup_fraction` of `total_steps`, rounded), then
    constant or cosine down to `min_lr`."""
    warmup = opt.warmup_steps or round(opt.warmup_fraction * total_steps)
    if step < warmup:
        return opt.lr * (step + 1) / warmup
    if opt.schedule == "constant":
        return opt.lr
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return opt.min_lr + 0.5 * (opt.lr - opt.min_lr) * (1.0 + math.cos(math.pi * progress))


class LossView(nn.Module):
    """Returns only the output the loss uses (logits or embedding), so DDP sees the heads the
    loss ignores as unused instead of waiting for their gradients."""

    def __init__(self, model: nn.Module, output: str) -> None:
        super().__init__()
        self.model, self.output = model, output

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        value = getattr(to_detector_output(self.model(clips)), self.output)
        if value is None:
            raise ValueError(
                f"{type(self.model).__name__} returns no {self.output}, which the "
                "loss needs (SupCon: a projection head's embedding; cross-entropy: "
                "logits; reconstruction: an anomaly score)"
            )
        return value


def loss_head(config: TrainConfig) -> str:
    return {"supcon": "embedding", "reconstruction": "score"}.get(config.loss.kind, "logits")


def has_unused_trainable_head(model: nn.Module, head: str) -> bool:
    """Whether a trainable head lies off the loss path (tiny3d's proj_head under cross-entropy,
    a trainable fc under SupCon), so DDP must look for unused parameters every step."""
    if not isinstance(getattr(model, "fc", None), nn.Module):
        return True  # a model of unknown layout: let DDP search
    idle = getattr(model, "proj_head" if head == "logits" else "fc", None)
    return idle is not None and any(p.requires_grad for p in idle.parameters())


def build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters, as the recipe sets it."""
    return torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.optimizer.lr,
        betas=config.optimizer.betas,
        weight_decay=config.optimizer.weight_decay,
    )


def grad_scaler(amp_dtype: Optional[torch.dtype], device: torch.device) -> torch.amp.GradScaler:
    """A loss scaler, enabled only for fp16 autocast (bf16 and fp32 need none)."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)


def optimizer_step(
    config: TrainConfig, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler
) -> None:
    """Close an accumulation window: unscale, clip, step (skipped by the scaler when fp16
    gradients overflowed) and clear the gradients."""
    if config.optimizer.grad_clip_norm is not None:
        scaler.unscale_(optimizer)  # clip the true gradient (a no-op unless fp16)
        torch.nn.utils.clip_grad_norm_(  # the trainable parameters, as the optimizer holds them
            [p for group in optimizer.param_groups for p in group["params"]],
            config.optimizer.grad_clip_norm,
        )
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def compute_loss(
    config: TrainConfig, head_output: torch.Tensor, labels: torch.Tensor, domains: list[str]
) -> torch.Tensor:
    """The recipe's loss on the head output, weighted by domain when configured: each domain's
    mean loss times its weight (`domain_loss_mode: shares`, the card's meaning), or each
    sample by its domain's weight (`per_anchor`)."""
    weights = None
    if config.domain_loss_weights is not None and config.domain_loss_mode == "per_anchor":
        weights = domain_sample_weights(
            domains, config.domain_loss_weights, device=head_output.device
        )
    elif config.domain_loss_weights is not None:
        weights = domain_share_weights(
            domains, config.domain_loss_weights, _loss_mass(config, labels).to(head_output.device)
        )
    if config.loss.kind == "supcon":
        return SupConLoss(config.loss.temperature)(
            head_output.float(), labels, weights, check=False
        )
    if config.loss.kind == "reconstruction":  # the model's per-clip reconstruction error
        return reconstruction_loss(head_output.float(), weights)
    return weighted_cross_entropy(
        head_output.float(),
        labels,
        class_weights=config.loss.class_weights,
        label_smoothing=config.loss.label_smoothing,
        sample_weights=weights,
        check=False,
    )


def reconstruction_loss(
    score: torch.Tensor, weights: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Mean of the per-clip reconstruction errors (weighted when domain weights are set)."""
    if weights is None:
        return score.mean()
    return (weights * score).sum() / weights.sum().clamp_min(1e-12)


def _loss_mass(config: TrainConfig, labels: torch.Tensor) -> torch.Tensor:
    """What the loss's weighted mean divides by per sample (see `domain_share_weights`)."""
    labels = labels.reshape(-1)
    if config.loss.kind == "supcon":  # anchors with a positive: another sample of their label
        same = (labels[:, None] == labels[None, :]).sum(dim=1)
        return (same > 1).to(torch.float32)
    if config.loss.class_weights is None or config.loss.kind == "reconstruction":
        return torch.ones(labels.shape[0], dtype=torch.float32, device=labels.device)
    return torch.as_tensor(config.loss.class_weights, dtype=torch.float32, device=labels.device)[
        labels.long()
    ]


def build_sampler(config: TrainConfig, dataset: ClipDataset, info: DistInfo) -> EpochBatchSampler:
    common = dict(
        num_batches=config.sampler.batches_per_epoch,
        seed=config.seed,
        rank=info.rank,
        world_size=info.world_size,
    )
    kind = config.sampler.kind
    if kind == "class_balanced":
        return ClassBalancedBatchSampler(
            dataset.labels,
            config.batch_size,
            class_proportions=config.sampler.class_proportions,
            **common,
        )
    if kind == "domain_weighted":
        return DomainWeightedBatchSampler(
            dataset.domains,
            config.batch_size,
            domain_weights=config.sampler.domain_weights,
            composition=config.sampler.composition,
            **common,
        )
    if kind == "weighted_random":
        return WeightedRandomBatchSampler(dataset.labels, config.batch_size, **common)
    return GeneratorQuotaBatchSampler(
        dataset.labels,
        dataset.generators,
        config.batch_size,
        class_proportions=config.sampler.class_proportions,
        domains=dataset.domains,
        **common,
    )


def attach_decode_cache(
    config: TrainConfig, dataset: ClipDataset, root: Path, out_dir: Path, info: DistInfo
) -> None:
    """Decoded train clips in one memory-mapped file per node, shared by the node's ranks
    (default folder: the run folder; put it on /dev/shm with `decode_cache_dir`)."""
    if config.decode_cache_gb <= 0:
        return
    folder = resolve_path(config.decode_cache_dir, root) if config.decode_cache_dir else out_dir
    folder.mkdir(parents=True, exist_ok=True)
    budget_bytes = budget_bytes_from_gb(config.decode_cache_gb)
    if info.local_rank == 0:  # one creator per node; the other ranks attach to its file
        open_decode_cache(dataset, folder, budget_bytes)
    barrier(info)
    if info.local_rank != 0:
        open_decode_cache(dataset, folder, budget_bytes)


def initialise_from(config: TrainConfig, model: nn.Module, root: Path) -> None:
    """`init_checkpoint`: the backbone only (the card's DVF base -> SupCon transfer), or all."""
    path = resolve_path(config.init_checkpoint, root)
    if not path.is_file():
        raise StageError(f"init_checkpoint {path} does not exist (train the base run first)")
    checkpoint = read_checkpoint(path)
    state = checkpoint.get("model_state_dict", checkpoint)
    if config.init_mode == "backbone":
        skipped = transfer_backbone(model, state)
        log.info("initialised the backbone from %s (left out %d head tensors)", path, len(skipped))
        return
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"init checkpoint {path} does not fit {config.model.name}: {err}") from err
