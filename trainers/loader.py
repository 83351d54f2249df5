"""`make_loader`: a DataLoader over a `ClipDataset` and a batch sampler, with defaults for clip
caches.

Workers are forked on Linux (the dataset's metadata and an attached decoded-clip cache are
inherited instead of pickled; shard readers reopen per worker), persistent across epochs,
and prefetch a few batches each; batches are pinned when a GPU is present so the copy to
the device can overlap compute.
"""

from __future__ import annotations

import multiprocessing
import sys
from typing import Callable, Optional

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from vfcache.trainers.dataset import collate_clips

from vfcache.cores import usable_cores

DEFAULT_MAX_WORKERS = 8


def default_workers() -> int:
    """One worker per core left to the training process, at most `DEFAULT_MAX_WORKERS`."""
    return max(0, min(DEFAULT_MAX_WORKERS, usable_cores() - 1))


def make_loader(
    dataset: Dataset,
    batch_sampler: Sampler,
    *,
    workers: Optional[int] = None,
    pin_memory: Optional[bool] = None,
    prefetch_factor: int = 4,
    persistent_workers: bool = True,
    collate_fn: Callable = collate_clips,
    timeout_s: float = 0,
) -> DataLoader:
    """A DataLoader yielding collated clip batches (see `collate_clips`) in `batch_sampler` order.

    `workers=None` picks `default_workers()`; `pin_memory=None` pins when CUDA is available.
    `prefetch_factor` and `persistent_workers` only apply with workers > 0.
    """
    workers = default_workers() if workers is None else workers
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if prefetch_factor < 1:
        raise ValueError(f"prefetch_factor must be >= 1, got {prefetch_factor}")
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    options: dict = {}
    if workers > 0:
        options.update(
            prefetch_factor=prefetch_factor,
            persistent_workers=persistent_workers,
            timeout=timeout_s,
        )
        if sys.platform.startswith("linux"):
            # fork starts workers fastest, but the object-store client (obstore's async runtime)
            # hangs in a child forked after it was used: remote datasets start workers with spawn
            method = "spawn" if getattr(dataset, "reads_remote", False) else "fork"
            options["multiprocessing_context"] = multiprocessing.get_context(method)
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        **options,
    )
