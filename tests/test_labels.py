"""Labels, generators, domains and groups from folder layout; the local source."""

from __future__ import annotations

from pathlib import Path

import pytest
from vfcache.manifests.records import LABEL_FAKE, LABEL_REAL
from vfcache.pipelines.sources.base import get_source
from vfcache.pipelines.sources.labels import candidates_from_layout, match_path, parse_pattern

from vfcache.config import LayoutRule, parse_dataset_config
from vfcache.errors import ConfigError, StageError
from vfcache.layout import DataRoot


def touch(root: Path, *relpaths: str) -> None:
    for relpath in relpaths:
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not necessarily a video")


def by_relpath(candidates):
    return {c.relpath: c for c in candidates}


def test_domain_label_generator_pattern(tmp_path):
    touch(
        tmp_path,
        "studio/real/camera/a.mp4",
        "studio/fake/diffgen/b.webm",
        "street/fake/warpnet/c.avi",
        "truth.json",
        "studio/real/camera/notes.txt",
        "fetch.json",
    )
    rule = LayoutRule(
        pattern="{domain}/{label}/{generator}/{name}", group="{domain}/{generator}/{name}"
    )
    found = candidates_from_layout(tmp_path, rule, dataset="ds", default_domain="ignored")
    assert [c.relpath for c in found] == [
        "street/fake/warpnet/c.avi",
        "studio/fake/diffgen/b.webm",
        "studio/real/camera/a.mp4",
    ]
    got = by_relpath(found)
    a = got["studio/real/camera/a.mp4"]
    assert (a.label, a.generator, a.domain, a.group, a.source_split) == (
        LABEL_REAL,
        "camera",
        "studio",
        "studio/camera/a",
        None,
    )
    c = got["street/fake/warpnet/c.avi"]
    assert (c.label, c.generator, c.domain, c.group) == (
        LABEL_FAKE,
        "warpnet",
        "street",
        "street/warpnet/c",
    )


def test_aliases_real_generator_fixed_domain_and_defaults(tmp_path):
    touch(tmp_path, "original/x.mp4", "manipulated/y.MP4", "manipulated/z.mkv")
    rule = LayoutRule(
        pattern="{label}/{name}",
        real=("original",),
        fake=("manipulated", "synthetic"),
        real_generator="youtube",
        domain="ffpp",
        group="{dataset}:{label}:{name}",
    )
    got = by_relpath(candidates_from_layout(tmp_path, rule, dataset="ff", default_domain="other"))
    assert got["original/x.mp4"].generator == "youtube"
    assert got["manipulated/y.MP4"].generator == "unknown"  # no {generator} in the pattern
    assert {c.domain for c in got.values()} == {"ffpp"}
    assert got["manipulated/z.mkv"].group == "ff:fake:z"
    rule_without_domain = LayoutRule(
        pattern="{label}/{name}", real=("original",), fake=("manipulated",)
    )
    got = by_relpath(
        candidates_from_layout(
            tmp_path, rule_without_domain, dataset="ff", default_domain="fallback"
        )
    )
    assert {c.domain for c in got.values()} == {"fallback"}
    assert got["original/x.mp4"].generator == "real"


def test_wildcards_literal_and_split(tmp_path):
    touch(
        tmp_path,
        "v1/data/train/real/cam/a.mp4",
        "deep/er/data/test/fake/gen/b.mp4",
        "data/val/real/cam/c.mp4",
    )
    rule = LayoutRule(pattern="{**}/data/{split}/{label}/{*}/{name}")
    got = by_relpath(candidates_from_layout(tmp_path, rule, dataset="ds", default_domain="d"))
    assert got["v1/data/train/real/cam/a.mp4"].source_split == "train"
    assert got["deep/er/data/test/fake/gen/b.mp4"].source_split == "test"
    assert got["data/val/real/cam/c.mp4"].generator == "real"  # {*} is ignored, not a generator
    assert got["deep/er/data/test/fake/gen/b.mp4"].group == "b"


def test_hidden_and_temp_files_are_ignored_broken_videos_are_kept(tmp_path):
    touch(
        tmp_path, "real/a.mp4", "real/.hidden.mp4", ".cache/real/b.mp4", "real/c.mp4.tmp-12-ab.mp4"
    )
    (tmp_path / "real/broken.mp4").write_bytes(b"")
    got = candidates_from_layout(
        tmp_path, LayoutRule(pattern="{label}/{name}"), dataset="ds", default_domain="d"
    )
    assert [c.relpath for c in got] == ["real/a.mp4", "real/broken.mp4"]


def test_unknown_label_folder_names_path_and_accepted_names(tmp_path):
    touch(tmp_path, "real/a.mp4", "maybe/b.mp4")
    with pytest.raises(StageError) as err:
        candidates_from_layout(
            tmp_path,
            LayoutRule(pattern="{label}/{name}", fake=("fake", "deepfake")),
            dataset="ds",
            default_domain="d",
        )
    message = str(err.value)
    assert "maybe/b.mp4" in message and "'maybe'" in message
    assert "['real']" in message and "['fake', 'deepfake']" in message


