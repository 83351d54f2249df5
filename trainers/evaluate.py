"""Evaluation: run a model over split files, then score with the protocols.

`collect_outputs` is the one inference loop (used by training for validation and by
`run_evaluation`): sequential batches through the same loader and device conversion as
training, logits and embeddings gathered in dataset order, and the forward time of each
batch (synchronised on CUDA) divided over its clips. `run_evaluation(config, root=...)`
loads a checkpoint, runs the protocols an eval config names (`prototype`, `benchmark`) and
writes the report (`vfcache.trainers.report`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from vfcache.manifests.records import LABEL_NAMES
from vfcache.trainers.dataset import ClipDataset
from vfcache.trainers.distributed import pick_device
from vfcache.trainers.gpu import to_device
from vfcache.trainers.input_contract import check_contract, resolve_contract
from vfcache.trainers.loader import make_loader
from vfcache.trainers.models import (
    build_model,
    model_from_checkpoint,
    read_checkpoint,
    to_detector_output,
)
from vfcache.trainers.protocols import (
    ModelOutputs,
    ProtocolResult,
    anomaly_protocol,
    benchmark_protocol,
    prototype_protocol,
)
from vfcache.trainers.report import ReportFiles, write_eval_report
from vfcache.trainers.train_config import (
    EvalConfig,
    load_eval_config,
    resolve_path,
    resolve_split_path,
)

from vfcache.errors import ConfigError, StageError

log = logging.getLogger(__name__)


def resolve_amp(mode: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for an `amp` setting.

    `auto`: bf16 on a GPU that has it natively (Ampere and later), fp16 on an older GPU (the
    trainer then scales the loss with a `GradScaler`), off on the CPU. `bf16` refuses a GPU
    that would only emulate it (`is_bf16_supported(including_emulation=False)`: emulated bf16
    runs but is slower than fp32). `fp16` needs a GPU."""
    native_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    if mode == "off":
        return None
    if mode == "bf16":
        if device.type == "cuda" and not native_bf16:
            raise ValueError(
                f"amp 'bf16' was asked for but {torch.cuda.get_device_name(device)} "
                "has no native bfloat16; use amp: fp16 or off"
            )
        return torch.bfloat16
    if mode == "fp16":
        if device.type != "cuda":
            raise ValueError(
                f"amp 'fp16' needs a CUDA device, the run is on {device}; use amp: bf16 or off"
            )
        return torch.float16
    if mode == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if native_bf16 else torch.float16
    raise ValueError(f"amp must be auto, bf16, fp16 or off, got {mode!r}")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _forward(model: nn.Module, clips: torch.Tensor, amp_dtype: Optional[torch.dtype]):
    with torch.autocast(
        device_type=clips.device.type,
        dtype=amp_dtype or torch.bfloat16,
        enabled=amp_dtype is not None,
    ):
        return to_detector_output(model(clips))


