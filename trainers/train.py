"""`run_training`: the training loop of `vfcache train CONFIG [--resume]`, in one visible place.

Per epoch: the batch sampler fixes the epoch's batches from (seed, epoch) and hands rank `r`
its share; each step moves uint8 clips to the device, converts/normalises/augments them
there, runs the model (bf16 autocast where the GPU supports it), applies the recipe's loss
(weighted cross-entropy or SupCon, optionally weighted per domain) and steps AdamW with the
schedule's learning rate. At the epoch's end rank 0 scores the validation splits with the
selection protocol (prototype or softmax), keeps `best.pt` and `last.pt` and appends a line
to `metrics.jsonl` (see `vfcache.trainers.run_state` for the run folder). Under torchrun the model
is
wrapped in DistributedDataParallel and only rank 0 writes; validation runs on rank 0 while
the others wait. `--resume` restores weights, optimizer, sampler position and every rank's
RNG state from `last.pt`, so a run stopped mid-epoch continues with exactly the batches,
augmentations and dropout masks it would have had.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm
from vfcache.trainers.dataset import ClipDataset
from vfcache.trainers.distributed import (
    DistInfo,
    all_gather_objects,
    barrier,
    init_distributed,
    shutdown,
)
from vfcache.trainers.evaluate import collect_outputs, resolve_amp
from vfcache.trainers.gpu import DeviceAugment, DeviceBatcher
from vfcache.trainers.input_contract import InputContract, check_contract, resolve_contract
from vfcache.trainers.loader import make_loader
from vfcache.trainers.models import build_model, enter_train_mode, save_checkpoint
from vfcache.trainers.protocols import (
    anomaly_protocol,
    prototype_protocol,
    selection_score,
    softmax_protocol,
)
from vfcache.trainers.run_state import (
    BEST_NAME,
    LAST_NAME,
    METRICS_NAME,
    Progress,
    check_fresh_run_dir,
    checkpoint_args,
    load_resume_checkpoint,
    pin_revision,
    read_history,
    rng_state,
    set_rng_state,
    write_history,
    write_run_config,
)
from vfcache.trainers.samplers import EpochBatchSampler
from vfcache.trainers.train_config import (
    TrainConfig,
    load_train_config,
    resolve_path,
    resolve_split_path,
)
from vfcache.trainers.train_setup import (
    LossView,
    attach_decode_cache,
    build_optimizer,
    build_sampler,
    compute_loss,
    grad_scaler,
    has_unused_trainable_head,
    initialise_from,
    learning_rate,
    loss_head,
    optimizer_step,
)
from vfcache.trainers.trainable import set_trainable

from vfcache.errors import StageError

log = logging.getLogger(__name__)

__all__ = ["StepInfo", "TrainResult", "learning_rate", "run_training"]


@dataclass(frozen=True)
class StepInfo:
    """Handed to `on_step` after every optimizer step (on every rank)."""

    rank: int
    epoch: int  # 1-based
    step_in_epoch: int  # 0-based index of the step just done
    global_step: int  # steps done so far
    clip_ids: tuple[str, ...]
    loss: float


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    last_checkpoint: Path
    best_checkpoint: Optional[Path]
    best_epoch: Optional[int]  # 1-based
    best_selection_score: Optional[float]
    epochs_completed: int
    global_step: int
    stopped_early: bool  # stop_after_steps ended the run before its last epoch
    metrics_path: Path
    elapsed_s: float


@dataclass
class _Run:
    """Everything the loop touches, built once per invocation."""

    config: TrainConfig
    info: DistInfo
    out_dir: Path
    model: nn.Module  # the bare model: what checkpoints and validation use
    contract: InputContract  # layout and pixels the model is fed
    train_view: nn.Module  # LossView over it, DDP-wrapped under torchrun
    optimizer: torch.optim.Optimizer
    sampler: EpochBatchSampler
    batcher: DeviceBatcher
    val_set: Optional[ClipDataset]
    support_set: Optional[ClipDataset]
    amp_dtype: Optional[torch.dtype]
    scaler: torch.amp.GradScaler  # enabled only for fp16 autocast
    args: dict  # checkpoint args
    progress: Progress
    steps_per_epoch: int
    started: float  # perf_counter at the start of this invocation
    elapsed_before_s: float  # time spent by earlier invocations of the run

    @property
    def updates_per_epoch(self) -> int:
        """Optimizer steps per epoch: one per `grad_accumulation` batches (a short last window
        too)."""
        return -(-self.steps_per_epoch // self.config.grad_accumulation)

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole run (what the learning-rate schedule counts)."""
        return self.config.epochs * self.updates_per_epoch

    def update_index(self, epoch: int, step_in_epoch: int) -> int:
        """The optimizer step that batch `step_in_epoch` of `epoch` contributes to."""
        return epoch * self.updates_per_epoch + step_in_epoch // self.config.grad_accumulation

    def window(self, step_in_epoch: int) -> tuple[int, bool]:
        """(batches in the accumulation window of this batch, whether this batch closes it)."""
        k = self.config.grad_accumulation
        start = step_in_epoch - step_in_epoch % k
        size = min(k, self.steps_per_epoch - start)
        return size, step_in_epoch - start == size - 1


