"""Evaluation protocols against hand-computed cases, and run_evaluation's report end to end."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from train_fixtures import toy_train_config, write_toy_cache
from vfcache.trainers import metrics
from vfcache.trainers.evaluate import run_evaluation
from vfcache.trainers.models import build_model, save_checkpoint
from vfcache.trainers.protocols import (
    ModelOutputs,
    benchmark_protocol,
    build_prototypes,
    prototype_protocol,
    prototype_scores,
    selection_score,
    softmax_protocol,
)
from vfcache.trainers.run_state import checkpoint_args
from vfcache.trainers.train_config import parse_eval_config

from vfcache.errors import ConfigError, StageError


def outputs(labels, domains, *, logits=None, embeddings=None, datasets=None, generators=None):
    n = len(labels)
    return ModelOutputs(
        clip_ids=tuple(f"c{i}" for i in range(n)),
        labels=np.asarray(labels, np.int64),
        domains=np.asarray(domains, object),
        datasets=np.asarray(datasets if datasets is not None else domains, object),
        generators=np.asarray(generators if generators is not None else ["g"] * n, object),
        logits=np.zeros((n, 2), np.float32) if logits is None else np.asarray(logits, np.float32),
        embeddings=None if embeddings is None else np.asarray(embeddings, np.float32),
        seconds_per_clip=np.full(n, 0.01),
    )


# -- prototype protocol -------------------------------------------------------------------------
def test_prototypes_are_normalised_means_of_normalised_embeddings():
    # domain a: real support (2, 0), (0, 1) -> unit (1,0), (0,1) -> mean (.5,.5) -> (1,1)/sqrt2
    support = np.array([[2, 0], [0, 1], [0, -3], [0, -1], [1, 0], [-1, 0]], float)
    protos = build_prototypes(support, [0, 0, 1, 1, 0, 1], ["a", "a", "a", "a", "b", "b"])
    s = 1 / math.sqrt(2)
    np.testing.assert_allclose(protos["a"].real, [s, s])
    np.testing.assert_allclose(protos["a"].fake, [0, -1])
    assert (protos["a"].num_real, protos["a"].num_fake) == (2, 2)
    assert protos["a"].cosine_real_fake == pytest.approx(-s)
    scores = prototype_scores(np.array([[0, 5], [3, 0], [1, 0]], float), ["a", "a", "b"], protos)
    # (0,1): cos fake = -1, cos real = s -> -1 - s ; (1,0): 0 - s ; in b: cos fake -1, real 1 -> -2
    np.testing.assert_allclose(scores, [-1 - s, -s, -2])


def test_prototype_protocol_rows():
    support = outputs(
        [0, 1, 0, 1], ["a", "a", "b", "b"], embeddings=[[1, 0], [0, 1], [1, 0], [0, 1]]
    )
    # scores = y - x for unit vectors; labels chosen so domain a is perfect, b has one error
    query_emb = [[1, 0], [0.6, 0.8], [0, 1], [0.8, 0.6], [1, 0], [0.6, 0.8]]
    query = outputs([0, 1, 1, 0, 1, 0], ["a", "a", "a", "b", "b", "b"], embeddings=query_emb)
    result = prototype_protocol(query, support, threshold=0.0)
    np.testing.assert_allclose(result.scores, [-1, 0.2, 1, -0.2, -1, 0.2], atol=1e-6)
    assert result.predictions.tolist() == [0, 1, 1, 0, 0, 1]
    a, b, every = result.row("a"), result.row("b"), result.row("all")
    assert (a.auroc, a.eer, a.accuracy) == (1.0, 0.0, 1.0)
    assert b.accuracy == pytest.approx(1 / 3) and b.auroc == 0.0 and b.eer == 1.0
    assert every.num_clips == 6 and every.accuracy == pytest.approx(4 / 6)
    assert every.auroc == pytest.approx(metrics.auroc(query.labels, result.scores))
    assert a.brier is None and result.prob_fake is None
    assert [p.domain for p in result.prototypes] == ["a", "b"]


def test_prototype_protocol_needs_support_for_every_query_domain():
    support = outputs([0, 1], ["a", "a"], embeddings=[[1, 0], [0, 1]])
    query = outputs([0, 1], ["a", "z"], embeddings=[[1, 0], [0, 1]])
    with pytest.raises(ValueError, match=r"\['z'\] have no prototypes"):
        prototype_protocol(query, support)
    with pytest.raises(ValueError, match="1 real and 0 fake"):
        build_prototypes(np.eye(2), [0, 0], ["a", "b"])


def test_pooled_prototypes_serve_every_domain_from_the_whole_bank():
    # real support (1,0) in a and (0,1) in b -> pooled real (1,1)/sqrt2; fake (-1,0) and
    # (0,-1) -> pooled fake -(1,1)/sqrt2. A query domain with no support of its own scores too.
    support = outputs(
        [0, 1, 0, 1], ["a", "a", "b", "b"], embeddings=[[1, 0], [-1, 0], [0, 1], [0, -1]]
    )
    query = outputs([0, 1, 0], ["a", "b", "z"], embeddings=[[1, 0], [0, -1], [0.6, 0.8]])
    result = prototype_protocol(query, support, pooling="pooled")
    s = 1 / math.sqrt(2)
    np.testing.assert_allclose(result.scores, [-2 * s, 2 * s, -2 * 1.4 * s], atol=1e-6)
    assert [p.domain for p in result.prototypes] == ["pooled"]
    assert {r.name for r in result.rows} >= {"a", "b", "z", "all"}  # rows stay per domain
    with pytest.raises(ValueError, match="pooling must be one of"):
        prototype_protocol(query, support, pooling="global")


# -- benchmark protocol -------------------------------------------------------------------------
def test_benchmark_protocol_figures():
    p = np.array([0.9, 0.2, 0.6, 0.4, 0.8, 0.3])  # P(fake)
    logits = np.stack([np.zeros(6), np.log(p / (1 - p))], axis=1)
    query = outputs(
        [1, 0, 0, 1, 1, 0], ["d"] * 6, logits=logits, datasets=["x", "x", "x", "y", "y", "y"]
    )
    result = benchmark_protocol(query)
    np.testing.assert_allclose(result.prob_fake, p, atol=1e-6)
    x, y, every = result.row("x"), result.row("y"), result.row("all")
    # x: labels 1,0,0, predictions 1,0,1 -> tp1 tn1 fp1 fn0
    assert x.accuracy == pytest.approx(2 / 3)
    assert x.mcc == pytest.approx((1 * 1 - 1 * 0) / math.sqrt(2 * 1 * 2 * 1))
    assert x.brier == pytest.approx(((0.1) ** 2 + 0.2**2 + 0.6**2) / 3, abs=1e-6)
    assert x.cross_entropy == pytest.approx(
        -(math.log(0.9) + math.log(0.8) + math.log(0.4)) / 3, abs=1e-6
    )
    expected = math.sqrt(((x.mcc + 1) / 2) ** 1.2 * max(0, (0.25 - x.brier) / 0.25) ** 1.8)
    assert x.combined_score == pytest.approx(expected)
    # y: labels 1,1,0, P 0.4,0.8,0.3 -> predictions 0,1,0
    assert y.accuracy == pytest.approx(2 / 3) and y.auroc == 1.0
    assert every.num_clips == 6 and every.accuracy == pytest.approx(4 / 6)
    assert result.timing.mean_ms_per_clip == pytest.approx(10.0)
    assert result.timing.p95_ms_per_clip == pytest.approx(10.0)


def test_each_fake_generator_is_scored_against_the_domains_real_pool():
    """DVF's test rule: the real clips are one pool, every fake class is scored against all of
    it."""
    margin = np.array([-2.0, -1.0, 0.5, 1.0, 2.0, -0.5, 3.0])
    logits = np.stack([np.zeros(7), margin], axis=1)
    query = outputs(
        [0, 0, 0, 1, 1, 1, 1],
        ["dvf"] * 7,
        logits=logits,
        generators=["vc1", "zeroscope", "opensora", "sora", "sora", "pika", "pika"],
    )
    result = softmax_protocol(query)
    rows = {row.name: row for row in result.generator_rows}
    assert sorted(rows) == ["dvf/pika", "dvf/sora"]
    sora, pika = rows["dvf/sora"], rows["dvf/pika"]
    assert (sora.num_real, sora.num_fake, pika.num_real, pika.num_fake) == (3, 2, 3, 2)
    # sora's fakes (1.0, 2.0) outrank every real (-2, -1, 0.5): AUROC 1; the real at 0.5 is a false
    # alarm
    assert sora.auroc == 1.0 and sora.accuracy == pytest.approx(4 / 5)
    # pika: -0.5 beats 2 reals of 3 (-2, -1), 3.0 beats all three -> AUROC (2 + 3) / 6
    assert pika.auroc == pytest.approx(5 / 6) and pika.accuracy == pytest.approx(3 / 5)
    assert [r.name for r in benchmark_protocol(query).generator_rows] == ["dvf/pika", "dvf/sora"]


def test_softmax_rank_metrics_use_the_unsaturated_margin():
    # float32 softmax of these logits is exactly 1.0 for both fakes; the margin still orders them
    logits = [[0, 60], [0, 50], [0, 55], [0, -3]]
    result = softmax_protocol(outputs([1, 0, 1, 0], ["d"] * 4, logits=logits))
    assert result.row("d").auroc == 1.0
    assert metrics.auroc(result.labels, result.prob_fake) == 0.75  # ties at P = 1.0
    assert result.predictions.tolist() == [1, 1, 1, 0]


def test_selection_score_weights_domains_and_skips_undefined():
    query = outputs(
        [0, 1, 0, 1, 1, 1],
        ["a", "a", "b", "b", "c", "c"],
        logits=[[0, -1], [0, 1], [0, 1], [0, -1], [0, 1], [0, 2]],
    )
    result = softmax_protocol(query)
    assert result.row("a").auroc == 1.0 and result.row("b").auroc == 0.0
    assert result.row("c").auroc is None  # one class only: left out
    assert selection_score(result, "auroc") == pytest.approx(0.5)
    assert selection_score(result, "auroc", {"a": 3.0, "b": 1.0}) == pytest.approx(0.75)
    assert selection_score(result, "eer", {"a": 1.0}) == pytest.approx(1.0)
    assert selection_score(result, "accuracy", {"c": 1.0}) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="undefined for every"):
        selection_score(result, "auroc", {"c": 1.0})
    with pytest.raises(ValueError, match=r"\['zz'\]"):
        selection_score(result, "auroc", {"zz": 1.0})


# -- run_evaluation -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_root")
    toy = write_toy_cache(root, per_class={"train": 4, "val": 2, "test": 3, "support": 2})
    train_config = toy_train_config(toy, normalisation="symmetric")
    torch.manual_seed(0)
    model = build_model("tiny3d", width=4, proj_dim=8)
    save_checkpoint(
        root / "runs" / "toy" / "best.pt",
        model,
        epoch=1,
        best_selection_score=0.5,
        args=checkpoint_args(train_config, world_size=1, clip_shape=(4, 32, 32, 3)),
    )
    config = parse_eval_config(
        {
            "name": "toy_eval",
            "checkpoint": "runs/toy/best.pt",
            "protocols": ["prototype", "benchmark"],
            "query": [str(toy.split_files["test"])],
            "support": [str(toy.split_files["support"])],
            "out_dir": "reports/toy",
            "batch_size": 5,
            "workers": 0,
            "device": "cpu",
        },
        "<toy eval>",
    )
    return toy, run_evaluation(config, root=root, progress=False)


def test_run_evaluation_writes_consistent_reports(evaluated):
    toy, result = evaluated
    assert set(result.results) == {"prototype", "benchmark"} and result.checkpoint_epoch == 1
    report = json.loads(result.files.json.read_text())
    assert report["normalisation"] == "symmetric"  # taken from the checkpoint's args
    assert report["model"]["name"] == "tiny3d"
    lines = [json.loads(x) for x in result.files.predictions.read_text().splitlines()]
    test_ids = [e.clip_id for e in toy.entries["test"]]
    for protocol in ("prototype", "benchmark"):
        rows = [x for x in lines if x["protocol"] == protocol]
        assert [x["clip_id"] for x in rows] == test_ids
        labels = [x["label"] for x in rows]
        every = next(r for r in report["results"][protocol]["rows"] if r["name"] == "all")
        assert every["auroc"] == pytest.approx(metrics.auroc(labels, [x["score"] for x in rows]))
        assert every["accuracy"] == pytest.approx(
            metrics.accuracy(labels, [x["prediction"] for x in rows])
        )
    groups = [r["name"] for r in report["results"]["benchmark"]["rows"]]
    assert groups == ["toy", "all"]  # the benchmark breaks down by dataset
    assert [r["name"] for r in report["results"]["prototype"]["rows"]] == ["alpha", "beta", "all"]
    timing = report["results"]["benchmark"]["timing"]
    assert timing["num_clips"] == 12 and 0 < timing["mean_ms_per_clip"] <= timing["p95_ms_per_clip"]
    markdown = result.files.markdown.read_text()
    assert "| Domain | Clips (real / fake) | AUROC | EER | Accuracy | MCC |" in markdown
    assert "Combined" in markdown and "p95" in markdown
    assert result.files.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_config_validation():
    base = {
        "name": "e",
        "checkpoint": "c.pt",
        "protocols": ["prototype"],
        "query": ["q.jsonl"],
        "out_dir": "o",
    }
    with pytest.raises(ConfigError) as err:
        parse_eval_config(base, "<e>")
    assert err.value.field == "support"
    with pytest.raises(ConfigError) as err:
        parse_eval_config({**base, "protocols": ["roc"], "support": ["s.jsonl"]}, "<e>")
    assert err.value.field == "protocols" and err.value.value == "roc"
    with pytest.raises(ConfigError) as err:
        parse_eval_config({**base, "support": ["s.jsonl"], "treshold": 0.1}, "<e>")
    assert err.value.field == "treshold"


def test_missing_checkpoint_is_a_stage_error(tmp_path):
    config = parse_eval_config(
        {
            "name": "e",
            "checkpoint": "runs/none/best.pt",
            "protocols": ["benchmark"],
            "query": ["q.jsonl"],
            "out_dir": "o",
            "device": "cpu",
        },
        "<e>",
    )
    with pytest.raises(StageError, match="does not exist"):
        run_evaluation(config, root=tmp_path, progress=False)


# -- anomaly protocol (one-class) ---------------------------------------------------------------
def test_anomaly_protocol_on_a_hand_computed_case():
    from vfcache.trainers.protocols import anomaly_protocol, best_threshold

    scores = np.array([0.10, 0.20, 0.35, 0.40, 0.50, 0.60])
    labels = [0, 0, 0, 1, 1, 1]
    query = dataclasses.replace(outputs(labels, ["d"] * 6), logits=None, scores=scores)
    result = anomaly_protocol(query, threshold=0.3)
    row = result.row("d")
    # fake when score >= 0.3: predictions 0 0 1 1 1 1 -> tp 3, fp 1, fn 0, tn 2
    assert (row.accuracy, row.precision, row.recall, row.fpr) == (
        pytest.approx(5 / 6),
        0.75,
        1.0,
        pytest.approx(1 / 3),
    )
    assert row.f1 == pytest.approx(2 * 0.75 / 1.75)
    assert row.auroc == pytest.approx(1.0) and row.eer == pytest.approx(0.0)
    stats = {s.name: s for s in result.score_stats}["d"]
    assert stats.real_mean == pytest.approx(np.mean([0.1, 0.2, 0.35]))
    assert stats.fake_std == pytest.approx(np.std([0.4, 0.5, 0.6]))
    assert stats.separation_ratio == pytest.approx(0.5 / np.mean([0.1, 0.2, 0.35]))
    # chosen on calibration clips: the threshold that separates best (Youden's J)
    assert best_threshold(np.array(labels), scores) == pytest.approx(0.40)
    chosen = anomaly_protocol(query, calibration=query)
    assert chosen.threshold == pytest.approx(0.40) and chosen.row("all").accuracy == 1.0
    with pytest.raises(ValueError, match="threshold, or calibration"):
        anomaly_protocol(query)
    with pytest.raises(ValueError, match="anomaly score"):
        anomaly_protocol(outputs(labels, ["d"] * 6), threshold=0.3)
