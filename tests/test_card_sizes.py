"""The R(2+1)D card's split totals, reproduced from manifests of the real releases' sizes.

Each case writes a manifest-only cache folder (spec.json + clips.parquet, no shards) whose
rows have the composition of the full release, then runs `write_split` with the dataset's
preset exactly as `vfcache split NAME` does: the preset's subset, sizes, seed and support.

Compositions:
- AEGIS hard test set: the dataset's own figures (real: camera 218; fake: kling 111, sora 107).
- DVF full release: classes and official split sizes from MM-Det's splits/*.json (youtube
  792 + 208, stablevideodiffusion 1448 + 352); the other classes' counts are read off the
  statistics figure of the MM-Det README (bars, so +-20 videos), about 6.6k videos in all.
- GenVideo-100K: 10,000 videos per category, as the DeMamba paper describes the light
  release: one real category and one per generator archive of configs/datasets/genvideo100k.yaml,
  named as the source labels them (the folder without `train_`, as the stand-in release checks).
"""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from vfcache.manifests.parquet_io import write_records
from vfcache.manifests.records import ClipRecord
from vfcache.manifests.split_files import read_split, read_split_meta
from vfcache.pipelines.split import write_split

from vfcache.atomic import write_json_atomic
from vfcache.config import load_clip_spec, load_dataset_config
from vfcache.layout import SPLIT_PARTS, CacheDir

# (label, generator) -> videos; `clips` of them get 2 clips (a multi-clip spec), the others 1
AEGIS = {(0, "camera"): 218, (1, "kling"): 111, (1, "sora"): 107}
DVF = {
    (0, "youtube"): 1000,
    (1, "stablevideodiffusion"): 1800,
    (0, "videocrafter1"): 580,
    (0, "zeroscope"): 590,
    (0, "opensora"): 580,
    (1, "zeroscope"): 790,
    (1, "videocrafter1"): 480,
    (1, "opensora"): 430,
    (1, "sora"): 140,
    (1, "pika"): 120,
    (1, "stablevideo"): 90,
    (1, "stablediffusion"): 10,
}


def genvideo100k_generators() -> list[str]:
    """The generators the shipped config produces: each fake archive's folder, named as
    `GenVideoSource` labels it (`<Generator>.tar.gz` holds `train_<Generator>/` -> Generator;
    `I2VGEN_XL_part_*` holds I2VGEN_XL/), as tests/test_source_genvideo.py checks on the
    stand-in."""
    archives = load_dataset_config("genvideo100k").source["archives"]
    names = []
    for entry in archives:
        first = entry["files"][0]
        stem = first.split(".", 1)[0].split("_part_", 1)[0]
        if stem != "Real":
            names.append(stem)
    return names


GENVIDEO_100K = {(0, "real"): 10_000, **{(1, g): 10_000 for g in genvideo100k_generators()}}

CARD = {  # dataset config -> (composition, card total, train/val/test)
    "aegis": (AEGIS, 436, (50, 50, 336)),
    "dvf": (DVF, 1004, (200, 200, 604)),
    "genvideo100k": (GENVIDEO_100K, 2971, (200, 200, 2571)),
}


def manifest_only_cache(
    tmp_path, dataset: str, composition: dict, *, two_clips_every: int = 3
) -> CacheDir:
    """spec.json + clips.parquet with `composition` videos; every n-th video has two clips."""
    videos = [
        (label, generator, f"{generator}/{label}/{index}", None)
        for (label, generator), count in composition.items()
        for index in range(count)
    ]
    return manifest_of_videos(tmp_path, dataset, videos, two_clips_every=two_clips_every)


def manifest_of_videos(
    tmp_path, dataset: str, videos: list, *, two_clips_every: int = 3
) -> CacheDir:
    """spec.json + clips.parquet of `videos`, (label, generator, group, source_split) each."""
    config = load_dataset_config(dataset)
    spec = load_clip_spec(config.clip_spec)
    cache = CacheDir(tmp_path / dataset)
    cache.path.mkdir(parents=True)
    write_json_atomic(cache.spec_json, spec.to_json())
    clips = []
    for number, (label, generator, group, source_split) in enumerate(videos, start=1):
        video_id = hashlib.sha256(f"{dataset}/{label}/{generator}/{number}".encode()).hexdigest()
        for clip_index in range(2 if number % two_clips_every == 0 else 1):
            clips.append(
                ClipRecord(
                    clip_id=hashlib.sha256(f"{video_id}/{clip_index}".encode()).hexdigest()[:32],
                    video_id=video_id,
                    clip_index=clip_index,
                    frame_indices=(0,),
                    timestamps_s=(0.0,),
                    padded_frames=0,
                    short_policy="none",
                    shard="shards/s.npy.zst",
                    offset=0,
                    nbytes=1,
                    dataset=dataset,
                    domain=config.domain,
                    relpath=f"{generator}/{label}/{number}.mp4",
                    label=label,
                    generator=generator,
                    group=group,
                    source_split=source_split,
                )
            )
    write_records(cache.clips_parquet, clips, ClipRecord)
    return cache


