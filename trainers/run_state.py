"""A training run's folder and resume state: checkpoints, RNG states, the metrics log.

Run folder (`out_dir`): `config.json` (the resolved train config), `last.pt` (after every
epoch, and mid-epoch every `checkpoint_every_steps` or when a run stops early), `best.pt`
(the epoch with the best validation selection score), `metrics.jsonl` (one JSON line per
epoch). Checkpoints are the card's dict (`epoch` = epochs completed, `model_state_dict`,
`optimizer_state_dict`, `best_selection_score`, `args` with the config, model and
normalisation) plus, in `last.pt`, a `train_state` key: position (epoch, step in epoch,
global step), the sampler's state, every rank's RNG states and the running epoch loss. All
of it loads with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from vfcache.trainers.input_contract import InputContract
from vfcache.trainers.models import read_checkpoint
from vfcache.trainers.train_config import TrainConfig

from vfcache.atomic import atomic_write, write_json_atomic
from vfcache.errors import ConfigError, StageError

log = logging.getLogger(__name__)

LAST_NAME, BEST_NAME = "last.pt", "best.pt"
METRICS_NAME, CONFIG_NAME = "metrics.jsonl", "config.json"
# Config fields that may change between a run and its resume without changing what it computes
# (`epochs` may grow; with a cosine schedule the learning rate then follows the new length).
RESUMABLE_CHANGES = frozenset(
    {
        "epochs",
        "workers",
        "decode_cache_gb",
        "decode_cache_dir",
        "checkpoint_every_steps",
        "log_every_steps",
        "eval_batch_size",
        "device",
        "name",
    }
)


@dataclass
class Progress:
    """Where a run stands; mutated by the training loop, saved in `last.pt`."""

    next_epoch: int = 0  # 0-based index of the epoch to run (or continue) next
    step_in_epoch: int = 0  # optimizer steps of `next_epoch` already done on each rank
    global_step: int = 0
    best_epoch: Optional[int] = None  # 1-based
    best_selection_score: Optional[float] = None
    epoch_loss_sum: float = 0.0  # this rank's loss summed over the steps of the current epoch
    elapsed_s: float = 0.0
    history: list = field(default_factory=list)  # the metrics lines of completed epochs

    def to_state(self) -> dict:
        return {
            "next_epoch": self.next_epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "best_epoch": self.best_epoch,
            "best_selection_score": self.best_selection_score,
            "epoch_loss_sum": self.epoch_loss_sum,
            "elapsed_s": self.elapsed_s,
        }

    @classmethod
    def from_state(cls, state: dict, history: list) -> "Progress":
        keys = (
            "next_epoch",
            "step_in_epoch",
            "global_step",
            "best_epoch",
            "best_selection_score",
            "epoch_loss_sum",
            "elapsed_s",
        )
        return cls(**{k: state[k] for k in keys}, history=history)


def rng_state(device: torch.device) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def check_fresh_run_dir(out_dir: Path) -> None:
    if (out_dir / LAST_NAME).exists():
        raise StageError(
            f"run folder {out_dir} already holds {LAST_NAME}; pass --resume to continue that run, "
            "or set another out_dir (a finished run is never overwritten)"
        )


def pin_revision(config: TrainConfig, commit: Optional[str]) -> TrainConfig:
    """The config with the model's `revision` set to `commit`, the commit its Hub weights came
    from (a model's `resolved_revision`); unchanged when there is none."""
    if not commit or config.model.kwargs.get("revision") == commit:
        return config
    model = dataclasses.replace(config.model, kwargs={**config.model.kwargs, "revision": commit})
    return dataclasses.replace(config, model=model)


def load_resume_checkpoint(out_dir: Path, config: TrainConfig) -> tuple[dict, TrainConfig]:
    """`last.pt` of the run, after checking that the config still describes the same run, and
    the config to resume with: the model's revision pinned to the commit the run recorded
    (the recipe may name a branch that has moved since)."""
    path = out_dir / LAST_NAME
    if not path.exists():
        raise StageError(f"nothing to resume: {path} does not exist (start without --resume)")
    checkpoint = read_checkpoint(path)
    if "train_state" not in checkpoint:
        raise StageError(f"{path} has no train_state; it was not written by vfcache train")
    saved = (checkpoint.get("args") or {}).get("config") or {}
    recorded = ((saved.get("model") or {}).get("kwargs") or {}).get("revision")
    if isinstance(recorded, str) and config.model.kwargs.get("revision") is not None:
        config = pin_revision(config, recorded)
    current = config.to_json()
    for key in sorted(set(saved) | set(current)):
        if key not in RESUMABLE_CHANGES and saved.get(key) != current.get(key):
            raise ConfigError(
                config.source,
                key,
                current.get(key),
                f"{saved.get(key)!r} as in the run being resumed ({path}); start a "
                "new run in another out_dir to change it",
            )
    return checkpoint, config


def read_history(out_dir: Path, epochs_completed: int) -> list:
    """The metrics lines of the epochs a resumed run has completed."""
    path = out_dir / METRICS_NAME
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [line for line in lines if line["epoch"] <= epochs_completed]


def write_history(out_dir: Path, history: list) -> Path:
    path = out_dir / METRICS_NAME
    with atomic_write(path, "w") as handle:
        handle.write("".join(json.dumps(line, sort_keys=True) + "\n" for line in history))
    return path


def write_run_config(out_dir: Path, config: TrainConfig) -> Path:
    path = out_dir / CONFIG_NAME
    write_json_atomic(path, config.to_json())
    return path


def checkpoint_args(
    config: TrainConfig,
    *,
    world_size: int,
    clip_shape: tuple,
    contract: Optional[InputContract] = None,
) -> dict[str, Any]:
    """The `args` of a checkpoint: what evaluation needs to rebuild and feed the model (the
    pixel preset and layout the run fed it, from its input contract)."""
    contract = contract or InputContract(
        pixels=config.normalisation or "unit", layout=config.layout or "BCTHW"
    )
    return {
        "config": config.to_json(),
        "model": {"name": config.model.name, "kwargs": dict(config.model.kwargs)},
        "normalisation": contract.pixels,
        "layout": contract.layout,
        "world_size": world_size,
        "clip_shape": list(clip_shape),
    }
