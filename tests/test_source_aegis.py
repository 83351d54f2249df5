"""AEGIS mp4 (`kind: huggingface`): the real Hub client against the stand-in, then every stage."""

from __future__ import annotations

import pytest
from vfcache.manifests.audit import format_table
from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import ClipRecord
from vfcache.pipelines.fetch.record import read_fetch_record
from vfcache.pipelines.sources.base import get_source

from tests.source_pipeline import (
    clips_by_label_generator,
    config_for,
    part_counts,
    run_cache,
)
from tests.standins.layouts import build_aegis_full
from vfcache.layout import DataRoot

pytestmark = pytest.mark.network

REPO = "Clarifiedfish/AEGIS-Full"


@pytest.fixture
def aegis_hub(hf_hub, tmp_path):
    facts = build_aegis_full(tmp_path / "repo")
    commit = hf_hub.add_commit(REPO, tmp_path / "repo")
    return hf_hub, facts, commit


def test_make_cache_aegis_against_the_hub_standin(aegis_hub, tmp_path):
    hub, facts, commit = aegis_hub
    root = DataRoot(tmp_path / "data")
    config = config_for(
        "aegis", splits={"sizes": (("train", "4"), ("val", "2"), ("test", "rest")), "support": 1}
    )
    run = run_cache(config, root)

    record = read_fetch_record(root.raw_dir("aegis"))
    assert (record.repo_id, record.commit_sha) == (REPO, commit)
    assert all(
        f.relpath.startswith("videos/test_data/") and f.relpath.endswith(".mp4")
        for f in record.files
    )
    assert len(record.files) == facts.total == 12  # README and analysis/ are not fetched
    assert run.manifest.videos_ok == 12 and run.extract.clips == 12
    clips = read_records(root.cache_dir("aegis", "tiny_4x32").clips_parquet, ClipRecord)
    found = clips_by_label_generator(clips)
    assert (
        found
        == facts.by_generator
        == {(0, "youtube"): 3, (0, "dvf"): 3, (1, "sora"): 3, (1, "kling"): 3}
    )
    assert {c.domain for c in clips} == {"aegis"}
    assert part_counts(run) == {"train": 4, "val": 2, "test": 6, "support": 2}
    assert run.audit.ok, format_table(run.audit)
    assert "kling" in format_table(run.audit)


def test_second_fetch_needs_no_hub(aegis_hub, tmp_path):
    hub, _, commit = aegis_hub
    root = DataRoot(tmp_path / "data")
    source = get_source(config_for("aegis"))
    first = source.fetch(root, progress=False)
    assert not first.up_to_date and first.files == 12
    requests = len(hub.log.entries)
    second = source.fetch(root, progress=False)
    assert second.up_to_date and second.source.endswith(commit)
    assert len(hub.log.entries) == requests  # the fetch record says everything is there


def test_damaged_file_is_fetched_again(aegis_hub, tmp_path):
    hub, _, _ = aegis_hub
    root = DataRoot(tmp_path / "data")
    source = get_source(config_for("aegis"))
    source.fetch(root, progress=False)
    victim = root.raw_dir("aegis") / "videos/test_data/ai_gen/sora/sora_000.mp4"
    victim.write_bytes(b"broken")
    again = source.fetch(root, progress=False)
    assert not again.up_to_date  # a file no longer matches its record: the Hub is asked again
    assert victim.stat().st_size > 1000
