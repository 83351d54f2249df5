"""`vfcache bench train`: is the GPU ever waiting for data?

Runs what `vfcache train` runs for a recipe (default `configs/train/supcon_mixed.yaml`, the
card's R(2+1)D-18 SupCon run; `--model` swaps in another family): the same trainable
policy (`unfreeze`), input contract, loss (`compute_loss` through the recipe's head),
mixed precision (`amp`, with the fp16 GradScaler where that is what it resolves to) and
step (`accumulate_gradient` + AdamW), on clips cut with the clip spec of the recipe's data
(its split files' spec.json, else the preset their path names, else the model's input
contract; `--spec` overrides) from the cache through the project's loader (`ClipDataset` +
`make_loader` + `DeviceBatcher`), with `cudnn.benchmark`. It reports:

- data wait share: time the step spends blocked on the DataLoader for its batch (the
  batcher's `loader_wait_s`: host side only; the next batch's copy and conversion on the
  device are compute, as they are in training), over the whole step time (target < 5% with
  at most 8 workers);
- clips/s of the training loop;
- the loader's own ceiling: clips/s of the same loader with no model attached.

The recipe's domain loss weights are dropped: the benchmark corpus has one domain, so the
share-weighted loss is the plain mean. `init_checkpoint` is not loaded (random weights
time the same). It needs a CUDA device and says so plainly where there is none.
`--device cpu` with a small model runs the same code path for a smoke test; its figures say
nothing about a GPU.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import BatchSampler, RandomSampler

from vfcache.bench.load import build_bench_cache
from vfcache.config import ClipSpec, configs_dir, load_clip_spec
from vfcache.errors import ConfigError
from vfcache.layout import CacheDir, DataRoot
from vfcache.trainers.dataset import ClipDataset
from vfcache.trainers.evaluate import resolve_amp
from vfcache.trainers.gpu import DeviceBatcher
from vfcache.trainers.input_contract import InputContract, check_contract, resolve_contract
from vfcache.trainers.loader import default_workers, make_loader
from vfcache.trainers.models import build_model
from vfcache.trainers.train import accumulate_gradient
from vfcache.trainers.train_config import (
    ModelConfig,
    TrainConfig,
    load_train_config,
    resolve_split_path,
)
from vfcache.trainers.train_setup import (
    LossView,
    build_optimizer,
    grad_scaler,
    loss_head,
    optimizer_step,
)
from vfcache.trainers.trainable import set_trainable

TARGET_DATA_WAIT_SHARE = 0.05
DEFAULT_RECIPE = configs_dir() / "train" / "supcon_mixed.yaml"


def _batches(dataset: ClipDataset, batch_size: int, steps: int, seed: int) -> BatchSampler:
    generator = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(
        dataset, replacement=True, num_samples=batch_size * steps, generator=generator
    )
    return BatchSampler(sampler, batch_size, drop_last=True)


def _loader_ceiling(
    dataset: ClipDataset, batch_size: int, steps: int, workers: int, device: torch.device, contract
) -> float:
    loader = make_loader(
        dataset,
        _batches(dataset, batch_size, steps + 1, seed=1),
        workers=workers,
        persistent_workers=False,
    )
    batcher = DeviceBatcher(loader, device, contract.pixels, layout=contract.layout)
    iterator = iter(batcher)
    next(iterator)  # worker start-up is not the steady state
    started = time.perf_counter()
    count = 0
    for batch in iterator:
        count += batch["clip"].shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return count / (time.perf_counter() - started)


def bench_recipe(recipe: Optional[Path], model_name: Optional[str]) -> TrainConfig:
    """The recipe the benchmark runs: its model swapped for `model_name` when given, and no
    domain loss weights (one domain in the corpus)."""
    config = load_train_config(recipe or DEFAULT_RECIPE)
    if model_name is not None and model_name != config.model.name:
        config = dataclasses.replace(config, model=ModelConfig(name=model_name, kwargs={}))
    return dataclasses.replace(config, domain_loss_weights=None)


DEFAULT_SPEC = "r2plus1d_24x224"


def recipe_clip_spec(
    config: TrainConfig,
    root: DataRoot,
    contract: InputContract,
    *,
    spec: Optional[str] = None,
    recipe_data: bool = True,
) -> tuple[ClipSpec, str]:
    """(clip spec, where it came from) for the benchmark cache: `spec` (a preset name or YAML
    path) when given; else, with `recipe_data`, the spec.json of the cache folder of the first
    recipe train split file that has one, else the preset its path names
    (`cache/<dataset>/<spec>/splits/...`); else the model's contract (frames, size) over the
    R(2+1)D card's 24x224 preset."""
    if spec is not None:
        return load_clip_spec(spec), f"--spec {spec}"
    if recipe_data:
        paths = [resolve_split_path(p, root.path) for p in config.data.train]
        for path in paths:
            if isinstance(path, Path) and CacheDir(path.parents[2]).spec_json.is_file():
                cache = CacheDir(path.parents[2])
                return cache.read_spec(), str(cache.spec_json)
        for path in paths:
            parts = Path(str(path)).parts
            if len(parts) >= 4 and parts[-3] == "splits":
                try:
                    return load_clip_spec(parts[-4]), f"the preset the recipe's data names ({path})"
                except ConfigError:
                    continue
    base = load_clip_spec(DEFAULT_SPEC)
    if contract.frames is None and contract.size is None:
        return base, f"the default {DEFAULT_SPEC} (the model takes any frames and size)"
    frames = contract.frames or base.frames
    height, width = contract.size or (base.height, base.width)
    name = f"{config.model.name}_{frames}x{height}x{width}"
    shaped = dataclasses.replace(base, name=name, frames=frames, height=height, width=width)
    return shaped, f"the model's input contract ({contract.describe()})"


