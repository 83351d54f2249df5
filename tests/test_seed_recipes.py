"""Each seed card's recipe, as shipped in configs/, on the embedded sample cache (`make cache`)
on the CPU with a narrow variant of its model: a few steps, the loss goes down, the
checkpoint round-trips, and evaluation writes its report.

Only what cannot run here is changed from the recipe: the model's size (a narrow R(2+1)D,
tiny transformer configs with random weights instead of the pretrained Hub models), the
data paths (the sample's splits; its domains take the recipe's domain weights), the length
of the run, a larger learning rate, and CPU settings (no amp, no loader workers, no decoded
clip cache). Policy, loss, sampler, selection, layout and pixels are the recipe's own.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from cache_fixtures import sample_cache_root
from click.testing import CliRunner
from vfcache.trainers.evaluate import run_evaluation
from vfcache.trainers.models import model_from_checkpoint, read_checkpoint
from vfcache.trainers.train import run_training
from vfcache.trainers.train_config import parse_eval_config, parse_train_config

from vfcache.cli import cli

REPO = Path(__file__).resolve().parent.parent
SPLITS = "cache/sample/sample_8x112/splits/default"
TINY_VIT = dict(
    image_size=112,
    patch_size=28,
    hidden_size=32,
    num_hidden_layers=4,
    num_attention_heads=2,
    intermediate_size=64,
)
SEEDS: dict[str, tuple[str, dict[str, Any]]] = {  # seed -> (recipe, model kwargs)
    "000 dvf_base": ("dvf_base", {"dropout": 0.4, "width_divisor": 8}),
    "000 supcon_mixed": (
        "supcon_mixed",
        {"width_divisor": 8, "proj_hidden_dim": 32, "proj_dim": 16},
    ),
    "002 clip_adapter_dfd": (
        "clip_adapter_dfd",
        {"config": TINY_VIT, "frames": 8, "bottleneck": 16, "temporal_heads": 2},
    ),
    "003 videomae_ffpp": (
        "videomae_ffpp",
        {"config": {**TINY_VIT, "num_frames": 8, "tubelet_size": 2}},
    ),
    "004 timesformer_oneclass_webvid": (
        "timesformer_oneclass_webvid",
        {"config": {**TINY_VIT, "num_frames": 8}},
    ),
}
EVALS = {"timesformer_oneclass_webvid": "anomaly_webvid"}


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory) -> Path:
    return sample_cache_root(tmp_path_factory)


def _recipe(name: str, model_kwargs: dict, root: Path) -> dict:
    data = yaml.safe_load((REPO / "configs" / "train" / f"{name}.yaml").read_text())
    data = copy.deepcopy(data)
    data["model"] = {"name": data["model"]["name"], "kwargs": model_kwargs}
    data.pop("init_checkpoint", None)
    data.pop("init_mode", None)  # the card starts run6 from the DVF base; here from scratch
    splits = {part: [f"{SPLITS}/{part}.jsonl"] for part in ("train", "val", "support")}
    data["data"] = {**data["data"], "train": splits["train"], "val": splits["val"]}
    if "support" in data["data"]:
        data["data"]["support"] = splits["support"]
    if data.get("domain_loss_weights"):
        data["domain_loss_weights"] = {"street": 0.6, "studio": 0.4}
    if data["selection"].get("domain_weights"):
        data["selection"] = {**data["selection"], "domain_weights": {"street": 0.6, "studio": 0.4}}
    data["sampler"] = {**data["sampler"], "batches_per_epoch": 6}
    if data["sampler"].get("domain_weights"):
        data["sampler"]["domain_weights"] = {"street": 0.5, "studio": 0.5}
    data["optimizer"] = {**data["optimizer"], "lr": 1e-3, "warmup_steps": 0}
    data["optimizer"].pop("warmup_fraction", None)
    data.update(
        epochs=8,
        batch_size=8,
        grad_accumulation=min(2, data.get("grad_accumulation", 1)),
        workers=0,
        device="cpu",
        amp="off",
        decode_cache_gb=0,
        out_dir=f"runs/{name}",
        checkpoint_every_steps=None,
        eval_batch_size=8,
    )
    for key in ("checkpoint_every_steps", "eval_batch_size"):
        if data[key] is None:
            data.pop(key)
    return data


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_seed_recipe_trains_and_evaluates_on_the_sample_cache(sample_root, seed):
    recipe, kwargs = SEEDS[seed]
    config = parse_train_config(_recipe(recipe, kwargs, sample_root), f"<{recipe}>")
    losses: list[float] = []
    result = run_training(
        config, root=sample_root, progress=False, on_step=lambda s: losses.append(s.loss)
    )
    assert len(losses) >= 48
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    assert last < first, (seed, losses)  # the loss goes down

    checkpoint = result.best_checkpoint or result.last_checkpoint
    saved = read_checkpoint(checkpoint, "cpu")
    model, info = model_from_checkpoint(
        saved, config.model.name, source=checkpoint, **config.model.kwargs
    )  # strict load
    assert info.has_optimizer_state and info.args
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, saved["model_state_dict"][name])

    eval_name = EVALS.get(recipe)
    if eval_name is None:
        evaluation = {"name": recipe, "protocols": ["benchmark"]}
    else:
        evaluation = yaml.safe_load((REPO / "configs" / "eval" / f"{eval_name}.yaml").read_text())
    evaluation.update(
        checkpoint=str(checkpoint),
        query=[f"{SPLITS}/test.jsonl"],
        out_dir=f"reports/{recipe}",
        workers=0,
        device="cpu",
        plots=False,
    )
    if "calibration" in evaluation:  # seed 004 calibrates its threshold on real and fake clips
        evaluation["calibration"] = [f"{SPLITS}/val.jsonl"]
    report = run_evaluation(
        parse_eval_config(evaluation, f"<{recipe}>"), root=sample_root, progress=False
    )
    assert (report.out_dir / "results.md").is_file()
    protocol = evaluation["protocols"][0]
    assert report.results[protocol].row("all").num_clips == 48


def test_seed_001_gasbench_directory_from_a_seed_000_run(sample_root, tmp_path):
    """Seed 001 is the GASBench harness: a trained checkpoint exported as a model directory
    evaluates through `vfcache eval DIR` on the sample's test clips."""
    recipe, kwargs = SEEDS["000 dvf_base"]
    data = _recipe(recipe, kwargs, sample_root)
    data.update(epochs=1, out_dir="runs/gasbench_source")
    result = run_training(parse_train_config(data, "<gasbench>"), root=sample_root, progress=False)
    runner = CliRunner()
    folder = tmp_path / "gasbench_model"
    base = ["--root", str(sample_root), "--workers", "1", "--no-progress"]
    exported = runner.invoke(
        cli, [*base, "export", str(result.last_checkpoint), "--gasbench", str(folder)]
    )
    assert exported.exit_code == 0, exported.output
    evaluated = runner.invoke(
        cli,
        [
            *base,
            "eval",
            str(folder),
            "--query",
            f"{SPLITS}/test.jsonl",
            "--out-dir",
            str(tmp_path / "report"),
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert results
