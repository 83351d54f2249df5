"""GASBench model directories: export a trained model, load it the way GASBench does, refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from train_fixtures import toy_train_config, write_toy_cache
from vfcache.trainers.evaluate import run_evaluation
from vfcache.trainers.gasbench import export_gasbench, load_gasbench_dir
from vfcache.trainers.gasbench_eval import run_gasbench_evaluation
from vfcache.trainers.train import run_training
from vfcache.trainers.train_config import parse_eval_config

from vfcache.errors import StageError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    toy = write_toy_cache(tmp_path_factory.mktemp("gasbench_root"))
    config = toy_train_config(
        toy,
        out_dir="runs/export",
        epochs=1,
        model={"name": "tiny3d", "kwargs": {"width": 4, "proj_dim": 8}},
        normalisation="kinetics",
    )
    result = run_training(config, root=toy.root, progress=False)
    return toy, result.best_checkpoint


def test_the_exported_directory_gives_the_checkpoints_probabilities(trained, tmp_path):
    toy, checkpoint = trained
    folder = export_gasbench(checkpoint, tmp_path / "detector", name="toy-detector")
    assert sorted(p.name for p in folder.iterdir()) == [
        "model.py",
        "model.safetensors",
        "model_config.yaml",
    ]
    config = yaml.safe_load((folder / "model_config.yaml").read_text())
    assert config["modality"] == "video" and config["model"]["num_classes"] == 2
    assert config["preprocessing"] == {"resize": [32, 32], "num_frames": 4}
    code = (folder / "model.py").read_text()
    for package in ("vfcache", "trainers", "pipelines", "manifests", "cache_tools"):
        assert f"import {package}" not in code and f"from {package}" not in code
    query = [str(toy.split_files["test"])]
    ours = run_evaluation(
        parse_eval_config(
            {
                "name": "ours",
                "checkpoint": str(checkpoint),
                "protocols": ["benchmark"],
                "query": query,
                "out_dir": "reports/ours",
                "workers": 0,
                "device": "cpu",
                "plots": False,
            },
            "<t>",
        ),
        root=toy.root,
        progress=False,
    ).results["benchmark"]
    theirs = run_gasbench_evaluation(
        folder, query, out_dir="reports/gasbench", root=toy.root, device="cpu", progress=False
    ).results["benchmark"]
    assert ours.clip_ids == theirs.clip_ids
    np.testing.assert_allclose(theirs.prob_fake, ours.prob_fake, rtol=1e-5, atol=1e-6)


def test_model_py_loads_alone_without_vfcache(trained, tmp_path):
    """GASBench imports model.py in its own process: no vfcache package may be needed."""
    _, checkpoint = trained
    folder = export_gasbench(checkpoint, tmp_path / "detector")
    model, _ = load_gasbench_dir(folder)
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 4, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "frames.npy", frames)
    import torch

    expected = model(torch.from_numpy(frames)).detach().numpy()
    script = (
        "import sys\n"
        "for name in ('vfcache', 'trainers', 'pipelines', 'manifests', 'cache_tools'):\n"
        "    sys.modules[name] = None  # importing any of them fails\n"
        "import importlib.util, numpy, torch\n"
        f"spec = importlib.util.spec_from_file_location('model', {str(folder / 'model.py')!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        f"model = module.load_model({str(folder / 'model.safetensors')!r}, num_classes=2)\n"
        f"logits = model(torch.from_numpy(numpy.load({str(tmp_path / 'frames.npy')!r})))\n"
        "print(logits.detach().numpy().tolist())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.array(json.loads(done.stdout)), expected, rtol=1e-5, atol=1e-5)


def test_broken_directories_are_one_clear_error(trained, tmp_path):
    _, checkpoint = trained
    good = export_gasbench(checkpoint, tmp_path / "good")

    def broken(name: str, change) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        for path in good.iterdir():
            (folder / path.name).write_bytes(path.read_bytes())
        change(folder)
        return folder

    cases = [
        (lambda f: (f / "model.py").unlink(), "model.py is missing"),
        (lambda f: (f / "model_config.yaml").unlink(), "model_config.yaml is missing"),
        (
            lambda f: (f / "model.safetensors").unlink(),
            "model.weights_file model.safetensors does not exist",
        ),
        (lambda f: (f / "model.py").write_text("import torch\n"), "defines no load_model"),
        (
            lambda f: (f / "model.py").write_text("raise RuntimeError('boom')\n"),
            "fails to import: RuntimeError: boom",
        ),
        (
            lambda f: (f / "model_config.yaml").write_text("modality: image\n"),
            "modality is 'image'",
        ),
        (
            lambda f: (f / "model_config.yaml").write_text(
                "modality: video\npreprocessing: {resize: [32, 32]}\nmodel: {num_classes: 2}\n"
            ),
            "preprocessing.num_frames",
        ),
    ]
    for number, (change, message) in enumerate(cases):
        with pytest.raises(StageError, match=message):
            load_gasbench_dir(broken(f"case{number}", change))


def test_single_label_datasets_report_mcc_and_combined_as_n_a():
    from test_evaluate import outputs
    from vfcache.trainers.protocols import benchmark_protocol

    p = np.array([0.9, 0.8, 0.3, 0.2, 0.7, 0.1])
    logits = np.stack([np.zeros(6), np.log(p / (1 - p))], axis=1)
    query = outputs(
        [1, 1, 1, 0, 0, 0], ["d"] * 6, logits=logits, datasets=["fakes"] * 3 + ["reals"] * 3
    )
    result = benchmark_protocol(query)
    for name in ("fakes", "reals"):
        row = result.row(name)
        assert row.mcc is None and row.combined_score is None and row.brier is not None
    assert result.row("all").mcc is not None and result.row("all").combined_score is not None
