"""Clip bundles on the Hub: `vfcache publish` -> `vfcache pull` -> `vfcache check-bundle`, against
the Hub stand-in (tests/standins/hf_hub.py), which takes the real client's upload routes with
the Xet path disabled (preupload, LFS batch + PUT + verify, commit).

The publisher's cache is the sample dataset (`vfcache cache sample`); the checker generates the
same raw videos in another root (`vfcache fetch sample` is byte-reproducible) and re-extracts.
The checks must catch a flipped pixel, a damaged download, a changed split file (in the repo
and after the pull) and a missing video; publishing refuses a failing audit, shards of a
dataset whose terms forbid (or do not state) redistribution, and a repo with other content.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cache_fixtures import sample_cache_root
from click.testing import CliRunner
from vfcache.manifests.bundle import (
    BundleError,
    BundleManifest,
    bundle_file_problems,
    bundle_manifest_from_json,
    pixel_digest,
    read_bundle_manifest,
)
from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import ClipRecord
from vfcache.manifests.split_files import read_split

from tests.standins.hf_hub import HfHubStandin
from vfcache.cli import cli
from vfcache.layout import DataRoot

REPO = "lab/sample-clips"
SPEC = "sample_8x112"
SPLIT_DIR = f"cache/sample/{SPEC}/splits/default"
PARTS = ("train", "val", "test", "support")
# huggingface_hub streams an upload with httpx's `data=<file>`, which httpx deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


def invoke(root: Path, *args: str):
    return CliRunner().invoke(
        cli, ["--root", str(root), "--workers", "1", "--no-progress", *args], prog_name="vfcache"
    )


def assert_exit(result, code: int) -> None:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def publisher_root(tmp_path_factory) -> Path:
    return sample_cache_root(tmp_path_factory, "publisher")


@pytest.fixture(scope="module")
def checker_raw(tmp_path_factory) -> Path:
    """The sample's raw videos generated in another root: what a second lab downloaded."""
    root = tmp_path_factory.mktemp("checker_raw")
    assert_exit(invoke(root, "fetch", "sample"), 0)
    return root / "raw" / "sample"


@pytest.fixture
def hub(hf_hub: HfHubStandin, monkeypatch) -> HfHubStandin:
    """The stand-in with the publisher's write token in HF_TOKEN and the client's Xet upload path
    off
    (the client read HF_HUB_DISABLE_XET when it was imported; `is_xet_available` reads the
    constant)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_TOKEN", hf_hub.write_token)
    return hf_hub


def checker_root(tmp_path: Path, checker_raw: Path) -> Path:
    """A fresh root holding a copy of the checker's raw videos."""
    root = tmp_path / "checker"
    shutil.copytree(checker_raw, root / "raw" / "sample")
    return root


