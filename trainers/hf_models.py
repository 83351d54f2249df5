"""The seed cards' transformer detectors, built on Hugging Face `transformers` (the `[hf]` extra).

- `videomae` (seed 003, VideoMAE on FF++ c23): `VideoMAEForVideoClassification`, 16 uniform
  frames at 224, ImageNet mean/std, frames as `(B, T, 3, H, W)`. The card freezes about 70%
  of the backbone: `unfreeze: {last_fraction: 0.3, heads: [model.fc_norm, model.classifier]}`
  (`fc_norm` exists where the checkpoint's `use_mean_pooling` is true: the `-finetuned-`
  checkpoints; the pre-training `videomae-base` has none).
- `clip_adapter` (seed 002, CLIP ViT frame encoder + spatiotemporal adapters): a frozen
  `CLIPVisionModel` encodes each frame, trainable adapters (a bottleneck MLP per frame and a
  small transformer across frames) and a head classify the clip; 12 frames at `image_size`
  (the card: 384), CLIP mean/std. When `image_size` differs from the checkpoint's (224 for
  `openai/clip-vit-large-patch14`), the encoder interpolates its position embeddings
  (`interpolate_pos_encoding`). The factory freezes the encoder (`unfreeze: factory`).
- `timesformer_reconstructor` (seed 004, one-class TimeSformer on real WebVid): a
  `TimesformerModel` and a linear decoder from its patch tokens back to the frames' pixels in
  [-1, 1]. `frames` (the card: 16) may differ from the checkpoint's `num_frames` (8 for the
  K400 base): TimeSformer interpolates its time embeddings. `score: middle_frame` (the card)
  scores and trains on the reconstruction error of the middle frame, `all_frames` on every frame.

Each takes `pretrained` (a Hub model id) and `revision` (a branch, tag or commit) to load
weights with `from_pretrained`, or `config` (a dict of the transformers config's fields) to
build the same classes from scratch with random weights, which is what the tests do (nothing
is downloaded). A model loaded from the Hub asks the Hub which commit `revision` names, loads
the weights at that commit and keeps it in `resolved_revision`: `vfcache train` records it as
the run's `revision`, so evaluation loads the same weights after the branch moves. Each declares
its input contract.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from torch import nn
from vfcache.trainers.input_contract import InputContract
from vfcache.trainers.r2plus1d import DetectorOutput

log = logging.getLogger(__name__)
COMMIT = re.compile(r"[0-9a-f]{40}")


def _transformers():
    try:
        import transformers
    except ImportError as err:  # an optional extra
        raise ImportError(
            "the transformer detectors need `pip install vfcache[hf]` (transformers)"
        ) from err
    return transformers


def _load(
    config_class: str,
    model_class: str,
    pretrained: Optional[str],
    revision: Optional[str],
    config: Optional[Mapping[str, Any]],
    **pretrained_kwargs: Any,
) -> tuple[nn.Module, Optional[str]]:
    """(model, the Hub commit its weights came from: None for a config or a local folder)."""
    hf = _transformers()
    if (pretrained is None) == (config is None):
        raise ValueError(
            "give exactly one of `pretrained` (a Hub model id, with `revision`) or "
            "`config` (the transformers config's fields, random weights)"
        )
    if pretrained is not None:
        if not revision:
            raise ValueError(
                f"pin the revision (a commit) of {pretrained!r}: results only compare "
                "when the weights do"
            )
        commit = hub_commit(pretrained, revision)
        model = getattr(hf, model_class).from_pretrained(
            pretrained, revision=commit or revision, **pretrained_kwargs
        )
        return model, commit
    return getattr(hf, model_class)(getattr(hf, config_class)(**dict(config))), None


def hub_commit(repo_id: str, revision: str) -> Optional[str]:
    """The commit `revision` (a branch, tag or commit) of a Hub model names now; None for a local
    folder, or (with a warning) when the Hub cannot be asked (offline: the cached weights load
    under the revision's name and the run records that name)."""
    if Path(repo_id).is_dir():
        return None
    if COMMIT.fullmatch(revision):
        return revision
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        return HfApi().model_info(repo_id, revision=revision).sha
    except (HfHubHTTPError, OfflineModeIsEnabled, OSError) as err:
        log.warning(
            "could not resolve %s revision %s to a commit (%s); the run records %r",
            repo_id,
            revision,
            err,
            revision,
        )
        return None


class VideoMAEDetector(nn.Module):
    def __init__(
        self,
        *,
        pretrained: Optional[str] = None,
        revision: Optional[str] = None,
        config: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__()
        config = None if config is None else {**dict(config), "num_labels": 2}
        self.model, self.resolved_revision = _load(
            "VideoMAEConfig",
            "VideoMAEForVideoClassification",
            pretrained,
            revision,
            config,
            num_labels=2,
            ignore_mismatched_sizes=True,
        )
        size = self.model.config.image_size
        self.input_contract = InputContract(
            "BTCHW", "imagenet", self.model.config.num_frames, (size, size)
        )

    def forward(self, frames: torch.Tensor) -> DetectorOutput:
        return DetectorOutput(logits=self.model(pixel_values=frames).logits)


class TemporalAdapter(nn.Module):
    """Per-frame bottleneck adapter, then a small transformer across the clip's frames."""

    def __init__(
        self, width: int, bottleneck: int, frames: int, layers: int = 1, heads: int = 4
    ) -> None:
        super().__init__()
        self.frame_adapter = nn.Sequential(
            nn.LayerNorm(width),
            nn.Linear(width, bottleneck),
            nn.GELU(),
            nn.Linear(bottleneck, width),
        )
        self.time_embedding = nn.Parameter(torch.zeros(1, frames, width))
        layer = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=2 * width, batch_first=True, norm_first=True
        )
        self.temporal = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, D)
        x = features + self.frame_adapter(features) + self.time_embedding[:, : features.shape[1]]
        return self.temporal(x).mean(dim=1)


