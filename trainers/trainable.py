"""Which parameters train: the unfreeze policies of a train config, all general.

A policy is a name or a mapping:

- `all`: every parameter (this unfreezes what a model's factory froze);
- `factory`: keep `requires_grad` as the model's factory set it (a frozen CLIP encoder with
  trainable adapters, say);
- `layer4_all` (the R(2+1)D card's SupCon transfer): `layer4` plus the head the recipe trains,
  `proj_head` when the model has one, else `fc`;
- `head_only`: `fc` and `proj_head` (whichever exist);
- `{include: [globs], exclude: [globs]}`: the parameters whose dotted name matches an include
  glob and no exclude glob (`fnmatch`, `*` crosses dots);
- `{last_fraction: 0.3, heads: [fc]}`: the last ceil(0.3 N) of the model's N blocks (the
  entries of its longest `nn.ModuleList` / `nn.Sequential`: a transformer's layers, a CNN's
  stages) and the named head modules (default: those of `fc`, `proj_head`, `head`,
  `classifier` the model has); about 70% of VideoMAE's backbone frozen is `last_fraction: 0.3`.

`set_trainable` returns (trainable, total) parameter counts, which a run prints at its start.
"""

from __future__ import annotations

import fnmatch
import logging
import math
from typing import Any, Mapping, Union

from torch import nn

logger = logging.getLogger(__name__)

NAMED_POLICIES: tuple[str, ...] = ("all", "factory", "layer4_all", "head_only")
POLICY_KEYS = {"include", "exclude", "last_fraction", "heads"}
DEFAULT_HEADS = ("fc", "proj_head", "head", "classifier")
TrainablePolicy = Union[str, Mapping[str, Any]]


def check_policy(policy: TrainablePolicy) -> None:
    """ValueError naming what is wrong with a policy (the config loader reports it per field)."""
    if isinstance(policy, str):
        if policy not in NAMED_POLICIES:
            raise ValueError(
                f"unknown unfreeze policy {policy!r}; expected one of {NAMED_POLICIES}, "
                "or a mapping with include/exclude globs or last_fraction"
            )
        return
    if not isinstance(policy, Mapping) or not policy:
        raise ValueError(f"unfreeze policy {policy!r} is neither a name nor a mapping")
    unknown = sorted(set(policy) - POLICY_KEYS)
    if unknown:
        raise ValueError(f"unfreeze policy keys {unknown} are not among {sorted(POLICY_KEYS)}")
    globs = "include" in policy or "exclude" in policy
    if globs == ("last_fraction" in policy):
        raise ValueError(
            "an unfreeze mapping has include/exclude globs or a last_fraction, one of the two"
        )
    for key in ("include", "exclude", "heads"):
        value = policy.get(key, [])
        if not (isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value)):
            raise ValueError(f"unfreeze.{key} must be a list of names or globs, got {value!r}")
    if globs and not policy.get("include"):
        raise ValueError("unfreeze.include must name what trains (e.g. ['*adapter*', 'fc.*'])")
    fraction = policy.get("last_fraction")
    if fraction is not None and not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"unfreeze.last_fraction must be in (0, 1], got {fraction!r}")


def model_blocks(model: nn.Module) -> tuple[str, list[nn.Module]]:
    """(name, blocks) of the model's longest ModuleList/Sequential (ties: the first)."""
    best_name, best = "", []
    for name, module in model.named_modules():
        if isinstance(module, (nn.ModuleList, nn.Sequential)) and len(module) > len(best):
            best_name, best = name, list(module)
    if len(best) < 2:
        raise ValueError(
            f"{type(model).__name__} has no list of blocks for last_fraction; "
            "name what trains with include/exclude globs"
        )
    return best_name, best


def _trainable_modules(model: nn.Module, policy: TrainablePolicy) -> list[nn.Module]:
    if policy == "all":
        return [model]
    if policy == "layer4_all":
        head = "proj_head" if hasattr(model, "proj_head") else "fc"
        return [_submodule(model, "layer4", policy), _submodule(model, head, policy)]
    if policy == "head_only":
        heads = [name for name in ("fc", "proj_head") if hasattr(model, name)]
        if not heads:
            raise ValueError(
                f"policy 'head_only' needs a `fc` or `proj_head` attribute; "
                f"{type(model).__name__} has neither"
            )
        return [_submodule(model, name, policy) for name in heads]
    _, blocks = model_blocks(model)
    keep = math.ceil(policy["last_fraction"] * len(blocks))
    heads = policy.get("heads") or [name for name in DEFAULT_HEADS if hasattr(model, name)]
    return blocks[len(blocks) - keep :] + [
        _submodule(model, name, "last_fraction") for name in heads
    ]


def set_trainable(model: nn.Module, policy: TrainablePolicy) -> tuple[int, int]:
    """Set `requires_grad` per the policy; returns (trainable, total) parameter counts.

    Call `vfcache.trainers.models.enter_train_mode(model)` after `model.train()` each epoch so
    BatchNorm in frozen parts keeps its running statistics.
    """
    check_policy(policy)
    if policy != "factory":
        if isinstance(policy, Mapping) and "include" in policy:
            for name, param in model.named_parameters():
                param.requires_grad_(
                    any(fnmatch.fnmatchcase(name, glob) for glob in policy["include"])
                    and not any(
                        fnmatch.fnmatchcase(name, glob) for glob in policy.get("exclude", [])
                    )
                )
        else:
            modules = _trainable_modules(model, policy)
            for param in model.parameters():
                param.requires_grad_(False)
            for module in modules:
                for param in module.parameters():
                    param.requires_grad_(True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    if trainable == 0:
        raise ValueError(
            f"unfreeze policy {policy!r} leaves no parameter of {type(model).__name__} trainable"
        )
    logger.info("unfreeze policy %s: %d of %d parameters trainable", policy, trainable, total)
    return trainable, total


def _submodule(model: nn.Module, name: str, policy: str) -> nn.Module:
    try:
        module = model.get_submodule(name)
    except AttributeError:
        module = None
    if not isinstance(module, nn.Module):
        raise ValueError(
            f"unfreeze policy {policy!r} needs a `{name}` submodule; "
            f"{type(model).__name__} has none (use policy 'all')"
        )
    return module