@torch.no_grad()
def collect_outputs(
    model: nn.Module,
    dataset: ClipDataset,
    *,
    device: torch.device,
    normalisation: str,
    batch_size: int,
    workers: int = 0,
    layout: str = "BCTHW",
    amp_dtype: Optional[torch.dtype] = None,
    warmup: bool = False,
    desc: str = "eval",
    progress: bool = True,
) -> ModelOutputs:
    """Logits, embeddings and per-clip forward time of every clip of `dataset`, in order.

    `warmup` runs the first batch once untimed (kernel selection, allocator) so the timing
    describes steady-state inference. Leaves the model in eval mode.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batches = [
        list(range(start, min(start + batch_size, len(dataset))))
        for start in range(0, len(dataset), batch_size)
    ]
    loader = make_loader(dataset, batches, workers=workers, persistent_workers=False)
    loader.generator = torch.Generator()  # leave the global RNG (training's dropout) untouched
    model.eval()
    logits, embeddings, scores, seconds, indices = [], [], [], [], []
    for number, batch in enumerate(
        tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False)
    ):
        clips = to_device(batch, device, normalisation, layout=layout)["clip"]
        if warmup and number == 0:
            _forward(model, clips, amp_dtype)
        _synchronize(device)
        started = time.perf_counter()
        output = _forward(model, clips, amp_dtype)
        _synchronize(device)
        elapsed_s = time.perf_counter() - started
        if output.logits is not None:
            logits.append(output.logits.float().cpu())
        if output.score is not None:
            scores.append(output.score.float().cpu())
        if output.embedding is not None:
            embeddings.append(output.embedding.float().cpu())
        seconds.extend([elapsed_s / len(clips)] * len(clips))
        indices.extend(batch["index"].tolist())
    if indices != list(range(len(dataset))):
        raise AssertionError("evaluation batches did not cover the dataset in order")
    return ModelOutputs(
        clip_ids=tuple(entry.clip_id for entry in dataset.entries),
        labels=dataset.labels.copy(),
        domains=dataset.domains.copy(),
        datasets=dataset.datasets.copy(),
        generators=dataset.generators.copy(),
        logits=torch.cat(logits).numpy() if logits and len(logits) == len(batches) else None,
        embeddings=torch.cat(embeddings).numpy()
        if embeddings and len(embeddings) == len(batches)
        else None,
        scores=torch.cat(scores).numpy().astype(np.float64)
        if scores and len(scores) == len(batches)
        else None,
        seconds_per_clip=np.asarray(seconds, dtype=np.float64),
    )


@dataclass(frozen=True)
class EvalResult:
    name: str
    checkpoint: Path
    checkpoint_epoch: Optional[int]
    results: Mapping[str, ProtocolResult]  # protocol name -> result
    out_dir: Path
    files: ReportFiles
    elapsed_s: float


def _model_from_checkpoint_args(config: EvalConfig, args: Mapping[str, Any]) -> tuple[str, dict]:
    if config.model is not None:
        return config.model.name, dict(config.model.kwargs)
    model = args.get("model")
    if not isinstance(model, Mapping) or not isinstance(model.get("name"), str):
        raise ConfigError(
            config.source,
            "model",
            None,
            f"a model (name and kwargs): checkpoint {config.checkpoint} does not "
            "record which model it holds",
        )
    return model["name"], dict(model.get("kwargs") or {})


def _check_disjoint(query: ClipDataset, support: ClipDataset) -> None:
    shared = {e.clip_id for e in query.entries} & {e.clip_id for e in support.entries}
    if shared:
        log.warning(
            "%d query clips are also support clips (e.g. %s); the prototype scores of "
            "those clips are optimistic",
            len(shared),
            sorted(shared)[0],
        )


def run_evaluation(
    config: Union[EvalConfig, str, Path], *, root: Union[str, Path], progress: bool = True
) -> EvalResult:
    """Evaluate the config's checkpoint on its query splits and write the report to out_dir."""
    started = time.perf_counter()
    if not isinstance(config, EvalConfig):
        config = load_eval_config(config)
    device = pick_device(config.device, 0)
    amp_dtype = resolve_amp(config.amp, device)
    checkpoint_path = resolve_path(config.checkpoint, root)
    if not checkpoint_path.is_file():
        raise StageError(f"checkpoint {checkpoint_path} does not exist (run vfcache train first)")
    checkpoint = read_checkpoint(checkpoint_path)
    args = checkpoint.get("args") or {}
    model_name, model_kwargs = _model_from_checkpoint_args(config, args)
    model, info = model_from_checkpoint(
        checkpoint, build_model(model_name, **model_kwargs), source=checkpoint_path
    )
    contract = resolve_contract(
        model,
        layout=config.layout or args.get("layout"),
        pixels=config.normalisation or args.get("normalisation"),
    )
    normalisation = contract.pixels
    model.to(device)
    del checkpoint
    log.info(
        "evaluating %s (epoch %s, model %s, %s) on %s",
        checkpoint_path,
        info.epoch,
        model_name,
        contract.describe(),
        device,
    )

    query = ClipDataset([resolve_split_path(p, root) for p in config.query])
    check_contract(contract, query.rgb_shape, model_name=model_name, clips_from=config.query[0])
    options = dict(
        device=device,
        normalisation=normalisation,
        layout=contract.layout,
        batch_size=config.batch_size,
        workers=config.workers,
        amp_dtype=amp_dtype,
        progress=progress,
    )
    query_outputs = collect_outputs(model, query, warmup=True, desc="query clips", **options)
    results: dict[str, ProtocolResult] = {}
    if "prototype" in config.protocols:
        support = ClipDataset([resolve_split_path(p, root) for p in config.support])
        _check_disjoint(query, support)
        support_outputs = collect_outputs(model, support, desc="support clips", **options)
        results["prototype"] = prototype_protocol(
            query_outputs,
            support_outputs,
            threshold=config.threshold,
            pooling=config.prototype_pooling,
        )
    if "benchmark" in config.protocols:
        results["benchmark"] = benchmark_protocol(query_outputs)
    if "anomaly" in config.protocols:
        calibration = None
        if config.anomaly_threshold is None:
            calibration_set = ClipDataset([resolve_split_path(p, root) for p in config.calibration])
            _check_disjoint(query, calibration_set)
            calibration = collect_outputs(
                model, calibration_set, desc="calibration clips", **options
            )
        results["anomaly"] = anomaly_protocol(
            query_outputs, threshold=config.anomaly_threshold, calibration=calibration
        )

    out_dir = resolve_path(config.out_dir, root)
    files = write_eval_report(
        out_dir,
        name=config.name,
        results=results,
        plots=config.plots,
        context={
            "config": config.to_json(),
            "checkpoint": str(checkpoint_path),
            "checkpoint_epoch": info.epoch,
            "checkpoint_best_selection_score": info.best_selection_score,
            "model": {"name": model_name, "kwargs": model_kwargs},
            "normalisation": normalisation,
            "layout": contract.layout,
            "device": str(device),
            "amp": None if amp_dtype is None else str(amp_dtype),
            "labels": {str(k): v for k, v in LABEL_NAMES.items()},
        },
    )
    return EvalResult(
        name=config.name,
        checkpoint=checkpoint_path,
        checkpoint_epoch=info.epoch,
        results=results,
        out_dir=out_dir,
        files=files,
        elapsed_s=time.perf_counter() - started,
    )
