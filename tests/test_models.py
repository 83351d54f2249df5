"""Tests for vfcache.trainers.r2plus1d and vfcache.trainers.models: torchvision layout, heads,
policies,
build by name / import path, checkpoints."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from vfcache.trainers.models import (
    Tiny3D,
    build_model,
    enter_train_mode,
    load_checkpoint_model,
    save_checkpoint,
    to_detector_output,
    transfer_backbone,
)
from vfcache.trainers.r2plus1d import BaselineClassifier, DetectorOutput, R2Plus1DDetector
from vfcache.trainers.trainable import model_blocks, set_trainable

# Shapes of torchvision's r2plus1d_18 state_dict (from its published Kinetics weights).
TORCHVISION_SHAPES = {
    "stem.0.weight": (45, 3, 1, 7, 7),
    "stem.1.running_var": (45,),
    "stem.3.weight": (64, 45, 3, 1, 1),
    "stem.4.bias": (64,),
    "layer1.0.conv1.0.0.weight": (144, 64, 1, 3, 3),
    "layer1.0.conv1.0.1.weight": (144,),
    "layer1.0.conv1.0.3.weight": (64, 144, 3, 1, 1),
    "layer1.0.conv1.1.running_mean": (64,),
    "layer1.1.conv2.0.3.weight": (64, 144, 3, 1, 1),
    "layer1.1.conv2.1.weight": (64,),
    "layer2.0.conv1.0.0.weight": (230, 64, 1, 3, 3),
    "layer2.0.conv2.0.0.weight": (230, 128, 1, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1, 1),
    "layer2.0.downsample.1.num_batches_tracked": (),
    "layer2.1.conv1.0.0.weight": (288, 128, 1, 3, 3),
    "layer3.0.conv1.0.0.weight": (460, 128, 1, 3, 3),
    "layer3.0.downsample.0.weight": (256, 128, 1, 1, 1),
    "layer3.1.conv2.0.3.weight": (256, 576, 3, 1, 1),
    "layer4.0.conv1.0.0.weight": (921, 256, 1, 3, 3),
    "layer4.0.downsample.0.weight": (512, 256, 1, 1, 1),
    "layer4.1.conv2.0.3.weight": (512, 1152, 3, 1, 1),
    "layer4.1.conv2.1.bias": (512,),
}
CARD_PARAMETERS = 31_629_471
BACKBONE_PARAMETERS = 31_300_125  # torchvision r2plus1d_18 (31,505,325) minus fc 512x400+400


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def detector() -> R2Plus1DDetector:
    torch.manual_seed(0)
    return R2Plus1DDetector()


@pytest.fixture(scope="module")
def baseline() -> BaselineClassifier:
    torch.manual_seed(1)
    return BaselineClassifier()


def test_parameter_count_is_the_cards(detector):
    assert _count(detector) == CARD_PARAMETERS
    backbone = sum(
        p.numel() for k, p in detector.named_parameters() if not k.startswith(("fc.", "proj_head."))
    )
    assert backbone == BACKBONE_PARAMETERS
    assert _count(detector.proj_head) == (512 * 512 + 512) + (512 * 128 + 128)
    assert _count(detector.fc) == 512 * 2 + 2


def test_baseline_parameter_count_and_head_keys(baseline):
    assert _count(baseline) == BACKBONE_PARAMETERS + 512 * 2 + 2
    head_keys = [k for k in baseline.state_dict() if not k.startswith(("stem.", "layer"))]
    assert head_keys == ["fc.1.weight", "fc.1.bias"]
    assert isinstance(baseline.fc[0], nn.Dropout) and baseline.fc[0].p == 0.4


def test_state_dict_uses_torchvision_names_and_shapes(detector):
    state = detector.state_dict()
    for key, shape in TORCHVISION_SHAPES.items():
        assert key in state, key
        assert tuple(state[key].shape) == shape, key
    # 224 torchvision keys (12 stem, 8 blocks x 24, 3 downsamples x 6, fc 2) + 4 proj_head
    assert len(state) == 228
    keys = list(state)
    assert keys[:2] == ["stem.0.weight", "stem.1.weight"]
    assert keys[-6:] == [
        "fc.weight",
        "fc.bias",
        "proj_head.0.weight",
        "proj_head.0.bias",
        "proj_head.2.weight",
        "proj_head.2.bias",
    ]
    assert not any(k.startswith("layer1.0.downsample") for k in keys)


def test_strides_follow_torchvision(detector):
    conv = detector.layer2[0].conv1[0]
    assert conv[0].stride == (1, 2, 2) and conv[0].padding == (0, 1, 1)
    assert conv[3].stride == (2, 1, 1) and conv[3].padding == (1, 0, 0)
    assert detector.layer2[0].downsample[0].stride == (2, 2, 2)
    assert detector.layer2[0].conv2[0][0].stride == (1, 1, 1)
    assert detector.stem[0].stride == (1, 2, 2) and detector.stem[3].padding == (1, 0, 0)


def test_forward_shapes_and_normalised_embedding(detector):
    detector.eval()
    seen = {}
    hooks = [
        getattr(detector, name).register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, tuple(out.shape))
        )
        for name in ("stem", "layer1", "layer2", "layer3", "layer4")
    ]
    try:
        with torch.no_grad():
            out = detector(torch.rand(2, 3, 8, 32, 32))
    finally:
        for hook in hooks:
            hook.remove()
    assert seen == {
        "stem": (2, 64, 8, 16, 16),
        "layer1": (2, 64, 8, 16, 16),
        "layer2": (2, 128, 4, 8, 8),
        "layer3": (2, 256, 2, 4, 4),
        "layer4": (2, 512, 1, 2, 2),
    }
    assert isinstance(out, DetectorOutput)
    assert out.features.shape == (2, 512) and out.embedding.shape == (2, 128)
    assert out.logits.shape == (2, 2)
    torch.testing.assert_close(out.embedding.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(out.logits, detector.fc(out.features))


def _functional_block(x, state, prefix, stride, has_downsample):
    """Residual block written from the paper's description with F.conv3d / F.batch_norm."""

    def bn(t, key):
        return F.batch_norm(
            t,
            state[f"{key}.running_mean"],
            state[f"{key}.running_var"],
            state[f"{key}.weight"],
            state[f"{key}.bias"],
            False,
            0.0,
            1e-5,
        )

    def conv2plus1d(t, key, s):
        t = F.conv3d(t, state[f"{key}.0.weight"], stride=(1, s, s), padding=(0, 1, 1))
        t = F.relu(bn(t, f"{key}.1"))
        return F.conv3d(t, state[f"{key}.3.weight"], stride=(s, 1, 1), padding=(1, 0, 0))

    out = F.relu(bn(conv2plus1d(x, f"{prefix}.conv1.0", stride), f"{prefix}.conv1.1"))
    out = bn(conv2plus1d(out, f"{prefix}.conv2.0", 1), f"{prefix}.conv2.1")
    shortcut = x
    if has_downsample:
        shortcut = bn(
            F.conv3d(x, state[f"{prefix}.downsample.0.weight"], stride=stride),
            f"{prefix}.downsample.1",
        )
    return F.relu(out + shortcut)


