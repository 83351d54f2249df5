"""`vfcache datasets`: every dataset, its source, terms, disk needed, and how far it got
(fetched, probed, extracted, split)."""

from __future__ import annotations

import shutil

from vfcache.pipelines.fetch.record import FetchedFile, FetchRecord, write_fetch_record
from vfcache.pipelines.sources.status import dataset_status, format_status_table, human_bytes
from vfcache.pipelines.split import write_split

from tests.cache_fixtures import STATUS_FAILED, VideoPlan, build_cache
from vfcache.config import configs_dir, list_dataset_names
from vfcache.layout import DataRoot


def test_nothing_fetched_yet(tmp_path):
    statuses = dataset_status(DataRoot(tmp_path))
    assert [s.name for s in statuses] == list_dataset_names()
    assert {
        "aegis",
        "aegis_keyframes",
        "dvf",
        "genvideo_val",
        "genvideo100k",
        "ffpp",
        "webvid",
    } <= {s.name for s in statuses}
    assert not any(s.fetched or s.specs or s.error for s in statuses)
    table = format_status_table(statuses)
    assert "ffpp: FaceForensics++ server <server from the FaceForensics email>" in table
    assert "terms: Form-gated" in table and "disk needed: about 13 GB for GenVideo-Val.zip" in table


def test_fetched_probed_extracted_and_split(tmp_path):
    root = DataRoot(tmp_path)
    raw = root.raw_dir("aegis")
    raw.mkdir(parents=True)
    (raw / "a.mp4").write_bytes(b"\0" * 3000)
    write_fetch_record(
        FetchRecord(
            source="huggingface",
            repo_id="Clarifiedfish/AEGIS-Full",
            revision="main",
            commit_sha="c0ffee",
            endpoint="https://huggingface.co",
            allow_patterns=None,
            files=(FetchedFile("a.mp4", 3000, "0" * 64),),
            fetched_at_utc="2026-01-01T00:00:00+00:00",
        ),
        raw,
    )
    plans = [
        VideoPlan("aegis", label, gen, f"{gen}-{i}")
        for label, gen in ((0, "youtube"), (1, "sora"))
        for i in range(4)
    ]
    plans.append(
        VideoPlan("aegis", 1, "kling", "broken", status=STATUS_FAILED, reason="truncated: x")
    )
    fixture = build_cache(root.cache_dir("aegis", "r2plus1d_24x224").path, plans, dataset="aegis")
    write_split(
        fixture.cache_dir, sizes="train=4,val=2,test=rest", seed=0, support=1, name="default"
    )

    status = {s.name: s for s in dataset_status(root)}["aegis"]
    assert status.fetched and status.fetched_files == 1 and status.revision == "c0ffee"
    assert status.disk_bytes >= 3000
    (spec,) = status.specs
    assert (spec.spec_name, spec.videos, spec.videos_ok, spec.clips, spec.splits) == (
        "r2plus1d_24x224",
        9,
        8,
        8,
        ("default",),
    )
    row = next(
        line for line in format_status_table([status]).splitlines() if line.startswith("aegis ")
    )
    assert "yes" in row and "8/9 ok" in row and "default" in row
    assert "revision c0ffee" in format_status_table([status])


def test_a_broken_config_is_shown_not_raised(tmp_path, monkeypatch):
    configs = tmp_path / "configs"
    shutil.copytree(configs_dir(), configs)
    (configs / "datasets" / "broken.yaml").write_text(
        "name: broken\nkind: huggingface\nsource: {repo: a/b, x: 1}\n"
    )
    monkeypatch.setenv("VFCACHE_CONFIGS", str(configs))
    status = {s.name: s for s in dataset_status(DataRoot(tmp_path / "data"))}["broken"]
    assert "source.x" in status.error and "broken.yaml" in status.error
    assert "broken: cannot read its config" in format_status_table([status])


def test_human_bytes():
    assert [human_bytes(n) for n in (0, 1023, 1024, 5 * 1024**3)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "5.0 GiB",
    ]
