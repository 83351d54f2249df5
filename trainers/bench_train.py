"""`vfcache bench train`: is the GPU ever waiting for data?

Runs R(2+1)D-18 (the card's detector) on 24x224x224 clips from the cache, bf16 autocast,
batch 24, through the project's loader (`ClipDataset` + `make_loader` + `DeviceBatcher`),
and reports:

- data wait share: time the training loop spends blocked on the next batch, over the
  whole step time (target < 5% with at most 8 workers);
- clips/s of the training loop;
- the loader's own ceiling: clips/s of the same loader with no model attached.

It needs a CUDA device and says so plainly where there is none. `--device cpu` with a small
model runs the same code path for a smoke test; its figures say nothing about a GPU.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import BatchSampler, RandomSampler

from manifests.layout import DataRoot
from trainers.bench_load import build_bench_cache
from trainers.dataset import ClipDataset
from trainers.gpu import DeviceBatcher
from trainers.loader import default_workers, make_loader
from trainers.models import build_model, to_detector_output

TARGET_DATA_WAIT_SHARE = 0.05


def _batches(dataset: ClipDataset, batch_size: int, steps: int, seed: int) -> BatchSampler:
    generator = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(dataset, replacement=True, num_samples=batch_size * steps, generator=generator)
    return BatchSampler(sampler, batch_size, drop_last=True)


def _loader_ceiling(dataset: ClipDataset, batch_size: int, steps: int, workers: int, device: torch.device) -> float:
    loader = make_loader(dataset, _batches(dataset, batch_size, steps, seed=1), workers=workers,
                         persistent_workers=False)
    batcher = DeviceBatcher(loader, device, "unit")
    iterator = iter(batcher)
    next(iterator)  # worker start-up is not the steady state
    started = time.perf_counter()
    count = 0
    for batch in iterator:
        count += batch["clip"].shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return count / (time.perf_counter() - started)


def run_train_benchmark(root: DataRoot, *, device: Optional[str] = None, model_name: str = "r2plus1d_18_supcon",
                        batch_size: int = 24, steps: int = 40, warmup_steps: int = 5,
                        workers: Optional[int] = None, videos_dir: Optional[Path] = None) -> dict:
    """Measure the training step with the project's loader; returns a JSON-ready dict."""
    chosen = device or ("cuda" if torch.cuda.is_available() else None)
    if chosen is None:
        return {"benchmark": "train", "cuda": False,
                "message": "no CUDA device: bench train measures GPU training and needs one; nothing was measured"}
    dev = torch.device(chosen)
    workers = default_workers() if workers is None else workers
    split_file, _, _ = build_bench_cache(root, videos_dir)
    dataset = ClipDataset(split_file)
    model = build_model(model_name).to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=1e-5)
    autocast = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
    loader = make_loader(dataset, _batches(dataset, batch_size, warmup_steps + steps, seed=0), workers=workers,
                         persistent_workers=False)
    batcher = DeviceBatcher(loader, dev, "unit",
                            memory_format=torch.channels_last_3d if dev.type == "cuda" else torch.contiguous_format)
    wait_s = step_s = 0.0
    clips = 0
    iterator = iter(batcher)
    for step in range(warmup_steps + steps):
        t0 = time.perf_counter()
        batch = next(iterator)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t1 = time.perf_counter()
        with autocast:
            logits = to_detector_output(model(batch["clip"])).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), batch["label"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t2 = time.perf_counter()
        if step >= warmup_steps:
            wait_s += t1 - t0
            step_s += t2 - t0
            clips += batch["clip"].shape[0]
    ceiling = _loader_ceiling(dataset, batch_size, steps, workers, dev)
    share = wait_s / step_s
    return {
        "benchmark": "train", "cuda": dev.type == "cuda", "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "model": model_name, "batch_size": batch_size, "steps": steps, "workers": workers,
        "clip_shape": list(dataset.clip_shape), "dtype": "bfloat16" if dev.type == "cuda" else "float32",
        "data_wait_share": share, "train_clips_per_s": clips / step_s, "loader_ceiling_clips_per_s": ceiling,
        "target_data_wait_share": f"< {TARGET_DATA_WAIT_SHARE}",
        "meets_target": share < TARGET_DATA_WAIT_SHARE,
    }


def format_train_table(result: dict) -> str:
    if "data_wait_share" not in result:
        return result["message"]
    ok = "yes" if result["meets_target"] else "NO"
    return "\n".join([
        f"{result['model']} on {result['device_name']}, {result['dtype']}, batch {result['batch_size']}, "
        f"clips {'x'.join(map(str, result['clip_shape']))}, {result['workers']} loader workers, {result['steps']} steps",
        f"data wait share      {result['data_wait_share']:8.3f}   target {result['target_data_wait_share']}  {ok}",
        f"training clips/s     {result['train_clips_per_s']:8.1f}",
        f"loader ceiling       {result['loader_ceiling_clips_per_s']:8.1f} clips/s",
    ])