def test_forward_matches_functional_reference(baseline):
    generator = torch.Generator().manual_seed(3)
    state = {k: v.clone() for k, v in baseline.state_dict().items()}
    for key, value in state.items():  # non-trivial BN statistics
        if key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=generator)
        elif key.endswith(("running_mean", ".bias")) and value.dtype.is_floating_point:
            state[key] = 0.1 * torch.randn(value.shape, generator=generator)
    baseline.load_state_dict(state)
    baseline.eval()
    clips = torch.rand(1, 3, 4, 24, 24, generator=generator)
    with torch.no_grad():
        out = baseline(clips)
        x = F.conv3d(clips, state["stem.0.weight"], stride=(1, 2, 2), padding=(0, 3, 3))
        x = F.relu(
            F.batch_norm(
                x,
                state["stem.1.running_mean"],
                state["stem.1.running_var"],
                state["stem.1.weight"],
                state["stem.1.bias"],
                False,
                0.0,
                1e-5,
            )
        )
        x = F.conv3d(x, state["stem.3.weight"], padding=(1, 0, 0))
        x = F.relu(
            F.batch_norm(
                x,
                state["stem.4.running_mean"],
                state["stem.4.running_var"],
                state["stem.4.weight"],
                state["stem.4.bias"],
                False,
                0.0,
                1e-5,
            )
        )
        for layer in range(1, 5):
            stride = 1 if layer == 1 else 2
            x = _functional_block(x, state, f"layer{layer}.0", stride, layer > 1)
            x = _functional_block(x, state, f"layer{layer}.1", 1, False)
        features = x.mean(dim=(2, 3, 4))
        logits = F.linear(features, state["fc.1.weight"], state["fc.1.bias"])
    torch.testing.assert_close(out.features, features, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.logits, logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.embedding, F.normalize(features, dim=1), rtol=1e-4, atol=1e-5)