@pytest.mark.parametrize("dataset", sorted(CARD))
def test_card_totals_from_the_preset(tmp_path, dataset):
    composition, total, sizes = CARD[dataset]
    preset = load_dataset_config(dataset).splits
    cache = manifest_only_cache(tmp_path, dataset, composition)
    report = write_split(
        cache,
        sizes=preset.sizes,
        seed=preset.seed,
        support=preset.support,
        stratify=preset.stratify,
        unit=preset.unit,
        subset=preset.subset,
    )
    meta = read_split_meta(cache.split_dir(preset.name))
    assert meta.unit == "videos"
    entries = {part: read_split(cache.split_file(preset.name, part)) for part in SPLIT_PARTS}
    videos = {part: {e.video_id for e in entries[part]} for part in SPLIT_PARTS}
    assert tuple(len(videos[p]) for p in ("train", "val", "test")) == sizes
    assert sum(sizes) == total
    assert report.exact
    if total < sum(composition.values()):
        assert meta.subset is not None
        assert (meta.subset.asked, meta.subset.obtained, meta.subset.of) == (
            total,
            total,
            sum(composition.values()),
        )
    else:
        assert meta.subset is None  # AEGIS: 436 is already the whole hard set
    # every clip of a chosen video goes with it; parts are video-disjoint
    assert not (videos["train"] & videos["val"]) and not (videos["val"] & videos["test"])
    assert sum(len(entries[p]) for p in ("train", "val", "test")) == sum(
        p.clips for p in meta.parts if p.part in ("train", "val", "test")
    )
    # support: 10 real + 10 fake clips of train
    assert Counter(e.label for e in entries["support"]) == {0: preset.support, 1: preset.support}
    assert {e.clip_id for e in entries["support"]} <= {e.clip_id for e in entries["train"]}
    # stratified: each (label, generator) keeps its share of the chosen videos within one video
    chosen = videos["train"] | videos["val"] | videos["test"]
    by_stratum = Counter(
        (e.label, e.generator)
        for part in ("train", "val", "test")
        for e in {e.video_id: e for e in entries[part]}.values()
    )
    full = sum(composition.values())
    for stratum, count in composition.items():
        assert abs(by_stratum[stratum] - count * len(chosen) / full) <= 1, stratum


def test_the_subset_is_reproducible_and_seeded(tmp_path):
    cache = manifest_only_cache(tmp_path, "dvf", DVF)

    def chosen(seed: int) -> bytes:
        write_split(cache, sizes="train=200,val=200,test=rest", seed=seed, support=0, subset=1004)
        return b"".join(
            cache.split_file("default", p).read_bytes() for p in ("train", "val", "test")
        )

    first = chosen(0)
    assert chosen(0) == first
    assert chosen(1) != first


def test_clip_unit_counts_clips(tmp_path):
    cache = manifest_only_cache(tmp_path, "aegis", AEGIS, two_clips_every=2)
    report = write_split(cache, sizes="train=50,val=50,test=rest", seed=0, unit="clips")
    parts = {p.part: p for p in report.meta.parts}
    assert (parts["train"].unit, parts["train"].clips) == ("clips", parts["train"].obtained)
    assert parts["train"].obtained == 50 and parts["val"].obtained == 50


def test_genvideo100k_composition_is_what_the_config_produces():
    assert sorted(g for (label, g) in GENVIDEO_100K if label == 1) == sorted(
        [
            "I2VGEN_XL",
            "pika",
            "SVD",
            "VideoCrafter",
            "DynamicCrafter",
            "SD",
            "OpenSora",
            "Latte",
            "ZeroScope",
            "SEINE",
        ]
    )
    assert "Crafter" not in {g for _, g in GENVIDEO_100K}  # a GenVideo-Val generator, not 100K's