def run_training(
    config: Union[TrainConfig, str, Path],
    *,
    root: Union[str, Path],
    resume: bool = False,
    stop_after_steps: Optional[int] = None,
    on_step: Optional[Callable[[StepInfo], None]] = None,
    progress: bool = True,
) -> TrainResult:
    """Train per `config` (a TrainConfig or a YAML path); relative paths resolve against `root`.

    `resume` continues `out_dir/last.pt`. `stop_after_steps` ends this invocation after that
    many optimizer steps (writing `last.pt`, mid-epoch if need be), for time-boxed jobs.
    Works under torchrun (the process group is joined from the environment); the caller's
    global RNG state is restored on return.
    """
    if not isinstance(config, TrainConfig):
        config = load_train_config(config)
    if stop_after_steps is not None and stop_after_steps < 1:
        raise ValueError(f"stop_after_steps must be >= 1, got {stop_after_steps}")
    info = init_distributed(config.device)
    try:
        cuda_devices = [info.device] if info.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda_devices):
            return _train(config, Path(root), info, resume, stop_after_steps, on_step, progress)
    finally:
        shutdown(info)


def _train(
    config: TrainConfig,
    root: Path,
    info: DistInfo,
    resume: bool,
    stop_after_steps: Optional[int],
    on_step: Optional[Callable[[StepInfo], None]],
    progress: bool,
) -> TrainResult:
    out_dir = resolve_path(config.out_dir, root)
    checkpoint = None
    if resume:
        checkpoint, config = load_resume_checkpoint(out_dir, config)
    else:
        check_fresh_run_dir(out_dir)
    run = _build_run(config, root, out_dir, info, checkpoint)
    restore_rng = _restore(run, checkpoint) if checkpoint is not None else None
    del checkpoint
    p = run.progress
    steps_left = stop_after_steps
    stopped_early = False
    for epoch in range(p.next_epoch, config.epochs):
        if steps_left is not None and steps_left <= 0:
            stopped_early = True
            break
        epoch_started = time.perf_counter()
        steps, interrupted = _train_epoch(run, epoch, restore_rng, steps_left, on_step, progress)
        restore_rng = None
        steps_left = None if steps_left is None else steps_left - steps
        if interrupted:
            stopped_early = True
            break
        _end_epoch(run, epoch, time.perf_counter() - epoch_started, progress)
    barrier(info)
    best = out_dir / BEST_NAME
    return TrainResult(
        out_dir=out_dir,
        last_checkpoint=out_dir / LAST_NAME,
        best_checkpoint=best if best.exists() else None,
        best_epoch=p.best_epoch,
        best_selection_score=p.best_selection_score,
        epochs_completed=p.next_epoch,
        global_step=p.global_step,
        stopped_early=stopped_early,
        metrics_path=out_dir / METRICS_NAME,
        elapsed_s=run.elapsed_before_s + time.perf_counter() - run.started,
    )


