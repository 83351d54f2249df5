"""`kind: gasbench`: GASBench's dataset YAML in its three shapes, fetched from the Hub stand-in
(mp4 under sub-paths, zip, tar.gz, video-bytes parquet, frames-parquet) and cached end to end."""

from __future__ import annotations

import json
import logging
from collections import Counter

import pytest
import yaml
from click.testing import CliRunner
from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import ClipRecord, VideoRecord
from vfcache.pipelines.decode.media import probe_media
from vfcache.pipelines.sources.base import get_source
from vfcache.pipelines.sources.gasbench_yaml import read_gasbench_yaml

from tests.standins.gasbench_repos import (
    EXPECTED,
    MEDIA_REPO,
    PARQUET_REPO,
    serve_gasbench,
    write_gasbench_yamls,
)
from vfcache.cli import cli
from vfcache.config import parse_dataset_config
from vfcache.errors import ConfigError
from vfcache.layout import DataRoot


def _config(tmp_path, yamls, **source):
    return parse_dataset_config(
        {
            "name": "gasbench-videos",
            "kind": "gasbench",
            "clip_spec": "gasbench_16x224",
            "source": {"config": [str(p) for p in yamls], **source},
            "splits": {"sizes": {"test": "rest"}, "stratify": ["label"]},
        },
        str(tmp_path / "gasbench-videos.yaml"),
    )


def test_split_files_give_video_entries_labels_and_generators(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        parsed = read_gasbench_yaml(write_gasbench_yamls(tmp_path))
    assert {e.name: (e.label, e.generator) for e in parsed.entries} == {
        name: facts[:2] for name, facts in EXPECTED.items()
    }
    assert parsed.skipped == {"image": 1}
    assert parsed.unknown_keys == ("generator_variant",)
    assert "generator_variant" in caplog.text and "synthetic_videos.yaml" in caplog.text


def test_legacy_shapes_video_lists_and_single_modality_file(tmp_path):
    entry = {"name": "a", "path": "o/r", "media_type": "synthetic", "source_format": "zip"}
    legacy = tmp_path / "all.yaml"
    legacy.write_text(yaml.safe_dump({"image": [{**entry, "name": "i"}], "video": [entry]}))
    single = tmp_path / "videos.yaml"
    single.write_text(yaml.safe_dump({"datasets": [{**entry, "name": "b"}]}))
    parsed = read_gasbench_yaml([legacy, single])
    assert [e.name for e in parsed.entries] == ["a", "b"] and parsed.skipped == {"image": 1}
    assert parsed.entries[0].archives_per_dataset == 5  # GASBench's defaults
    unnamed = tmp_path / "datasets.yaml"  # neither the file nor its name says the modality
    unnamed.write_text(yaml.safe_dump({"datasets": [entry]}))
    with pytest.raises(ConfigError, match="modality"):
        read_gasbench_yaml([unnamed])


@pytest.mark.parametrize(
    "entry, field",
    [
        ({"name": "x", "path": "o/r", "modality": "video", "media_type": "fake"}, "media_type"),
        ({"name": "x", "modality": "video", "media_type": "real"}, "path"),
        ({"name": "x", "path": "o/r", "modality": "video", "media_type": "real",
          "archives_per_dataset": 0}, "archives_per_dataset"),
        ({"name": "../x", "path": "o/r", "modality": "video", "media_type": "real"}, "name"),
        ({"name": "x", "path": "o/r", "modality": "video", "media_type": "real",
          "filter_column": "c"}, "filter_value"),
    ],
)  # fmt: skip
def test_broken_entries_name_the_field(tmp_path, entry, field):
    path = tmp_path / "real_videos.yaml"
    path.write_text(yaml.safe_dump({"datasets": [entry]}))
    with pytest.raises(ConfigError, match=field):
        read_gasbench_yaml([path])


@pytest.mark.network
def test_fetch_every_shape_at_one_commit_per_repo(hf_hub, tmp_path):
    serve_gasbench(hf_hub, tmp_path / "repos")
    config = _config(tmp_path, write_gasbench_yamls(tmp_path), endpoint=hf_hub.endpoint)
    source, root = get_source(config), DataRoot(tmp_path / "data")
    plan = source.plan_fetch(root)  # the dry run: every chosen file, none present yet
    assert len(plan.files) == 9 and not any(f.present for f in plan.files)
    assert not any("thumbs" in f.relpath or "README" in f.relpath for f in plan.files)
    summary = source.fetch(root, progress=False)
    assert summary.extracted_archives == 2 and not summary.up_to_date
    videos = source.list_videos(root)
    found = Counter((v.domain, v.label, v.generator) for v in videos)
    assert found == {(name, lab, gen): n for name, (lab, gen, n) in EXPECTED.items()}
    raw = source.raw_dir(root)
    assert not any("thumbs" in v.relpath for v in videos)
    frames = [v for v in videos if v.domain == "frames_parquet"]
    assert sorted(probe_media(raw, v.relpath).num_frames for v in frames) == [5, 6]
    commits = {}
    for entry in source.entries:
        record = json.loads((raw / entry.name / "fetch.json").read_text())
        commits.setdefault(entry.path, set()).add(record["commit_sha"])
        assert all(len(f["sha256"]) == 64 for f in record["files"])
    assert all(len(shas) == 1 for shas in commits.values())
    assert len(commits[MEDIA_REPO]) == 1 and len(commits[PARQUET_REPO]) == 1
    requests = len(hf_hub.hub_requests())
    again = source.fetch(root, progress=False)  # a re-run touches nothing, not even the Hub
    assert again.up_to_date and len(hf_hub.hub_requests()) == requests
    assert Counter(v.relpath for v in source.list_videos(root)) == Counter(
        v.relpath for v in videos
    )


@pytest.mark.network
def test_vfcache_cache_gasbench_videos_end_to_end(hf_hub, tmp_path):
    serve_gasbench(hf_hub, tmp_path / "repos")
    yamls = write_gasbench_yamls(tmp_path)
    config_file = tmp_path / "gasbench-videos.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "name": "gasbench-videos",
                "kind": "gasbench",
                "clip_spec": "gasbench_16x224",
                "source": {"config": [p.name for p in yamls], "endpoint": hf_hub.endpoint},
                "splits": {"sizes": {"test": "rest"}, "stratify": ["label"]},
            }
        )
    )
    root = tmp_path / "data"
    args = ["--root", str(root), "--workers", "1", "--no-progress", "cache", "gasbench-videos"]
    result = CliRunner().invoke(cli, [*args, "--config", str(config_file)], prog_name="vfcache")
    assert result.exit_code == 0, result.output
    cache = DataRoot(root).cache_dir("gasbench-videos", "gasbench_16x224")
    videos = read_records(cache.videos_parquet, VideoRecord)
    assert len(videos) == sum(n for _, _, n in EXPECTED.values())
    clips = read_records(cache.clips_parquet, ClipRecord)
    assert {(c.domain, c.label) for c in clips} == {(n, f[0]) for n, f in EXPECTED.items()}
    # bad GASBench YAML: one line, exit 2
    yamls[1].write_text(yaml.safe_dump({"datasets": [{"name": "x", "path": "o/r",
                                                       "modality": "video"}]}))  # fmt: skip
    bad = CliRunner().invoke(cli, [*args, "--config", str(config_file)], prog_name="vfcache")
    assert bad.exit_code == 2, bad.output
    lines = [line for line in bad.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and "media_type" in lines[0]
