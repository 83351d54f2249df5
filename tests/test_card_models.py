"""The transformer seed recipes (002, 003, 004) as shipped, with models built from their real
checkpoints' configs (`tests/data/hf_configs`, sources in SOURCES.md) and random weights.

Each recipe's YAML is loaded unchanged except for what cannot run here: `pretrained` /
`revision` become the checkpoint's config (with fewer and narrower layers for the training
step: the input-facing fields, image and patch size, frames, tubelet, pooling, stay the
checkpoint's), the data paths become a small cache of the recipe's own clip spec, and the run
stops after one optimizer step on the CPU. So `run_training` runs the recipe's contract check,
unfreeze policy, loss and sampler on clips of the shape the recipe will see. The full-size
models are counted on the meta device (no memory, no compute).

The old recipes' three defects (a 224 CLIP fed 384 frames, an 8-frame TimeSformer fed 16,
`fc_norm` heads on a checkpoint without mean pooling) are shown to stop, so these tests fail
on them.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from train_fixtures import write_toy_cache
from vfcache.trainers.input_contract import check_contract, declared_contract
from vfcache.trainers.models import build_model, read_checkpoint
from vfcache.trainers.train import run_training
from vfcache.trainers.train_config import load_train_config, parse_train_config
from vfcache.trainers.trainable import set_trainable

from vfcache.config import load_clip_spec
from vfcache.errors import StageError

REPO = Path(__file__).resolve().parent.parent
CONFIGS = Path(__file__).resolve().parent / "data" / "hf_configs"
RECIPES = {  # recipe -> (checkpoint it names, its config fixture)
    "clip_adapter_dfd": ("openai/clip-vit-large-patch14", "clip-vit-large-patch14.vision.json"),
    "videomae_ffpp": (
        "MCG-NJU/videomae-base-finetuned-kinetics",
        "videomae-base-finetuned-kinetics.json",
    ),
    "timesformer_oneclass_webvid": (
        "facebook/timesformer-base-finetuned-k400",
        "timesformer-base-finetuned-k400.json",
    ),
}
NARROW = dict(num_hidden_layers=4, hidden_size=64, num_attention_heads=2, intermediate_size=128)


def real_config(fixture: str, **changes) -> dict:
    config = json.loads((CONFIGS / fixture).read_text())
    config = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    return {**config, **changes}


def recipe_yaml(name: str) -> dict:
    return yaml.safe_load((REPO / "configs" / "train" / f"{name}.yaml").read_text())


def recipe_spec(recipe: dict):
    """The clip spec of the recipe's train split path: cache/<dataset>/<spec>/splits/..."""
    return load_clip_spec(Path(recipe["data"]["train"][0]).parts[2])


def kwargs_from(recipe: dict, config: dict) -> dict:
    kwargs = {
        k: v for k, v in recipe["model"]["kwargs"].items() if k not in ("pretrained", "revision")
    }
    return {**kwargs, "config": config}


def test_each_recipe_names_the_cards_checkpoint():
    for name, (checkpoint, _) in RECIPES.items():
        config = load_train_config(REPO / "configs" / "train" / f"{name}.yaml")
        assert config.model.kwargs["pretrained"] == checkpoint, name
        assert config.model.kwargs["revision"]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_trains_a_step_on_its_checkpoints_config(tmp_path, name):
    recipe = recipe_yaml(name)
    spec = recipe_spec(recipe)
    toy = write_toy_cache(
        tmp_path,
        dataset=name,
        domains=("alpha",),
        spec=spec,
        per_class={"train": 2, "val": 1, "test": 1, "support": 1},
    )
    data = {
        **recipe["data"],
        "train": [str(toy.split_files["train"])],
        "val": [str(toy.split_files["val"])],
    }
    recipe.update(
        model={
            "name": recipe["model"]["name"],
            "kwargs": kwargs_from(recipe, real_config(RECIPES[name][1], **NARROW)),
        },
        data=data,
        batch_size=2,
        workers=0,
        device="cpu",
        amp="off",
        decode_cache_gb=0,
    )
    config = parse_train_config(recipe, f"<{name}>")
    losses = []
    result = run_training(
        config,
        root=tmp_path,
        stop_after_steps=1,
        progress=False,
        on_step=lambda step: losses.append(step.loss),
    )
    assert result.global_step >= 1 and losses and all(math.isfinite(loss) for loss in losses)
    written = json.loads((tmp_path / config.out_dir / "config.json").read_text())
    assert written["unfreeze"] == recipe_yaml(name).get("unfreeze", "all")


def test_full_size_models_accept_the_card_clips_and_count_as_documented():
    """At full size (on the meta device): the contract matches the recipe's clip spec, and
    the trainable counts are the ones the recipes' comments and the README give."""
    counts = {}
    for name, (_, fixture) in RECIPES.items():
        recipe = recipe_yaml(name)
        spec = recipe_spec(recipe)
        with torch.device("meta"):
            model = build_model(
                recipe["model"]["name"], **kwargs_from(recipe, real_config(fixture))
            )
        check_contract(
            declared_contract(model),
            (spec.frames, spec.height, spec.width),
            model_name=name,
            clips_from=spec.name,
        )
        counts[name] = set_trainable(model, recipe.get("unfreeze", "all"))
    # 002: the adapters and head of a 1024-wide encoder (the card's own design gives 5,255,938)
    assert counts["clip_adapter_dfd"][0] == 8_941_826
    assert 300e6 < counts["clip_adapter_dfd"][1] < 320e6
    # 003: the last 4 of 12 layers, fc_norm and the classifier, about 30% of the model
    trainable, total = counts["videomae_ffpp"]
    assert 0.28 < trainable / total < 0.36
    assert counts["timesformer_oneclass_webvid"][0] == counts["timesformer_oneclass_webvid"][1]


