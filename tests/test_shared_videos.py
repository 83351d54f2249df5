"""Videos shared across datasets (issue 22, item 7): AEGIS's real `dvf` videos are re-encoded,
resized copies of DVF videos; the frame hashes find each copy and no unrelated video, the audit
names each pair, and a joint split keeps each pair in one part."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from vfcache.manifests.audit import audit, format_table
from vfcache.manifests.columns import read_split_table
from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import ClipRecord, FrameHashRecord
from vfcache.manifests.shared_videos import MATCH_FRAMES
from vfcache.pipelines import frame_hash
from vfcache.pipelines.frame_hash import (
    MATCH_BITS,
    frame_distances,
    hash_array,
    hash_video,
    phash_frames,
)
from vfcache.pipelines.shared_videos import dataset_videos, find_shared_videos
from vfcache.pipelines.split import write_split
from vfcache.pipelines.split.joint import JointMember, write_joint_split

from tests.source_pipeline import config_for, run_cache
from tests.standins.layouts import (
    build_aegis_full,
    build_aegis_with_dvf_copies,
    build_dvf,
    reencoded_copy,
)
from vfcache.cli import cli
from vfcache.layout import DataRoot

SIZES = (("train", "0.4"), ("val", "0.2"), ("test", "rest"))


def test_phash_of_a_frame_survives_a_resize_and_differs_from_another_frame():
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (8, 8, 3)), np.ones((16, 16, 1))).astype(
        np.uint8
    )  # 128x128
    import cv2

    small = cv2.resize(
        cv2.resize(smooth, (64, 64), interpolation=cv2.INTER_AREA),
        (32, 32),
        interpolation=cv2.INTER_AREA,
    )
    direct = cv2.resize(smooth, (32, 32), interpolation=cv2.INTER_AREA)
    other = np.ascontiguousarray(direct[::-1])
    hashes = phash_frames(np.stack([direct, small, other]))
    assert hashes.dtype == np.uint64
    assert int(np.bitwise_count(hashes[0] ^ hashes[1])) <= 2
    assert int(np.bitwise_count(hashes[0] ^ hashes[2])) > 16
    with pytest.raises(ValueError, match=r"expected \(32, 32, 3\)"):
        phash_frames(np.zeros((1, 16, 16, 3), np.uint8))


def test_copies_match_their_source_and_unrelated_videos_do_not(tmp_path):
    """Every stand-in DVF and AEGIS video against every other, and three re-encoded, resized
    copies of each DVF real video against all of them."""
    build_dvf(tmp_path / "dvf", tmp_path / "dvf/DVF/splits", archives=False)
    build_aegis_full(tmp_path / "aegis")
    originals = sorted((tmp_path / "dvf").rglob("*.mp4")) + sorted(
        (tmp_path / "aegis").rglob("*.mp4")
    )
    sources = [p for p in originals if "0_real" in p.parts]
    copies, source_of = [], []
    for index, source in enumerate(sources):
        for size, codec in [((96, 72), "h264"), ((48, 36), "mpeg4"), ((128, 96), "hevc")]:
            copies.append(
                reencoded_copy(
                    source, tmp_path / "copies" / f"{index}-{codec}.mp4", size=size, codec=codec
                )
            )
            source_of.append(originals.index(source))

    def hashes(paths: list[Path]) -> np.ndarray:
        rows = [hash_video(str(p.parent), p.name, p.name) for p in paths]
        assert all(row.status == "ok" for row in rows)
        return hash_array(rows)

    original_hashes = hashes(originals)
    apart = frame_distances(original_hashes, original_hashes)
    np.fill_diagonal(apart, 64)
    assert apart.min() > MATCH_BITS, "two unrelated videos match"
    to_originals = frame_distances(hashes(copies), original_hashes)
    same = to_originals[np.arange(len(copies)), source_of]
    assert same.max() <= MATCH_BITS / 2, "a copy is far from its source"
    to_originals[np.arange(len(copies)), source_of] = 64
    assert to_originals.min() > MATCH_BITS, "a copy matches a video it was not made from"


def test_frame_hashes_are_computed_once_and_stored_beside_the_manifest(tmp_path, monkeypatch):
    folder = tmp_path / "dvf"
    build_dvf(folder, folder / "DVF/splits", archives=False)
    root = DataRoot(tmp_path / "data")
    config = config_for(
        "dvf",
        repo=None,
        revision=None,
        splits_url=None,
        splits_sha256=None,
        path=str(folder),
        splits_dir="DVF/splits",
    )
    from vfcache.pipelines.probe import build_manifest

    build_manifest(config, root, client=None, progress=False)
    first = dataset_videos(config, root, progress=False)
    stored = root.dataset_dir("dvf") / frame_hash.FRAME_HASHES_NAME
    rows = read_records(stored, FrameHashRecord)
    assert len(rows) == len(first.videos) == 21 and first.unhashed == 0
    assert {len(r.frame_hashes) for r in rows} == {16 * frame_hash.FRAMES_HASHED}

    def no_hashing(task):
        raise AssertionError(f"hashed again: {task.videos}")

    monkeypatch.setattr(frame_hash, "hash_batch", no_hashing)
    again = dataset_videos(config, root, progress=False)
    assert again.hashes == first.hashes


@pytest.fixture
def aegis_and_dvf(hf_hub, tmp_path):
    """DVF in its documented folder route (data/downloads/DVF) and AEGIS from the Hub stand-in,
    whose real/dvf videos are copies of DVF videos; both cached with a split of their own."""
    root = DataRoot(tmp_path / "data")
    downloads = root.path / "downloads"
    build_dvf(downloads, downloads / "DVF" / "splits", archives=False)
    copies = build_aegis_with_dvf_copies(tmp_path / "repo", downloads)
    hf_hub.add_commit("Clarifiedfish/AEGIS-Full", tmp_path / "repo")
    splits = {"sizes": SIZES, "support": 1, "subset": None, "seed": 3}
    dvf = config_for("dvf", splits=splits, splits_url=None, splits_sha256=None, splits_dir="splits")
    aegis = config_for("aegis", splits=splits)
    runs = {"dvf": run_cache(dvf, root), "aegis": run_cache(aegis, root)}
    # the stand-in's relpaths below the DVF folder route are those below downloads/DVF
    pairs = {a: d.removeprefix("DVF/") for a, d in copies.items()}
    return root, {"dvf": dvf, "aegis": aegis}, runs, pairs


def _parts(root: DataRoot, dataset: str) -> dict[str, str]:
    """{relpath: part} of the dataset's default split (train/val/test)."""
    cache = root.cache_dir(dataset, "tiny_4x32")
    clips = {c.video_id: c.relpath for c in read_records(cache.clips_parquet, ClipRecord)}
    found = {}
    for part in ("train", "val", "test"):
        for video_id in (
            read_split_table(cache.split_file("default", part)).column("video_id").to_pylist()
        ):
            found[clips[video_id]] = part
    return found