def publisher_copy(publisher_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "publisher"
    shutil.copytree(publisher_root, root, ignore=shutil.ignore_patterns("publish"))
    return root


def front_matter(readme: bytes) -> dict:
    text = readme.decode()
    assert text.startswith("---\n")
    return yaml.safe_load(text[4:].split("\n---\n", 1)[0])


# -- the round trip -------------------------------------------------------------------------------


def test_publish_pull_check_round_trip_with_shards(publisher_root, checker_raw, hub, tmp_path):
    published = invoke(publisher_root, "publish", "sample", "--repo", REPO, "--with-shards")
    assert_exit(published, 0)
    assert f"created {hub.endpoint}/datasets/{REPO}" in published.output
    files = hub.files_at(REPO)
    cache = publisher_root / "cache" / "sample" / SPEC
    shards = sorted(p.relative_to(cache).as_posix() for p in (cache / "shards").glob("*.npy.zst"))
    assert shards and set(shards) <= set(files)
    for name in (
        "README.md",
        "bundle.json",
        "spec.json",
        "clips.parquet",
        "videos.parquet",
        "digests.parquet",
        "audit.json",
        *(f"splits/default/{p}.jsonl" for p in PARTS),
        "splits/default/split.json",
    ):
        assert name in files, name
    assert (
        files["splits/default/train.jsonl"]
        == (publisher_root / SPLIT_DIR / "train.jsonl").read_bytes()
    )
    # uploads took the LFS path for parquet and shards, the commit endpoint once
    assert any(e.path.endswith(".git/info/lfs/objects/batch") for e in hub.log.entries)
    assert len([e for e in hub.log.entries if "/commit/" in e.path and e.method == "POST"]) == 1
    card = front_matter(files["README.md"])
    assert card["license"] == "apache-2.0"
    assert card["configs"][0]["config_name"] == "default"
    assert {f["split"] for f in card["configs"][0]["data_files"]} == {
        "train",
        "validation",
        "test",
        "support",
    }
    label = next(f for f in card["dataset_info"][0]["features"] if f["name"] == "label")
    assert label["dtype"] == {"class_label": {"names": {"0": "real", "1": "fake"}}}
    body = files["README.md"].decode()
    assert "PASS [sample] sizes_as_asked" in body  # the audit table
    assert (
        "vfcache split sample --spec sample_8x112 --name default --sizes "
        "train=0.5,val=0.25,test=rest" in body
    )

    second = invoke(publisher_root, "publish", "sample", "--repo", REPO, "--with-shards")
    assert_exit(second, 0)
    assert (
        "already holds this bundle" in second.output and hub.commit_count(REPO) == 2
    )  # create + bundle

    root = checker_root(tmp_path, checker_raw)
    pulled = invoke(root, "pull", REPO)
    assert_exit(pulled, 0)
    folder = DataRoot(root).bundle_dir(REPO)
    assert folder == root / "bundles" / "lab" / "sample-clips"
    assert bundle_file_problems(folder, read_bundle_manifest(folder)) == []
    assert json.loads((folder / "fetch.json").read_text())["commit_sha"] in pulled.output

    # with shards, training reads the pulled bundle directly: same clips as the publisher's cache
    from vfcache.trainers.dataset import ClipDataset

    theirs = ClipDataset(folder / "splits" / "default" / "test.jsonl")
    mine = ClipDataset(publisher_root / SPLIT_DIR / "test.jsonl")
    assert len(theirs) == len(mine) > 0
    for i in (0, len(mine) - 1):
        assert torch.equal(theirs[i]["clip"], mine[i]["clip"])

    # ... and so do `vfcache train` and `vfcache eval`, with configs naming the bundle's split files
    configs = Path(__file__).resolve().parents[1] / "configs"
    splits = "bundles/lab/sample-clips/splits/default"
    train = yaml.safe_load((configs / "train/sample_cpu.yaml").read_text())
    train.update(
        epochs=1,
        workers=0,
        decode_cache_gb=0,
        device="cpu",
        out_dir=str(tmp_path / "run"),
        sampler={"kind": "class_balanced", "batches_per_epoch": 2},
        data={part: [f"{splits}/{part}.jsonl"] for part in ("train", "val", "support")},
    )
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(train))
    assert_exit(invoke(root, "train", str(tmp_path / "train.yaml")), 0)
    evaluation = yaml.safe_load((configs / "eval/sample_cpu.yaml").read_text())
    evaluation.update(
        checkpoint=str(tmp_path / "run" / "last.pt"),
        workers=0,
        out_dir=str(tmp_path / "report"),
        query=[f"{splits}/test.jsonl"],
        support=[f"{splits}/support.jsonl"],
    )
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(evaluation))
    evaluated = invoke(root, "eval", str(tmp_path / "eval.yaml"))
    assert_exit(evaluated, 0)
    assert "AUROC" in evaluated.output or "auroc" in evaluated.output

    checked = invoke(root, "check-bundle", REPO, "--json", str(tmp_path / "check.json"))
    assert_exit(checked, 0)
    report = json.loads((tmp_path / "check.json").read_text())
    clips = read_records(cache / "clips.parquet", ClipRecord)
    assert report["clips"] == {"matched": len(clips), "missing": 0, "different": 0}
    assert report["videos"]["matched"] == len({c.video_id for c in clips})
    assert "check passed" in checked.output


