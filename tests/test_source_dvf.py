"""DVF: from a Hub repo of archives or a hand-downloaded folder, official splits applied."""

from __future__ import annotations

import json
import logging

import pytest

from manifests.audit import format_table
from manifests.layout import DataRoot
from manifests.parquet_io import read_records
from manifests.records import ClipRecord
from pipelines.fetch.record import read_fetch_record
from pipelines.sources.base import get_source
from pipelines.sources.dvf import parse_dvf_path
from tests.source_pipeline import config_for, part_counts, run_cache
from tests.standins.layouts import build_dvf
from vfcache.errors import ConfigError, StageError

pytest_plugins = ("tests.standins.fixtures",)

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


@pytest.mark.network
def test_make_cache_dvf_from_a_hub_repo_of_archives(hf_hub, tmp_path, caplog):
    facts = build_dvf(tmp_path / "repo", archives=True)
    hf_hub.add_commit(REPO, tmp_path / "repo")
    root = DataRoot(tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="pipelines.sources.dvf"):
        run = run_cache(config_for("dvf", splits=OFFICIAL), root)
    raw = root.raw_dir("dvf")
    assert run.fetch.extracted_archives == 2
    assert not list(raw.rglob("*.zip")) and not list(
        raw.rglob("*.split.a?")
    )  # extracted in place of the download
    assert (
        not list(raw.rglob("__MACOSX"))
        and not list(raw.rglob("._*"))
        and not list(raw.rglob(".DS_Store"))
    )
    clips = read_records(root.cache_dir("dvf", "tiny_4x32").clips_parquet, ClipRecord)
    by_split = {}
    for clip in clips:
        by_split[clip.source_split] = by_split.get(clip.source_split, 0) + 1
    assert by_split == facts.by_split == {"train": 7, "val": 3, "test": 6}
    assert {(c.label, c.generator) for c in clips} == set(facts.by_generator)
    assert part_counts(run) == {"train": 7, "val": 3, "test": 6, "support": 2}
    assert run.audit.ok, format_table(run.audit)
    assert "official split entries without a video file: {'train': 1}" in caplog.text

    requests = len(hf_hub.log.entries)
    again = get_source(config_for("dvf")).fetch(root, progress=False)
    assert (
        again.up_to_date and len(hf_hub.log.entries) == requests
    )  # extracted archives count as fetched


def test_card_preset_gives_200_200_rest():
    preset = config_for("dvf").splits
    assert (
        preset.sizes == (("train", "200"), ("val", "200"), ("test", "rest"))
        and preset.support == 10
    )


def test_hand_downloaded_folder_keeps_its_archives(tmp_path):
    facts = build_dvf(tmp_path / "download", archives=True)
    config = config_for("dvf", repo=None, revision=None, path=str(tmp_path / "download"))
    source = get_source(config)
    root = DataRoot(tmp_path / "data")
    summary = source.fetch(root, progress=False)
    assert summary.extracted_archives == 2 and source.raw_dir(root) == tmp_path / "download"
    assert (
        tmp_path / "download" / "DVF" / "sora.zip"
    ).is_file()  # the user's download is left alone
    record = read_fetch_record(tmp_path / "download")
    assert sorted(f.relpath for f in record.files) == ["DVF/pika.tar.gz.split.aa", "DVF/sora.zip"]
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
    return config_for("dvf", repo=None, revision=None, path=str(tmp_path / "download"), **source)


def test_split_label_that_contradicts_the_folder_stops(tmp_path):
    build_dvf(tmp_path / "download", archives=False)
    train = tmp_path / "download" / "DVF" / "splits" / "train.json"
    payload = json.loads(train.read_text())
    payload["youtube"]["0_real/you_00.mp4"] = 1
    train.write_text(json.dumps(payload))
    with pytest.raises(StageError, match=r"contradicts.*you_00.mp4 \(train.json says 1\)"):
        get_source(_folder_config(tmp_path)).list_videos(DataRoot(tmp_path / "data"))


def test_missing_split_files_are_an_error_that_says_where(tmp_path):
    build_dvf(tmp_path / "download", archives=False)
    (tmp_path / "download" / "DVF" / "splits" / "val.json").unlink()
    source = get_source(_folder_config(tmp_path))
    with pytest.raises(StageError, match="unreadable DVF split file"):
        source.list_videos(DataRoot(tmp_path / "data"))
    (tmp_path / "download" / "DVF" / "splits" / "train.json").unlink()
    with pytest.raises(StageError, match="train.json, val.json.*found none.*source.splits_dir"):
        source.fetch(DataRoot(tmp_path / "data"), progress=False)


def test_repo_and_path_are_exclusive(tmp_path):
    with pytest.raises(ConfigError, match="exactly one of source.repo"):
        get_source(config_for("dvf", path=str(tmp_path)))
    with pytest.raises(ConfigError, match="exactly one of source.repo"):
        get_source(config_for("dvf", repo=None))
