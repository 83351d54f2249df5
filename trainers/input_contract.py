"""What a model eats: the tensor layout, the pixel preset, and the frames and size of a clip.

The cache stores uint8 `(T, H, W, 3)` clips; `vfcache.trainers.gpu` turns a batch of them into what
the
model declares, on the device: layout `BCTHW` (3D CNNs: R(2+1)D, tiny3d) or `BTCHW`
(frame-wise transformers: VideoMAE, TimeSformer, CLIP), and a pixel preset (`unit` [0,1],
`symmetric` [-1,1], `raw255` [0,255] for models that normalise internally (GASBench),
`kinetics`, `imagenet` or `clip` mean/std). A model declares it with an `input_contract`
attribute (an `InputContract` or a dict of its fields, on the model or its class); a train or
eval config's `layout` / `normalisation` override it. `train` and `eval` check the declared
frames and size against the clips' spec at start, and a mismatch is one line naming both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from torch import nn
from vfcache.trainers.gpu import NORMALISATIONS

from vfcache.errors import StageError

LAYOUTS = ("BCTHW", "BTCHW")


@dataclass(frozen=True)
class InputContract:
    layout: str = "BCTHW"
    pixels: str = "unit"  # a vfcache.trainers.gpu normalisation preset
    frames: Optional[int] = None  # None: any
    size: Optional[tuple[int, int]] = None  # (height, width); None: any

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"input layout {self.layout!r} is not one of {LAYOUTS}")
        if self.pixels not in NORMALISATIONS:
            raise ValueError(f"pixel preset {self.pixels!r} is not one of {sorted(NORMALISATIONS)}")

    def describe(self) -> str:
        frames = f"{self.frames} frames" if self.frames else "any frames"
        size = f"{self.size[0]}x{self.size[1]}" if self.size else "any size"
        return f"{frames} at {size} ({self.layout}, {self.pixels})"


def declared_contract(model: nn.Module) -> InputContract:
    """The model's own `input_contract` (instance or class attribute), else the defaults."""
    declared: Any = getattr(model, "input_contract", None)
    if declared is None:
        return InputContract()
    if isinstance(declared, InputContract):
        return declared
    if isinstance(declared, Mapping):
        values = dict(declared)
        if values.get("size") is not None:
            values["size"] = tuple(values["size"])
        return InputContract(**values)
    raise TypeError(
        f"{type(model).__name__}.input_contract is a {type(declared).__name__}, "
        "expected an InputContract or a dict of its fields"
    )


def resolve_contract(
    model: nn.Module, *, layout: Optional[str] = None, pixels: Optional[str] = None
) -> InputContract:
    """The model's contract with the config's `layout` / `normalisation` where those are set."""
    contract = declared_contract(model)
    changes = {k: v for k, v in (("layout", layout), ("pixels", pixels)) if v is not None}
    return dataclasses.replace(contract, **changes) if changes else contract


def check_contract(
    contract: InputContract, clip_shape: Sequence[int], *, model_name: str, clips_from: str
) -> None:
    """StageError (one line) when the clips' frames or size differ from what the model declares."""
    frames, height, width = int(clip_shape[0]), int(clip_shape[1]), int(clip_shape[2])
    wrong_frames = contract.frames is not None and contract.frames != frames
    wrong_size = contract.size is not None and tuple(contract.size) != (height, width)
    if wrong_frames or wrong_size:
        raise StageError(
            f"model {model_name} eats {contract.describe()}, but the clips of "
            f"{clips_from} are {frames} frames at {height}x{width}; extract them with a "
            "clip spec that matches, or use another model"
        )