def _build_run(
    config: TrainConfig, root: Path, out_dir: Path, info: DistInfo, checkpoint: Optional[dict]
) -> _Run:
    started = time.perf_counter()
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    train_set = ClipDataset(
        [resolve_split_path(p, root) for p in config.data.train], labels=config.data.train_labels
    )
    if len(train_set) == 0:
        raise StageError(
            f"no training clips of labels {config.data.train_labels} in {config.data.train}"
        )
    attach_decode_cache(config, train_set, root, out_dir, info)
    val_set = support_set = None
    if info.is_main:
        val_set = ClipDataset([resolve_split_path(p, root) for p in config.data.val])
        if config.selection.protocol == "prototype":
            support_set = ClipDataset([resolve_split_path(p, root) for p in config.data.support])
    sampler = build_sampler(config, train_set, info)
    loader = make_loader(train_set, sampler, workers=config.workers)
    # The loader's own generator: drawing its worker seed must not move the global RNG that
    # dropout uses, or a resumed run would diverge from an uninterrupted one.
    loader.generator = torch.Generator().manual_seed(config.seed)
    augment = (
        DeviceAugment(
            config.augment.flip_probability,
            config.augment.brightness_delta,
            config.augment.channel_shuffle_probability,
        )
        if config.augment.enabled
        else None
    )

    torch.manual_seed(config.seed)  # identical initial weights on every rank
    model = build_model(config.model.name, **config.model.kwargs)
    config = _pin_weights(config, model, out_dir, info)
    contract = resolve_contract(model, layout=config.layout, pixels=config.normalisation)
    check_contract(
        contract, train_set.rgb_shape, model_name=config.model.name, clips_from=config.data.train[0]
    )
    batcher = DeviceBatcher(
        loader,
        info.device,
        contract.pixels,
        augment,
        seed=config.seed,
        rank=info.rank,
        layout=contract.layout,
    )
    if checkpoint is None and config.init_checkpoint is not None:
        initialise_from(config, model, root)
    trainable, total = set_trainable(model, config.unfreeze)
    if info.is_main:
        tqdm.write(
            f"{config.model.name}: {trainable:,} trainable of {total:,} parameters "
            f"(unfreeze {config.unfreeze})"
        )
    model.to(info.device)
    optimizer = build_optimizer(config, model)
    train_view: nn.Module = LossView(model, loss_head(config))
    if info.distributed:
        device_ids = [info.device.index] if info.device.type == "cuda" else None
        train_view = DistributedDataParallel(
            train_view,
            device_ids=device_ids,
            find_unused_parameters=has_unused_trainable_head(model, loss_head(config)),
        )
    torch.manual_seed(config.seed + 1 + info.rank)  # per-rank stream (dropout)
    amp_dtype = resolve_amp(config.amp, info.device)
    return _Run(
        config=config,
        info=info,
        out_dir=out_dir,
        model=model,
        contract=contract,
        train_view=train_view,
        optimizer=optimizer,
        sampler=sampler,
        batcher=batcher,
        val_set=val_set,
        support_set=support_set,
        amp_dtype=amp_dtype,
        scaler=grad_scaler(amp_dtype, info.device),
        args=checkpoint_args(
            config, world_size=info.world_size, clip_shape=train_set.rgb_shape, contract=contract
        ),
        progress=Progress(),
        steps_per_epoch=sampler.num_batches // info.world_size,
        started=started,
        elapsed_before_s=0.0,
    )


def _pin_weights(
    config: TrainConfig, model: nn.Module, out_dir: Path, info: DistInfo
) -> TrainConfig:
    """Record the Hub commit the model's weights came from as its `revision` (config.json and
    the checkpoints' args, so evaluation loads that commit), say which one, and write
    config.json."""
    commit = getattr(model, "resolved_revision", None)
    if commit and info.is_main:
        asked = config.model.kwargs.get("revision")
        tqdm.write(
            f"{config.model.name}: weights {config.model.kwargs.get('pretrained')} at commit "
            f"{commit}" + (f" (revision {asked})" if asked != commit else "")
        )
    config = pin_revision(config, commit)
    if info.is_main:
        write_run_config(out_dir, config)
    return config


def _restore(run: _Run, checkpoint: dict) -> Optional[dict]:
    """Load the resume state into the run; returns this rank's RNG state to set when the
    interrupted epoch restarts (None when the world size changed)."""
    state = checkpoint["train_state"]
    run.model.load_state_dict(checkpoint["model_state_dict"], strict=True)
    run.optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
    if run.scaler.is_enabled() and state.get("grad_scaler"):
        run.scaler.load_state_dict(state["grad_scaler"])
    run.sampler.load_state_dict(state["sampler"])
    history = read_history(run.out_dir, state["progress"]["next_epoch"])
    run.progress = Progress.from_state(state["progress"], history)
    run.elapsed_before_s = run.progress.elapsed_s
    log.info(
        "resuming %s at epoch %d step %d",
        run.out_dir,
        run.progress.next_epoch + 1,
        run.progress.step_in_epoch,
    )
    if len(state["rng"]) != run.info.world_size:
        log.warning(
            "resuming on %d ranks a run of %d: fresh RNG streams",
            run.info.world_size,
            len(state["rng"]),
        )
        return None
    return state["rng"][run.info.rank]


