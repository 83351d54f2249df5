"""DVF: from a Hub repo of archives or a hand-downloaded folder, official splits applied."""

from __future__ import annotations

import json
import logging

import pytest
from vfcache.manifests.audit import format_table
from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import ClipRecord
from vfcache.pipelines.fetch.errors import FetchError
from vfcache.pipelines.fetch.record import read_fetch_record
from vfcache.pipelines.sources.base import get_source
from vfcache.pipelines.sources.dvf import parse_dvf_path

from tests.source_pipeline import config_for, part_counts, run_cache
from tests.standins.layouts import DVF_DAMAGED, build_dvf
from vfcache.checksums import sha256_file
from vfcache.errors import ConfigError, StageError
from vfcache.layout import DataRoot

REPO = "sparklexfantasy/DVF"
OFFICIAL = {
    "sizes": (("train", "official"), ("val", "official"), ("test", "official")),
    "support": 1,
    "subset": None,
}


def test_parse_dvf_path():
    assert parse_dvf_path("DVF/sora/1_fake/a/b.mp4") == ("sora", "1_fake", "a/b.mp4")
    assert parse_dvf_path("youtube/0_real/x.mp4") == ("youtube", "0_real", "x.mp4")
    assert parse_dvf_path("0_real/x.mp4") is None and parse_dvf_path("sora/fake/x.mp4") is None


MMDET_COMMIT = "7790ecda7fd4fbc727f661cedef5c9532b1a5daa"


@pytest.fixture
def github(http_file_server, tmp_path):
    """The MM-Det repository's raw files at the pinned commit, as raw.githubusercontent serves
    them."""
    return (
        http_file_server,
        http_file_server.root / "SparkleXFantasy/MM-Det" / MMDET_COMMIT / "splits",
    )


def _splits_source(server, splits_dir) -> dict:
    """splits_url at the stand-in, with the checksums of the stand-in's split files."""
    return {
        "splits_url": server.url(f"SparkleXFantasy/MM-Det/{MMDET_COMMIT}/splits"),
        "splits_sha256": {
            name: sha256_file(splits_dir / name) for name in ("train.json", "val.json")
        },
    }


def test_the_shipped_config_pins_the_mmdet_splits():
    source = config_for("dvf").source
    assert source["splits_url"].endswith(f"/SparkleXFantasy/MM-Det/{MMDET_COMMIT}/splits")
    assert set(source["splits_sha256"]) == {"train.json", "val.json"}


@pytest.mark.network
def test_make_cache_dvf_from_a_hub_repo_of_archives(hf_hub, github, tmp_path, caplog):
    server, splits_dir = github
    facts = build_dvf(tmp_path / "repo", splits_dir, archives=True)
    hf_hub.add_commit(REPO, tmp_path / "repo")
    root = DataRoot(tmp_path / "data")
    config = config_for(
        "dvf",
        splits=OFFICIAL,
        path=None,
        repo="sparklexfantasy/DVF",
        revision="main",
        **_splits_source(server, splits_dir),
    )
    with caplog.at_level(logging.WARNING, logger="vfcache.pipelines.sources.dvf"):
        run = run_cache(config, root)
    raw = root.raw_dir("dvf")
    assert run.fetch.extracted_archives == 8
    downloaded = [p.relative_to(raw) for p in raw.rglob("*") if p.is_file()]
    assert not [
        p
        for p in downloaded
        if not p.parts[0].startswith(".")  # the client's and our records
        and (p.suffix in (".zip", ".z01", ".001", ".002") or ".split." in p.name)
        and ".extracted" not in p.parts
    ]  # extracted in place of the download, volume sets too
    assert not list(raw.rglob("__MACOSX")) and not list(raw.rglob("._*"))
    # the damaged member is skipped, named, and the rest of its class is there
    assert not (raw / "DVF" / DVF_DAMAGED).exists()
    assert len(list((raw / "DVF/youtube/0_real").glob("*.mp4"))) == 3
    assert any(DVF_DAMAGED.split("/", 1)[1] in note and "CRC" in note for note in run.fetch.notes)
    clips = read_records(root.cache_dir("dvf", "tiny_4x32").clips_parquet, ClipRecord)
    by_split = {}
    for clip in clips:
        by_split[clip.source_split] = by_split.get(clip.source_split, 0) + 1
    assert by_split == facts.by_split == {"train": 5, "val": 2, "test": 13}
    assert {(c.label, c.generator) for c in clips} == set(facts.by_generator)
    assert part_counts(run) == {"train": 5, "val": 2, "test": 13, "support": 2}
    assert run.audit.ok, format_table(run.audit)
    assert "official split entries without a video file: {'train': 2}" in caplog.text

    requests = len(hf_hub.log.entries)
    again = get_source(config).fetch(root, progress=False)
    assert (
        again.up_to_date and len(hf_hub.log.entries) == requests
    )  # extracted archives count as fetched


