"""FaceForensics++: the official script's protocol on an FF++-like server, terms, pair groups."""

from __future__ import annotations

import json

import pytest
from vfcache.manifests.audit import format_table
from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import ClipRecord
from vfcache.pipelines.fetch.errors import FetchError
from vfcache.pipelines.sources.base import get_source
from vfcache.pipelines.sources.ffpp import _Components, dfd_actors
from vfcache.pipelines.sources.overrides import apply_fetch_options

from tests.source_pipeline import config_for, part_counts, run_cache
from tests.standins.http_files import HttpFileServer
from tests.standins.layouts import FFPP_PAIRS, build_ffpp
from vfcache.config import DatasetConfig
from vfcache.errors import ConfigError, StageError
from vfcache.layout import DataRoot


@pytest.fixture
def ffpp_server(http_file_server, tmp_path):
    facts = build_ffpp(http_file_server.root / "ffpp", http_file_server.root / "github" / "splits")
    return http_file_server, facts


def ffpp_config(server: HttpFileServer, **source) -> DatasetConfig:
    config = config_for(
        "ffpp",
        methods=["Deepfakes", "Face2Face"],
        splits_url=server.url("github/splits"),
        splits={"support": 1},
        **source,
    )
    return apply_fetch_options(config, server=server.url("ffpp"), accept_terms=True)


def test_no_server_or_no_terms_no_download(tmp_path):
    root = DataRoot(tmp_path)
    with pytest.raises(FetchError, match="form-gated.*--server URL --accept-terms"):
        get_source(config_for("ffpp")).fetch(root, progress=False)
    gated = apply_fetch_options(config_for("ffpp"), server="http://127.0.0.1:9/ff/")
    assert (
        gated.source["server_url"] == "http://127.0.0.1:9/ff"
        and gated.source["accept_terms"] is False
    )
    with pytest.raises(
        FetchError, match=r"http://127.0.0.1:9/ff/webpage/FaceForensics_TOS.pdf.*--accept-terms"
    ):
        get_source(gated).fetch(root, progress=False)
    assert not (tmp_path / "raw").exists()


@pytest.mark.network
def test_make_cache_ffpp_with_the_official_pair_splits(ffpp_server, tmp_path):
    server, facts = ffpp_server
    root = DataRoot(tmp_path / "data")
    config = ffpp_config(server)
    assert config.splits.sizes == (("train", "official"), ("val", "official"), ("test", "official"))
    run = run_cache(config, root)

    gets = [e.path for e in server.log.entries if e.method == "GET"]
    first_video = min(i for i, path in enumerate(gets) if path.endswith(".mp4"))
    assert (
        gets.index("ffpp/v3/misc/filelist.json") < first_video
    )  # the file list first, as the official script does
    assert "ffpp/v3/manipulated_sequences/Face2Face/c23/videos/004_007.mp4" in gets
    assert "ffpp/v3/manipulated_sequences/Face2Face/c23/videos/007_004.mp4" in gets
    assert run.manifest.videos_ok == facts.total == 24
    clips = read_records(root.cache_dir("ffpp", "tiny_4x32").clips_parquet, ClipRecord)
    pair_of = {video: f"{a}_{b}" for a, b in FFPP_PAIRS for video in (a, b, f"{a}_{b}", f"{b}_{a}")}
    for clip in clips:
        stem = clip.relpath.rsplit("/", 1)[1][:-4]
        assert clip.group == pair_of[stem]  # originals a, b and fakes a_b, b_a share their pair
    by_split = {}
    for clip in clips:
        by_split[clip.source_split] = by_split.get(clip.source_split, 0) + 1
    assert by_split == facts.by_split == {"train": 12, "val": 6, "test": 6}
    assert part_counts(run) == {"train": 12, "val": 6, "test": 6, "support": 2}
    assert run.audit.ok, format_table(run.audit)
    assert {c.generator for c in clips} == {"youtube", "Deepfakes", "Face2Face"}


@pytest.mark.network
def test_max_pairs_fetches_a_subset_and_a_rerun_fetches_nothing(ffpp_server, tmp_path):
    server, _ = ffpp_server
    root = DataRoot(tmp_path / "data")
    source = get_source(ffpp_config(server, max_pairs=1))
    first = source.fetch(root, progress=False)
    assert (
        first.downloaded == 2 + 2 * 2 + 1 + 3
    )  # 2 originals, 2 fakes per method, file list, 3 split files
    videos = source.list_videos(root)
    assert sorted(v.relpath.rsplit("/", 1)[1] for v in videos) == [
        "000.mp4",
        "000_003.mp4",
        "000_003.mp4",
        "003.mp4",
        "003_000.mp4",
        "003_000.mp4",
    ]
    assert {v.source_split for v in videos} == {"train"}
    assert source.fetch(root, progress=False).downloaded == 0


@pytest.mark.network
def test_a_fake_whose_ids_are_not_a_pair_is_refused(ffpp_server, tmp_path):
    server, _ = ffpp_server
    root = DataRoot(tmp_path / "data")
    source = get_source(ffpp_config(server))
    source.fetch(root, progress=False)
    stray = root.raw_dir("ffpp") / "manipulated_sequences/Deepfakes/c23/videos/000_004.mp4"
    stray.write_bytes(b"x")
    with pytest.raises(StageError, match="000_004.mp4: ids .* are not one pair"):
        source.list_videos(root)


def test_split_files_that_disagree_are_refused(tmp_path):
    raw = tmp_path / "raw" / "ffpp"
    (raw / "splits").mkdir(parents=True)
    for part, pairs in {"train": [["000", "001"]], "val": [["000", "001"]], "test": []}.items():
        (raw / "splits" / f"{part}.json").write_text(json.dumps(pairs))
    with pytest.raises(StageError, match="pair 000_001 is in both train.json and val.json"):
        get_source(config_for("ffpp")).list_videos(DataRoot(tmp_path))


