"""Model front door of the training layer: build by name or import path, freeze, load.

- `build_model("r2plus1d_18_supcon" | "r2plus1d_18_baseline" | "tiny3d" | "pkg.mod:factory")`
- `to_detector_output(raw)` turns whatever a model returned (DetectorOutput, dict, or a
  plain logits tensor) into a `DetectorOutput`, so the loop never special-cases a model.
- `set_trainable(model, policy)` / `enter_train_mode(model)`: the card's unfreeze policies.
- `save_checkpoint` / `load_checkpoint_model`: the card's checkpoint dict (`epoch`,
  `model_state_dict`, `optimizer_state_dict`, `best_selection_score`, `args`), read with
  `weights_only=True` and loaded strictly; `transfer_backbone` copies only backbone weights
  (the card's DVF base -> SupCon transfer).

The R(2+1)D architecture itself lives in `vfcache.trainers.r2plus1d`.
"""

from __future__ import annotations

import importlib
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn
from vfcache.trainers.r2plus1d import (
    BaselineClassifier,
    DetectorOutput,
    R2Plus1DDetector,
)

from vfcache.atomic import atomic_write

logger = logging.getLogger(__name__)

CHECKPOINT_KEYS = (
    "epoch",
    "model_state_dict",
    "optimizer_state_dict",
    "best_selection_score",
    "args",
)
BACKBONE_PREFIXES = ("stem.", "layer1.", "layer2.", "layer3.", "layer4.")