def test_split_tables_load_from_the_hub_with_datasets(publisher_root, hub, tmp_path):
    """`datasets.load_dataset(REPO, SPLIT)` reads the card's configs and features, in a fresh
    process
    whose client points at the stand-in (datasets and huggingface_hub read HF_ENDPOINT at
    import)."""
    assert_exit(invoke(publisher_root, "publish", "sample", "--repo", REPO), 0)
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    script = (
        "import json, datasets\n"
        f"ds = datasets.load_dataset({REPO!r}, 'default', "
        f"cache_dir={str(tmp_path / 'ds_cache')!r})\n"
        "print(json.dumps({split: [d.num_rows, repr(d.features['label']), "
        "repr(d.features['offset'])]"
        " for split, d in ds.items()}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    names = {"train": "train", "validation": "val", "test": "test", "support": "support"}
    assert set(loaded) == set(names)
    for split, part in names.items():
        rows = len(read_split(publisher_root / SPLIT_DIR / f"{part}.jsonl"))
        assert loaded[split][0] == rows
        assert loaded[split][1] == "ClassLabel(names=['real', 'fake'])"
        assert loaded[split][2] == "Value('int64')"


def test_pulled_card_loads_locally_and_manifests_load_with_their_features(
    publisher_root, hub, tmp_path
):
    import datasets
    from vfcache.manifests.hf_features import clip_features, split_features

    assert_exit(invoke(publisher_root, "publish", "sample", "--repo", REPO), 0)
    root = tmp_path / "root"
    assert_exit(invoke(root, "pull", REPO), 0)
    folder = DataRoot(root).bundle_dir(REPO)
    local = datasets.load_dataset(str(folder), "default", cache_dir=str(tmp_path / "c1"))
    assert local["validation"].num_rows == len(read_split(folder / "splits/default/val.jsonl"))
    assert local["train"].features["label"].names == ["real", "fake"]

    train = datasets.load_dataset(
        "json",
        data_files=str(folder / "splits/default/train.jsonl"),
        features=split_features(),
        cache_dir=str(tmp_path / "c2"),
    )["train"]
    entries = read_split(folder / "splits/default/train.jsonl")
    assert train.features == split_features()
    assert train[0]["clip_id"] == entries[0].clip_id and train[0]["offset"] == entries[0].offset
    clips = datasets.load_dataset(
        "parquet",
        data_files=str(folder / "clips.parquet"),
        features=clip_features(),
        cache_dir=str(tmp_path / "c3"),
    )["train"]
    records = read_records(folder / "clips.parquet", ClipRecord)
    assert clips.num_rows == len(records)
    assert clips.features["frame_indices"] == datasets.List(datasets.Value("int64"))
    assert tuple(clips[0]["frame_indices"]) == records[0].frame_indices


def test_to_hf_dataset_reads_clips_lazily_from_the_shards(publisher_root):
    from vfcache.trainers.dataset import ClipDataset
    from vfcache.trainers.hf_dataset import to_hf_dataset

    split_file = publisher_root / SPLIT_DIR / "val.jsonl"
    ds = to_hf_dataset(split_file)
    reference = ClipDataset(split_file)
    assert len(ds) == len(reference)
    row = ds[3]
    assert row["clip_id"] == reference.entries[3].clip_id
    assert row["label"] == reference.entries[3].label
    np.testing.assert_array_equal(np.asarray(row["clip"]), reference[3]["clip"].numpy())


# -- what the checks catch -------------------------------------------------------------------------


def test_check_reports_missing_and_damaged_videos(publisher_root, checker_raw, hub, tmp_path):
    assert_exit(invoke(publisher_root, "publish", "sample", "--repo", REPO), 0)
    root = checker_root(tmp_path, checker_raw)
    assert_exit(invoke(root, "pull", REPO), 0)
    clips = read_records(publisher_root / "cache" / "sample" / SPEC / "clips.parquet", ClipRecord)
    relpaths = sorted({c.relpath for c in clips})
    missing, damaged = relpaths[0], relpaths[-1]
    (root / "raw" / "sample" / missing).unlink()
    path = root / "raw" / "sample" / damaged
    payload = bytearray(path.read_bytes())
    payload[len(payload) // 2] ^= 0xFF  # one byte of the bitstream: a damaged download
    path.write_bytes(bytes(payload))

    checked = invoke(root, "check-bundle", REPO, "--json", str(tmp_path / "check.json"))
    assert_exit(checked, 1)
    report = json.loads((tmp_path / "check.json").read_text())
    per_video = {v["relpath"]: v for v in report["per_video"]}
    assert per_video[missing]["status"] == "missing"
    assert per_video[damaged]["status"] == "different"
    assert "file bytes differ" in per_video[damaged]["reason"]
    assert report["videos"] == {"matched": len(relpaths) - 2, "missing": 1, "different": 1}
    clips_of = {r: sum(1 for c in clips if c.relpath == r) for r in relpaths}
    assert report["clips"] == {
        "matched": len(clips) - clips_of[missing] - clips_of[damaged],
        "missing": clips_of[missing],
        "different": clips_of[damaged],
    }
    assert "FAILED" in checked.output and f"{damaged}: file bytes differ" in checked.output

    # only a missing video: reported, and nothing differs, so the check passes
    path.write_bytes((checker_raw / damaged).read_bytes())
    checked = invoke(root, "check-bundle", REPO)
    assert_exit(checked, 0)
    assert f"{missing}: not found under" in checked.output


def test_check_catches_a_flipped_pixel(publisher_root, checker_raw, hub, tmp_path, monkeypatch):
    """Same file bytes, one pixel decoded differently (another decoder version): that clip
    differs."""
    import vfcache.pipelines.bundles.check as check_module

    assert_exit(invoke(publisher_root, "publish", "sample", "--repo", REPO), 0)
    root = checker_root(tmp_path, checker_raw)
    assert_exit(invoke(root, "pull", REPO), 0)
    clips = read_records(publisher_root / "cache" / "sample" / SPEC / "clips.parquet", ClipRecord)
    target = clips[len(clips) // 2]
    real_cut = check_module.cut_clips

    def cut_with_one_pixel_flipped(task, video, skip):
        out = real_cut(task, video, skip)
        if video.relpath == target.relpath:
            for plan, clip in out:
                if plan.clip_index == target.clip_index:
                    clip[0, 5, 7, 1] ^= 1
        return out

    monkeypatch.setattr(check_module, "cut_clips", cut_with_one_pixel_flipped)
    folder = DataRoot(root).bundle_dir(REPO)
    report = check_module.check_bundle(folder, root / "raw" / "sample", client=None, progress=False)
    assert not report.ok
    assert report.clips == {"matched": len(clips) - 1, "missing": 0, "different": 1}
    [different] = [v for v in report.videos if v.status == "different"]
    assert different.relpath == target.relpath
    assert f"clip {target.clip_index} pixels differ" in different.reason
    assert "file bytes differ" not in different.reason


def test_changed_split_file_is_caught_in_the_repo_and_after_the_pull(
    publisher_root, checker_raw, hub, tmp_path
):
    assert_exit(invoke(publisher_root, "publish", "sample", "--repo", REPO), 0)
    # someone commits an edited split file to the repo (bundle.json still lists the original)
    edited = tmp_path / "edited"
    edited.mkdir()
    for path, payload in hub.files_at(REPO).items():
        (edited / path).parent.mkdir(parents=True, exist_ok=True)
        (edited / path).write_bytes(payload)
    train = edited / "splits/default/train.jsonl"
    lines = train.read_text().splitlines(keepends=True)
    train.write_text("".join(lines[1:]))
    hub.add_commit(REPO, edited)
    root = checker_root(tmp_path, checker_raw)
    pulled = invoke(root, "pull", REPO)
    assert_exit(pulled, 2)
    assert "splits/default/train.jsonl" in pulled.output and "bundle.json" in pulled.output

    # the published commit pulls clean; editing a split file after the pull fails check-bundle
    published = hub.history(REPO)[1]  # after create_repo's first commit
    root2 = checker_root(tmp_path / "second", checker_raw)
    assert_exit(invoke(root2, "pull", REPO, "--revision", published), 0)
    val = DataRoot(root2).bundle_dir(REPO) / "splits/default/val.jsonl"
    val.write_text("".join(val.read_text().splitlines(keepends=True)[:-1]))
    checked = invoke(root2, "check-bundle", REPO)
    assert_exit(checked, 1)
    assert "check FAILED" in checked.output and "splits/default/val.jsonl" in checked.output


# -- refusals
# ---------------------------------------------------------------------------------------


def test_publish_refuses_a_split_whose_audit_fails(publisher_root, hub, tmp_path):
    root = publisher_copy(publisher_root, tmp_path)
    test_file = root / SPLIT_DIR / "test.jsonl"
    test_file.write_text("".join(test_file.read_text().splitlines(keepends=True)[2:]))
    result = invoke(root, "publish", "sample", "--repo", REPO)
    assert_exit(result, 2)
    assert "fails its audit" in result.output and len(result.output.strip().splitlines()) == 1
    assert hub.log.entries == [] or not any(e.method == "POST" for e in hub.log.entries)


@pytest.mark.parametrize(
    "redistribution,words",
    [
        ("forbidden", "forbid redistributing"),
        ("unknown", "does not say that clips may be redistributed"),
    ],
)
def test_publish_refuses_shards_the_terms_do_not_allow(
    publisher_root, hub, tmp_path, redistribution, words
):
    config = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "configs/datasets/sample.yaml").read_text()
    )
    config["redistribution"] = redistribution
    path = tmp_path / "sample.yaml"
    path.write_text(yaml.safe_dump(config))
    result = invoke(
        publisher_root, "publish", "sample", "--config", str(path), "--repo", REPO, "--with-shards"
    )
    assert_exit(result, 2)
    assert words in result.output and len(result.output.strip().splitlines()) == 1
    assert not any(e.method == "POST" for e in hub.log.entries)
    # without shards the same dataset publishes: manifests, splits and digests only
    result = invoke(publisher_root, "publish", "sample", "--config", str(path), "--repo", REPO)
    assert_exit(result, 0)
    assert not any(p.startswith("shards/") for p in hub.files_at(REPO))


def test_ffpp_config_forbids_shards():
    from vfcache.config import load_dataset_config

    assert load_dataset_config("ffpp").redistribution == "forbidden"
    assert load_dataset_config("webvid").redistribution == "forbidden"
    assert load_dataset_config("sample").redistribution == "allowed"


def test_publish_refuses_a_repo_with_other_content_unless_update(publisher_root, hub, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("someone else's dataset\n")
    hub.add_commit(REPO, other)
    result = invoke(publisher_root, "publish", "sample", "--repo", REPO, "--with-shards")
    assert_exit(result, 2)
    assert "already holds other content" in result.output and "notes.txt" in result.output
    assert "--update" in result.output
    assert set(hub.files_at(REPO)) == {"notes.txt"}

    updated = invoke(
        publisher_root, "publish", "sample", "--repo", REPO, "--with-shards", "--update"
    )
    assert_exit(updated, 0)
    files = hub.files_at(REPO)
    assert (
        "notes.txt" not in files
        and "bundle.json" in files
        and any(p.startswith("shards/") for p in files)
    )
    # --update without shards replaces the bundle and deletes the shards in the same commit
    commits = hub.commit_count(REPO)
    smaller = invoke(publisher_root, "publish", "sample", "--repo", REPO, "--update")
    assert_exit(smaller, 0)
    assert hub.commit_count(REPO) == commits + 1
    assert not any(p.startswith("shards/") for p in hub.files_at(REPO))
    assert json.loads(hub.files_at(REPO)["bundle.json"])["with_shards"] is False


def test_private_bundle_needs_the_token_to_pull(publisher_root, hub, tmp_path, monkeypatch):
    assert_exit(invoke(publisher_root, "publish", "sample", "--repo", REPO, "--private"), 0)
    assert hub.is_private(REPO)
    monkeypatch.delenv("HF_TOKEN")
    refused = invoke(tmp_path / "r1", "pull", REPO)
    assert_exit(refused, 2)
    assert "not found" in refused.output and "HF_TOKEN" in refused.output
    monkeypatch.setenv("HF_TOKEN", hub.write_token)
    assert_exit(invoke(tmp_path / "r1", "pull", REPO), 0)


def test_publish_without_a_token_is_refused_cleanly(publisher_root, hub, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    result = invoke(publisher_root, "publish", "sample", "--repo", REPO)
    assert_exit(result, 2)
    assert (
        "refused the credentials to publish to" in result.output
        and "hf auth login" in result.output
    )


# -- the format ------------------------------------------------------------------------------------


def test_pixel_digest_is_exact_about_pixels_and_shape():
    clip = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    digest = pixel_digest(clip)
    assert pixel_digest(clip.copy()) == digest
    assert pixel_digest(np.asfortranarray(clip)) == digest  # memory layout does not matter
    flipped = clip.copy()
    flipped[3, 7, 7, 2] ^= 1
    assert pixel_digest(flipped) != digest
    assert pixel_digest(clip.reshape(8, 4, 8, 3)) != digest  # same bytes, other shape


def test_bundle_file_problems_name_missing_changed_and_unlisted_files(
    publisher_root, hub, tmp_path
):
    assert_exit(invoke(publisher_root, "publish", "sample", "--repo", REPO), 0)
    root = tmp_path / "root"
    assert_exit(invoke(root, "pull", REPO), 0)
    folder = DataRoot(root).bundle_dir(REPO)
    manifest = read_bundle_manifest(folder)
    (folder / "audit.json").unlink()
    (folder / "spec.json").write_text((folder / "spec.json").read_text().replace("112", "113"))
    (folder / "extra.txt").write_text("x")
    problems = bundle_file_problems(folder, manifest)
    assert "audit.json: missing" in problems
    assert any(p.startswith("spec.json:") for p in problems)
    assert "extra.txt: not part of the bundle" in problems
    assert len(problems) == 3


def test_bundle_manifest_refuses_other_formats():
    with pytest.raises(BundleError, match="not a vfcache bundle"):
        bundle_manifest_from_json({"format": "something"}, "x/bundle.json")
    with pytest.raises(BundleError, match="format_version 9"):
        bundle_manifest_from_json(
            {"format": "vfcache-bundle", "format_version": 9}, "x/bundle.json"
        )
    assert BundleManifest.__dataclass_fields__["format_version"].default == 1


def test_bundle_dir_wants_owner_and_name(tmp_path):
    from vfcache.errors import StageError

    assert DataRoot(tmp_path).bundle_dir("a/b") == tmp_path / "bundles" / "a" / "b"
    for bad in ("nobody", "a/b/c", "../b", "a/.."):
        with pytest.raises(StageError):
            DataRoot(tmp_path).bundle_dir(bad)


def test_bundle_carries_the_raw_datas_fetch_record(publisher_root, tmp_path):
    """Where the raw data came from (repo, commit, every file's sha256) travels as
    provenance/fetch.json, summarised in bundle.json and on the card."""
    from vfcache.manifests.bundle import SOURCE_FETCH_NAME
    from vfcache.pipelines.bundles.publish import stage_bundle
    from vfcache.pipelines.fetch.record import FetchedFile, FetchRecord, write_fetch_record

    from vfcache.config import load_dataset_config

    root = publisher_copy(publisher_root, tmp_path)
    files = tuple(
        FetchedFile(f"studio/real/camera/v{i}.mp4", 1000 + i, f"{i:064x}") for i in range(3)
    )
    write_fetch_record(
        FetchRecord(
            source="huggingface",
            repo_id="someone/sample-raw",
            revision="main",
            commit_sha="c" * 40,
            endpoint="https://huggingface.co",
            allow_patterns=None,
            files=files,
            fetched_at_utc="2026-12-04T00:00:00+00:00",
        ),
        root / "raw" / "sample",
    )
    staged = stage_bundle(
        load_dataset_config("sample"), DataRoot(root), SPEC, "default", repo_id=REPO, progress=False
    )
    assert staged.files[SOURCE_FETCH_NAME] == root / "raw" / "sample" / "fetch.json"
    assert staged.manifest.source["commit_sha"] == "c" * 40
    assert staged.manifest.source["files"] == 3 and staged.manifest.source["total_bytes"] == 3003
    card = (staged.staging_dir / "README.md").read_text()
    assert "`someone/sample-raw`" in card and "c" * 40 in card
    assert staged.manifest.file(SOURCE_FETCH_NAME) is not None
    assert not any(path.startswith("shards/") for path in staged.files)