def test_unmatched_paths_are_listed(tmp_path):
    touch(tmp_path, "real/gen/a.mp4", "real/b.mp4", "c.mp4")
    with pytest.raises(StageError) as err:
        candidates_from_layout(
            tmp_path,
            LayoutRule(pattern="{label}/{generator}/{name}"),
            dataset="ds",
            default_domain="d",
        )
    message = str(err.value)
    assert "2 video file(s)" in message and "real/b.mp4" in message and "c.mp4" in message
    assert "real/gen/a.mp4" not in message


@pytest.mark.parametrize(
    "pattern, problem",
    [
        ("{label}/{name}/{generator}", "must end with {name}"),
        ("{domain}/{name}", "no {label}"),
        ("{label}/{**}/{name}", "only allowed as the first"),
        ("{label}/{colour}/{name}", "unknown field {colour}"),
        ("{label}/x{generator}/{name}", "mixes text"),
        ("{label}/{label}/{name}", "twice"),
    ],
)
def test_bad_patterns(pattern, problem):
    with pytest.raises(ValueError, match=problem.replace("{", r"\{").replace("}", r"\}")):
        parse_pattern(pattern)


def test_bad_group_template_and_overlapping_names(tmp_path):
    touch(tmp_path, "real/a.mp4")
    with pytest.raises(StageError, match="colour"):
        candidates_from_layout(
            tmp_path,
            LayoutRule(pattern="{label}/{name}", group="{colour}"),
            dataset="ds",
            default_domain="d",
        )
    with pytest.raises(StageError, match="both real and fake"):
        candidates_from_layout(
            tmp_path,
            LayoutRule(pattern="{label}/{name}", real=("x",), fake=("x",)),
            dataset="ds",
            default_domain="d",
        )


def test_match_path_strips_extension_and_checks_depth():
    pattern = parse_pattern("{label}/{generator}/{name}")
    assert match_path("fake/g/clip.01.mp4", pattern) == {
        "label": "fake",
        "generator": "g",
        "name": "clip.01",
    }
    assert match_path("x/fake/g/a.mp4", pattern) is None
    assert match_path("g/a.mp4", pattern) is None


def test_missing_raw_folder(tmp_path):
    with pytest.raises(StageError, match="vfcache fetch ds"):
        candidates_from_layout(tmp_path / "nope", LayoutRule(), dataset="ds", default_domain="d")


def local_config(path: str, **source) -> object:
    return parse_dataset_config(
        {
            "name": "mine",
            "kind": "local",
            "domain": "lab",
            "source": {"path": path, **source},
            "layout": {"pattern": "{label}/{generator}/{name}", "real": ["pristine"]},
        },
        "mine.yaml",
    )


def test_local_source(tmp_path):
    touch(tmp_path / "videos", "pristine/cam/a.mp4", "fake/gen/b.webm", "fake/gen/c.avi")
    source = get_source(local_config(str(tmp_path / "videos"), extensions=[".mp4", "webm"]))
    root = DataRoot(tmp_path / "data")
    source.fetch(root, progress=False)
    assert source.raw_dir(root) == tmp_path / "videos"
    found = source.list_videos(root)
    assert [(c.relpath, c.label, c.domain) for c in found] == [
        ("fake/gen/b.webm", 1, "lab"),
        ("pristine/cam/a.mp4", 0, "lab"),
    ]


def test_local_source_errors(tmp_path):
    with pytest.raises(StageError, match="not a folder"):
        get_source(local_config(str(tmp_path / "missing"))).fetch(
            DataRoot(tmp_path), progress=False
        )
    with pytest.raises(ConfigError, match="source.path"):
        get_source(parse_dataset_config({"name": "m", "kind": "local"}, "m.yaml"))
    with pytest.raises(ConfigError, match="source.url"):
        get_source(local_config(str(tmp_path), url="http://x"))
    with pytest.raises(ConfigError, match="source.extensions"):
        get_source(local_config(str(tmp_path), extensions=[3]))


def test_sample_source_generates_into_the_raw_folder_and_lists_by_layout(tmp_path, monkeypatch):
    from vfcache.pipelines.sources import sample_source

    from vfcache.config import load_dataset_config

    calls = []
    monkeypatch.setattr(
        sample_source, "generate_sample", lambda raw_dir, **kw: calls.append((raw_dir, kw))
    )
    config = load_dataset_config("sample")
    source = get_source(config)
    root = DataRoot(tmp_path)
    source.fetch(root, progress=False)
    assert calls == [(tmp_path / "raw" / "sample", {"workers": 2, "progress": False})]
    touch(
        root.raw_dir("sample"),
        "studio/real/camera/a.mp4",
        "street/fake/warpnet/b.webm",
        "truth.json",
    )
    found = by_relpath(source.list_videos(root))
    assert set(found) == {"studio/real/camera/a.mp4", "street/fake/warpnet/b.webm"}
    assert (
        found["street/fake/warpnet/b.webm"].domain,
        found["street/fake/warpnet/b.webm"].group,
    ) == ("street", "street/warpnet/b")
    with pytest.raises(ConfigError, match="source.path"):
        get_source(
            parse_dataset_config({"name": "s", "kind": "sample", "source": {"path": "x"}}, "s.yaml")
        )