def test_clip_shape_is_checked(detector):
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        detector(torch.rand(1, 8, 32, 32, 3))
    with pytest.raises(TypeError, match="floating-point"):
        detector(torch.zeros(1, 3, 8, 32, 32, dtype=torch.uint8))


def test_registry_builds_each_model():
    assert isinstance(build_model("r2plus1d_18_baseline", dropout=0.1), BaselineClassifier)
    model = build_model("tiny3d", width=4)
    assert isinstance(model, Tiny3D)
    out = model(torch.rand(2, 3, 8, 112, 112))
    assert out.features.shape == (2, 32) and out.embedding.shape == (2, 32)
    assert out.logits.shape == (2, 2)
    out.embedding.sum().backward()
    assert model.layer1[0].weight.grad is not None


@pytest.mark.parametrize(
    "name, error, message",
    [
        ("resnet50", ValueError, "unknown model 'resnet50'"),
        ("no_such_package_xyz.models:build", ValueError, "cannot import module"),
        (
            "vfcache.trainers.models:no_such_factory",
            ValueError,
            "has no attribute 'no_such_factory'",
        ),
        ("vfcache.trainers.models:CHECKPOINT_KEYS", ValueError, "not a callable"),
        ("vfcache.trainers.models:to_detector_output", ValueError, "rejected arguments"),
        (":factory", ValueError, "package.module:factory"),
    ],
)
def test_build_model_errors_name_the_bad_value(name, error, message):
    with pytest.raises(error, match=message):
        build_model(name)


def test_build_model_rejects_unknown_kwargs():
    with pytest.raises(ValueError, match=r"tiny3d.*\['depth'\]"):
        build_model("tiny3d", depth=3)


