"""The seed cards' transformer detectors from tiny configs (random weights, nothing downloaded):
each trains a few steps on a cache through `run_training`, its loss goes down, and its
checkpoint evaluates through `run_evaluation`, the way `vfcache train` / `vfcache eval` run them."""

from __future__ import annotations

import pytest
from train_fixtures import toy_train_config, write_toy_cache
from vfcache.trainers.evaluate import run_evaluation
from vfcache.trainers.models import build_model
from vfcache.trainers.train import run_training
from vfcache.trainers.train_config import load_train_config, parse_eval_config
from vfcache.trainers.trainable import set_trainable

TINY = dict(
    image_size=32,
    patch_size=16,
    hidden_size=32,
    num_hidden_layers=4,
    num_attention_heads=2,
    intermediate_size=64,
)
FAMILIES = {  # seed card -> (model, kwargs, recipe overrides)
    "003 videomae": (
        "videomae",
        {"config": {**TINY, "num_frames": 4, "tubelet_size": 2}},
        dict(
            unfreeze={"last_fraction": 0.5, "heads": ["model.fc_norm", "model.classifier"]},
            loss={"kind": "cross_entropy"},
        ),
    ),
    "002 clip_adapter": (
        "clip_adapter",
        {"config": TINY, "frames": 4, "bottleneck": 16, "temporal_heads": 2},
        dict(
            unfreeze="factory",
            loss={"kind": "cross_entropy", "label_smoothing": 0.1},
            sampler={"kind": "weighted_random"},
            grad_accumulation=2,
        ),
    ),
    "004 timesformer": (
        "timesformer_reconstructor",
        {"config": {**TINY, "num_frames": 4}},
        dict(loss={"kind": "reconstruction"}),
    ),
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_cache(tmp_path_factory.mktemp("hf_root"))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_trains_and_evaluates(toy, family):
    name, kwargs, overrides = FAMILIES[family]
    data = {"train": [str(toy.split_files["train"])], "val": [str(toy.split_files["val"])]}
    if name == "timesformer_reconstructor":
        data["train_labels"] = ["real"]
    out = f"runs/{name}"
    config = toy_train_config(
        toy,
        out_dir=out,
        epochs=4,
        model={"name": name, "kwargs": kwargs},
        optimizer={"lr": 3e-3},
        data=data,
        **overrides,
    )
    losses = []
    result = run_training(
        config, root=toy.root, progress=False, on_step=lambda s: losses.append(s.loss)
    )
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first, (family, losses)  # the loss goes down
    protocol = "anomaly" if name == "timesformer_reconstructor" else "benchmark"
    evaluation = parse_eval_config(
        {
            "name": name,
            "checkpoint": str(result.best_checkpoint),
            "protocols": [protocol],
            "query": [str(toy.split_files["test"])],
            "calibration": [str(toy.split_files["val"])],
            "out_dir": f"reports/{name}",
            "workers": 0,
            "device": "cpu",
            "plots": False,
        },
        "<t>",
    )
    report = run_evaluation(evaluation, root=toy.root, progress=False)  # strict checkpoint load
    assert (report.out_dir / "results.md").is_file() and report.results[protocol].row(
        "all"
    ).num_clips > 0


def test_factories_declare_their_contracts_and_keep_what_they_froze():
    clip = build_model("clip_adapter", config=TINY, frames=4, bottleneck=16, temporal_heads=2)
    assert clip.input_contract.layout == "BTCHW" and clip.input_contract.pixels == "clip"
    trainable, total = set_trainable(clip, "factory")
    encoder = sum(p.numel() for p in clip.encoder.parameters())
    assert trainable == total - encoder  # the encoder stays frozen, adapters and head train
    video = build_model("videomae", config={**TINY, "num_frames": 4, "tubelet_size": 2})
    assert (video.input_contract.pixels, video.input_contract.frames) == ("imagenet", 4)
    assert (
        build_model(
            "timesformer_reconstructor", config={**TINY, "num_frames": 4}
        ).input_contract.pixels
        == "symmetric"
    )
    with pytest.raises(ValueError, match="pin the revision"):
        build_model("videomae", pretrained="MCG-NJU/videomae-base")
    with pytest.raises(ValueError, match="exactly one of"):
        build_model("videomae")


@pytest.mark.parametrize(
    "recipe", ["videomae_ffpp", "clip_adapter_dfd", "timesformer_oneclass_webvid"]
)
def test_card_recipes_load(recipe):
    config = load_train_config(f"configs/train/{recipe}.yaml")
    assert config.model.kwargs["pretrained"] and config.model.kwargs["revision"]
    if recipe == "clip_adapter_dfd":
        assert (config.batch_size, config.grad_accumulation, config.seed) == (16, 2, 42)
        assert config.optimizer.warmup_fraction == 0.1 and config.loss.label_smoothing == 0.1
    if recipe == "timesformer_oneclass_webvid":
        assert config.data.train_labels == (0,) and config.selection.protocol == "val_loss"
