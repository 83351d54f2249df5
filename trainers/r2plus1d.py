"""R(2+1)D-18 written in the project, with torchvision's exact module layout and names.

torchvision is not a dependency, yet the R(2+1)D card's checkpoints were saved from
`torchvision.models.video.r2plus1d_18` with its `fc` replaced and a `proj_head` added. The
classes here rebuild `VideoResNet(BasicBlock, [Conv2Plus1D] * 4, [2, 2, 2, 2],
R2Plus1dStem)` module for module, so every state_dict key (`stem.0.weight`,
`layer1.0.conv1.0.0.weight`, `layer2.0.downsample.0.weight`, ...) and every shape is the
one torchvision produces, and those checkpoints load with `strict=True`.

Heads, as the card's `load_model.py` and training script define them:

- `R2Plus1DDetector` (SupCon checkpoint): `fc` = Linear(512, 2) and
  `proj_head` = Linear(512, 512) -> ReLU -> Linear(512, 128); 31,629,471 parameters.
- `BaselineClassifier` (DVF base checkpoint): `fc` = Dropout(0.4) -> Linear(512, 2), so the
  keys are `fc.1.weight` / `fc.1.bias`; no `proj_head`.

Inputs are float clips `(B, 3, T, H, W)`; the card feeds pixels in [0, 1] with no mean/std.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

LAYER_PLANES = (64, 128, 256, 512)
BLOCKS_PER_LAYER = (2, 2, 2, 2)


@dataclass(frozen=True)
class DetectorOutput:
    """What a detector returns for a batch of B clips.

    `features`: pooled backbone features (B, F); `embedding`: L2-normalised embedding used by
    the contrastive loss and the prototype protocol (B, E); `logits`: (B, 2), columns
    (real, fake). Models named by import path may leave `features` / `embedding` as None.
    `score`: (B,) anomaly score of a one-class model, higher meaning less like its training
    data (its reconstruction error); such a model may return no logits.
    """

    logits: Optional[torch.Tensor]
    features: Optional[torch.Tensor] = None
    embedding: Optional[torch.Tensor] = None
    score: Optional[torch.Tensor] = None


def midplanes_for(in_planes: int, out_planes: int) -> int:
    """Channels between the spatial and temporal conv, chosen (as in the R(2+1)D paper and
    torchvision) so the factorised block has about as many parameters as a full 3x3x3 conv."""
    return (in_planes * out_planes * 3 * 3 * 3) // (in_planes * 3 * 3 + 3 * out_planes)


class Conv2Plus1D(nn.Sequential):
    """(1x3x3 spatial conv, BN, ReLU, 3x1x1 temporal conv); indices 0..3 as in torchvision."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv3d(
                in_planes,
                midplanes,
                kernel_size=(1, 3, 3),
                stride=(1, stride, stride),
                padding=(0, 1, 1),
                bias=False,
            ),
            nn.BatchNorm3d(midplanes),
            nn.ReLU(inplace=True),
            nn.Conv3d(
                midplanes,
                out_planes,
                kernel_size=(3, 1, 1),
                stride=(stride, 1, 1),
                padding=(1, 0, 0),
                bias=False,
            ),
        )


class R2Plus1dStem(nn.Sequential):
    """Factorised stem: 1x7x7 conv to 45 channels, then 3x1x1 conv to 64 (indices 0..5);
    both divided by `width_divisor` in a narrow variant."""

    def __init__(self, width_divisor: int = 1) -> None:
        mid, out = 45 // width_divisor, LAYER_PLANES[0] // width_divisor
        super().__init__(
            nn.Conv3d(
                3, mid, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False
            ),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(
                mid, out, kernel_size=(3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False
            ),
            nn.BatchNorm3d(out),
            nn.ReLU(inplace=True),
        )


class BasicBlock(nn.Module):
    """Residual block; note both convs use the midplanes computed from (inplanes, planes),
    exactly as torchvision does (the second conv does not recompute it)."""

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None
    ) -> None:
        super().__init__()
        midplanes = midplanes_for(inplanes, planes)
        self.conv1 = nn.Sequential(
            Conv2Plus1D(inplanes, planes, midplanes, stride),
            nn.BatchNorm3d(planes),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(
            Conv2Plus1D(planes, planes, midplanes),
            nn.BatchNorm3d(planes),
        )
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x))
        out += residual
        return self.relu(out)