def test_import_path_factory_returning_logits(tmp_path, monkeypatch):
    (tmp_path / "user_models_for_test.py").write_text(
        textwrap.dedent("""
        import torch
        from torch import nn

        class MeanPool(nn.Module):
            def __init__(self, classes=2):
                super().__init__()
                self.head = nn.Linear(3, classes)

            def forward(self, clips):
                return self.head(clips.mean(dim=(2, 3, 4)))

        def make(classes=2):
            return MeanPool(classes)

        def not_a_module():
            return "model"
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = build_model("user_models_for_test:make", classes=2)
    out = to_detector_output(model(torch.rand(3, 3, 2, 4, 4)))
    assert out.logits.shape == (3, 2) and out.features is None and out.embedding is None
    assert list(model.state_dict()) == ["head.weight", "head.bias"]  # not wrapped
    with pytest.raises(TypeError, match="returned str"):
        build_model("user_models_for_test:not_a_module")
    with pytest.raises(ValueError, match="needs a `layer4` submodule"):
        set_trainable(model, "layer4_all")
    sys.modules.pop("user_models_for_test", None)


def test_to_detector_output_accepts_dicts_and_rejects_junk():
    logits = torch.zeros(2, 2)
    out = to_detector_output({"logits": logits, "embedding": torch.ones(2, 4)})
    assert out.embedding.shape == (2, 4) and out.features is None
    with pytest.raises(ValueError, match="expected 'logits'"):
        to_detector_output({"scores": logits})
    with pytest.raises(ValueError, match=r"\(B, num_classes\)"):
        to_detector_output(torch.zeros(2))
    with pytest.raises(TypeError, match="returned list"):
        to_detector_output([logits])


def _trainable_names(model: nn.Module) -> set[str]:
    return {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}


def test_set_trainable_policies(detector, baseline):
    try:
        assert set_trainable(detector, "all") == (CARD_PARAMETERS, CARD_PARAMETERS)
        count, total = set_trainable(detector, "layer4_all")
        assert _trainable_names(detector) == {"layer4", "proj_head"}
        assert (
            count == _count(detector.layer4) + _count(detector.proj_head)
            and total == CARD_PARAMETERS
        )
        set_trainable(detector, "head_only")
        assert _trainable_names(detector) == {"fc", "proj_head"}
        set_trainable(baseline, "layer4_all")  # no projection head: the classifier trains
        assert _trainable_names(baseline) == {"layer4", "fc"}
        with pytest.raises(ValueError, match="unknown unfreeze policy 'layer3_all'"):
            set_trainable(detector, "layer3_all")
    finally:
        set_trainable(detector, "all")
        set_trainable(baseline, "all")


class _Frozen(nn.Module):
    """A factory that freezes its encoder and trains adapters: CLIP + adapters in miniature."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.ModuleList(nn.Linear(4, 4) for _ in range(10))
        self.adapter = nn.Linear(4, 4)
        self.fc = nn.Linear(4, 2)
        for param in self.encoder.parameters():
            param.requires_grad_(False)


def _trainable(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_general_unfreeze_policies():
    model = _Frozen()
    every = {name for name, _ in model.named_parameters()}
    assert set_trainable(model, "factory") == (20 + 10, 10 * 20 + 20 + 10)  # adapter + fc of 230
    assert _trainable(model) == {"adapter.weight", "adapter.bias", "fc.weight", "fc.bias"}
    assert set_trainable(model, "all")[0] == sum(p.numel() for p in model.parameters())
    assert _trainable(model) == every  # `all` unfreezes what the factory froze
    set_trainable(model, {"include": ["*adapter*", "fc.*"], "exclude": ["*.bias"]})
    assert _trainable(model) == {"adapter.weight", "fc.weight"}
    set_trainable(model, {"last_fraction": 0.3})  # ceil(0.3 * 10) = 3 blocks + the fc head
    assert _trainable(model) == {
        f"encoder.{i}.{k}" for i in (7, 8, 9) for k in ("weight", "bias")
    } | {"fc.weight", "fc.bias"}
    set_trainable(model, {"last_fraction": 0.25, "heads": ["adapter", "fc"]})
    assert {n.split(".")[1] for n in _trainable(model) if n.startswith("encoder")} == {
        "7",
        "8",
        "9",
    }
    assert {"adapter.weight", "fc.weight"} <= _trainable(model)
    assert model_blocks(model)[0] == "encoder"
    for bad, message in [
        ("layer3_all", "unknown unfreeze policy"),
        ({"last_fraction": 0}, "in \\(0, 1\\]"),
        ({"include": ["a"], "last_fraction": 0.5}, "one of the two"),
        ({"exclude": ["*"]}, "include must name"),
        ({"include": ["nothing*"]}, "no parameter"),
    ]:
        with pytest.raises(ValueError, match=message):
            set_trainable(model, bad)


def test_enter_train_mode_keeps_frozen_batchnorm_in_eval():
    model = Tiny3D(width=4)
    set_trainable(model, "layer4_all")
    enter_train_mode(model)
    assert not model.stem[1].training and not model.layer3[1].training
    assert model.layer4[1].training and model.proj_head.training
    before = model.layer2[1].running_mean.clone()
    model(torch.rand(2, 3, 8, 32, 32) * 5)
    torch.testing.assert_close(model.layer2[1].running_mean, before)
    assert not torch.equal(model.layer4[1].running_mean, torch.zeros(32))
    set_trainable(model, "all")
    enter_train_mode(model)
    assert all(m.training for m in model.modules())


def test_checkpoint_round_trip_is_strict_and_weights_only(tmp_path, detector):
    optimizer = torch.optim.AdamW(detector.proj_head.parameters(), lr=5e-5, weight_decay=1e-5)
    detector(torch.rand(2, 3, 8, 32, 32)).embedding.sum().backward()
    optimizer.step()
    args = {
        "lr": 5e-5,
        "unfreeze_policy": "layer4_all",
        "domains": ["aegis", "dvf"],
        "checkpoint": None,
        "save_last": False,
    }
    path = save_checkpoint(
        tmp_path / "supcon" / "final_best.pt",
        detector,
        epoch=16,
        optimizer=optimizer,
        best_selection_score=0.81,
        args=args,
    )
    assert sorted(p.name for p in path.parent.iterdir()) == ["final_best.pt"]
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert sorted(raw) == sorted(
        ["epoch", "model_state_dict", "optimizer_state_dict", "best_selection_score", "args"]
    )
    model, info = load_checkpoint_model(path, "r2plus1d_18_supcon")
    assert not model.training
    assert (info.epoch, info.best_selection_score, info.has_optimizer_state) == (16, 0.81, True)
    assert info.args == args
    for key, value in detector.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    with pytest.raises(ValueError, match="does not fit BaselineClassifier"):
        load_checkpoint_model(path, "r2plus1d_18_baseline")


def test_bare_state_dict_and_unsafe_files(tmp_path):
    model = Tiny3D(width=4)
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    loaded, info = load_checkpoint_model(tmp_path / "bare.pt", "tiny3d", width=4)
    assert info.epoch is None and torch.equal(loaded.fc.weight, model.fc.weight)
    torch.save({"model_state_dict": model.state_dict(), "args": nn.ReLU()}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="weights_only=True"):
        load_checkpoint_model(tmp_path / "bad.pt", "tiny3d", width=4)
    torch.save({"weights": 1}, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match=r"keys \['weights'\]"):
        load_checkpoint_model(tmp_path / "odd.pt", "tiny3d")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint_model(tmp_path / "missing.pt", "tiny3d")
    with pytest.raises(TypeError, match=r"args.out is a PosixPath|args.out is a WindowsPath"):
        save_checkpoint(tmp_path / "x.pt", model, epoch=0, args={"out": tmp_path})
    assert not list(tmp_path.glob("x.pt*")) and not list(tmp_path.glob(".x.pt*"))


def test_transfer_backbone_from_the_base_checkpoint(detector, baseline):
    head_before = detector.proj_head[0].weight.clone()
    fc_before = detector.fc.weight.clone()
    skipped = transfer_backbone(detector, baseline.state_dict())
    assert skipped == ["fc.1.bias", "fc.1.weight"]
    assert torch.equal(detector.layer4[1].conv2[0][3].weight, baseline.layer4[1].conv2[0][3].weight)
    assert torch.equal(detector.stem[1].running_var, baseline.stem[1].running_var)
    assert torch.equal(detector.proj_head[0].weight, head_before)
    assert torch.equal(detector.fc.weight, fc_before)
    with pytest.raises(ValueError, match="lacks 5 backbone keys"):
        partial = {k: v for k, v in baseline.state_dict().items() if not k.startswith("stem.4")}
        transfer_backbone(detector, partial)
    with pytest.raises(ValueError, match="has shape"):
        transfer_backbone(Tiny3D(width=4), Tiny3D(width=8).state_dict())
