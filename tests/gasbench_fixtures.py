"""A GASBench model directory written to its specification (docs/Safetensors.md), by hand.

The model accepts only what the specification promises, uint8 `[B, T, 3, H, W]`, and raises on
anything else; its logits are a linear map of the clip's mean colour, so a test can compute
the expected probabilities straight from the frames (`expected_probabilities`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

MODEL_PY = """import torch
from safetensors.torch import load_file
from torch import nn


class MeanColourDetector(nn.Module):
    def __init__(self, num_classes: int = 2):
        super().__init__()
        self.head = nn.Linear(3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8:
            raise TypeError(f"expected uint8 frames, got {x.dtype}")
        if x.ndim != 5 or x.shape[2] != 3:
            raise ValueError(f"expected [B, T, 3, H, W], got {list(x.shape)}")
        colour = x.to(self.head.weight.dtype).div(255.0).mean(dim=(1, 3, 4))
        return self.head(colour)


def load_model(weights_path: str, num_classes: int = 2) -> nn.Module:
    model = MeanColourDetector(num_classes=num_classes)
    model.load_state_dict(load_file(weights_path))
    model.train(False)
    return model
"""


def head_weights(num_classes: int = 2, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.normal(0, 4, size=(num_classes, 3)).astype(np.float32),
        rng.normal(0, 0.5, size=num_classes).astype(np.float32),
    )


def write_model_dir(
    folder: Path,
    *,
    frames: int = 4,
    size: tuple[int, int] = (32, 32),
    num_classes: int = 2,
    dtype: str | None = None,
    frame_rate: float | None = None,
    code: str = MODEL_PY,
    name: str = "mean-colour",
) -> Path:
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    weight, bias = head_weights(num_classes)
    save_file(
        {"head.weight": torch.from_numpy(weight), "head.bias": torch.from_numpy(bias)},
        str(folder / "model.safetensors"),
    )
    (folder / "model.py").write_text(code, encoding="utf-8")
    preprocessing = {"resize": list(size), "num_frames": frames}
    if frame_rate is not None:
        preprocessing["frame_rate"] = frame_rate
    config = {
        "name": name,
        "version": "1.0.0",
        "modality": "video",
        "preprocessing": preprocessing,
        "model": {"num_classes": num_classes, "weights_file": "model.safetensors"},
    }
    if dtype is not None:
        config["dtype"] = dtype
    (folder / "model_config.yaml").write_text(
        yaml.safe_dump(config, sort_keys=False), encoding="utf-8"
    )
    return folder


def expected_probabilities(clips: np.ndarray, num_classes: int = 2) -> np.ndarray:
    """Softmax of the model's logits computed from uint8 (N, T, H, W, 3) frames in numpy."""
    weight, bias = head_weights(num_classes)
    colour = (clips.astype(np.float64) / 255.0).mean(axis=(1, 2, 3))
    logits = colour @ weight.T.astype(np.float64) + bias
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)
