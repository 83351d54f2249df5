"""Device-side conversion: preset numbers, (B, 3, T, H, W) layout, seeded flip and brightness (on
CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vfcache.trainers.gpu import (
    NORMALISATIONS,
    DeviceAugment,
    DeviceBatcher,
    augment_seed,
    clips_to_float,
    get_normalisation,
    to_device,
)


def random_clips(batch: int = 3, seed: int = 0) -> torch.Tensor:
    clips = np.random.default_rng(seed).integers(0, 256, (batch, 4, 6, 5, 3), dtype=np.uint8)
    clips[0, 0, 0, 0] = (0, 0, 0)
    clips[0, 0, 0, 1] = (255, 255, 255)
    return torch.from_numpy(clips)


@pytest.mark.parametrize("preset", sorted(NORMALISATIONS))
def test_presets_compute_pixel_over_255_minus_mean_over_std(preset):
    clips = random_clips()
    out = clips_to_float(clips, preset)
    norm = NORMALISATIONS[preset]
    reference = clips.numpy().astype(np.float64) / 255.0
    reference = (reference - np.array(norm.mean)) / np.array(norm.std)
    reference = np.transpose(reference, (0, 4, 1, 2, 3))
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), reference, rtol=1e-6, atol=1e-6)


def test_preset_values_at_black_and_white():
    out = clips_to_float(random_clips(), "unit")
    assert out[0, :, 0, 0, 0].tolist() == [0.0, 0.0, 0.0] and out[0, :, 0, 0, 1].tolist() == [
        1.0,
        1.0,
        1.0,
    ]
    out = clips_to_float(random_clips(), "symmetric")
    assert out[0, :, 0, 0, 0].tolist() == [-1.0, -1.0, -1.0] and out[0, :, 0, 0, 1].tolist() == [
        1.0,
        1.0,
        1.0,
    ]
    kinetics = clips_to_float(random_clips(), "kinetics")[0, :, 0, 0, 0]
    torch.testing.assert_close(
        kinetics, torch.tensor([-0.43216 / 0.22803, -0.394666 / 0.22145, -0.37645 / 0.216989])
    )
    clip = clips_to_float(random_clips(), "clip")[0, :, 0, 0, 1]
    expected = [
        (1 - m) / s
        for m, s in zip((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
    ]
    torch.testing.assert_close(clip, torch.tensor(expected))


def test_layout_is_batch_channel_time_height_width():
    clips = random_clips()
    out = clips_to_float(clips, "unit")
    assert out.shape == (3, 3, 4, 6, 5) and out.is_contiguous()
    b, t, h, w, c = 2, 3, 4, 1, 2
    assert out[b, c, t, h, w].item() == np.float32(clips[b, t, h, w, c].item()) / np.float32(255.0)
    channels_last = clips_to_float(clips, "kinetics", memory_format=torch.channels_last_3d)
    assert channels_last.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(channels_last, clips_to_float(clips, "kinetics"))
    half = clips_to_float(clips, "clip", dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), clips_to_float(clips, "clip"), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("layout", ["BCTHW", "BTCHW"])
@pytest.mark.parametrize(
    "preset, mean, std",
    [
        ("unit", (0, 0, 0), (1, 1, 1)),
        ("symmetric", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ("raw255", (0, 0, 0), (1 / 255, 1 / 255, 1 / 255)),
        ("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ("clip", (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    ],
)
def test_each_input_contract_against_a_direct_computation(layout, preset, mean, std):
    """The published constants, computed in numpy from the uint8 clip, in the declared layout."""
    clips = random_clips()
    expected = (clips.numpy().astype(np.float64) / 255.0 - np.array(mean)) / np.array(
        std
    )  # B T H W C
    expected = (
        expected.transpose(0, 4, 1, 2, 3)
        if layout == "BCTHW"
        else expected.transpose(0, 1, 4, 2, 3)
    )
    out = clips_to_float(clips, preset, layout=layout)
    assert tuple(out.shape) == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-4)
    if preset == "raw255":
        assert float(out.max()) == pytest.approx(float(clips.max()), abs=1e-3)  # 0-255 floats


def test_model_contracts_are_declared_and_checked():
    from torch import nn
    from vfcache.trainers.input_contract import InputContract, check_contract, resolve_contract

    from vfcache.errors import StageError

    class FrameModel(nn.Module):
        input_contract = {"layout": "BTCHW", "pixels": "imagenet", "frames": 16, "size": [224, 224]}

    contract = resolve_contract(FrameModel())
    assert contract == InputContract("BTCHW", "imagenet", 16, (224, 224))
    assert resolve_contract(FrameModel(), pixels="raw255").pixels == "raw255"  # the config wins
    assert resolve_contract(nn.Identity()) == InputContract()  # undeclared: BCTHW, unit, any shape
    check_contract(contract, (16, 224, 224, 3), model_name="videomae", clips_from="a.jsonl")
    with pytest.raises(
        StageError,
        match=r"model videomae eats 16 frames at 224x224 \(BTCHW, imagenet\), "
        r"but the clips of a.jsonl are 8 frames at 112x112",
    ):
        check_contract(contract, (8, 112, 112, 3), model_name="videomae", clips_from="a.jsonl")


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="'ycbcr'.*kinetics"):
        get_normalisation("ycbcr")
    with pytest.raises(ValueError, match="layout 'TBCHW'"):
        clips_to_float(random_clips(), "unit", layout="TBCHW")
    with pytest.raises(ValueError, match="uint8"):
        clips_to_float(random_clips().float(), "unit")
    with pytest.raises(ValueError, match="flip_probability"):
        DeviceAugment(flip_probability=1.5)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_flip_mirrors_whole_clips_per_sample_and_is_determined_by_the_seed():
    clips = random_clips(batch=16)
    plain = clips_to_float(clips, "unit")
    always = clips_to_float(
        clips, "unit", augment=DeviceAugment(flip_probability=1.0), generator=seeded(1)
    )
    assert torch.equal(always, plain.flip(-1))
    never = clips_to_float(
        clips, "unit", augment=DeviceAugment(flip_probability=0.0), generator=seeded(1)
    )
    assert torch.equal(never, plain)
    half = DeviceAugment(flip_probability=0.5)
    first = clips_to_float(clips, "unit", augment=half, generator=seeded(7))
    again = clips_to_float(clips, "unit", augment=half, generator=seeded(7))
    other = clips_to_float(clips, "unit", augment=half, generator=seeded(8))
    assert torch.equal(first, again) and not torch.equal(first, other)
    flipped = [torch.equal(first[i], plain[i].flip(-1)) for i in range(16)]
    kept = [torch.equal(first[i], plain[i]) for i in range(16)]
    assert all(f != k for f, k in zip(flipped, kept)) and 0 < sum(flipped) < 16


def test_brightness_scales_each_sample_within_the_range_and_clamps():
    clips = random_clips(batch=8)
    plain = clips_to_float(clips, "unit")
    jitter = DeviceAugment(flip_probability=0.0, brightness_delta=0.3)
    out = clips_to_float(clips, "unit", augment=jitter, generator=seeded(3))
    assert torch.equal(out, clips_to_float(clips, "unit", augment=jitter, generator=seeded(3)))
    assert 0.0 <= out.min().item() and out.max().item() <= 1.0
    factors = []
    for i in range(8):
        unclamped = (out[i] < 1.0) & (plain[i] > 0.05)
        ratio = out[i][unclamped] / plain[i][unclamped]
        assert ratio.max() - ratio.min() < 1e-4  # one factor for the whole clip
        factors.append(ratio.mean().item())
    assert (
        all(0.7 - 1e-4 <= f <= 1.3 + 1e-4 for f in factors)
        and len({round(f, 3) for f in factors}) > 1
    )
    normalised = clips_to_float(clips, "kinetics", augment=jitter, generator=seeded(3))
    mean = torch.tensor(NORMALISATIONS["kinetics"].mean).view(1, 3, 1, 1, 1)
    std = torch.tensor(NORMALISATIONS["kinetics"].std).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(normalised, (out - mean) / std)  # augment first, then normalise


def test_to_device_moves_tensors_and_keeps_lists():
    batch = {
        "clip": random_clips(),
        "label": torch.tensor([0, 1, 1]),
        "index": torch.tensor([4, 5, 6]),
        "domain": ["a", "b", "c"],
        "generator": ["x", "y", "z"],
        "clip_id": ["1", "2", "3"],
    }
    moved = to_device(batch, "cpu", "symmetric")
    assert moved["clip"].shape == (3, 3, 4, 6, 5) and moved["clip"].dtype == torch.float32
    assert torch.equal(moved["label"], batch["label"]) and moved["domain"] == ["a", "b", "c"]
    assert batch["clip"].dtype == torch.uint8  # the input batch is left alone


def test_augment_seed_is_pure_and_differs_per_step_rank_and_epoch():
    assert augment_seed(1, 0, 2, 3) == augment_seed(1, 0, 2, 3)
    seeds = {augment_seed(1, r, e, s) for r in range(2) for e in range(2) for s in range(5)}
    assert len(seeds) == 20 and all(0 <= s < 2**63 for s in seeds)


def test_device_batcher_repeats_a_step_augmentation_after_a_resume():
    loader = [
        {"clip": random_clips(batch=6, seed=k), "label": torch.zeros(6, dtype=torch.int64)}
        for k in range(4)
    ]
    augment = DeviceAugment(flip_probability=0.5, brightness_delta=0.2)
    batcher = DeviceBatcher(loader, "cpu", "kinetics", augment, seed=11)
    batcher.set_epoch(2)
    full = [b["clip"] for b in batcher]
    assert len(full) == len(batcher) == 4
    assert all(torch.equal(a, b) for a, b in zip(full, [b["clip"] for b in batcher]))
    resumed = DeviceBatcher(loader[2:], "cpu", "kinetics", augment, seed=11)
    resumed.set_epoch(2, first_step=2)
    assert all(torch.equal(a, b) for a, b in zip(full[2:], [b["clip"] for b in resumed]))
    batcher.set_epoch(3)
    assert not torch.equal(next(iter(batcher))["clip"], full[0])


def test_channel_shuffle_permutes_each_chosen_clip_and_is_seeded():
    clips = torch.randint(0, 256, (6, 2, 4, 4, 3), dtype=torch.uint8)
    augment = DeviceAugment(flip_probability=0.0, channel_shuffle_probability=1.0)
    out = clips_to_float(clips, "unit", augment=augment, generator=torch.Generator().manual_seed(3))
    again = clips_to_float(
        clips, "unit", augment=augment, generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(out, again)
    plain = clips_to_float(clips, "unit")
    permuted_any = False
    for sample in range(clips.shape[0]):
        # every output channel is exactly one input channel, each used once
        sources = [
            next(c for c in range(3) if torch.equal(out[sample, k], plain[sample, c]))
            for k in range(3)
        ]
        assert sorted(sources) == [0, 1, 2]
        permuted_any |= sources != [0, 1, 2]
    assert permuted_any


def test_channel_shuffle_probability_zero_is_identity_and_validated():
    clips = torch.randint(0, 256, (3, 2, 4, 4, 3), dtype=torch.uint8)
    augment = DeviceAugment(flip_probability=0.0, channel_shuffle_probability=0.0)
    assert torch.equal(
        clips_to_float(clips, "unit", augment=augment, generator=torch.Generator().manual_seed(0)),
        clips_to_float(clips, "unit"),
    )
    with pytest.raises(ValueError, match="channel_shuffle_probability"):
        DeviceAugment(channel_shuffle_probability=1.5)