@pytest.mark.network
def test_audit_names_each_pair_and_a_joint_split_keeps_each_pair_in_one_part(
    aegis_and_dvf, tmp_path
):
    root, configs, runs, pairs = aegis_and_dvf
    assert all(run.audit.ok for run in runs.values())  # each dataset alone looks clean
    found = find_shared_videos(
        [dataset_videos(configs[n], root, progress=False) for n in ("aegis", "dvf")]
    )
    assert {(p.relpath_a, p.relpath_b) for p in found} == set(pairs.items())
    assert all(p.match == MATCH_FRAMES and p.distance_bits <= MATCH_BITS for p in found)

    caches = [(name, root.cache_dir(name, "tiny_4x32")) for name in ("aegis", "dvf")]
    alone = audit(caches, "default", shared=found)
    aegis_parts, dvf_parts = _parts(root, "aegis"), _parts(root, "dvf")
    apart = [a for a, d in pairs.items() if aegis_parts.get(a) != dvf_parts.get(d)]
    assert apart, "seed 3 should separate a pair (pick another seed if the stand-in changes)"
    assert not alone.ok and [c.name for c in alone.failed_checks] == [
        "no_shared_video_across_splits"
    ]

    dvf_files = {
        p.name: p.read_bytes()
        for p in root.cache_dir("dvf", "tiny_4x32").split_dir("default").iterdir()
    }
    members = [
        JointMember(
            name,
            root.cache_dir(name, "tiny_4x32"),
            dict(sizes=SIZES, seed=3, support=1, name="default", unit="videos", subset=None),
        )
        for name in ("dvf", "aegis")
    ]
    reports = write_joint_split(members, found)
    assert [r.meta.joint.pinned_videos for r in reports] == [0, 3]
    first = {p.name: p.read_bytes() for p in reports[0].split_dir.iterdir()}
    assert {n: b for n, b in first.items() if n != "split.json"} == {
        n: b for n, b in dvf_files.items() if n != "split.json"
    }  # the first dataset is split as alone
    first_meta = json.loads(first["split.json"])
    assert first_meta.pop("joint") == {
        "datasets": ["dvf", "aegis"],
        "after": [],
        "pinned_videos": 0,
    }
    assert first_meta == json.loads(dvf_files["split.json"])
    aegis_parts, dvf_parts = _parts(root, "aegis"), _parts(root, "dvf")
    assert all(aegis_parts[a] == dvf_parts[d] for a, d in pairs.items())
    together = audit(caches, "default", shared=found)
    assert together.ok, format_table(together)
    assert json.loads((reports[1].split_dir / "split.json").read_text())["joint"] == {
        "datasets": ["dvf", "aegis"],
        "after": ["dvf"],
        "pinned_videos": 3,
    }