def test_deepfake_detection_groups_connect_actors():
    assert dfd_actors("01__exit_phone_room") == ["01"]
    assert dfd_actors("01_02__exit_phone_room__YVGY8LOK") == ["01", "02"]
    components = _Components()
    for name in ("01_02__a__X", "03_04__b__Y", "02_05__c__Z"):
        components.union(dfd_actors(name))
    assert components.find("05") == components.find("01") != components.find("03")


@pytest.mark.parametrize(
    "source, field",
    [
        ({"compression": "c0"}, "source.compression"),
        ({"methods": ["DeepFake"]}, "source.methods"),
        ({"originals": "actors", "max_pairs": 0}, "source.max_pairs"),
        ({"server_url": "ftp://x"}, "source.server_url"),
        ({"accept_terms": "yes"}, "source.accept_terms"),
    ],
)
def test_bad_ffpp_options_name_the_field(source, field):
    with pytest.raises(ConfigError) as err:
        get_source(config_for("ffpp", **source))
    assert err.value.field == field


def test_server_option_is_validated():
    with pytest.raises(ConfigError, match="no --server for kind 'sample'"):
        apply_fetch_options(config_for("sample"), server="http://x")
    with pytest.raises(ConfigError, match="an http:// or https:// URL"):
        apply_fetch_options(config_for("ffpp"), server="kaldir.example")
    assert (
        apply_fetch_options(config_for("genvideo_val"), server="http://m/").source["base_url"]
        == "http://m"
    )
    assert "accept_terms" not in apply_fetch_options(config_for("aegis"), accept_terms=True).source


def _refusing_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens: connections are refused."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/ffpp"


@pytest.fixture
def ffpp_two_servers(http_file_server, tmp_path):
    """The working server, and a second one that lost its originals (404, FaceForensics issue
    104)."""
    facts = build_ffpp(http_file_server.root / "ffpp", http_file_server.root / "github" / "splits")
    build_ffpp(http_file_server.root / "ffpp_no_originals", tmp_path / "unused_splits")
    originals = http_file_server.root / "ffpp_no_originals" / "v3" / "original_sequences"
    for path in sorted(originals.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    originals.rmdir()
    return http_file_server, facts


@pytest.mark.network
def test_servers_fall_over_and_each_failure_is_one_line(ffpp_two_servers, tmp_path):
    server, facts = ffpp_two_servers
    refusing = _refusing_url()
    config = apply_fetch_options(
        config_for(
            "ffpp",
            methods=["Deepfakes", "Face2Face"],
            splits_url=server.url("github/splits"),
            retries=0,
        ),
        server=[refusing, server.url("ffpp_no_originals"), server.url("ffpp")],
        accept_terms=True,
    )
    root = DataRoot(tmp_path / "data")
    summary = get_source(config).fetch(root, progress=False)
    videos = get_source(config).list_videos(root)
    assert len(videos) == facts.total
    assert len(summary.notes) == 2  # one line per server that failed something
    assert (
        summary.notes[0].startswith(f"server {refusing}: ")
        and "refused" in summary.notes[0].lower()
    )
    assert summary.notes[1].startswith(
        f"server {server.url('ffpp_no_originals')}: 8 files failed: HTTP 404"
    )
    originals = [
        e.path for e in server.log.entries if "original_sequences" in e.path and e.method == "GET"
    ]
    assert {p.split("/")[0] for p in originals} == {"ffpp_no_originals", "ffpp"}


@pytest.mark.network
def test_no_server_serves_it_is_one_error_naming_each(http_file_server, tmp_path):
    build_ffpp(http_file_server.root / "ffpp", http_file_server.root / "github" / "splits")
    refusing = _refusing_url()
    config = apply_fetch_options(
        config_for("ffpp", splits_url=http_file_server.url("github/splits"), retries=0),
        server=[refusing, http_file_server.url("nothing_here")],
        accept_terms=True,
    )
    with pytest.raises(FetchError) as err:
        get_source(config).fetch(DataRoot(tmp_path / "data"), progress=False)
    message = str(err.value)
    assert "\n" not in message and "could not be downloaded from any of 2 servers" in message
    assert f"server {refusing}: 1 files failed" in message
    assert f"server {http_file_server.url('nothing_here')}: 1 files failed: HTTP 404" in message


@pytest.mark.network
def test_a_first_fetch_remembers_the_server_and_the_terms(ffpp_server, tmp_path):
    """`make cache DATASET=ffpp` after `vfcache fetch ffpp --server URL --accept-terms`: the shipped
    config without either goes on with what the raw folder's fetch record kept."""
    server, facts = ffpp_server
    root = DataRoot(tmp_path / "data")
    get_source(ffpp_config(server)).fetch(root, progress=False)
    plain = config_for(
        "ffpp",
        methods=["Deepfakes", "Face2Face"],
        splits_url=server.url("github/splits"),
        splits={"support": 1},
    )
    assert plain.source.get("server_url") is None and plain.source["accept_terms"] is False
    record = json.loads((root.raw_dir("ffpp") / "fetch.json").read_text())
    assert record["options"] == {"server_urls": [server.url("ffpp")], "accept_terms": True}
    run = run_cache(plain, root)
    assert run.fetch.up_to_date and run.manifest.videos_ok == facts.total
    assert run.audit.ok, format_table(run.audit)
    # another data root has no record: the shipped config still says how to get a server
    with pytest.raises(FetchError, match="form-gated"):
        get_source(plain).fetch(DataRoot(tmp_path / "other"), progress=False)