def test_the_old_recipes_would_stop_before_training():
    clip = build_model(
        "clip_adapter",
        config=real_config("clip-vit-large-patch14.vision.json", **NARROW),
        frames=12,
    )  # no image_size: the checkpoint's 224
    with pytest.raises(StageError, match="384x384"):
        check_contract(
            declared_contract(clip), (12, 384, 384), model_name="clip_adapter", clips_from="x"
        )
    times = build_model(
        "timesformer_reconstructor",
        config=real_config("timesformer-base-finetuned-k400.json", **NARROW),
    )
    with pytest.raises(StageError, match="16 frames"):
        check_contract(
            declared_contract(times), (16, 224, 224), model_name="timesformer", clips_from="x"
        )
    pretraining = build_model("videomae", config=real_config("videomae-base.json", **NARROW))
    with pytest.raises(ValueError, match="model.fc_norm"):
        set_trainable(pretraining, recipe_yaml("videomae_ffpp")["unfreeze"])


def test_clip_at_384_and_timesformer_at_16_frames_run_forward():
    """Position embeddings interpolated to 27x27 patches; time embeddings to 16 frames."""
    clip = build_model(
        "clip_adapter",
        config=real_config("clip-vit-large-patch14.vision.json", **NARROW),
        frames=12,
        image_size=384,
        bottleneck=8,
        temporal_heads=2,
    ).eval()
    with torch.no_grad():
        assert clip(torch.zeros(1, 12, 3, 384, 384)).logits.shape == (1, 2)
    times = build_model(
        "timesformer_reconstructor",
        frames=16,
        score="middle_frame",
        config=real_config("timesformer-base-finetuned-k400.json", **NARROW),
    ).eval()
    assert declared_contract(times).frames == 16
    frames = torch.rand(2, 16, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        error = (times.reconstruct(frames) - frames).pow(2)
        middle = times(frames).score
        times.score = "all_frames"
        every = times(frames).score
    torch.testing.assert_close(middle, error[:, 8].flatten(1).mean(dim=1))
    torch.testing.assert_close(every, error.flatten(1).mean(dim=1))
    assert not torch.allclose(middle, every)


def _vfcache(root: Path, hub, home: Path, *args: str) -> subprocess.CompletedProcess:
    """`vfcache` in a fresh process whose Hub client points at the stand-in (huggingface_hub
    reads HF_ENDPOINT at import)."""
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONPATH": str(REPO),
    }
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("HF_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "vfcache.cli", "--root", str(root), "--no-progress", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _save_model(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    config = real_config(
        "videomae-base-finetuned-kinetics.json", **NARROW, image_size=32, num_frames=4
    )
    build_model("videomae", config=config).model.save_pretrained(folder)
    return folder


def test_train_records_the_commit_and_eval_loads_it_after_main_moves(hf_hub, tmp_path):
    repo = "MCG-NJU/videomae-tiny-standin"
    first = hf_hub.add_commit(repo, _save_model(tmp_path / "weights_1", 0))
    toy = write_toy_cache(
        tmp_path / "root",
        domains=("alpha",),
        per_class={"train": 2, "val": 1, "test": 1, "support": 1},
    )
    recipe = recipe_yaml("videomae_ffpp")
    recipe.update(
        model={"name": "videomae", "kwargs": {"pretrained": repo, "revision": "main"}},
        data={"train": [str(toy.split_files["train"])], "val": [str(toy.split_files["val"])]},
        epochs=1,
        batch_size=2,
        workers=0,
        device="cpu",
        amp="off",
        out_dir="runs/pinned",
    )
    config_path = tmp_path / "recipe.yaml"
    config_path.write_text(yaml.safe_dump(recipe))
    trained = _vfcache(toy.root, hf_hub, tmp_path / "hf_home", "train", str(config_path))
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert f"at commit {first} (revision main)" in trained.stdout + trained.stderr
    run = toy.root / "runs" / "pinned"
    assert json.loads((run / "config.json").read_text())["model"]["kwargs"]["revision"] == first
    assert read_checkpoint(run / "best.pt")["args"]["model"]["kwargs"]["revision"] == first

    second = hf_hub.add_commit(repo, _save_model(tmp_path / "weights_2", 1))  # main moves on
    assert second != first
    before = len(hf_hub.hub_requests())
    evaluation = tmp_path / "eval.yaml"
    evaluation.write_text(
        yaml.safe_dump(
            {
                "name": "pinned",
                "checkpoint": str(run / "best.pt"),
                "protocols": ["benchmark"],
                "query": [str(toy.split_files["test"])],
                "out_dir": str(tmp_path / "report"),
                "workers": 0,
                "device": "cpu",
                "plots": False,
            }
        )
    )
    evaluated = _vfcache(toy.root, hf_hub, tmp_path / "hf_home_eval", "eval", str(evaluation))
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    paths = [r.path for r in hf_hub.hub_requests()[before:]]
    assert any(f"/resolve/{first}/" in p for p in paths) and not any(
        "/resolve/main/" in p for p in paths
    )
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert json.dumps(results).count(first) >= 1  # the report names the commit it evaluated
