"""Batches onto the device: uint8 over the bus, float conversion, normalisation and augmentation
there.

A clip batch leaves the DataLoader as uint8 (B, T, H, W, 3) in pinned memory (a quarter of the
bytes of float32), is copied with `non_blocking=True`, and becomes float (B, 3, T, H, W) on
the device (or (B, T, 3, H, W), see `vfcache.trainers.input_contract`). A batch of yuv420 clips
(B, T, H * 3 / 2, W) with their `colour` codes, half the bytes over the bus, is made RGB
there first (`vfcache.trainers.colour.yuv420_to_rgb`, the function CPU runs use too). Normalisation
is a property of
the model, named by preset: `unit` [0, 1], `symmetric` [-1, 1], `raw255` [0, 255], `kinetics`,
`imagenet` and `clip` mean/std. Augmentation (per-sample horizontal flip,
brightness jitter) runs on the device too; its random draws come from a CPU `torch.Generator`
seeded per (seed, rank, epoch, step), so the same step augments the same way on CPU and GPU
and after a resume. Everything here also runs on CPU, which is what the tests use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch
from vfcache.trainers.colour import yuv420_to_rgb


@dataclass(frozen=True)
class Normalisation:
    """`(pixel / 255 - mean) / std` per RGB channel."""

    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


NORMALISATIONS = {
    "unit": Normalisation("unit", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "symmetric": Normalisation("symmetric", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    # 0-255 floats, for models that normalise inside (GASBench's contract)
    "raw255": Normalisation("raw255", (0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255)),
    "imagenet": Normalisation("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "kinetics": Normalisation(
        "kinetics", (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)
    ),
    "clip": Normalisation(
        "clip", (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    ),
}


def get_normalisation(preset: str | Normalisation) -> Normalisation:
    if isinstance(preset, Normalisation):
        return preset
    try:
        return NORMALISATIONS[preset]
    except KeyError as err:
        raise ValueError(
            f"normalisation preset {preset!r} is not one of {sorted(NORMALISATIONS)}"
        ) from err


@dataclass(frozen=True)
class DeviceAugment:
    """Per-sample augmentation applied on the device, in [0, 1] pixel space before normalisation."""

    flip_probability: float = 0.5  # horizontal flip of the whole clip
    brightness_delta: float = (
        0.0  # pixels times a factor drawn uniformly in [1 - delta, 1 + delta], clamped to [0, 1]
    )
    # Colour channels of the clip permuted at random: a video's palette is no evidence of
    # forgery, and on small datasets it is the first shortcut a model memorises.
    channel_shuffle_probability: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.channel_shuffle_probability <= 1.0:
            raise ValueError(
                f"channel_shuffle_probability must be in [0, 1], got "
                f"{self.channel_shuffle_probability}"
            )
        if not 0.0 <= self.flip_probability <= 1.0:
            raise ValueError(f"flip_probability must be in [0, 1], got {self.flip_probability}")
        if not 0.0 <= self.brightness_delta < 1.0:
            raise ValueError(f"brightness_delta must be in [0, 1), got {self.brightness_delta}")


def augment_seed(seed: int, rank: int, epoch: int, step: int) -> int:
    """The seed of one step's augmentation draws (a pure function, so a resumed run repeats
    them)."""
    return int(
        np.random.SeedSequence([seed, rank, epoch, step]).generate_state(1, np.uint64)[0] >> 1
    )


def _per_sample(values: torch.Tensor, device: torch.device) -> torch.Tensor:
    return values.to(device, non_blocking=True).view(-1, 1, 1, 1, 1)


def _shuffle_channels(
    x: torch.Tensor, probability: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Permute the colour channels of each chosen clip of (B, 3, T, H, W); draws are made on the
    CPU."""
    chosen = torch.rand(x.shape[0], generator=generator) < probability
    if not bool(chosen.any()):
        return x
    order = torch.arange(3).repeat(x.shape[0], 1)
    for sample in torch.nonzero(chosen).flatten().tolist():
        order[sample] = torch.randperm(3, generator=generator)
    index = order.to(x.device).view(x.shape[0], 3, 1, 1, 1).expand_as(x)
    return torch.gather(x, 1, index)