def run_train_benchmark(
    root: DataRoot,
    *,
    device: Optional[str] = None,
    model_name: Optional[str] = None,
    recipe: Optional[Path] = None,
    batch_size: int = 24,
    steps: int = 40,
    warmup_steps: int = 5,
    workers: Optional[int] = None,
    videos_dir: Optional[Path] = None,
    corpus: str = "natural",
    spec: Optional[str] = None,
) -> dict:
    """Measure the training step with the project's loader; returns a JSON-ready dict. The
    benchmark cache is cut with the clip spec of the recipe's data (`recipe_clip_spec`)."""
    chosen = device or ("cuda" if torch.cuda.is_available() else None)
    if chosen is None:
        return {
            "benchmark": "train",
            "cuda": False,
            "message": "no CUDA device: bench train measures GPU training and needs one; nothing "
            "was measured",
        }
    config = bench_recipe(recipe, model_name)
    dev = torch.device(chosen)
    torch.backends.cudnn.benchmark = True
    workers = default_workers() if workers is None else workers
    torch.manual_seed(config.seed)
    model = build_model(config.model.name, **config.model.kwargs)
    contract = resolve_contract(model, layout=config.layout, pixels=config.normalisation)
    # with another model than the recipe's, the recipe's data says nothing about its input
    recipe_model = load_train_config(recipe or DEFAULT_RECIPE).model.name
    clip_spec, spec_from = recipe_clip_spec(
        config, root, contract, spec=spec, recipe_data=config.model.name == recipe_model
    )
    split_file, _, _ = build_bench_cache(root, videos_dir, corpus, spec=clip_spec)
    dataset = ClipDataset(split_file)
    check_contract(
        contract, dataset.rgb_shape, model_name=config.model.name, clips_from=str(split_file)
    )
    trainable, total = set_trainable(model, config.unfreeze)
    model.to(dev)
    memory_format = torch.contiguous_format
    if dev.type == "cuda" and contract.layout == "BCTHW":
        model = model.to(memory_format=torch.channels_last_3d)
        memory_format = torch.channels_last_3d
    optimizer = build_optimizer(config, model)
    view = LossView(model, loss_head(config))
    amp_dtype = resolve_amp(config.amp, dev)
    scaler = grad_scaler(amp_dtype, dev)
    loader = make_loader(
        dataset,
        _batches(dataset, batch_size, warmup_steps + steps, seed=0),
        workers=workers,
        persistent_workers=False,
    )
    batcher = DeviceBatcher(
        loader, dev, contract.pixels, memory_format=memory_format, layout=contract.layout
    )
    model.train()
    wait_s = step_s = 0.0
    clips = 0
    iterator = iter(batcher)
    for step in range(warmup_steps + steps):
        waited_before = batcher.loader_wait_s
        t0 = time.perf_counter()
        batch = next(iterator)
        accumulate_gradient(config, view, batch, scale=1.0, amp_dtype=amp_dtype, scaler=scaler)
        optimizer_step(config, optimizer, scaler)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t2 = time.perf_counter()
        if step >= warmup_steps:
            wait_s += batcher.loader_wait_s - waited_before
            step_s += t2 - t0
            clips += batch["clip"].shape[0]
    ceiling = _loader_ceiling(dataset, batch_size, steps, workers, dev, contract)
    share = wait_s / step_s
    return {
        "benchmark": "train",
        "cuda": dev.type == "cuda",
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "model": config.model.name,
        "recipe": str(recipe or DEFAULT_RECIPE),
        "unfreeze": str(config.unfreeze),
        "trainable_parameters": trainable,
        "parameters": total,
        "loss": config.loss.kind,
        "batch_size": batch_size,
        "steps": steps,
        "workers": workers,
        "clip_shape": list(dataset.clip_shape),
        "clip_spec": clip_spec.name,
        "clip_spec_from": spec_from,
        "dtype": "float32" if amp_dtype is None else str(amp_dtype).replace("torch.", ""),
        "grad_scaler": scaler.is_enabled(),
        "data_wait_share": share,
        "train_clips_per_s": clips / step_s,
        "loader_ceiling_clips_per_s": ceiling,
        "target_data_wait_share": f"< {TARGET_DATA_WAIT_SHARE}",
        "meets_target": share < TARGET_DATA_WAIT_SHARE,
    }


def format_train_table(result: dict) -> str:
    if "data_wait_share" not in result:
        return result["message"]
    ok = "yes" if result["meets_target"] else "NO"
    return "\n".join(
        [
            f"{result['model']} ({result['loss']}, unfreeze {result['unfreeze']}) on "
            f"{result['device_name']}, "
            f"{result['dtype']}, batch {result['batch_size']}, "
            f"clips {'x'.join(map(str, result['clip_shape']))}, {result['workers']} loader "
            f"workers, {result['steps']} steps",
            f"clip spec {result['clip_spec']} (from {result['clip_spec_from']})",
            f"data wait share      {result['data_wait_share']:8.3f}   target "
            f"{result['target_data_wait_share']}  {ok}",
            f"training clips/s     {result['train_clips_per_s']:8.1f}",
            f"loader ceiling       {result['loader_ceiling_clips_per_s']:8.1f} clips/s",
        ]
    )