def _make_layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or inplanes != planes:
        # Conv2Plus1D strides time and space alike, so the shortcut does too.
        downsample = nn.Sequential(
            nn.Conv3d(inplanes, planes, kernel_size=1, stride=(stride, stride, stride), bias=False),
            nn.BatchNorm3d(planes),
        )
    layers = [BasicBlock(inplanes, planes, stride, downsample)]
    layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class R2Plus1D18Backbone(nn.Module):
    """Stem, layer1..layer4 and avgpool of torchvision's r2plus1d_18; subclasses add `fc`.

    `forward_features` returns the pooled 512-d features (`feature_dim`; 512 / width_divisor
    in the narrow variants the tests train on a CPU: same modules and parameter names, every
    channel count divided). Weights are initialised as
    torchvision does (Kaiming-normal fan_out convs, BN weight 1 / bias 0); the heads that
    subclasses add keep PyTorch's default Linear init, as in the card's scripts, where they
    were created after torchvision built the network.
    """

    def __init__(self, width_divisor: int = 1) -> None:
        super().__init__()
        if width_divisor not in (1, 2, 4, 8):
            raise ValueError(f"width_divisor must be 1, 2, 4 or 8, got {width_divisor!r}")
        self.stem = R2Plus1dStem(width_divisor)
        inplanes = LAYER_PLANES[0] // width_divisor
        for index, (planes, blocks) in enumerate(zip(LAYER_PLANES, BLOCKS_PER_LAYER), start=1):
            stride = 1 if index == 1 else 2
            # add_module, not setattr: this source is exported into GASBench model directories,
            # whose static check refuses setattr()
            self.add_module(
                f"layer{index}", _make_layer(inplanes, planes // width_divisor, blocks, stride)
            )
            inplanes = planes // width_divisor
        self.feature_dim = inplanes
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self._init_backbone_weights()

    def _init_backbone_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.constant_(module.weight, 1.0)
                nn.init.constant_(module.bias, 0.0)

    def forward_features(self, clips: torch.Tensor) -> torch.Tensor:
        _check_clip_batch(clips)
        x = self.stem(clips)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return self.avgpool(x).flatten(1)


class R2Plus1DDetector(R2Plus1D18Backbone):
    """The card's SupCon model: backbone + `fc` Linear(512, 2) + `proj_head` MLP.

    Attribute order (stem, layer1-4, avgpool, fc, proj_head) matches the card's module, so
    `state_dict()` lists keys in the same order as its checkpoint.
    """

    def __init__(
        self,
        proj_hidden_dim: int = 512,
        proj_dim: int = 128,
        num_classes: int = 2,
        width_divisor: int = 1,
    ) -> None:
        super().__init__(width_divisor)
        _check_positive(proj_hidden_dim=proj_hidden_dim, proj_dim=proj_dim, num_classes=num_classes)
        self.fc = nn.Linear(self.feature_dim, num_classes)
        self.proj_head = nn.Sequential(
            nn.Linear(self.feature_dim, proj_hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(proj_hidden_dim, proj_dim),
        )

    def forward(self, clips: torch.Tensor) -> DetectorOutput:
        features = self.forward_features(clips)
        embedding = F.normalize(self.proj_head(features), dim=1)
        return DetectorOutput(logits=self.fc(features), features=features, embedding=embedding)


class BaselineClassifier(R2Plus1D18Backbone):
    """The card's DVF base model: backbone + `fc` = Dropout(p) -> Linear(512, 2).

    It has no projection head; its `embedding` is the L2-normalised backbone feature, the
    space the card's training script uses for prototype evaluation of a backbone.
    """

    def __init__(self, dropout: float = 0.4, num_classes: int = 2, width_divisor: int = 1) -> None:
        super().__init__(width_divisor)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        _check_positive(num_classes=num_classes)
        self.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.feature_dim, num_classes))

    def forward(self, clips: torch.Tensor) -> DetectorOutput:
        features = self.forward_features(clips)
        return DetectorOutput(
            logits=self.fc(features), features=features, embedding=F.normalize(features, dim=1)
        )


def _check_clip_batch(clips: torch.Tensor) -> None:
    if clips.ndim != 5 or clips.shape[1] != 3:
        raise ValueError(
            f"expected clips shaped (B, 3, T, H, W), got {tuple(clips.shape)}; "
            "a (B, T, H, W, 3) uint8 batch must be permuted and converted first"
        )
    if not clips.is_floating_point():
        raise TypeError(f"expected floating-point clips (pixels in [0, 1]), got {clips.dtype}")


def _check_positive(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