def clips_to_float(
    clips: torch.Tensor,
    preset: str | Normalisation = "unit",
    *,
    augment: DeviceAugment | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.contiguous_format,
    layout: str = "BCTHW",
) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) on any device -> `dtype` (B, 3, T, H, W) on the same device, or
    (B, T, 3, H, W) with `layout="BTCHW"` (frame-wise transformers).

    `memory_format=torch.channels_last_3d` keeps the (T, H, W, C) order in memory and skips a
    transpose; the logical layout is (B, 3, T, H, W) either way (BCTHW only).
    """
    if clips.dtype != torch.uint8 or clips.ndim != 5 or clips.shape[-1] != 3:
        raise ValueError(
            f"expected uint8 clips of shape (B, T, H, W, 3), got {clips.dtype} {tuple(clips.shape)}"
        )
    norm = get_normalisation(preset)
    device = clips.device
    # Compute in float32 whatever the output dtype, so bf16 output rounds once.
    x = clips.permute(0, 4, 1, 2, 3).to(torch.float32).div_(255.0)
    if augment is not None:
        draws = torch.rand(
            (clips.shape[0], 2), generator=generator
        )  # CPU draws: device-independent
        flip = draws[:, 0] < augment.flip_probability
        if bool(flip.any()):
            x = torch.where(_per_sample(flip, device), x.flip(-1), x)
        if augment.brightness_delta > 0:
            factor = 1.0 + augment.brightness_delta * (2.0 * draws[:, 1] - 1.0)
            x.mul_(_per_sample(factor, device)).clamp_(0.0, 1.0)
        if augment.channel_shuffle_probability > 0:
            x = _shuffle_channels(x, augment.channel_shuffle_probability, generator)
    if norm.name != "unit":
        mean = torch.tensor(norm.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1, 1)
        std = torch.tensor(norm.std, dtype=torch.float32, device=device).view(1, 3, 1, 1, 1)
        x.sub_(mean).div_(std)
    if layout == "BTCHW":
        return x.permute(0, 2, 1, 3, 4).to(dtype=dtype).contiguous()
    if layout != "BCTHW":
        raise ValueError(f"layout {layout!r} is not BCTHW or BTCHW")
    return x.to(dtype=dtype, memory_format=memory_format)


def to_device(
    batch: dict,
    device: str | torch.device,
    preset: str | Normalisation = "unit",
    augment: DeviceAugment | None = None,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.contiguous_format,
    layout: str = "BCTHW",
) -> dict:
    """A collated clip batch with its clips as float in `layout` and its tensors on `device`;
    list fields (domain, generator, clip_id) pass through. yuv420 clips (a batch with
    `colour`) are made RGB on the device first."""
    device = torch.device(device)
    moved = {
        key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
        for key, value in batch.items()
    }
    if "colour" in moved:
        moved["clip"] = yuv420_to_rgb(moved["clip"], moved["colour"])
    moved["clip"] = clips_to_float(
        moved["clip"],
        preset,
        augment=augment,
        generator=generator,
        dtype=dtype,
        memory_format=memory_format,
        layout=layout,
    )
    return moved


class DeviceBatcher:
    """Wraps a DataLoader: yields batches on the device, converted and (optionally) augmented.

    On CUDA the next batch is copied and converted on a side stream while the current one is
    in use. Step `k` of epoch `e` draws its augmentation from `augment_seed(seed, rank, e, k)`;
    after a mid-epoch resume call `set_epoch(e, first_step=steps_done)`.
    """

    def __init__(
        self,
        loader: Iterable[dict],
        device: str | torch.device,
        preset: str | Normalisation = "unit",
        augment: DeviceAugment | None = None,
        *,
        seed: int = 0,
        rank: int = 0,
        dtype: torch.dtype = torch.float32,
        memory_format: torch.memory_format = torch.contiguous_format,
        prefetch: bool = True,
        layout: str = "BCTHW",
    ):
        self.loader = loader
        self.device = torch.device(device)
        self.preset = get_normalisation(preset)
        self.augment = augment
        self.seed, self.rank = seed, rank
        self.dtype, self.memory_format = dtype, memory_format
        self.prefetch = prefetch
        self.layout = layout
        self.epoch, self.first_step = 0, 0
        # Seconds the iterator has spent blocked on the DataLoader (host side only): the data
        # wait that `bench train` reports. Converting a batch on the device is compute.
        self.loader_wait_s = 0.0

    def set_epoch(self, epoch: int, first_step: int = 0) -> None:
        """Also sets the epoch of the loader's batch sampler, when it has `set_epoch`."""
        self.epoch, self.first_step = epoch, first_step
        set_sampler_epoch = getattr(getattr(self.loader, "batch_sampler", None), "set_epoch", None)
        if set_sampler_epoch is not None:
            set_sampler_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def _convert(self, batch: dict, step: int) -> dict:
        generator = None
        if self.augment is not None:
            generator = torch.Generator().manual_seed(
                augment_seed(self.seed, self.rank, self.epoch, step)
            )
        return to_device(
            batch,
            self.device,
            self.preset,
            self.augment,
            generator=generator,
            dtype=self.dtype,
            memory_format=self.memory_format,
            layout=self.layout,
        )

    def _timed(self, steps: Iterator[tuple[int, dict]]) -> Iterator[tuple[int, dict]]:
        while True:
            started = time.perf_counter()
            item = next(steps, None)
            self.loader_wait_s += time.perf_counter() - started
            if item is None:
                return
            yield item

    def __iter__(self) -> Iterator[dict]:
        steps = self._timed(enumerate(self.loader, start=self.first_step))
        if not (self.prefetch and self.device.type == "cuda"):
            for step, batch in steps:
                yield self._convert(batch, step)
            return
        side = torch.cuda.Stream(self.device)
        main = torch.cuda.current_stream(self.device)

        def stage(item: tuple[int, dict] | None) -> dict | None:
            if item is None:
                return None
            with torch.cuda.stream(side):
                return self._convert(item[1], item[0])

        ready = stage(next(steps, None))
        while ready is not None:
            main.wait_stream(side)
            for value in ready.values():
                if isinstance(value, torch.Tensor):
                    value.record_stream(main)  # made on the side stream, used on the main one
            current, ready = ready, stage(next(steps, None))
            yield current