@pytest.mark.network
def test_split_files_are_checked_against_their_pinned_sha256(github, tmp_path):
    server, splits_dir = github
    build_dvf(tmp_path / "download", splits_dir, archives=False)
    source = _splits_source(server, splits_dir)
    source["splits_sha256"]["val.json"] = "0" * 64
    config = config_for("dvf", repo=None, revision=None, path=str(tmp_path / "download"), **source)
    with pytest.raises(
        FetchError, match=r"official split files could not be downloaded.*splits/val.json"
    ):
        get_source(config).fetch(DataRoot(tmp_path / "data"), progress=False)


def test_card_preset_takes_1004_then_200_200_rest():
    preset = config_for("dvf").splits
    assert preset.subset == 1004 and preset.unit == "videos"
    assert (
        preset.sizes == (("train", "200"), ("val", "200"), ("test", "rest"))
        and preset.support == 10
    )


@pytest.mark.network
def test_hand_downloaded_folder_keeps_its_archives(github, tmp_path):
    server, splits_dir = github
    facts = build_dvf(tmp_path / "download", splits_dir, archives=True)
    config = config_for(
        "dvf",
        repo=None,
        revision=None,
        path=str(tmp_path / "download"),
        **_splits_source(server, splits_dir),
    )
    source = get_source(config)
    root = DataRoot(tmp_path / "data")
    summary = source.fetch(root, progress=False)
    assert summary.extracted_archives == 8 and source.raw_dir(root) == tmp_path / "download"
    assert (
        tmp_path / "download/DVF/sora/1_fake.zip"
    ).is_file()  # the user's download is left alone
    record = read_fetch_record(tmp_path / "download")
    assert "DVF/youtube/0_real.z01" in {f.relpath for f in record.files}
    videos = source.list_videos(root)
    assert len(videos) == facts.total
    assert {v.relpath for v in videos if v.generator == "sora"} == {
        f"DVF/sora/1_fake/sor_{i:02d}.mp4" for i in range(3)
    }
    assert all(
        v.group == f"{v.generator}/{v.relpath.split('/')[2]}/{v.relpath.rsplit('/', 1)[1][:-4]}"
        for v in videos
    )
    again = source.fetch(root, progress=False)
    assert again.extracted_archives == 0 and again.up_to_date


def _folder_config(tmp_path, **source):
    return config_for(
        "dvf",
        repo=None,
        revision=None,
        splits_url=None,
        splits_sha256=None,
        path=str(tmp_path / "download"),
        **source,
    )


def test_shared_real_pool_keeps_the_pool_classes_reals(tmp_path):
    """The paper's test: fakes of every test class, reals of the pool classes only."""
    build_dvf(tmp_path / "download", tmp_path / "download/DVF/splits", archives=False)
    root = DataRoot(tmp_path / "data")
    per_class = get_source(_folder_config(tmp_path, splits_dir="DVF/splits")).list_videos(root)
    pooled = get_source(
        _folder_config(
            tmp_path,
            splits_dir="DVF/splits",
            test_rule="shared_real_pool",
            real_pool_classes=["videocrafter1"],
        )
    ).list_videos(root)

    def test_reals(videos):
        return sorted({v.generator for v in videos if v.source_split == "test" and v.label == 0})

    assert test_reals(per_class) == ["videocrafter1", "zeroscope"]
    assert test_reals(pooled) == ["videocrafter1"]
    fakes = {v.relpath for v in per_class if v.source_split == "test" and v.label == 1}
    assert fakes == {v.relpath for v in pooled if v.source_split == "test" and v.label == 1}
    with pytest.raises(ConfigError, match="real_pool_classes"):
        get_source(_folder_config(tmp_path, splits_dir="DVF/splits", real_pool_classes=["youtube"]))


