"""torchrun support: the process group from the environment, the rank's device, and collectives.

`torchrun --nproc_per_node N -m ...` sets RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT;
`init_distributed` joins the group (nccl on CUDA, gloo on CPU) when WORLD_SIZE > 1 and
returns a `DistInfo`. Without torchrun everything here is a no-op on a world of one.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

# Validation runs on rank 0 while the other ranks wait at a barrier; allow it time.
PROCESS_GROUP_TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    initialized_here: bool  # this process group was created by `init_distributed`

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as err:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from err


def pick_device(requested: str, local_rank: int) -> torch.device:
    """`auto`: this rank's GPU when CUDA is available, else CPU."""
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {requested!r}")
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA device")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def init_distributed(requested_device: str = "auto") -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (or reuse one already joined)."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    device = pick_device(requested_device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size == 1:
        return DistInfo(0, 1, 0, device, initialized_here=False)
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} is outside WORLD_SIZE={world_size}")
    created = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend=backend,
            timeout=PROCESS_GROUP_TIMEOUT,
            device_id=device if device.type == "cuda" else None,
        )
        created = True
        log.info(
            "joined process group: rank %d of %d (%s) on %s", rank, world_size, backend, device
        )
    elif dist.get_world_size() != world_size or dist.get_rank() != rank:
        raise RuntimeError(
            f"a process group is already initialised as rank {dist.get_rank()} of "
            f"{dist.get_world_size()}, the environment says {rank} of {world_size}"
        )
    return DistInfo(rank, world_size, local_rank, device, initialized_here=created)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def all_gather_objects(info: DistInfo, value: Any) -> list[Any]:
    """Every rank's `value`, in rank order (pickled; for small state such as RNG states)."""
    if not info.distributed:
        return [value]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast_object(info: DistInfo, value: Any) -> Any:
    """Rank 0's `value` on every rank."""
    if not info.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()