def dfd_names(real: int = 363, fake: int = 3068, actors: int = 28) -> list[tuple[int, str]]:
    """DeepFakeDetection names of the card's sizes: real `AA__scene`, fake `AA_BB__scene__ID`
    (actor AA's scene with actor BB's face), every fake made on one of the real videos."""
    reals = [(0, f"{i % actors + 1:02d}__scene_{i // actors:02d}") for i in range(real)]
    fakes = []
    for j in range(fake):
        target, scene = reals[j % real][1].split("__")
        other = (int(target) + j // real) % actors + 1
        other = other % actors + 1 if other == int(target) else other
        fakes.append((1, f"{target}_{other:02d}__{scene}__{j:08X}"))
    return reals + fakes


def test_dfd_card_split_90_10_by_source_video(tmp_path):
    """Seed 002's DFD: 363 real + 3,068 fake = 3,431 videos, 90/10 stratified (ffpp_dfd's
    preset). Grouped by source video the split exists and no scene crosses parts; grouped by
    connected actors the release is one group and no 90/10 split exists."""
    from vfcache.pipelines.sources.ffpp import _Components, dfd_actors, dfd_source_video

    names = dfd_names()
    config = load_dataset_config("ffpp_dfd")
    assert config.source["dfd_group"] == "source_video"
    generator = {0: "actors", 1: "DeepFakeDetection"}
    videos = [
        (label, generator[label], f"dfd:{dfd_source_video(name)}", None) for label, name in names
    ]
    cache = manifest_of_videos(tmp_path / "by_video", "ffpp_dfd", videos)
    preset = config.splits
    write_split(
        cache,
        sizes=preset.sizes,
        seed=preset.seed,
        support=preset.support,
        stratify=preset.stratify,
        unit=preset.unit,
        subset=preset.subset,
    )
    entries = {part: read_split(cache.split_file(preset.name, part)) for part in ("train", "val")}
    by_label = {
        part: Counter(e.label for e in {e.video_id: e for e in entries[part]}.values())
        for part in entries
    }
    assert by_label["train"][0] + by_label["val"][0] == 363
    assert by_label["train"][1] + by_label["val"][1] == 3068
    assert abs(by_label["train"][0] - 0.9 * 363) <= 1  # one real video per group: exact
    assert abs(by_label["train"][1] - 0.9 * 3068) <= 12  # fakes come in groups of about 8.5
    groups = {part: {e.group for e in entries[part]} for part in entries}
    assert not groups["train"] & groups["val"]

    components = _Components()
    for _, name in names:
        components.union(dfd_actors(name))
    actor_groups = [
        (label, generator[label], f"dfd:{components.find(dfd_actors(name)[0])}", None)
        for label, name in names
    ]
    assert len({g for _, _, g, _ in actor_groups}) == 1
    one_group = manifest_of_videos(tmp_path / "by_actors", "ffpp_dfd", actor_groups)
    report = write_split(
        one_group,
        sizes=preset.sizes,
        seed=preset.seed,
        support=0,
        stratify=preset.stratify,
        unit=preset.unit,
    )
    parts = {p.part: p.obtained for p in report.meta.parts}
    assert not report.exact and parts["train"] == 0 and parts["val"] == 3431  # no 90/10 split


def test_ffpp_deepfakes_card_subset_on_the_official_split(tmp_path):
    """Seed 003's FF++ c23 Original + Deepfakes: 1000 + 1000 videos (1:1, not the 1:4 of all
    four methods), official pairs 360 / 70 / 70 -> 1440 / 280 / 280 videos."""
    config = load_dataset_config("ffpp_deepfakes")
    assert (config.source["methods"], config.source["originals"]) == (["Deepfakes"], ["youtube"])
    videos = []
    for pair in range(500):
        a, b = f"{2 * pair:03d}", f"{2 * pair + 1:03d}"
        part = "train" if pair < 360 else "val" if pair < 430 else "test"
        videos += [
            (0, "youtube", f"{a}_{b}", part),
            (0, "youtube", f"{a}_{b}", part),
            (1, "Deepfakes", f"{a}_{b}", part),
            (1, "Deepfakes", f"{a}_{b}", part),
        ]
    cache = manifest_of_videos(tmp_path, "ffpp_deepfakes", videos)
    preset = config.splits
    write_split(
        cache,
        sizes=preset.sizes,
        seed=preset.seed,
        support=preset.support,
        stratify=preset.stratify,
        unit=preset.unit,
        subset=preset.subset,
    )
    for part, size in (("train", 1440), ("val", 280), ("test", 280)):
        chosen = {e.video_id: e for e in read_split(cache.split_file(preset.name, part))}.values()
        assert Counter(e.label for e in chosen) == {0: size // 2, 1: size // 2}, part
