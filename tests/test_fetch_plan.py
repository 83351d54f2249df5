"""`vfcache fetch NAME --dry-run`: files, sizes and terms before anything is downloaded.

Each kind plans against its stand-in; every test checks that no raw folder appears and that
the announced sizes are the sizes a real fetch then brings.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from vfcache.pipelines.sources.base import get_source
from vfcache.pipelines.sources.overrides import apply_fetch_options
from vfcache.pipelines.sources.plan import format_plan, plan_path, read_plan_summary

from tests.source_pipeline import config_for
from tests.standins.http_files import HttpFileServer
from tests.standins.layouts import (
    GENVIDEO_100K_ARCHIVES,
    build_aegis_full,
    build_dvf,
    build_ffpp,
    build_genvideo100k,
    build_webvid,
)
from tests.standins.modelscope import modelscope_relpath, modelscope_route
from vfcache.cli import cli
from vfcache.layout import DataRoot

pytestmark = pytest.mark.network


def _sizes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}


def test_genvideo100k_dry_run_heads_every_archive_and_downloads_nothing(tmp_path):
    served = tmp_path / "served"
    store = served / modelscope_relpath("cccnju/GenVideo-100K", "master", "")
    store.mkdir(parents=True)
    build_genvideo100k(store)
    sizes = _sizes(store)
    archives = GENVIDEO_100K_ARCHIVES + [{"files": ["Latte.tar.gz"]}]  # not on the host
    with HttpFileServer(served, route=modelscope_route) as server:
        config = config_for(
            "genvideo100k", base_url=server.base_url, archives=archives, listing=None
        )
        root = DataRoot(tmp_path / "data")
        plan = get_source(config).plan_fetch(root)
        assert {f.relpath: f.size_bytes for f in plan.to_fetch} == sizes
        assert [(f.relpath, f.problem) for f in plan.files if f.problem] == [
            ("Latte.tar.gz", "HTTP 404")
        ]
        assert plan.bytes_to_fetch == sum(sizes.values()) and plan.unknown_sizes == 0
        assert {r.method for r in server.log.entries} == {"HEAD"}
        assert not root.raw_dir("genvideo100k").exists()
        text = format_plan(plan)
        assert "would fetch 9 files" in text and "not available: Latte.tar.gz (HTTP 404)" in text
        assert "terms: Published by the DeMamba authors" in text


def test_hub_dry_run_lists_the_snapshot_with_sizes_and_what_is_here(hf_hub, tmp_path):
    facts_dir = tmp_path / "repo"
    build_aegis_full(facts_dir)
    hf_hub.add_commit("Clarifiedfish/AEGIS-Full", facts_dir)
    root = DataRoot(tmp_path / "data")
    source = get_source(config_for("aegis"))
    plan = source.plan_fetch(root)
    expected = {
        p.relative_to(facts_dir).as_posix(): p.stat().st_size for p in facts_dir.rglob("*.mp4")
    }
    assert {f.relpath: f.size_bytes for f in plan.to_fetch} == expected
    assert not root.raw_dir("aegis").exists()
    # the dry run asks whether a download is allowed (one HEAD on resolve), and downloads nothing
    assert [e.method for e in hf_hub.log.entries if "/resolve/" in e.path] == ["HEAD"]
    assert not [e for e in hf_hub.log.entries if "/cdn-lfs/" in e.path]
    assert plan.access[-1].startswith("download: allowed")
    source.fetch(root, progress=False)
    again = source.plan_fetch(root)
    assert not again.to_fetch and len([f for f in again.files if f.present]) == len(expected)


def test_dvf_dry_run_names_the_split_files_and_the_archives(hf_hub, http_file_server, tmp_path):
    splits = http_file_server.root / "mmdet" / "splits"
    build_dvf(tmp_path / "repo", splits, archives=True)
    hf_hub.add_commit("sparklexfantasy/DVF", tmp_path / "repo")
    config = config_for(
        "dvf",
        splits_url=http_file_server.url("mmdet/splits"),
        splits_sha256=None,
        path=None,
        repo="sparklexfantasy/DVF",
        revision="main",
    )
    plan = get_source(config).plan_fetch(DataRoot(tmp_path / "data"))
    planned = {f.relpath: f.size_bytes for f in plan.to_fetch}
    assert planned["splits/train.json"] == (splits / "train.json").stat().st_size
    assert "DVF/youtube/0_real.z01" in planned and "DVF/youtube/0_real.zip" in planned
    assert "DVF/stablevideodiffusion/1_fake.zip.002" in planned
    assert plan.unknown_sizes == 0


def test_ffpp_dry_run_reads_the_file_lists_in_memory(http_file_server, tmp_path):
    build_ffpp(http_file_server.root / "ffpp", http_file_server.root / "github" / "splits")
    config = apply_fetch_options(
        config_for("ffpp", methods=["Deepfakes"], splits_url=http_file_server.url("github/splits")),
        server=http_file_server.url("ffpp"),
        accept_terms=False,
    )
    root = DataRoot(tmp_path / "data")
    plan = get_source(config).plan_fetch(root)
    videos = [f for f in plan.to_fetch if f.relpath.endswith(".mp4")]
    assert len(videos) == 8 + 8 and all(
        f.size_bytes is None for f in videos
    )  # 4 pairs: 8 originals, 8 fakes
    assert plan.unknown_sizes == 16
    assert any("--accept-terms" in note for note in plan.notes)
    assert not root.raw_dir("ffpp").exists()
    assert not [e for e in http_file_server.log.entries if e.path.endswith(".mp4")]


def test_webvid_dry_run_before_and_after_the_csv(http_file_server, tmp_path):
    build_webvid(http_file_server.root, http_file_server.base_url, count=4, missing=())
    config = config_for(
        "webvid",
        csv_repo=None,
        csv_revision=None,
        csv_patterns=None,
        csv_urls=[http_file_server.url("webvid/results_2M_train.csv")],
        max_videos=4,
    )
    root = DataRoot(tmp_path / "data")
    plan = get_source(config).plan_fetch(root)
    assert [f.relpath for f in plan.to_fetch] == ["csv/results_2M_train.csv"]
    assert "listed once the CSV is fetched" in plan.notes[0]


def test_cli_dry_run_keeps_the_plan_for_vfcache_datasets(tmp_path):
    served = tmp_path / "served"
    store = served / modelscope_relpath("cccnju/GenVideo-100K", "master", "")
    store.mkdir(parents=True)
    build_genvideo100k(store)
    total = sum(_sizes(store).values())
    with HttpFileServer(served, route=modelscope_route) as server:
        config = config_for(
            "genvideo100k", base_url=server.base_url, archives=GENVIDEO_100K_ARCHIVES, listing=None
        )
        config_file = tmp_path / "genvideo100k.yaml"
        payload = {
            k: v
            for k, v in dataclasses.asdict(config).items()
            if k in ("name", "kind", "domain", "clip_spec", "source", "terms")
        }
        config_file.write_text(yaml.safe_dump(payload))
        runner = CliRunner()
        root = tmp_path / "data"
        done = runner.invoke(
            cli,
            [
                "--root",
                str(root),
                "fetch",
                "genvideo100k",
                "--config",
                str(config_file),
                "--dry-run",
            ],
        )
        assert done.exit_code == 0, done.output
    assert "would fetch 9 files" in done.output and "dry run: nothing downloaded" in done.output
    assert sorted(os.listdir(root)) == ["plans"]
    summary = read_plan_summary(DataRoot(root), "genvideo100k")
    assert summary["bytes_to_fetch"] == total and summary["files_to_fetch"] == 9
    assert plan_path(DataRoot(root), "genvideo100k").is_file()
    status = runner.invoke(cli, ["--root", str(root), "datasets"])
    assert status.exit_code == 0, status.output
    assert "to download (dry run" in status.output and "9 files" in status.output


def test_sample_dry_run_says_nothing_is_downloaded(tmp_path):
    plan = get_source(config_for("sample")).plan_fetch(DataRoot(tmp_path))
    assert not plan.files and "nothing is downloaded" in plan.notes[0]


def _cli_dry_run(root: Path, name: str, *extra: str):
    return CliRunner().invoke(cli, ["--root", str(root), "fetch", name, *extra, "--dry-run"])


def test_dvf_hub_dry_run_says_listing_token_and_download(hf_hub, http_file_server, tmp_path):
    """`vfcache fetch dvf --dry-run` on its Hub route prints the access lines every Hub source
    prints, and says so again (refused, with the token missing) once the repo is gated."""
    splits = http_file_server.root / "mmdet" / "splits"
    build_dvf(tmp_path / "repo", splits, archives=True)
    hf_hub.add_commit("sparklexfantasy/DVF", tmp_path / "repo")
    config = config_for(
        "dvf",
        splits_url=http_file_server.url("mmdet/splits"),
        splits_sha256=None,
        path=None,
        repo="sparklexfantasy/DVF",
        revision="main",
    )
    config_file = tmp_path / "dvf.yaml"
    payload = {
        k: v
        for k, v in dataclasses.asdict(config).items()
        if k in ("name", "kind", "domain", "clip_spec", "source", "terms")
    }
    config_file.write_text(yaml.safe_dump(payload))
    root = tmp_path / "data"
    done = _cli_dry_run(root, "dvf", "--config", str(config_file))
    assert done.exit_code == 0, done.output
    assert f"listing: readable on {hf_hub.endpoint}" in done.output, done.output
    assert "token: not needed (public, not gated); none set" in done.output
    assert "download: allowed (DVF/" in done.output
    hf_hub.set_gated("sparklexfantasy/DVF", "hf_granted")
    done = _cli_dry_run(root, "dvf", "--config", str(config_file))
    assert done.exit_code == 0, done.output
    assert "token: needed (gated: manual); none set" in done.output
    assert "download: refused" in done.output and "accept the terms" in done.output
    assert not (root / "raw" / "dvf").exists()
    assert not [e for e in hf_hub.log.entries if e.method == "GET" and "/resolve/" in e.path]


def test_webvid_hub_csv_dry_run_says_listing_token_and_download(
    hf_hub, http_file_server, tmp_path, monkeypatch
):
    """`vfcache fetch webvid --dry-run` (the shipped config: its CSV from the Hub) prints the
    access lines for the CSV repo, probing the CSV a fetch would bring first."""
    build_webvid(http_file_server.root, http_file_server.base_url, count=4, missing=())
    mirror = tmp_path / "mirror" / "data" / "train" / "partitions"
    mirror.mkdir(parents=True)
    (mirror / "0000.csv").write_bytes(
        (http_file_server.root / "webvid" / "results_2M_train.csv").read_bytes()
    )
    hf_hub.add_commit("TempoFunk/webvid-10M", tmp_path / "mirror")
    monkeypatch.setenv("HF_TOKEN", "hf_granted")
    root = tmp_path / "data"
    done = _cli_dry_run(root, "webvid")
    assert done.exit_code == 0, done.output
    assert "csv/data/train/partitions/0000.csv" in done.output
    assert f"listing: readable on {hf_hub.endpoint}" in done.output, done.output
    assert "token: not needed (public, not gated); present (HF_TOKEN)" in done.output
    assert "download: allowed (data/train/partitions/0000.csv answered)" in done.output
    assert not (root / "raw" / "webvid").exists()
