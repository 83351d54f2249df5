"""`vfcache eval DIR` the way GASBench's specification says: uint8 [B, T, 3, H, W] input, dtype,
the static import check before model.py runs, one-line refusals, GASBench's metrics and names."""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from gasbench_fixtures import MODEL_PY, expected_probabilities, write_model_dir
from train_fixtures import write_toy_cache
from vfcache.trainers import metrics
from vfcache.trainers.dataset import ClipDataset
from vfcache.trainers.gasbench import load_gasbench_dir
from vfcache.trainers.gasbench_check import find_violations
from vfcache.trainers.gasbench_eval import run_gasbench_evaluation
from vfcache.trainers.gasbench_scores import gasbench_scores

from vfcache.cli import cli
from vfcache.errors import StageError


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_cache(tmp_path_factory.mktemp("gasbench_eval_root"))


def _clips(toy) -> np.ndarray:
    dataset = ClipDataset([toy.root / toy.split_files["test"]])
    return np.stack([dataset.read_clip(i) for i in range(len(dataset))]), dataset


@pytest.mark.parametrize("dtype", [None, "bfloat16"])
def test_a_uint8_only_model_gets_the_probabilities_computed_from_the_frames(toy, tmp_path, dtype):
    folder = write_model_dir(tmp_path / "detector", dtype=dtype)
    result = run_gasbench_evaluation(
        folder,
        [str(toy.split_files["test"])],
        out_dir="reports/g",
        root=toy.root,
        device="cpu",
        progress=False,
    )
    clips, dataset = _clips(toy)
    expected = expected_probabilities(clips)[:, 1]
    tolerance = 1e-6 if dtype is None else 3e-2  # bf16 weights round the logits
    np.testing.assert_allclose(result.results["benchmark"].prob_fake, expected, atol=tolerance)
    report = json.loads(result.files.json.read_text())
    scores = report["gasbench"]
    assert report["input"]["dtype"] == "uint8" and report["model_config"].get("dtype") == dtype
    assert scores["overall_score"] == scores["benchmark_score"] == scores["accuracy"]
    assert set(scores["per_dataset"]) == {"alpha", "beta"}  # the clips' domains: GASBench's entries
    assert scores["total"] == len(dataset) and scores["p95_inference_time_ms"] >= 0
    labels = dataset.labels
    if dtype is None:
        predictions = (expected > 0.5).astype(int)
        assert scores["mcc"] == pytest.approx(metrics.mcc(labels, predictions))
        assert scores["brier"] == pytest.approx(float(np.mean((expected - labels) ** 2)))
    assert "GASBench scores (sn34 table)" in result.files.markdown.read_text()


def test_the_weights_are_in_the_configured_dtype_and_the_input_stays_uint8(tmp_path):
    import torch

    model, config = load_gasbench_dir(write_model_dir(tmp_path / "d", dtype="bf16"))
    assert model.head.weight.dtype == torch.bfloat16 and config["dtype"] == "bf16"
    with pytest.raises(TypeError, match="expected uint8"):
        model(torch.zeros(1, 4, 3, 32, 32))


def test_a_zip_of_the_directory_is_evaluated_like_the_directory(toy, tmp_path):
    folder = write_model_dir(tmp_path / "detector")
    archive = tmp_path / "detector.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in folder.iterdir():
            handle.write(path, path.name)
    query = [str(toy.split_files["test"])]
    zipped = run_gasbench_evaluation(
        archive, query, out_dir="reports/z", root=toy.root, device="cpu", progress=False
    )
    plain = run_gasbench_evaluation(
        folder, query, out_dir="reports/p", root=toy.root, device="cpu", progress=False
    )
    np.testing.assert_array_equal(
        zipped.results["benchmark"].prob_fake, plain.results["benchmark"].prob_fake
    )


def test_the_static_check_refuses_before_any_line_of_model_py_runs(tmp_path):
    sentinel = tmp_path / "ran.txt"
    code = (
        f"from pathlib import Path\nPath({str(sentinel)!r}).write_text('model.py ran')\n"
        "import subprocess\n" + MODEL_PY
    )
    with pytest.raises(
        StageError,
        match=r"model.py line 3: blocked import 'subprocess' \(system access\): "
        r"import subprocess",
    ):
        load_gasbench_dir(write_model_dir(tmp_path / "d", code=code))
    assert not sentinel.exists()


@pytest.mark.parametrize(
    "line, reason",
    [
        ("import os", "blocked import 'os'"),
        ("from urllib.request import urlopen", "blocked import 'urllib.request'"),
        ("import pickle", "blocked import 'pickle'"),
        ("import importlib", "blocked import 'importlib'"),
        ("import pandas", "'pandas' is not among GASBench's allowed packages"),
        ("from . import helpers", "relative import"),
        ("x = eval('1')", "blocked call eval()"),
        ("y = getattr(int, 'real')", "blocked call getattr()"),
    ],
)
def test_blocked_imports_and_calls_are_named_with_their_line(line, reason):
    violations = find_violations("import torch\n" + line + "\n")
    assert [(v.line, v.code) for v in violations] == [(2, line)] and reason in violations[0].reason


def test_the_allowed_packages_pass_the_check():
    source = (
        "import torch\nimport torch.nn.functional as F\nfrom safetensors.torch import load_file\n"
        "import numpy as np\nimport timm\nfrom einops import rearrange\nimport cv2\nfrom PIL "
        "import Image\n"
        "import math\nfrom typing import Optional\nfrom dataclasses import dataclass\n"
    )
    assert find_violations(source) == []


