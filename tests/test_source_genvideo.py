"""GenVideo: archives from a ModelScope-like stand-in (faults, resume after a kill), extracted
in place."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from vfcache.manifests.audit import format_table
from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import ClipRecord
from vfcache.pipelines.fetch.errors import FetchError
from vfcache.pipelines.fetch.record import read_fetch_record
from vfcache.pipelines.sources.base import get_source
from vfcache.pipelines.sources.plan import format_plan

from tests.source_pipeline import (
    clips_by_label_generator,
    config_for,
    part_counts,
    run_cache,
)
from tests.standins.http_files import Fault, HttpFileServer
from tests.standins.layouts import GENVIDEO_100K_ARCHIVES, build_genvideo, build_genvideo100k
from tests.standins.modelscope import modelscope_relpath, modelscope_route, write_tree_listing
from vfcache.config import DatasetConfig
from vfcache.errors import ConfigError
from vfcache.layout import DataRoot

pytestmark = pytest.mark.network

REPO_ID = "cccnju/Gen-Video"
REPO = Path(__file__).resolve().parents[1]
ARCHIVES = [
    {"files": ["GenVideo-Val.zip"]},
    {
        "files": ["Real_part_aa", "Real_part_ab"],
        "into": "train",
        "label": "real",
        "generator": "youku",
    },
    {"files": ["OpenSora.tar.gz"], "into": "train", "label": "fake", "generator": "OpenSora"},
]


@pytest.fixture
def modelscope(tmp_path):
    served = tmp_path / "served"
    store = served / modelscope_relpath(REPO_ID, "master", "")
    store.mkdir(parents=True)
    facts = build_genvideo(store)
    with HttpFileServer(served, route=modelscope_route) as server:
        yield server, facts


def genvideo_config(server: HttpFileServer, **splits) -> DatasetConfig:
    return config_for(
        "genvideo_val",
        base_url=server.base_url,
        archives=ARCHIVES,
        retries=3,
        splits=splits or {"sizes": (("train", "6"), ("val", "3"), ("test", "rest")), "support": 1},
    )


def test_make_cache_genvideo_against_the_modelscope_standin(modelscope, tmp_path):
    server, facts = modelscope
    val = modelscope_relpath(REPO_ID, "master", "GenVideo-Val.zip")
    server.add_fault(val, Fault(status=500))
    server.add_fault(val, Fault(truncate_after_bytes=5000))  # the retry resumes from byte 5000
    root = DataRoot(tmp_path / "data")
    run = run_cache(genvideo_config(server), root)

    assert [r.status for r in server.requests(val)] == [500, 200, 206]
    assert server.requests(val)[-1].range_header == "bytes=5000-"
    assert run.fetch.extracted_archives == 3 and run.fetch.downloaded == 4
    raw = root.raw_dir("genvideo_val")
    left = [p for p in raw.rglob("*") if p.is_file() and ".extracted" not in p.parts]
    assert not [
        p for p in left if p.name.startswith(("._", "Real_part")) or p.suffix in (".zip", ".gz")
    ]
    assert not list(raw.rglob("__MACOSX"))
    record = read_fetch_record(raw)
    assert sorted(f.relpath for f in record.files) == [
        "GenVideo-Val.zip",
        "train/OpenSora.tar.gz",
        "train/Real_part_aa",
        "train/Real_part_ab",
    ]
    clips = read_records(root.cache_dir("genvideo_val", "tiny_4x32").clips_parquet, ClipRecord)
    found = clips_by_label_generator(clips)
    assert (
        found
        == facts.by_generator
        == {(0, "msrvtt"): 4, (0, "youku"): 2, (1, "Sora"): 3, (1, "Gen2"): 3, (1, "OpenSora"): 2}
    )
    assert part_counts(run) == {"train": 6, "val": 3, "test": 5, "support": 2}
    assert run.audit.ok, format_table(run.audit)
    assert (
        sum(entry.clips for entry in run.audit.short_clips) == facts.short_videos == 3
    )  # padded, and shown

    requests = len(server.log.entries)
    again = get_source(genvideo_config(server)).fetch(root, progress=False)
    assert (
        again.up_to_date and len(server.log.entries) == requests
    )  # extracted archives are not fetched again


def test_archive_the_host_refuses_is_one_line_and_the_rest_goes_on(modelscope, tmp_path):
    server, facts = modelscope
    opensora = modelscope_relpath(REPO_ID, "master", "OpenSora.tar.gz")
    server.add_fault(opensora, Fault(status=403, times=None))
    root = DataRoot(tmp_path / "data")
    summary = get_source(genvideo_config(server)).fetch(root, progress=False)
    assert summary.failed == 1 and summary.extracted_archives == 2
    assert [n for n in summary.notes if "OpenSora" in n] == [
        "train/OpenSora.tar.gz: HTTP 403; not extracted, re-run `vfcache fetch genvideo_val` to "
        "retry"
    ]
    rows = [
        json.loads(line)
        for line in (tmp_path / "data/raw/genvideo_val/_failures.jsonl").read_text().splitlines()
    ]
    assert [(r["relpath"], r["http_status"], r["permanent"]) for r in rows] == [
        ("train/OpenSora.tar.gz", 403, True)
    ]
    listed = get_source(genvideo_config(server)).list_videos(root)
    assert {(c.label, c.generator) for c in listed} == {
        k for k in facts.by_generator if k != (1, "OpenSora")
    }
    # the host serves it again: the re-run fetches that archive alone and extracts it
    server.clear_faults()
    before = len(server.log.entries)
    again = get_source(genvideo_config(server)).fetch(root, progress=False)
    assert (again.failed, again.downloaded, again.extracted_archives) == (0, 1, 1)
    assert {e.path for e in server.log.entries[before:]} == {opensora}


def test_nothing_to_be_had_stops_the_fetch(modelscope, tmp_path):
    server, _ = modelscope
    for name in ("GenVideo-Val.zip", "Real_part_aa", "Real_part_ab", "OpenSora.tar.gz"):
        server.add_fault(modelscope_relpath(REPO_ID, "master", name), Fault(status=404, times=None))
    with pytest.raises(
        FetchError,
        match=r"4 GenVideo archives could not be downloaded from .*GenVideo-Val.zip: HTTP 404",
    ):
        get_source(genvideo_config(server)).fetch(DataRoot(tmp_path / "data"), progress=False)


def test_killed_download_resumes(modelscope, tmp_path):
    """A fetch killed mid-archive leaves its `.part`; the next fetch asks only for the rest."""
    server, _ = modelscope
    val = modelscope_relpath(REPO_ID, "master", "GenVideo-Val.zip")
    server.add_fault(val, Fault(throttle_bytes_per_s=20_000))
    config = genvideo_config(server)
    config_file = tmp_path / "genvideo_val.yaml"
    config_file.write_text(
        yaml.safe_dump({"name": "genvideo_val", "kind": "genvideo", "source": config.source})
    )
    root = tmp_path / "data"
    script = (
        "from vfcache.layout import DataRoot; from pathlib import Path; "
        "from vfcache.pipelines.sources.base import get_source; "
        "from vfcache.config import load_dataset_config; "
        f"config = load_dataset_config('genvideo_val', {str(config_file)!r}); "
        f"get_source(config).fetch(DataRoot(Path({str(root)!r})), "
        "progress=False)"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    part = root / "raw" / "genvideo_val" / "GenVideo-Val.zip.part"
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size > 4000) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    kept = part.stat().st_size
    assert kept > 4000
    server.clear_faults()
    summary = get_source(config).fetch(DataRoot(root), progress=False)
    assert summary.extracted_archives == 3
    assert (
        server.requests(val)[-1].range_header == f"bytes={kept}-"
        and server.requests(val)[-1].status == 206
    )


@pytest.mark.parametrize(
    "archives, field",
    [
        ([{"files": ["a.zip"], "label": "fake"}], "source.archives[0].generator"),
        ([{"files": ["a.zip"], "label": "maybe", "generator": "x"}], "source.archives[0].label"),
        ([{"files": ["../a.zip"]}], "source.archives[0].files"),
        ([{"files": ["a.zip"], "into": "../up"}], "source.archives[0].into"),
        ([{"files": ["a.zip"], "colour": "red"}], "source.archives[0].colour"),
        ([{"files": ["a.zip"]}, {"files": ["a.zip"]}], "source.archives"),
    ],
)
def test_bad_archive_entries_name_the_field(archives, field):
    with pytest.raises(ConfigError) as err:
        get_source(config_for("genvideo_val", archives=archives))
    assert err.value.field == field and "genvideo_val.yaml" in err.value.source


GENVIDEO_100K_REPO = "cccnju/GenVideo-100K"


def test_make_cache_genvideo100k_folders_and_gifs(tmp_path):
    """GenVideo-100K as it ships: category archives extracting to Real/ and generator folders
    (train_<generator>/, and I2VGEN_XL/ of GIFs); the note in Real/ is counted, not lost."""
    served = tmp_path / "served"
    store = served / modelscope_relpath(GENVIDEO_100K_REPO, "master", "")
    store.mkdir(parents=True)
    facts = build_genvideo100k(store)
    with HttpFileServer(served, route=modelscope_route) as server:
        config = config_for(
            "genvideo100k",
            base_url=server.base_url,
            archives=GENVIDEO_100K_ARCHIVES,
            retries=1,
            splits={
                "sizes": (("train", "5"), ("val", "2"), ("test", "rest")),
                "support": 1,
                "subset": 9,
            },
        )
        root = DataRoot(tmp_path / "data")
        run = run_cache(config, root)
    clips = read_records(root.cache_dir("genvideo100k", "tiny_4x32").clips_parquet, ClipRecord)
    assert (
        clips_by_label_generator(clips)
        == facts.by_generator
        == {
            (0, "real"): 4,
            (1, "I2VGEN_XL"): 3,
            (1, "pika"): 2,
            (1, "SVD"): 2,
            (1, "VideoCrafter"): 2,
            (1, "DynamicCrafter"): 1,
            (1, "SD"): 1,
        }
    )
    # the folders of the release's documented layout (third-party extraction notes)
    raw = root.raw_dir("genvideo100k")
    assert {p.name for p in raw.iterdir() if p.is_dir() and not p.name.startswith(".")} == {
        "Real",
        "I2VGEN_XL",
        "train_pika",
        "train_SVD",
        "train_VideoCrafter",
        "train_DynamicCrafter",
        "train_SD",
    }
    gif_clips = [c for c in clips if c.relpath.endswith(".gif")]
    assert len(gif_clips) == 3 and all(c.padded_frames == 0 for c in gif_clips)
    assert run.manifest.ignored.by_extension == {".txt": 1}
    assert run.manifest.ignored.examples == {".txt": ["Real/readme.txt"]}
    assert json.loads(Path(run.manifest.ignored_path).read_text())["by_extension"] == {".txt": 1}
    # the subset of 9 of the 15 videos, then 5 / 2 / 2 videos
    meta = run.split.meta
    assert (meta.subset.asked, meta.subset.obtained, meta.subset.of) == (9, 9, 15)
    assert {p.part: p.obtained for p in meta.parts} == {
        "train": 5,
        "val": 2,
        "test": 2,
        "support": 2,
        "unassigned": 6,
    }
    assert run.audit.ok, format_table(run.audit)
    assert "subset 9 of 15" in format_table(run.audit)


def test_genvideo100k_dry_run_reads_the_listing_and_flags_what_the_host_lacks(tmp_path):
    """The shipped genvideo100k archives against a host that serves some of them, plus one the
    config does not name: the listing gives the sizes; nothing is downloaded or HEADed."""
    served = tmp_path / "served"
    store = served / modelscope_relpath(GENVIDEO_100K_REPO, "master", "")
    store.mkdir(parents=True)
    build_genvideo100k(store)
    (store / "ZeroScope.tar.gz").unlink(missing_ok=True)
    (store / "Extra.tar.gz").write_bytes(b"x" * 10)
    write_tree_listing(store)
    sizes = {p.name: p.stat().st_size for p in store.iterdir() if p.is_file() and p.name[0] != "_"}
    with HttpFileServer(served, route=modelscope_route) as server:
        config = config_for("genvideo100k", base_url=server.base_url)  # the shipped archive list
        plan = get_source(config).plan_fetch(DataRoot(tmp_path / "data"))
        asked = {(e.method, e.path) for e in server.log.entries}
    assert asked == {("GET", "cccnju/GenVideo-100K/master/_tree.json")}  # the listing route only
    served_names = {f.relpath: f.size_bytes for f in plan.to_fetch}
    assert served_names == {name: size for name, size in sizes.items() if name != "Extra.tar.gz"}
    assert sorted(f.relpath for f in plan.files if f.problem) == [
        "Latte.tar.gz",
        "OpenSora.tar.gz",
        "SEINE.tar.gz",
        "ZeroScope.tar.gz",
    ]
    assert [n for n in plan.notes if "served but not in" in n] == [
        f"served but not in {config.path}: Extra.tar.gz"
    ]
    text = format_plan(plan)
    assert "not available: Latte.tar.gz (not in the listing of cccnju/GenVideo-100K@master)" in text


def test_volume_set_with_a_refused_volume_is_not_extracted(tmp_path):
    served = tmp_path / "served"
    store = served / modelscope_relpath(GENVIDEO_100K_REPO, "master", "")
    store.mkdir(parents=True)
    build_genvideo100k(store)
    with HttpFileServer(served, route=modelscope_route) as server:
        server.add_fault(
            modelscope_relpath(GENVIDEO_100K_REPO, "master", "Real_part_ac"),
            Fault(status=404, times=None),
        )
        config = config_for(
            "genvideo100k", base_url=server.base_url, archives=GENVIDEO_100K_ARCHIVES, retries=0
        )
        root = DataRoot(tmp_path / "data")
        summary = get_source(config).fetch(root, progress=False)
        raw = root.raw_dir("genvideo100k")
        assert summary.failed == 1 and summary.extracted_archives == len(GENVIDEO_100K_ARCHIVES) - 1
        assert [n.split(":")[0] for n in summary.notes] == ["Real_part_ac"]
        assert not (raw / "Real").exists() and (raw / "Real_part_aa").is_file()
        server.clear_faults()
        again = get_source(config).fetch(root, progress=False)
    assert (again.failed, again.downloaded, again.extracted_archives) == (0, 1, 1)
    assert len(list((raw / "Real").glob("*.mp4"))) == 4 and not (raw / "Real_part_aa").exists()