def test_split_label_that_contradicts_the_folder_stops(tmp_path):
    build_dvf(tmp_path / "download", tmp_path / "download/DVF/splits", archives=False)
    train = tmp_path / "download" / "DVF" / "splits" / "train.json"
    payload = json.loads(train.read_text())
    payload["youtube"]["0_real/you_00.mp4"] = 1
    train.write_text(json.dumps(payload))
    with pytest.raises(StageError, match=r"contradicts.*you_00.mp4 \(train.json says 1\)"):
        get_source(_folder_config(tmp_path)).list_videos(DataRoot(tmp_path / "data"))


def test_missing_split_files_are_an_error_that_says_where(tmp_path):
    build_dvf(tmp_path / "download", tmp_path / "download/DVF/splits", archives=False)
    (tmp_path / "download" / "DVF" / "splits" / "val.json").unlink()
    source = get_source(_folder_config(tmp_path))
    with pytest.raises(StageError, match="unreadable DVF split file"):
        source.list_videos(DataRoot(tmp_path / "data"))
    (tmp_path / "download" / "DVF" / "splits" / "train.json").unlink()
    with pytest.raises(StageError, match="train.json, val.json.*found none.*source.splits_dir"):
        source.fetch(DataRoot(tmp_path / "data"), progress=False)
    fetched = get_source(
        config_for("dvf", repo=None, revision=None, path=str(tmp_path / "download"))
    )
    with pytest.raises(StageError, match="not in .*splits yet; run `vfcache fetch dvf`"):
        fetched.list_videos(DataRoot(tmp_path / "data"))


def test_repo_and_path_are_exclusive(tmp_path):
    with pytest.raises(ConfigError, match="exactly one of source.repo"):
        get_source(config_for("dvf", repo="sparklexfantasy/DVF"))
    with pytest.raises(ConfigError, match="exactly one of source.repo"):
        get_source(config_for("dvf", path=None))
    with pytest.raises(ConfigError, match="source.splits_dir"):
        get_source(config_for("dvf", splits_dir="splits"))


def test_the_shipped_route_is_a_folder_below_the_data_root(tmp_path):
    source = get_source(config_for("dvf", splits_url=None, splits_sha256=None))
    root = DataRoot(tmp_path / "data")
    assert source.raw_dir(root) == tmp_path / "data" / "downloads" / "DVF"
    with pytest.raises(StageError, match=r"downloads/DVF .* does not exist; download the archives"):
        source.fetch(root, progress=False)


def test_folder_dry_run_lists_the_expected_archives_and_what_is_here(tmp_path):
    """The stand-in download (per-class zips, split volumes, a tar) against the expected names:
    every class archive found is present with the bytes of all its volumes; the rest are named."""
    build_dvf(tmp_path / "data" / "downloads", tmp_path / "splits", archives=True)
    source = get_source(config_for("dvf", splits_url=None, splits_sha256=None))
    plan = source.plan_fetch(DataRoot(tmp_path / "data"))
    planned = {f.relpath: (f.size_bytes, f.present) for f in plan.files}
    download = tmp_path / "data" / "downloads"
    youtube = sum(p.stat().st_size for p in (download / "DVF/youtube").glob("0_real.z*"))
    assert planned["youtube/0_real.z01"] == (youtube, True)  # both volumes' bytes
    assert planned["stablevideodiffusion/1_fake.zip.001"][1] is True
    assert (
        planned["sora/1_fake.zip"][1] and planned["pika.tar.gz.split.aa"][1]
    )  # found, not expected
    missing = sorted(f.relpath for f in plan.to_fetch)
    assert missing == [
        "opensora/0_real.zip",
        "opensora/1_fake.zip",
        "pika/1_fake.zip",
        "stablediffusion/1_fake.zip",
        "stablevideo/1_fake.zip",
    ]
    assert all(f.size_bytes is None for f in plan.to_fetch)
    assert any("Google Drive" in note and "not published" in note for note in plan.notes)
