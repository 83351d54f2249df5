"""A tiny cache with a learnable signal, for the training and evaluation tests.

`write_toy_cache` writes spec.json, shards (through `ShardWriter`) and the split files
`train/val/test/support.jsonl` of one dataset folder. Real clips are a static smooth
texture; fake clips flicker (frames alternate bright and dark) over a brighter texture, so
even a tiny 3D CNN separates them in an epoch or two. `toy_train_config` is a TrainConfig
over it for tiny3d on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from vfcache.cache_tools.shards import ShardWriter
from vfcache.manifests.records import SplitEntry, make_clip_id
from vfcache.manifests.split_files import write_split_file
from vfcache.trainers.models import Tiny3D
from vfcache.trainers.r2plus1d import DetectorOutput
from vfcache.trainers.train_config import TrainConfig, parse_train_config

from vfcache.atomic import write_json_atomic
from vfcache.config import ClipSpec
from vfcache.layout import SHARD_SUFFIX, DataRoot

TOY_SPEC = ClipSpec(name="toy_4x32", frames=4, sampling="uniform", height=32, width=32)
PARTS = ("train", "val", "test", "support")


@dataclass(frozen=True)
class ToyCache:
    root: Path
    split_files: dict  # part -> Path (relative to root)
    entries: dict  # part -> tuple[SplitEntry, ...]


def toy_clip(label: int, rng: np.random.Generator, spec: ClipSpec = TOY_SPEC) -> np.ndarray:
    coarse = rng.uniform(0, 1, size=(4, 4, 3))
    texture = np.kron(coarse, np.ones((spec.height // 4, spec.width // 4, 1)))
    base = 60 + 80 * texture if label == 0 else 110 + 80 * texture
    frames = np.repeat(base[None], spec.frames, axis=0)
    if label == 1:
        frames[1::2] -= 70  # flicker
    frames += rng.normal(0, 6, size=frames.shape)
    return np.clip(frames, 0, 255).astype(np.uint8)


def write_toy_cache(
    root: Path,
    *,
    dataset: str = "toy",
    domains: Sequence[str] = ("alpha", "beta"),
    per_class: dict | None = None,
    generators: Sequence[str] = ("gen_a", "gen_b"),
    seed: int = 0,
    spec: ClipSpec = TOY_SPEC,
) -> ToyCache:
    """`per_class[part]` real and as many fake clips per domain and part (support is drawn
    from train, as the split stage does); fakes alternate between `generators`."""
    per_class = per_class or {"train": 8, "val": 4, "test": 4, "support": 2}
    rng = np.random.default_rng(seed)
    cache = DataRoot(Path(root)).cache_dir(dataset, spec.name)
    write_json_atomic(cache.spec_json, spec.to_json())
    entries: dict[str, list[SplitEntry]] = {part: [] for part in PARTS}
    relpath = f"shards/shard-0000-0000{SHARD_SUFFIX}"
    with ShardWriter(cache.resolve_shard(relpath)) as writer:
        for part in ("train", "val", "test"):
            for domain in domains:
                for label in (0, 1):
                    for k in range(per_class[part]):
                        where = writer.append(toy_clip(label, rng, spec))
                        video_id = f"{dataset}-{part}-{domain}-{label}-{k:03d}"
                        entries[part].append(
                            SplitEntry(
                                clip_id=make_clip_id(video_id, spec.spec_hash, 0),
                                shard=relpath,
                                offset=where.offset,
                                nbytes=where.nbytes,
                                label=label,
                                domain=domain,
                                generator="camera"
                                if label == 0
                                else generators[k % len(generators)],
                                group=video_id,
                                video_id=video_id,
                                dataset=dataset,
                                clip_index=0,
                            )
                        )
    for domain in domains:
        for label in (0, 1):
            pool = [e for e in entries["train"] if e.domain == domain and e.label == label]
            entries["support"].extend(pool[: per_class["support"]])
    split_files = {}
    for part in PARTS:
        path = write_split_file(cache.split_file("default", part), entries[part])
        split_files[part] = path.relative_to(root)
    return ToyCache(Path(root), split_files, {k: tuple(v) for k, v in entries.items()})


def toy_train_dict(cache: ToyCache, **overrides: Any) -> dict:
    config = {
        "name": "toy",
        "model": {"name": "tiny3d", "kwargs": {"width": 4, "proj_dim": 8}},
        "loss": {"kind": "cross_entropy", "class_weights": [1.0, 1.0], "label_smoothing": 0.0},
        "optimizer": {"lr": 0.01, "weight_decay": 0.0},
        "sampler": {"kind": "class_balanced"},
        "data": {
            "train": [str(cache.split_files["train"])],
            "val": [str(cache.split_files["val"])],
            "support": [str(cache.split_files["support"])],
        },
        "epochs": 2,
        "batch_size": 8,
        "out_dir": "runs/toy",
        "workers": 0,
        "seed": 3,
        "device": "cpu",
        "log_every_steps": 1,
    }
    config.update(overrides)
    return config


def toy_train_config(cache: ToyCache, **overrides: Any) -> TrainConfig:
    return parse_train_config(toy_train_dict(cache, **overrides), "<toy>")


class DropoutTiny3D(Tiny3D):
    """tiny3d with Dropout before its classifier, so training consumes the global RNG."""

    def __init__(self, width: int = 4, proj_dim: int = 8, dropout: float = 0.5) -> None:
        super().__init__(width=width, proj_dim=proj_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, clips: torch.Tensor) -> DetectorOutput:
        out = super().forward(clips)
        return DetectorOutput(
            logits=self.fc(self.dropout(out.features)),
            features=out.features,
            embedding=out.embedding,
        )
