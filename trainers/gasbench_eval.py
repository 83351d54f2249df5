"""Evaluate a GASBench model directory the way `gasbench run` does, on cached clips.

The model gets what GASBench's specification promises (`docs/Safetensors.md`): `uint8`
`(B, T, 3, H, W)` RGB in [0, 255], whatever dtype its weights are in (the model casts inside
`forward`). Its `(B, 2)` logits (or `(B, 3)` with the semisynthetic class) go through a softmax
and are scored by `vfcache.trainers.gasbench_scores` under GASBench's field names, beside vfcache's
own
benchmark protocol. A model that raises on its input, returns another shape, or returns NaN is a
one-line `StageError` naming the directory; the report is written only after every batch
passed, so a failed run leaves nothing half written.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from vfcache.manifests.records import LABEL_NAMES
from vfcache.trainers.dataset import ClipDataset
from vfcache.trainers.distributed import pick_device
from vfcache.trainers.gasbench_scores import binary_probability, gasbench_scores
from vfcache.trainers.input_contract import check_contract
from vfcache.trainers.loader import make_loader
from vfcache.trainers.protocols import ModelOutputs, benchmark_protocol
from vfcache.trainers.report import write_eval_report

from vfcache.errors import StageError


def model_input(clips: torch.Tensor) -> torch.Tensor:
    """Cached clips, uint8 (B, T, H, W, 3), as GASBench feeds them: uint8 (B, T, 3, H, W)."""
    if clips.dtype != torch.uint8 or clips.ndim != 5 or clips.shape[-1] != 3:
        raise ValueError(
            f"expected uint8 clips (B, T, H, W, 3), got {clips.dtype} {tuple(clips.shape)}"
        )
    return clips.permute(0, 1, 4, 2, 3).contiguous()


def checked_probabilities(
    model: nn.Module, frames: torch.Tensor, *, folder: Path, num_classes: int
) -> np.ndarray:
    """Softmax probabilities (B, num_classes) of one batch, or a one-line StageError."""
    what = f"a uint8 batch of shape {list(frames.shape)}"
    try:
        with torch.no_grad():
            logits = model(frames)
    except Exception as err:  # the directory's own code: whatever it raises is its failure
        message = " ".join(str(err).split())[:300]
        raise StageError(
            f"model {folder} failed on {what}: {type(err).__name__}: {message}"
        ) from err
    if not isinstance(logits, torch.Tensor):
        raise StageError(
            f"model {folder} returned a {type(logits).__name__} for {what}, "
            f"expected a [batch, {num_classes}] logits tensor"
        )
    expected = (frames.shape[0], num_classes)
    if tuple(logits.shape) != expected:
        raise StageError(
            f"model {folder} returned logits of shape {list(logits.shape)} for {what}, "
            f"expected {list(expected)} (model.num_classes {num_classes})"
        )
    logits = logits.detach().to(torch.float64)
    if not bool(torch.isfinite(logits).all()):
        raise StageError(f"model {folder} returned non-finite logits (NaN or inf) for {what}")
    return torch.softmax(logits, dim=1).cpu().numpy()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gasbench_outputs(
    model: nn.Module,
    dataset: ClipDataset,
    *,
    folder: Path,
    num_classes: int,
    device: torch.device,
    batch_size: int,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, C), ms per sample (N,)) of every clip in dataset order. The first
    batch runs once untimed (warm-up); a batch's time is divided over its samples, as GASBench's
    `inference_time_ms`."""
    batches = [
        list(range(s, min(s + batch_size, len(dataset))))
        for s in range(0, len(dataset), batch_size)
    ]
    loader = make_loader(dataset, batches, workers=0, persistent_workers=False)
    probs, ms, indices = [], [], []
    for number, batch in enumerate(
        tqdm(loader, desc="GASBench model", unit="batch", disable=not progress, leave=False)
    ):
        frames = model_input(batch["clip"]).to(device)
        if number == 0:
            checked_probabilities(model, frames, folder=folder, num_classes=num_classes)
        _synchronize(device)
        started = time.perf_counter()
        batch_probs = checked_probabilities(model, frames, folder=folder, num_classes=num_classes)
        _synchronize(device)
        elapsed_ms = (time.perf_counter() - started) * 1e3
        probs.append(batch_probs)
        ms.extend([elapsed_ms / len(frames)] * len(frames))
        indices.extend(batch["index"].tolist())
    if indices != list(range(len(dataset))):
        raise AssertionError("evaluation batches did not cover the dataset in order")
    return np.concatenate(probs), np.asarray(ms, dtype=np.float64)


