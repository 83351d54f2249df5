"""WebVid: a CSV of rotting URLs; 403/404 recorded, not asked again, never counted as negatives."""

from __future__ import annotations

import pytest
from vfcache.manifests.audit import format_table
from vfcache.pipelines.fetch.errors import FetchError
from vfcache.pipelines.sources.base import get_source
from vfcache.pipelines.sources.webvid import WebVidSource

from tests.source_pipeline import config_for, part_counts, run_cache
from tests.standins.http_files import Fault
from tests.standins.layouts import build_webvid
from vfcache.errors import ConfigError, StageError
from vfcache.layout import DataRoot

pytestmark = pytest.mark.network

CSV = "webvid/results_2M_train.csv"


@pytest.fixture
def webvid_server(http_file_server):
    facts = build_webvid(http_file_server.root, http_file_server.base_url, count=10, missing=(3,))
    http_file_server.add_fault("stock/1005.mp4", Fault(status=403, times=None))
    http_file_server.add_fault("stock/1006.mp4", Fault(status=503, times=1))  # transient: retried
    return http_file_server, facts


def webvid_config(server, **source):
    source = {"max_videos": 10, "retries": 2, **source}
    return config_for(
        "webvid",
        csv_repo=None,
        csv_revision=None,
        csv_patterns=None,
        csv_urls=[server.url(CSV)],
        splits={"sizes": (("train", "0.5"), ("val", "0.25"), ("test", "rest"))},
        **source,
    )


def test_make_cache_webvid_with_rotten_urls(webvid_server, tmp_path):
    server, facts = webvid_server
    root = DataRoot(tmp_path / "data")
    run = run_cache(webvid_config(server), root)
    assert run.fetch.failed == 2  # 1003 answers 404, 1005 answers 403
    assert [r.status for r in server.requests("stock/1006.mp4")] == [503, 200]
    assert (
        run.manifest.videos_total == facts.total - 1 == 8
    )  # 404 and 403 are left out, not failed rows
    assert run.manifest.videos_failed == 0 and run.extract.clips == 8
    videos = get_source(webvid_config(server)).list_videos(root)
    assert {v.group for v in videos} == {str(1000 + i) for i in range(10)} - {"1003", "1005"}
    assert {(v.label, v.generator, v.domain) for v in videos} == {(0, "webvid", "webvid")}
    assert videos[0].relpath == "videos/000_003/1000.mp4"
    assert part_counts(run) == {"train": 4, "val": 2, "test": 2, "support": 0}
    assert run.audit.ok, format_table(run.audit)

    server.log.clear()
    again = get_source(webvid_config(server)).fetch(root, progress=False)
    assert again.failed == 2 and again.downloaded == 0
    assert not server.requests("stock/1003.mp4") and not server.requests(
        "stock/1005.mp4"
    )  # recorded, not asked


def test_max_videos_takes_the_first_rows(webvid_server, tmp_path):
    server, _ = webvid_server
    root = DataRoot(tmp_path / "data")
    source = get_source(webvid_config(server, max_videos=3))
    summary = source.fetch(root, progress=False)
    assert summary.downloaded == 3 and summary.failed == 0
    assert [v.group for v in source.list_videos(root)] == ["1000", "1001", "1002"]


def test_csv_without_the_columns_is_refused(http_file_server, tmp_path):
    (http_file_server.root / "webvid").mkdir()
    (http_file_server.root / CSV).write_text("id,url\n1,http://x/1.mp4\n")
    with pytest.raises(
        StageError, match=r"without columns \['videoid', 'contentUrl', 'page_dir'\]"
    ):
        get_source(webvid_config(http_file_server)).fetch(DataRoot(tmp_path), progress=False)


def test_csv_from_a_hub_mirror(hf_hub, http_file_server, tmp_path):
    build_webvid(http_file_server.root, http_file_server.base_url, count=4, missing=())
    mirror = tmp_path / "mirror" / "data" / "train" / "partitions"
    mirror.mkdir(parents=True)
    (mirror / "0000.csv").write_bytes((http_file_server.root / CSV).read_bytes())
    hf_hub.add_commit("TempoFunk/webvid-10M", tmp_path / "mirror")
    root = DataRoot(tmp_path / "data")
    source = get_source(config_for("webvid", max_videos=4))
    summary = source.fetch(root, progress=False)
    assert summary.downloaded == 4 and summary.source.startswith("webvid TempoFunk/webvid-10M@")
    assert len(source.list_videos(root)) == 4


def test_exactly_one_csv_origin():
    with pytest.raises(ConfigError, match="exactly one of source.csv_repo"):
        WebVidSource(config_for("webvid", csv_urls=["http://x/a.csv"]))
    with pytest.raises(ConfigError) as err:
        WebVidSource(config_for("webvid", csv_repo="no-slash"))
    assert err.value.field == "source.csv_repo"


def test_every_url_failing_is_an_error_not_a_note(http_file_server, tmp_path):
    build_webvid(http_file_server.root, http_file_server.base_url, count=3, missing=(0, 1, 2))
    config = config_for(
        "webvid",
        csv_repo=None,
        csv_revision=None,
        csv_patterns=None,
        csv_urls=[http_file_server.url("webvid/results_2M_train.csv")],
        retries=0,
    )
    with pytest.raises(
        FetchError, match=r"none of the 3 WebVid videos selected could be downloaded \(HTTP 404\)"
    ):
        get_source(config).fetch(DataRoot(tmp_path / "data"), progress=False)