def accumulate_gradient(
    config: TrainConfig,
    view: nn.Module,
    batch: dict,
    *,
    scale: float,
    amp_dtype: Optional[torch.dtype],
    sync: bool = True,
    scaler: Optional[torch.amp.GradScaler] = None,
) -> torch.Tensor:
    """Forward one batch and add `scale` x its loss gradient to the parameters' `.grad`.

    With `grad_accumulation` k, the k batches of a window each add 1/k of their gradient, so
    for a loss that is a mean over the batch the sum is the large batch's gradient. `sync=False`
    skips DDP's all-reduce for all but the window's last batch. With fp16 autocast the
    `scaler` multiplies the loss before backward (its `step` unscales)."""
    no_sync = getattr(view, "no_sync", None)
    with contextlib.nullcontext() if sync or no_sync is None else no_sync():
        with torch.autocast(
            device_type=batch["clip"].device.type,
            dtype=amp_dtype or torch.bfloat16,
            enabled=amp_dtype is not None,
        ):
            head_output = view(batch["clip"])
        loss = compute_loss(config, head_output, batch["label"], batch["domain"])
        scaled = loss * scale
        (scaler.scale(scaled) if scaler is not None else scaled).backward()
    return loss.detach()


def _train_step(run: _Run, batch: dict, lr: float, step_in_epoch: int) -> torch.Tensor:
    """One batch; the optimizer steps when the batch closes its accumulation window."""
    size, closes = run.window(step_in_epoch)
    loss = accumulate_gradient(
        run.config,
        run.train_view,
        batch,
        scale=1.0 / size,
        amp_dtype=run.amp_dtype,
        sync=closes,
        scaler=run.scaler,
    )
    if not closes:
        return loss
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    optimizer_step(run.config, run.optimizer, run.scaler)
    return loss


def _train_epoch(
    run: _Run,
    epoch: int,
    restore_rng: Optional[dict],
    steps_left: Optional[int],
    on_step: Optional[Callable[[StepInfo], None]],
    progress: bool,
) -> tuple[int, bool]:
    """Train (the rest of) one epoch; returns (steps run, whether it stopped mid-epoch)."""
    config, p = run.config, run.progress
    run.batcher.set_epoch(epoch, first_step=p.step_in_epoch)
    if restore_rng is not None:
        set_rng_state(restore_rng, run.info.device)
    enter_train_mode(run.model)
    # summed on the device so that a step never waits for the GPU just to log
    loss_sum = torch.tensor(p.epoch_loss_sum, dtype=torch.float64, device=run.info.device)
    steps = 0
    bar = tqdm(
        run.batcher,
        desc=f"epoch {epoch + 1}/{config.epochs}",
        unit="step",
        disable=not (progress and run.info.is_main),
        initial=p.step_in_epoch,
        total=run.steps_per_epoch,
    )
    for batch in bar:
        lr = learning_rate(
            config.optimizer, run.update_index(epoch, p.step_in_epoch), run.total_steps
        )
        loss = _train_step(run, batch, lr, p.step_in_epoch)
        loss_sum += loss
        p.step_in_epoch, p.global_step, steps = p.step_in_epoch + 1, p.global_step + 1, steps + 1
        if on_step is not None:
            on_step(
                StepInfo(
                    run.info.rank,
                    epoch + 1,
                    p.step_in_epoch - 1,
                    p.global_step,
                    tuple(batch["clip_id"]),
                    float(loss),
                )
            )
        if p.global_step % config.log_every_steps == 0:
            bar.set_postfix(loss=f"{float(loss):.4f}", lr=f"{lr:.2e}")
            log.info(
                "epoch %d step %d/%d loss %.4f lr %.3g",
                epoch + 1,
                p.step_in_epoch,
                run.steps_per_epoch,
                float(loss),
                lr,
            )
        if p.step_in_epoch >= run.steps_per_epoch:
            continue  # the epoch's end validates and saves
        if p.step_in_epoch % config.grad_accumulation:
            continue  # never stop or save inside an accumulation window: its gradient is not saved
        stop = steps_left is not None and steps >= steps_left
        if stop or (
            config.checkpoint_every_steps and p.global_step % config.checkpoint_every_steps == 0
        ):
            p.epoch_loss_sum = float(loss_sum)
            _save_last(run, steps)
        if stop:
            bar.close()
            return steps, True
    bar.close()
    p.epoch_loss_sum = float(loss_sum)
    return steps, False


