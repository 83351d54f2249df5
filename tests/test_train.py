"""Training: config validation, the tiny3d loop on CPU, checkpoints, exact mid-epoch resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from train_fixtures import toy_train_config, toy_train_dict, write_toy_cache
from vfcache.trainers.models import (
    build_model,
    load_checkpoint_model,
    read_checkpoint,
    save_checkpoint,
)
from vfcache.trainers.train import StepInfo, learning_rate, run_training
from vfcache.trainers.train_config import (
    OptimizerConfig,
    load_eval_config,
    load_train_config,
    parse_train_config,
)
from vfcache.trainers.train_setup import has_unused_trainable_head
from vfcache.trainers.trainable import set_trainable

from vfcache.errors import ConfigError, StageError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_cache(tmp_path_factory.mktemp("toy_root"))


def _run_dir(toy, name):
    return toy.root / "runs" / name


def _weights(path):
    return read_checkpoint(path)["model_state_dict"]


# -- configs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted((CONFIGS / "train").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_train_configs_load(path):
    config = load_train_config(path)
    assert config.source == str(path)
    assert config.to_json()["name"] == config.name


@pytest.mark.parametrize("path", sorted((CONFIGS / "eval").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_eval_configs_load(path):
    assert load_eval_config(path).protocols


def test_card_recipes_are_in_the_configs():
    base = load_train_config(CONFIGS / "train" / "dvf_base.yaml")
    assert base.model.name == "r2plus1d_18_baseline" and base.model.kwargs == {"dropout": 0.4}
    assert base.loss.kind == "cross_entropy" and base.loss.class_weights == (1.0, 1.5)
    assert base.loss.label_smoothing == 0.2
    supcon = load_train_config(CONFIGS / "train" / "supcon_mixed.yaml")
    assert (supcon.loss.kind, supcon.loss.temperature) == ("supcon", 0.07)
    assert (supcon.optimizer.lr, supcon.optimizer.weight_decay) == (5e-5, 1e-5)
    assert (supcon.epochs, supcon.batch_size, supcon.unfreeze) == (20, 24, "layer4_all")
    assert supcon.domain_loss_weights == {"aegis": 0.5, "dvf": 0.3, "genvideo": 0.2}
    assert supcon.sampler.kind == "generator_quota" and supcon.selection.protocol == "prototype"
    assert supcon.init_checkpoint == base.out_dir + "/best.pt"


def test_unknown_key_names_file_field_and_value(tmp_path, toy):
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(toy_train_dict(toy, optimizer={"lr": 0.1, "momentum": 0.9})))
    with pytest.raises(ConfigError) as err:
        load_train_config(path)
    assert err.value.source == str(path) and err.value.field == "optimizer.momentum"
    assert err.value.value == 0.9 and "known keys" in str(err.value)


@pytest.mark.parametrize(
    "override, field",
    [
        ({"epochs": 0}, "epochs"),
        ({"unfreeze": "layer3"}, "unfreeze"),
        ({"unfreeze": {"last_fraction": 2}}, "unfreeze"),
        ({"unfreeze": {"include": ["x*"], "last_fraction": 0.5}}, "unfreeze"),
        ({"optimizer": {"lr": 0.1, "warmup_fraction": 1.5}}, "optimizer.warmup_fraction"),
        (
            {"optimizer": {"lr": 0.1, "warmup_fraction": 0.1, "warmup_steps": 3}},
            "optimizer.warmup_fraction",
        ),
        ({"loss": {"kind": "supcon", "label_smoothing": 0.1}}, "loss"),
        ({"loss": {"kind": "cross_entropy", "class_weights": [1.0]}}, "loss.class_weights"),
        (
            {"sampler": {"kind": "class_balanced", "domain_weights": {"a": 1}}},
            "sampler.domain_weights",
        ),
        (
            {"sampler": {"kind": "generator_quota", "class_proportions": {"maybe": 1}}},
            "sampler.class_proportions.maybe",
        ),
        ({"selection": {"protocol": "prototype", "metric": "combined"}}, "selection.metric"),
        (
            {"data": {"train": ["a.jsonl"], "val": ["b.jsonl"]}, "loss": {"kind": "supcon"}},
            "data.support",
        ),
        ({"amp": "fp8"}, "amp"),
        ({"batch_size": True}, "batch_size"),
    ],
)
def test_invalid_values_are_config_errors(toy, override, field):
    with pytest.raises(ConfigError) as err:
        parse_train_config(toy_train_dict(toy, **override), "<test>")
    assert err.value.field == field


def test_warmup_as_a_fraction_of_the_steps_then_cosine(toy):
    config = parse_train_config(
        toy_train_dict(
            toy,
            optimizer={"lr": 1.0, "schedule": "cosine", "warmup_fraction": 0.1},
            unfreeze={"include": ["fc.*"]},
        ),
        "<t>",
    )
    assert config.unfreeze == {"include": ("fc.*",)}
    opt = config.optimizer
    rates = [learning_rate(opt, s, 100) for s in range(100)]
    assert rates[:10] == [pytest.approx((s + 1) / 10) for s in range(10)]  # 10% of 100 steps
    assert rates[10] == pytest.approx(1.0) and rates[-1] < 0.01
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))  # cosine decay after warmup


def test_learning_rate_schedule():
    opt = OptimizerConfig(lr=1.0, schedule="cosine", warmup_steps=4, min_lr=0.1)
    assert [learning_rate(opt, s, 104) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert learning_rate(opt, 54, 104) == pytest.approx(0.55)
    assert learning_rate(opt, 104, 104) == pytest.approx(0.1)
    assert learning_rate(OptimizerConfig(lr=0.3), 1000, 10) == 0.3


# -- the loop -----------------------------------------------------------------------------------
def test_training_writes_card_checkpoints_and_metrics(toy):
    config = toy_train_config(toy, out_dir="runs/basic")
    steps: list[StepInfo] = []
    result = run_training(config, root=toy.root, on_step=steps.append, progress=False)
    assert (result.epochs_completed, result.global_step, result.stopped_early) == (2, 8, False)
    assert [s.global_step for s in steps] == list(range(1, 9))
    # class-balanced batches of 4 real + 4 fake: every train clip exactly once per epoch
    train_ids = sorted(e.clip_id for e in toy.entries["train"])
    for epoch in (1, 2):
        seen = [c for s in steps if s.epoch == epoch for c in s.clip_ids]
        assert sorted(seen) == train_ids
    lines = [json.loads(x) for x in result.metrics_path.read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]
    assert set(lines[0]["val"]) == {"alpha", "beta", "all"}
    assert lines[-1]["selection_score"] > 0.9  # the toy signal is learnable
    assert lines[0]["lr"] == 0.01 and all(math.isfinite(x["train_loss"]) for x in lines)
    best = read_checkpoint(result.best_checkpoint)
    assert set(best) == {
        "epoch",
        "model_state_dict",
        "optimizer_state_dict",
        "best_selection_score",
        "args",
    }
    assert best["epoch"] == result.best_epoch
    assert best["best_selection_score"] == result.best_selection_score
    assert best["args"]["model"] == {"name": "tiny3d", "kwargs": {"width": 4, "proj_dim": 8}}
    last = read_checkpoint(result.last_checkpoint)  # weights_only=True, with the resume state
    assert last["epoch"] == 2 and last["train_state"]["progress"]["next_epoch"] == 2
    assert isinstance(last["train_state"]["rng"][0]["torch"], torch.Tensor)
    assert json.loads((result.out_dir / "config.json").read_text()) == config.to_json()

    model, info = load_checkpoint_model(result.last_checkpoint, "tiny3d", width=4, proj_dim=8)
    assert info.epoch == 2 and info.has_optimizer_state
    clips = torch.rand(2, 3, 4, 32, 32)
    again, _ = load_checkpoint_model(result.last_checkpoint, "tiny3d", width=4, proj_dim=8)
    assert torch.equal(model(clips).logits, again(clips).logits)


def test_checkpoint_extra_keys_load_with_weights_only(tmp_path):
    model = torch.nn.Linear(2, 2)
    state = {"rng": [torch.get_rng_state()], "sampler": {"epoch": 1, "seed": 0}, "note": None}
    path = save_checkpoint(tmp_path / "c.pt", model, epoch=1, extra={"train_state": state})
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["train_state"]["rng"][0], state["rng"][0])
    with pytest.raises(ValueError, match="clash"):
        save_checkpoint(tmp_path / "d.pt", model, epoch=1, extra={"epoch": 3})
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "e.pt", model, epoch=1, extra={"obj": object()})


def _run_and_record(config, root, **kwargs):
    seen: list[tuple[int, int, tuple[str, ...]]] = []
    result = run_training(
        config,
        root=root,
        progress=False,
        on_step=lambda s: seen.append((s.epoch, s.step_in_epoch, s.clip_ids)),
        **kwargs,
    )
    return result, seen


@pytest.mark.parametrize("stop_after", [3, 4])  # mid-epoch 1, and exactly at its end
def test_resume_repeats_an_uninterrupted_run(toy, stop_after):
    # baseline model with dropout, augmentation and a cosine schedule: everything random must resume
    overrides = dict(
        model={"name": "train_fixtures:DropoutTiny3D", "kwargs": {"dropout": 0.5}},
        workers=1,
        augment={"flip_probability": 0.5, "brightness_delta": 0.2},
        optimizer={"lr": 0.01, "schedule": "cosine", "warmup_steps": 2},
        sampler={"kind": "domain_weighted", "composition": "draw"},
    )
    whole = toy_train_config(toy, out_dir=f"runs/whole{stop_after}", **overrides)
    split = toy_train_config(toy, out_dir=f"runs/split{stop_after}", **overrides)
    result_whole, seen_whole = _run_and_record(whole, toy.root)
    first, seen_first = _run_and_record(split, toy.root, stop_after_steps=stop_after)
    assert first.stopped_early and first.global_step == stop_after
    assert read_checkpoint(first.last_checkpoint)["epoch"] == stop_after // 4
    second, seen_second = _run_and_record(split, toy.root, resume=True)
    assert not second.stopped_early and second.global_step == 8
    assert seen_first + seen_second == seen_whole
    for key, value in _weights(result_whole.last_checkpoint).items():
        assert torch.allclose(value, _weights(second.last_checkpoint)[key], atol=1e-6), key
    lines = [
        [
            {k: v for k, v in json.loads(x).items() if not k.endswith("_s")}
            for x in r.metrics_path.read_text().splitlines()
        ]
        for r in (result_whole, second)
    ]
    assert lines[0] == lines[1]
    assert second.best_epoch == result_whole.best_epoch


def test_run_folder_is_never_overwritten_and_resume_checks_config(toy):
    config = toy_train_config(toy, out_dir="runs/guard", epochs=1)
    with pytest.raises(StageError, match="nothing to resume"):
        run_training(config, root=toy.root, resume=True, progress=False)
    run_training(config, root=toy.root, progress=False)
    with pytest.raises(StageError, match="--resume"):
        run_training(config, root=toy.root, progress=False)
    changed = toy_train_config(toy, out_dir="runs/guard", epochs=1, seed=4)
    with pytest.raises(ConfigError) as err:
        run_training(changed, root=toy.root, resume=True, progress=False)
    assert err.value.field == "seed"
    longer = toy_train_config(toy, out_dir="runs/guard", epochs=2)  # more epochs may be added
    assert run_training(longer, root=toy.root, resume=True, progress=False).epochs_completed == 2


def test_supcon_transfer_recipe(toy):
    base = run_training(
        toy_train_config(toy, out_dir="runs/base", epochs=1), root=toy.root, progress=False
    )
    config = toy_train_config(
        toy,
        out_dir="runs/supcon",
        epochs=1,
        init_checkpoint="runs/base/best.pt",
        loss={"kind": "supcon", "temperature": 0.07},
        unfreeze="layer4_all",
        domain_loss_weights={"alpha": 0.7, "beta": 0.3},
        sampler={"kind": "generator_quota"},
        selection={"protocol": "prototype", "metric": "eer", "domain_weights": {"alpha": 1.0}},
        decode_cache_gb=0.01,
    )
    result = run_training(config, root=toy.root, progress=False)
    before, after = _weights(base.best_checkpoint), _weights(result.last_checkpoint)
    assert torch.equal(before["layer1.0.weight"], after["layer1.0.weight"])  # transferred, frozen
    assert not torch.equal(before["layer4.0.weight"], after["layer4.0.weight"])  # trained
    line = json.loads(result.metrics_path.read_text().splitlines()[0])
    assert line["selection_score"] == pytest.approx(1.0 - line["val"]["alpha"]["eer"])
    assert "brier" not in line["val"]["alpha"]  # the prototype protocol has no probabilities
    assert list(result.out_dir.glob("vfcache-decoded-*.slots"))


def test_ddp_searches_unused_parameters_only_when_a_trainable_head_is_idle():
    tiny = build_model("tiny3d", width=4, proj_dim=8)
    set_trainable(tiny, "all")
    assert has_unused_trainable_head(tiny, "logits")
    assert has_unused_trainable_head(tiny, "embedding")
    set_trainable(tiny, "layer4_all")  # layer4 + proj_head: the SupCon recipe
    assert not has_unused_trainable_head(tiny, "embedding")
    assert has_unused_trainable_head(tiny, "logits")
    baseline = build_model("r2plus1d_18_baseline")
    assert not has_unused_trainable_head(baseline, "logits")
    assert has_unused_trainable_head(torch.nn.Conv3d(3, 2, 1), "logits")  # unknown layout


def test_compute_loss_takes_domain_shares_unless_per_anchor_is_asked(toy):
    from vfcache.trainers.losses import (
        domain_sample_weights,
        domain_share_weights,
        weighted_cross_entropy,
    )
    from vfcache.trainers.train_setup import compute_loss

    weights = {"aegis": 0.5, "dvf": 0.3, "genvideo": 0.2}
    logits = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    domains = ["aegis", "dvf", "dvf", "dvf", "genvideo", "genvideo"]
    loss = {"kind": "cross_entropy", "class_weights": [1.0, 1.5], "label_smoothing": 0.0}
    shares = parse_train_config(toy_train_dict(toy, loss=loss, domain_loss_weights=weights), "<t>")
    anchors = parse_train_config(
        toy_train_dict(toy, loss=loss, domain_loss_weights=weights, domain_loss_mode="per_anchor"),
        "<t>",
    )
    assert shares.domain_loss_mode == "shares"
    mass = torch.tensor([1.0, 1.5])[labels]
    expected = weighted_cross_entropy(
        logits,
        labels,
        class_weights=(1.0, 1.5),
        label_smoothing=0.0,
        sample_weights=domain_share_weights(domains, weights, mass),
    )
    torch.testing.assert_close(compute_loss(shares, logits, labels, domains), expected)
    per_anchor = weighted_cross_entropy(
        logits,
        labels,
        class_weights=(1.0, 1.5),
        label_smoothing=0.0,
        sample_weights=domain_sample_weights(domains, weights),
    )
    torch.testing.assert_close(compute_loss(anchors, logits, labels, domains), per_anchor)
    assert not torch.isclose(expected, per_anchor)


@pytest.mark.parametrize("kind", ["cross_entropy", "supcon", "reconstruction"])
@pytest.mark.parametrize("mode", ["shares", "per_anchor", None])
def test_the_training_loss_reads_nothing_back_from_the_device(toy, monkeypatch, kind, mode):
    """A step's loss must not wait on the GPU: no bool()/item()/float() of a tensor inside
    compute_loss (weights are validated once, when the config is read)."""
    from vfcache.trainers.train_setup import compute_loss

    extra = (
        {}
        if mode is None
        else {"domain_loss_weights": {"aegis": 0.5, "dvf": 0.3}, "domain_loss_mode": mode}
    )
    loss = (
        {"kind": kind} if kind != "cross_entropy" else {"kind": kind, "class_weights": [1.0, 1.5]}
    )
    config = parse_train_config(toy_train_dict(toy, loss=loss, **extra), "<t>")
    generator = torch.Generator().manual_seed(1)
    head = torch.randn(6, 2 if kind == "cross_entropy" else 4, generator=generator)
    if kind == "supcon":
        head = torch.nn.functional.normalize(head, dim=1)
    if kind == "reconstruction":
        head = head[:, 0].abs()
    head.requires_grad_(True)
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    domains = ["aegis", "dvf", "dvf", "aegis", "dvf", "aegis"]

    def read_back(*_args, **_kwargs):
        raise AssertionError("the loss read a value back from the device")

    for name in ("__bool__", "__float__", "__int__", "item", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, read_back)
    value = compute_loss(config, head, labels, domains)
    value.backward()
    monkeypatch.undo()
    assert torch.isfinite(value) and head.grad is not None and torch.isfinite(head.grad).all()


@pytest.mark.parametrize(
    "mode,native_bf16,expected",
    [
        ("auto", True, torch.bfloat16),
        ("auto", False, torch.float16),
        ("bf16", True, torch.bfloat16),
        ("bf16", False, "no native bfloat16"),
        ("fp16", True, torch.float16),
        ("fp16", False, torch.float16),
        ("off", True, None),
    ],
)
def test_amp_takes_bf16_only_where_the_gpu_has_it_natively(
    monkeypatch, mode, native_bf16, expected
):
    from vfcache.trainers.evaluate import resolve_amp

    asked = []

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return native_bf16 or including_emulation  # an old GPU emulates bf16

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "Tesla V100")
    cuda = torch.device("cuda", 0)
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            resolve_amp(mode, cuda)
    else:
        assert resolve_amp(mode, cuda) == expected
    assert asked == [False]
    assert resolve_amp("auto", torch.device("cpu")) is None
    assert resolve_amp("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError, match="fp16' needs a CUDA device"):
        resolve_amp("fp16", torch.device("cpu"))


def test_fp16_steps_scale_the_loss_and_unscale_before_clipping(toy):
    """The GradScaler path: backward of the scaled loss, then the optimizer sees the true
    gradient (unscale before clipping)."""
    from vfcache.trainers.train import accumulate_gradient

    config = parse_train_config(
        toy_train_dict(toy, loss={"kind": "cross_entropy", "label_smoothing": 0.0}), "<t>"
    )
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 8 * 8, 2))
    batch = {
        "clip": torch.rand(4, 3, 4, 8, 8),
        "label": torch.tensor([0, 1, 1, 0]),
        "domain": ["a"] * 4,
    }
    accumulate_gradient(config, model, batch, scale=1.0, amp_dtype=None)
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    accumulate_gradient(config, model, batch, scale=1.0, amp_dtype=None, scaler=scaler)
    for p, g in zip(model.parameters(), plain):
        torch.testing.assert_close(p.grad, g * 1024.0)
    scaler.unscale_(optimizer)
    for p, g in zip(model.parameters(), plain):
        torch.testing.assert_close(p.grad, g)


def test_unchecked_losses_give_zero_for_all_zero_weights():
    from vfcache.trainers.losses import SupConLoss, weighted_cross_entropy

    z = torch.nn.functional.normalize(torch.randn(4, 3), dim=1).requires_grad_(True)
    labels = torch.tensor([0, 0, 1, 1])
    value = SupConLoss()(z, labels, torch.zeros(4), check=False)
    value.backward()
    assert value.item() == 0.0 and z.grad is not None
    assert (
        weighted_cross_entropy(
            torch.zeros(3, 2), torch.zeros(3), sample_weights=torch.zeros(3), check=False
        ).item()
        == 0.0
    )


def test_gradient_accumulation_gives_the_large_batch_gradient(toy):
    """Two half batches, each adding half its gradient, equal one batch of both halves."""
    from vfcache.trainers.train import accumulate_gradient

    config = parse_train_config(
        toy_train_dict(toy, loss={"kind": "cross_entropy", "label_smoothing": 0.0}), "<t>"
    )
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 8 * 8, 2))
    clips = torch.rand(8, 3, 4, 8, 8)
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    domains = ["a"] * 8

    def batch(rows: slice) -> dict:
        return {"clip": clips[rows], "label": labels[rows], "domain": domains[rows]}

    accumulate_gradient(config, model, batch(slice(0, 8)), scale=1.0, amp_dtype=None)
    large = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    for rows in (slice(0, 4), slice(4, 8)):
        accumulate_gradient(config, model, batch(rows), scale=0.5, amp_dtype=None)
    for accumulated, expected in zip((p.grad for p in model.parameters()), large):
        torch.testing.assert_close(accumulated, expected)


def test_a_run_with_gradient_accumulation_steps_once_per_window(toy):
    config = toy_train_config(toy, out_dir="runs/accumulate", epochs=2, grad_accumulation=3)
    steps = []
    original = torch.optim.AdamW.step

    def counting_step(self, *args, **kwargs):
        steps.append(1)
        return original(self, *args, **kwargs)

    torch.optim.AdamW.step = counting_step
    try:
        result = run_training(config, root=toy.root, progress=False)
    finally:
        torch.optim.AdamW.step = original
    batches_per_epoch = result.global_step // 2
    assert len(steps) == 2 * -(-batches_per_epoch // 3)  # a short last window steps too
    assert json.loads(result.metrics_path.read_text().splitlines()[-1])["epoch"] == 2


def test_resume_with_gradient_accumulation_stops_only_between_windows(toy):
    overrides = dict(
        optimizer={"lr": 0.01, "schedule": "cosine", "warmup_fraction": 0.25},
        grad_accumulation=2,
        epochs=2,
    )
    whole = toy_train_config(toy, out_dir="runs/acc_whole", **overrides)
    split = toy_train_config(toy, out_dir="runs/acc_split", **overrides)
    result_whole, seen_whole = _run_and_record(whole, toy.root)
    first, seen_first = _run_and_record(split, toy.root, stop_after_steps=1)
    assert first.stopped_early and first.global_step == 2  # asked 1, the window holds 2
    second, seen_second = _run_and_record(split, toy.root, resume=True)
    assert seen_first + seen_second == seen_whole
    for key, value in _weights(result_whole.last_checkpoint).items():
        assert torch.allclose(value, _weights(second.last_checkpoint)[key], atol=1e-6), key


def test_one_class_reconstruction_run_and_anomaly_eval(toy):
    """Seed 004's recipe in miniature: real clips only, a reconstruction objective, selection on
    the val reconstruction error, then the anomaly protocol with a threshold chosen on val."""
    from vfcache.trainers.evaluate import run_evaluation
    from vfcache.trainers.train_config import parse_eval_config

    losses = []
    config = toy_train_config(
        toy,
        out_dir="runs/oneclass",
        epochs=3,
        model={"name": "tiny_reconstructor3d", "kwargs": {"width": 4}},
        loss={"kind": "reconstruction"},
        data={
            "train": [str(toy.split_files["train"])],
            "val": [str(toy.split_files["val"])],
            "train_labels": ["real"],
        },
        optimizer={"lr": 0.01},
    )
    assert config.selection.protocol == "val_loss" and config.data.train_labels == (0,)
    result = run_training(
        config, root=toy.root, progress=False, on_step=lambda s: losses.append(s.loss)
    )
    assert losses[-1] < losses[0]  # the reconstruction error goes down
    history = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    assert all("mean_score" in h["val"]["all"] for h in history)
    checkpoint = read_checkpoint(result.best_checkpoint)
    assert checkpoint["args"]["normalisation"] == "symmetric"  # the model's declared contract
    seen = set()
    run_training(
        toy_train_config(
            toy,
            out_dir="runs/oneclass_ids",
            epochs=1,
            model={"name": "tiny_reconstructor3d", "kwargs": {"width": 4}},
            loss={"kind": "reconstruction"},
            data={
                "train": [str(toy.split_files["train"])],
                "val": [str(toy.split_files["val"])],
                "train_labels": ["real"],
            },
        ),
        root=toy.root,
        progress=False,
        on_step=lambda s: seen.update(s.clip_ids),
    )
    train_labels = {
        e["clip_id"]: e["label"] for e in map(json.loads, open(toy.root / toy.split_files["train"]))
    }
    assert seen and {train_labels[c] for c in seen} == {0}  # only real clips trained

    evaluation = parse_eval_config(
        {
            "name": "oneclass",
            "checkpoint": str(result.best_checkpoint),
            "protocols": ["anomaly"],
            "query": [str(toy.split_files["test"])],
            "calibration": [str(toy.split_files["val"])],
            "out_dir": "reports/oneclass",
            "workers": 0,
            "device": "cpu",
        },
        "<t>",
    )
    report = run_evaluation(evaluation, root=toy.root, progress=False)
    anomaly = report.results["anomaly"]
    assert anomaly.row("all").num_real > 0 and anomaly.row("all").num_fake > 0
    assert {s.name for s in anomaly.score_stats} >= {"all"}
    markdown = (report.out_dir / "results.md").read_text()
    assert "Anomaly protocol" in markdown and "Separation ratio" in markdown
    with pytest.raises(ConfigError, match="anomaly_threshold"):
        parse_eval_config(
            {
                "name": "x",
                "checkpoint": "c.pt",
                "protocols": ["anomaly"],
                "query": ["q.jsonl"],
                "out_dir": "r",
            },
            "<t>",
        )