def _binary_logits(probs: np.ndarray) -> np.ndarray:
    """Two-column logits whose softmax gives GASBench's binary probability (for the protocol)."""
    fake = binary_probability(probs)
    with np.errstate(divide="ignore"):
        return np.stack([np.log(1.0 - fake), np.log(fake)], axis=1).astype(np.float64)


def evaluate_gasbench_model(
    model: nn.Module,
    config: dict,
    dataset: ClipDataset,
    *,
    folder: Path,
    out_dir: Path,
    clips_from: str,
    device: str = "auto",
    batch_size: int = 8,
    progress: bool = True,
    context: dict | None = None,
):
    """Score a loaded model directory on `dataset` and write the report; returns
    (results by protocol, report files, GASBench's scores)."""
    chosen = pick_device(device, 0)
    model.to(chosen)
    name = str(config.get("name", folder.name))
    check_contract(model.input_contract, dataset.rgb_shape, model_name=name, clips_from=clips_from)
    num_classes = int(config["model"]["num_classes"])
    probs, ms = gasbench_outputs(
        model,
        dataset,
        folder=folder,
        num_classes=num_classes,
        device=chosen,
        batch_size=batch_size,
        progress=progress,
    )
    outputs = ModelOutputs(
        clip_ids=tuple(entry.clip_id for entry in dataset.entries),
        labels=dataset.labels.copy(),
        domains=dataset.domains.copy(),
        datasets=dataset.datasets.copy(),
        generators=dataset.generators.copy(),
        logits=_binary_logits(probs),
        embeddings=None,
        seconds_per_clip=ms / 1e3,
    )
    scores = gasbench_scores(dataset.labels, probs, dataset.domains, ms)
    results = {"benchmark": benchmark_protocol(outputs)}
    files = write_eval_report(
        out_dir,
        name=name,
        results=results,
        plots=True,
        context={
            "gasbench_dir": str(folder),
            "model_config": config,
            "gasbench": scores,
            "input": {"dtype": "uint8", "layout": "BTCHW", "range": [0, 255], "colour": "RGB"},
            "device": str(chosen),
            "labels": {str(k): v for k, v in LABEL_NAMES.items()},
            **(context or {}),
        },
    )
    return results, files, scores


def run_gasbench_evaluation(
    folder: Union[str, Path],
    query: list[str],
    *,
    out_dir: Union[str, Path],
    root: Union[str, Path],
    batch_size: int = 8,
    device: str = "auto",
    progress: bool = True,
):
    """Evaluate a GASBench model directory (or a .zip of one) on split files: GASBench's scores
    per dataset entry (the clips' domain) and vfcache's benchmark protocol."""
    from vfcache.trainers.evaluate import EvalResult
    from vfcache.trainers.gasbench import load_gasbench_dir, opened_gasbench_dir
    from vfcache.trainers.train_config import resolve_path, resolve_split_path

    started = time.perf_counter()
    root = Path(root)
    dataset = ClipDataset([resolve_split_path(p, root) for p in query])
    with opened_gasbench_dir(folder) as opened:
        model, config = load_gasbench_dir(opened)
        results, files, _ = evaluate_gasbench_model(
            model,
            config,
            dataset,
            folder=Path(folder),
            out_dir=resolve_path(str(out_dir), root),
            clips_from=str(query[0]),
            device=device,
            batch_size=batch_size,
            progress=progress,
            context={"query": list(query)},
        )
    return EvalResult(
        name=str(config.get("name", Path(folder).name)),
        checkpoint=Path(folder),
        checkpoint_epoch=None,
        results=results,
        out_dir=files.json.parent,
        files=files,
        elapsed_s=time.perf_counter() - started,
    )


__all__ = [
    "checked_probabilities",
    "evaluate_gasbench_model",
    "gasbench_outputs",
    "model_input",
    "run_gasbench_evaluation",
]