class Tiny3D(nn.Module):
    """A small 3D CNN with the detector interface, for fast CPU training and tests.

    Same attribute names as the R(2+1)D detector (`stem`, `layer1`..`layer4`, `avgpool`,
    `fc`, `proj_head`), so every unfreeze policy applies to it. With width 8: 81,530
    parameters, and a training step (forward + backward) on a batch of eight 8x112x112 clips
    takes about 0.1 s on one CPU core.
    """

    def __init__(self, width: int = 8, proj_dim: int = 32, num_classes: int = 2) -> None:
        super().__init__()
        for name, value in (("width", width), ("proj_dim", proj_dim), ("num_classes", num_classes)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.stem = _conv_bn_relu(3, width, kernel=(1, 5, 5), stride=(1, 2, 2))
        self.layer1 = _conv_bn_relu(width, width, kernel=(3, 3, 3), stride=(1, 2, 2))
        self.layer2 = _conv_bn_relu(width, 2 * width, kernel=(3, 3, 3), stride=(2, 2, 2))
        self.layer3 = _conv_bn_relu(2 * width, 4 * width, kernel=(3, 3, 3), stride=(2, 2, 2))
        self.layer4 = _conv_bn_relu(4 * width, 8 * width, kernel=(3, 3, 3), stride=(1, 2, 2))
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        feature_dim = 8 * width
        self.fc = nn.Linear(feature_dim, num_classes)
        self.proj_head = nn.Sequential(
            nn.Linear(feature_dim, feature_dim),
            nn.ReLU(inplace=True),
            nn.Linear(feature_dim, proj_dim),
        )

    def forward(self, clips: torch.Tensor) -> DetectorOutput:
        if clips.ndim != 5 or clips.shape[1] != 3:
            raise ValueError(f"expected clips shaped (B, 3, T, H, W), got {tuple(clips.shape)}")
        x = self.stem(clips)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        features = self.avgpool(x).flatten(1)
        embedding = F.normalize(self.proj_head(features), dim=1)
        return DetectorOutput(logits=self.fc(features), features=features, embedding=embedding)


def _conv_bn_relu(
    in_ch: int, out_ch: int, *, kernel: tuple[int, int, int], stride: tuple[int, int, int]
) -> nn.Sequential:
    padding = tuple(k // 2 for k in kernel)
    return nn.Sequential(
        nn.Conv3d(in_ch, out_ch, kernel_size=kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm3d(out_ch),
        nn.ReLU(inplace=True),
    )


class TinyReconstructor3D(nn.Module):
    """A small 3D convolutional autoencoder for one-class training (the TimeSformer card's idea,
    at CPU size): it reconstructs its input clip in [-1, 1] and scores each clip by the mean
    squared reconstruction error, so clips unlike its (real) training data score high."""

    input_contract = {"layout": "BCTHW", "pixels": "symmetric"}

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, got {width!r}")
        self.encoder = nn.Sequential(
            nn.Conv3d(3, width, (1, 4, 4), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.GELU(),
            nn.Conv3d(width, 2 * width, (1, 4, 4), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.GELU(),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose3d(2 * width, width, (1, 4, 4), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.GELU(),
            nn.ConvTranspose3d(width, 3, (1, 4, 4), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.Tanh(),
        )

    def forward(self, clips: torch.Tensor) -> DetectorOutput:
        if clips.ndim != 5 or clips.shape[1] != 3 or clips.shape[-1] % 4 or clips.shape[-2] % 4:
            raise ValueError(
                f"expected clips shaped (B, 3, T, H, W) with H, W multiples of 4, "
                f"got {tuple(clips.shape)}"
            )
        reconstruction = self.decoder(self.encoder(clips))
        score = (reconstruction - clips).pow(2).flatten(1).mean(dim=1)
        return DetectorOutput(logits=None, score=score)


MODEL_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "r2plus1d_18_supcon": R2Plus1DDetector,
    "r2plus1d_18_baseline": BaselineClassifier,
    "tiny3d": Tiny3D,
    "tiny_reconstructor3d": TinyReconstructor3D,
}
# the transformer detectors of the seed cards load `transformers` (the [hf] extra) only when built
LAZY_MODELS = {
    name: f"vfcache.trainers.hf_models:{name}"
    for name in ("videomae", "clip_adapter", "timesformer_reconstructor")
}


def build_model(name_or_import_path: str, **kwargs: Any) -> nn.Module:
    """Build a registered model, or call `package.module:factory(**kwargs)`.

    An import-path factory may return any `nn.Module` taking `(B, 3, T, H, W)`; its output
    goes through `to_detector_output`, so a plain tensor counts as logits. The module is
    returned unwrapped, so its state_dict keys are its own.
    """
    if name_or_import_path in MODEL_REGISTRY:
        factory = MODEL_REGISTRY[name_or_import_path]
    elif name_or_import_path in LAZY_MODELS:
        factory = _import_factory(LAZY_MODELS[name_or_import_path])
    elif ":" in name_or_import_path:
        factory = _import_factory(name_or_import_path)
    else:
        raise ValueError(
            f"unknown model {name_or_import_path!r}: use one of "
            f"{sorted({**MODEL_REGISTRY, **LAZY_MODELS})} "
            "or an import path 'package.module:factory'"
        )
    try:
        model = factory(**kwargs)
    except TypeError as err:
        raise ValueError(
            f"model {name_or_import_path!r} rejected arguments {sorted(kwargs)}: {err}"
        ) from err
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model factory {name_or_import_path!r} returned {type(model).__name__}, "
            "expected a torch.nn.Module"
        )
    return model


def _import_factory(import_path: str) -> Callable[..., Any]:
    module_name, _, attr_path = import_path.partition(":")
    if not module_name or not attr_path:
        raise ValueError(f"import path {import_path!r} must look like 'package.module:factory'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(
            f"cannot import module {module_name!r} of model {import_path!r}: {err}"
        ) from err
    for attr in attr_path.split("."):
        try:
            target = getattr(target, attr)
        except AttributeError as err:
            raise ValueError(
                f"module {module_name!r} has no attribute {attr_path!r} (model {import_path!r})"
            ) from err
    if not callable(target):
        raise ValueError(f"{import_path!r} names a {type(target).__name__}, not a callable")
    return target


def to_detector_output(
    raw: Union[DetectorOutput, Mapping[str, torch.Tensor], torch.Tensor],
) -> DetectorOutput:
    """Normalise a model's return value: DetectorOutput, a dict with `logits` or `score` (and
    optionally `features`, `embedding`), or a plain (B, C) tensor taken as logits."""
    if isinstance(raw, DetectorOutput):
        out = raw
    elif isinstance(raw, torch.Tensor):
        out = DetectorOutput(logits=raw)
    elif isinstance(raw, Mapping):
        unknown = set(raw) - {"logits", "features", "embedding", "score"}
        if not ({"logits", "score"} & set(raw)) or unknown:
            raise ValueError(
                f"model returned a dict with keys {sorted(raw)}; expected 'logits' or 'score' "
                "and optionally 'features' and 'embedding'"
            )
        out = DetectorOutput(
            logits=raw.get("logits"),
            features=raw.get("features"),
            embedding=raw.get("embedding"),
            score=raw.get("score"),
        )
    else:
        raise TypeError(
            f"model returned {type(raw).__name__}; expected a tensor of logits, a dict, "
            "or a DetectorOutput"
        )
    if out.logits is None and out.score is None:
        raise ValueError("model returned neither logits nor an anomaly score")
    if out.logits is not None and out.logits.ndim != 2:
        raise ValueError(f"logits must be shaped (B, num_classes), got {tuple(out.logits.shape)}")
    if out.score is not None and out.score.ndim != 1:
        raise ValueError(f"an anomaly score must be shaped (B,), got {tuple(out.score.shape)}")
    return out


def enter_train_mode(model: nn.Module) -> nn.Module:
    """`model.train()`, then put every BatchNorm whose parameters are all frozen back in
    eval mode, so frozen parts neither update running stats nor use batch statistics."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()
    return model


@dataclass(frozen=True)
class CheckpointInfo:
    """The non-weight fields of a card-format checkpoint."""

    path: str
    epoch: Optional[int]
    best_selection_score: Optional[float]
    args: Mapping[str, Any]
    has_optimizer_state: bool


def save_checkpoint(
    path: Union[str, Path],
    model: nn.Module,
    *,
    epoch: int,
    optimizer: Optional[torch.optim.Optimizer] = None,
    best_selection_score: Optional[float] = None,
    args: Optional[Mapping[str, Any]] = None,
    extra: Optional[Mapping[str, Any]] = None,
) -> Path:
    """Write the card's checkpoint dict atomically (`vfcache.atomic.atomic_write`).

    `args` must hold only str/int/float/bool/None and lists/dicts of them, so the file loads
    with `torch.load(weights_only=True)`. `extra` adds top-level keys beside the card's (e.g.
    the trainer's resume state); its values may also hold tensors, which weights_only loads.
    """
    args_dict = dict(args or {})
    _check_plain(args_dict, "args")
    extra_dict = dict(extra or {})
    clashing = sorted(set(extra_dict) & set(CHECKPOINT_KEYS))
    if clashing:
        raise ValueError(f"extra checkpoint keys {clashing} clash with the card's keys")
    _check_plain(extra_dict, "extra", allow_tensors=True)
    checkpoint = {
        "epoch": int(epoch),
        "model_state_dict": model.state_dict(),
        "optimizer_state_dict": optimizer.state_dict() if optimizer is not None else {},
        "best_selection_score": (
            None if best_selection_score is None else float(best_selection_score)
        ),
        "args": args_dict,
        **extra_dict,
    }
    with atomic_write(path, "wb") as handle:
        torch.save(checkpoint, handle)
    return Path(path)


def _check_plain(value: Any, where: str, *, allow_tensors: bool = False) -> None:
    if value is None or isinstance(value, (str, bool, int, float)):
        return
    if allow_tensors and isinstance(value, torch.Tensor):
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]", allow_tensors=allow_tensors)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has non-string key {key!r}")
            _check_plain(item, f"{where}.{key}", allow_tensors=allow_tensors)
        return
    raise TypeError(
        f"{where} is a {type(value).__name__}; checkpoint args must be plain "
        "str/int/float/bool/None/list/dict so they load with weights_only=True"
    )


def read_checkpoint(
    path: Union[str, Path], map_location: Union[str, torch.device] = "cpu"
) -> dict[str, Any]:
    """`torch.load(..., weights_only=True)` with errors that name the file."""
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"checkpoint not found: {path}") from err
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError) as err:
        raise ValueError(f"cannot read checkpoint {path} with weights_only=True: {err}") from err
    if not isinstance(checkpoint, dict):
        raise ValueError(f"checkpoint {path} holds a {type(checkpoint).__name__}, expected a dict")
    return checkpoint


def load_checkpoint_model(
    path: Union[str, Path],
    model: Union[str, nn.Module] = "r2plus1d_18_supcon",
    *,
    map_location: Union[str, torch.device] = "cpu",
    **model_kwargs: Any,
) -> tuple[nn.Module, CheckpointInfo]:
    """Build `model` (a name, import path or module) and load a checkpoint strictly.

    Accepts the card's dict (weights under `model_state_dict`) or a bare state_dict. The
    model is returned in eval mode with the checkpoint's other fields.
    """
    return model_from_checkpoint(
        read_checkpoint(path, map_location), model, source=path, **model_kwargs
    )


def model_from_checkpoint(
    checkpoint: Mapping[str, Any],
    model: Union[str, nn.Module] = "r2plus1d_18_supcon",
    *,
    source: Union[str, Path] = "<checkpoint>",
    **model_kwargs: Any,
) -> tuple[nn.Module, CheckpointInfo]:
    """`load_checkpoint_model` on a checkpoint dict already read (`source` names it in errors)."""
    path = source
    if "model_state_dict" in checkpoint:
        state_dict = checkpoint["model_state_dict"]
    elif checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        state_dict = checkpoint
    else:
        raise ValueError(
            f"checkpoint {path} has keys {sorted(checkpoint)}; expected 'model_state_dict' "
            f"(card format {list(CHECKPOINT_KEYS)}) or a bare state_dict"
        )
    module = model if isinstance(model, nn.Module) else build_model(model, **model_kwargs)
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        raise ValueError(f"checkpoint {path} does not fit {type(module).__name__}: {err}") from err
    module.eval()
    info = CheckpointInfo(
        path=str(path),
        epoch=checkpoint.get("epoch"),
        best_selection_score=checkpoint.get("best_selection_score"),
        args=dict(checkpoint.get("args") or {}),
        has_optimizer_state=bool(checkpoint.get("optimizer_state_dict")),
    )
    return module, info


def transfer_backbone(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Copy the backbone (`stem.*`, `layer1-4.*`) from another checkpoint's state_dict.

    Every backbone key of `model` must be present with the same shape (strict on the
    backbone); head keys on either side are left alone. Returns the source keys skipped,
    e.g. the base checkpoint's `fc.1.*` when starting the SupCon transfer.
    """
    own = {k: v for k, v in model.state_dict().items() if k.startswith(BACKBONE_PREFIXES)}
    if not own:
        raise ValueError(f"{type(model).__name__} has no stem/layer1-4 parameters to transfer into")
    missing = sorted(set(own) - set(state_dict))
    if missing:
        raise ValueError(
            f"source state_dict lacks {len(missing)} backbone keys, e.g. {missing[:3]}"
        )
    mismatched = [k for k in own if tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if mismatched:
        key = mismatched[0]
        raise ValueError(
            f"backbone key {key!r} has shape {tuple(state_dict[key].shape)} in the source, "
            f"{tuple(own[key].shape)} in the model ({len(mismatched)} mismatched)"
        )
    model.load_state_dict({k: state_dict[k] for k in own}, strict=False)
    skipped = sorted(k for k in state_dict if k not in own)
    logger.info("transferred %d backbone tensors; skipped %s", len(own), skipped)
    return skipped