@pytest.mark.network
def test_cli_audit_and_joint_split_of_aegis_and_dvf(aegis_and_dvf):
    root, _, _, pairs = aegis_and_dvf
    runner = CliRunner()
    base = ["--root", str(root.path), "--no-progress"]
    result = runner.invoke(cli, [*base, "audit", "aegis", "dvf"])
    for aegis_relpath, dvf_relpath in pairs.items():
        assert f"shared video: aegis:{aegis_relpath} = dvf:{dvf_relpath} (frames" in result.output
    assert result.exit_code == 1 and "FAIL no_shared_video_across_splits: " in result.output

    split = runner.invoke(
        cli,
        [
            *base,
            "split",
            "dvf",
            "aegis",
            "--sizes",
            "train=0.4,val=0.2,test=rest",
            "--subset",
            "0",
            "--support",
            "1",
            "--seed",
            "3",
        ],
    )
    assert split.exit_code == 0, split.output
    assert "3 videos shared across dvf, aegis" in split.output and "3 pinned" in split.output
    again = runner.invoke(cli, [*base, "audit", "aegis", "dvf"])
    assert again.exit_code == 0, again.output
    assert "PASS no_shared_video_across_splits: 3 videos shared across datasets" in again.output

    refused = runner.invoke(cli, [*base, "split", "dvf", "dvf"])
    assert refused.exit_code == 2 and "named twice" in refused.output


def test_split_of_one_dataset_writes_no_joint_record(tmp_path):
    from cache_fixtures import build_cache, card_like_plans

    cache = build_cache(tmp_path / "cache", card_like_plans("aegis", 6, {"sora": 6})).cache_dir
    report = write_split(cache, sizes="train=4,test=rest", seed=0)
    assert "joint" not in json.loads((report.split_dir / "split.json").read_text())
    assert report.meta.joint is None


def test_pairs_chain_into_groups_and_a_group_in_two_parts_is_a_leak():
    import pyarrow as pa
    from vfcache.manifests.shared_videos import SharedVideo, group_leaks, shared_groups

    ab = SharedVideo("a", "x.mp4", "1", "b", "y.mp4", "2", MATCH_FRAMES, 1.0)
    bc = SharedVideo("b", "y.mp4", "2", "c", "z.mp4", "3", MATCH_FRAMES, 2.0)
    assert shared_groups([ab, bc]) == [[("a", "1"), ("b", "2"), ("c", "3")]]
    # a/x in train, c/z in test: one group across two parts, though a and c were not paired
    placements = [
        ("a", "train", pa.array(["1"])),
        ("c", "test", pa.array(["3"])),
        ("b", "val", pa.array(["9"])),
    ]
    leaks = group_leaks([ab, bc], placements)
    assert len(leaks) == 1 and "['test', 'train']" in leaks[0] and "b:y.mp4 in no part" in leaks[0]
    assert group_leaks([ab, bc], placements[:1]) == []
    assert ab.describe() == "a:x.mp4 = b:y.mp4 (frames 1.0 bits apart)"