def _broken_models():
    return [
        (
            MODEL_PY.replace("return self.head(colour)", "raise RuntimeError('kernel exploded')"),
            r"failed on a uint8 batch of shape \[8, 4, 3, 32, 32\]: RuntimeError: kernel exploded",
        ),
        (
            MODEL_PY.replace("return self.head(colour)", "return self.head(colour)[:, :1]"),
            r"returned logits of shape \[8, 1\] .* expected \[8, 2\]",
        ),
        (
            MODEL_PY.replace("return self.head(colour)", "return self.head(colour) * float('nan')"),
            r"returned non-finite logits \(NaN or inf\)",
        ),
        (
            MODEL_PY.replace("return self.head(colour)", "return colour.tolist()"),
            r"returned a list .* expected a \[batch, 2\] logits tensor",
        ),
    ]


def test_a_bad_model_is_one_line_and_writes_nothing(toy, tmp_path):
    for number, (code, message) in enumerate(_broken_models()):
        folder = write_model_dir(tmp_path / f"bad{number}", code=code)
        with pytest.raises(StageError, match=message) as caught:
            run_gasbench_evaluation(
                folder,
                [str(toy.split_files["test"])],
                out_dir=f"reports/bad{number}",
                root=toy.root,
                device="cpu",
                progress=False,
            )
        assert "\n" not in str(caught.value) and str(folder) in str(caught.value)
        assert not (toy.root / f"reports/bad{number}").exists()


def test_the_cli_scores_a_directory_and_refuses_bad_ones_in_one_line(toy, tmp_path):
    folder = write_model_dir(tmp_path / "detector")
    runner = CliRunner()
    done = runner.invoke(
        cli,
        [
            "--root",
            str(toy.root),
            "--no-progress",
            "eval",
            str(folder),
            "--query",
            str(toy.split_files["test"]),
            "--device",
            "cpu",
        ],
    )
    assert done.exit_code == 0, done.output
    report = json.loads((toy.root / "reports/gasbench/detector/results.json").read_text())
    assert {"sn34_score", "mcc", "brier", "cross_entropy", "avg_inference_time_ms"} <= set(
        report["gasbench"]
    )
    bad = [
        (
            "model_config.yaml",
            "modality: video\npreprocessing: {resize: [32, 32], num_frames: 4}\n"
            "model: {num_classes: 5}\n",
            "model.num_classes is 5",
        ),
        (
            "model_config.yaml",
            "dtype: int8\nmodality: video\npreprocessing: {resize: [32, 32], num_frames: 4}\n"
            "model: {num_classes: 2}\n",
            "dtype is 'int8'",
        ),
        (
            "model_config.yaml",
            "modality: video\npreprocessing: {resize: [32, 32], num_frames: 4, "
            "frame_rate: -2}\nmodel: {num_classes: 2}\n",
            "frame_rate is -2",
        ),
        ("model.py", "import os\n" + MODEL_PY, "model.py line 1: blocked import 'os'"),
        (
            "model.py",
            MODEL_PY.replace("return self.head(colour)", "return colour"),
            "returned logits of shape",
        ),
    ]
    for number, (name, text, message) in enumerate(bad):
        broken = write_model_dir(tmp_path / f"broken{number}")
        (broken / name).write_text(text)
        done = runner.invoke(
            cli,
            [
                "--root",
                str(toy.root),
                "--no-progress",
                "eval",
                str(broken),
                "--query",
                str(toy.split_files["test"]),
                "--device",
                "cpu",
            ],
        )
        assert done.exit_code == 2, done.output
        assert (
            done.output.startswith("Error: ")
            and done.output.count("\n") == 1
            and message in done.output
        )


def test_gasbench_scores_by_hand():
    # two entries: "reals" (all real) and "fakes" (all synthetic); three classes for one sample
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]])
    scores = gasbench_scores(
        [0, 0, 1, 1], probs, ["reals", "reals", "fakes", "fakes"], [2.0, 2.0, 4.0, 8.0]
    )
    assert scores["correct"] == 2 and scores["accuracy"] == 0.5 == scores["overall_score"]
    assert scores["mcc"] == pytest.approx(0.0)  # tp 1, tn 1, fp 1, fn 1
    brier = (0.01 + 0.49 + 0.04 + 0.36) / 4
    assert scores["brier"] == pytest.approx(brier)
    assert scores["sn34_score"] == pytest.approx(
        math.sqrt(0.5**1.2 * ((0.25 - brier) / 0.25) ** 1.8)
    )
    assert scores["avg_inference_time_ms"] == 4.0 and scores[
        "p95_inference_time_ms"
    ] == pytest.approx(7.4)
    reals = scores["per_dataset"]["reals"]
    assert (
        reals["mcc"] == 0.0 and reals["total"] == 2 and reals["accuracy"] == 0.5
    )  # one class: MCC 0
    assert scores["accuracy_by_media_type"] == {"real": 0.5, "synthetic": 0.5}
    three = gasbench_scores([1], np.array([[0.4, 0.3, 0.3]]), ["d"], [1.0])
    assert three["brier"] == pytest.approx(0.4**2)  # P(synthetic) = 1 - p[0] = 0.6
    assert three["correct"] == 0  # argmax is real


def test_sn34_has_gasbenchs_floor_and_clip():
    assert metrics.sn34_score(0.2, 0.3) == pytest.approx(1e-6)  # Brier past 0.25: floor, not 0
    assert metrics.combined_score(0.2, 0.3) == 0.0
    assert metrics.sn34_score(1.0, 0.0) == 1.0
    assert metrics.sn34_score(-1.0, 0.0) == pytest.approx(1e-6)