def _save_last(run: _Run, steps_this_iteration: Optional[int]) -> None:
    """`last.pt` with the resume state; a collective (RNG states), so every rank calls it.
    `steps_this_iteration`: batches trained since the epoch's loader started (None: all)."""
    p, info = run.progress, run.info
    rng_states = all_gather_objects(info, rng_state(info.device))
    sampler_state = run.sampler.state_dict(batches_consumed=steps_this_iteration)
    p.elapsed_s = run.elapsed_before_s + time.perf_counter() - run.started
    if info.is_main:  # `epoch` counts completed epochs, also in a mid-epoch last.pt
        save_checkpoint(
            run.out_dir / LAST_NAME,
            run.model,
            epoch=p.next_epoch,
            optimizer=run.optimizer,
            best_selection_score=p.best_selection_score,
            args=run.args,
            extra={
                "train_state": {
                    "progress": p.to_state(),
                    "sampler": sampler_state,
                    "rng": rng_states,
                    "grad_scaler": run.scaler.state_dict(),
                }
            },
        )


def _validate(run: _Run, progress: bool) -> tuple[float, dict]:
    """The selection score on validation and the per-domain rows for the metrics log."""
    config = run.config
    options = dict(
        device=run.info.device,
        normalisation=run.contract.pixels,
        layout=run.contract.layout,
        amp_dtype=run.amp_dtype,
        batch_size=config.eval_batch_size or config.batch_size,
        workers=config.workers,
        progress=progress,
    )
    outputs = collect_outputs(run.model, run.val_set, desc="val clips", **options)
    if config.selection.protocol == "val_loss":  # one-class: lower reconstruction error is better
        if outputs.scores is None:
            raise StageError(
                f"selection val_loss needs a model that returns an anomaly score; "
                f"{config.model.name} returns none"
            )
        mean_score = float(np.mean(outputs.scores))
        return -mean_score, {"all": {"num_clips": len(outputs.scores), "mean_score": mean_score}}
    if config.selection.protocol == "prototype":
        support = collect_outputs(run.model, run.support_set, desc="support clips", **options)
        result = prototype_protocol(
            outputs,
            support,
            threshold=config.selection.threshold,
            pooling=config.selection.prototype_pooling,
        )
    elif config.selection.protocol == "anomaly":  # AUROC etc. of the score; needs real and fake val
        result = anomaly_protocol(outputs, calibration=outputs)
    else:
        result = softmax_protocol(outputs, group_by="domain")
    score = selection_score(result, config.selection.metric, config.selection.domain_weights)
    rows = {
        row.name: {k: v for k, v in vars(row).items() if k != "name" and v is not None}
        for row in result.rows
    }
    return score, rows


def _end_epoch(run: _Run, epoch: int, train_s: float, progress: bool) -> None:
    """Mean epoch loss over ranks; rank 0 validates, keeps best.pt, logs; last.pt."""
    p, info, config = run.progress, run.info, run.config
    loss_sum = torch.tensor([p.epoch_loss_sum], dtype=torch.float64, device=info.device)
    if info.distributed:
        torch.distributed.all_reduce(loss_sum)
    train_loss = float(loss_sum) / (run.steps_per_epoch * info.world_size)
    lr = learning_rate(
        config.optimizer, run.update_index(epoch, run.steps_per_epoch - 1), run.total_steps
    )
    p.next_epoch, p.step_in_epoch, p.epoch_loss_sum = epoch + 1, 0, 0.0
    if info.is_main:
        val_started = time.perf_counter()
        score, rows = _validate(run, progress)
        is_best = p.best_selection_score is None or score > p.best_selection_score
        if is_best:
            p.best_selection_score, p.best_epoch = score, epoch + 1
            save_checkpoint(
                run.out_dir / BEST_NAME,
                run.model,
                epoch=epoch + 1,
                optimizer=run.optimizer,
                best_selection_score=score,
                args=run.args,
            )
        clips = run.steps_per_epoch * config.batch_size * info.world_size
        p.history.append(
            {
                "epoch": epoch + 1,
                "global_step": p.global_step,
                "train_loss": train_loss,
                "lr": lr,
                "selection_metric": config.selection.metric,
                "selection_score": score,
                "is_best": is_best,
                "best_epoch": p.best_epoch,
                "val": rows,
                "train_s": train_s,
                "val_s": time.perf_counter() - val_started,
                "train_clips_per_s": clips / train_s if train_s > 0 else None,
            }
        )
        write_history(run.out_dir, p.history)
        log.info(
            "epoch %d: train loss %.4f, val %s %.4f%s",
            epoch + 1,
            train_loss,
            config.selection.metric,
            score,
            " (best)" if is_best else "",
        )
    _save_last(run, None)
    barrier(info)