class ClipAdapterDetector(nn.Module):
    def __init__(
        self,
        *,
        pretrained: Optional[str] = None,
        revision: Optional[str] = None,
        config: Optional[Mapping[str, Any]] = None,
        frames: int = 12,
        bottleneck: int = 256,
        temporal_layers: int = 1,
        temporal_heads: int = 4,
        image_size: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.encoder, self.resolved_revision = _load(
            "CLIPVisionConfig", "CLIPVisionModel", pretrained, revision, config
        )
        for param in self.encoder.parameters():  # the card: frozen backbone
            param.requires_grad_(False)
        width = self.encoder.config.hidden_size
        self.adapter = TemporalAdapter(width, bottleneck, frames, temporal_layers, temporal_heads)
        self.fc = nn.Linear(width, 2)
        size = image_size or self.encoder.config.image_size
        # another size than the checkpoint's: interpolate the position embeddings (the card's
        # 384 on a 224 checkpoint), as transformers' CLIP supports
        self.interpolate = size != self.encoder.config.image_size
        self.input_contract = InputContract("BTCHW", "clip", frames, (size, size))

    def forward(self, frames: torch.Tensor) -> DetectorOutput:
        batch, time = frames.shape[:2]
        pooled = self.encoder(
            pixel_values=frames.flatten(0, 1), interpolate_pos_encoding=self.interpolate
        ).pooler_output.view(batch, time, -1)
        features = self.adapter(pooled)
        return DetectorOutput(logits=self.fc(features), features=features)


SCORES = ("middle_frame", "all_frames")


class TimesformerReconstructor(nn.Module):
    def __init__(
        self,
        *,
        pretrained: Optional[str] = None,
        revision: Optional[str] = None,
        config: Optional[Mapping[str, Any]] = None,
        frames: Optional[int] = None,
        score: str = "all_frames",
    ) -> None:
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"score {score!r} is not one of {SCORES}")
        self.backbone, self.resolved_revision = _load(
            "TimesformerConfig", "TimesformerModel", pretrained, revision, config
        )
        cfg = self.backbone.config
        if frames is not None and frames != cfg.num_frames:
            # The embeddings interpolate the checkpoint's time embeddings to the clip's frames;
            # the divided space-time attention of each layer reads the frame count from its config.
            for module in self.backbone.modules():
                if getattr(module, "config", None) is not None:
                    module.config.num_frames = frames
        self.score = score
        self.patch = cfg.patch_size
        self.decoder = nn.Linear(cfg.hidden_size, 3 * self.patch * self.patch)
        self.input_contract = InputContract(
            "BTCHW", "symmetric", cfg.num_frames, (cfg.image_size, cfg.image_size)
        )

    def reconstruct(self, frames: torch.Tensor) -> torch.Tensor:
        """The decoded frames, in [-1, 1], of the clips' shape."""
        batch, time, _, height, width = frames.shape
        # patch tokens after the CLS token, patch-major: (patch row, patch column, frame)
        tokens = self.backbone(pixel_values=frames).last_hidden_state[:, 1:]
        rows, cols = height // self.patch, width // self.patch
        patches = torch.tanh(self.decoder(tokens)).view(
            batch, rows, cols, time, 3, self.patch, self.patch
        )
        return patches.permute(0, 3, 4, 1, 5, 2, 6).reshape(batch, time, 3, height, width)

    def forward(self, frames: torch.Tensor) -> DetectorOutput:
        error = (self.reconstruct(frames) - frames).pow(2)
        if self.score == "middle_frame":  # the card: the error of frame T // 2
            error = error[:, frames.shape[1] // 2]
        return DetectorOutput(logits=None, score=error.flatten(1).mean(dim=1))


def videomae(**kwargs: Any) -> nn.Module:
    return VideoMAEDetector(**kwargs)


def clip_adapter(**kwargs: Any) -> nn.Module:
    return ClipAdapterDetector(**kwargs)


def timesformer_reconstructor(**kwargs: Any) -> nn.Module:
    return TimesformerReconstructor(**kwargs)
