"""vfcache.pipelines.fetch.http against the local file server with injected faults."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from vfcache.pipelines.fetch.http import (
    FAILURES_NAME,
    DownloadItem,
    backoff_delay_s,
    download_files,
    parse_content_range,
)

from tests.standins.http_files import Fault, HttpFileServer

pytestmark = pytest.mark.network

REPO_ROOT = Path(__file__).resolve().parents[1]


def _serve(server: HttpFileServer, relpath: str, size_bytes: int) -> DownloadItem:
    payload = os.urandom(size_bytes)
    target = server.root / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    return DownloadItem(server.url(relpath), relpath, size_bytes, digest)


def _fetch(items, dest, **kwargs):
    kwargs = {"backoff_s": 0.01, "progress": False, **kwargs}
    return download_files(items, dest, **kwargs)


def _failures(dest: Path) -> list[dict]:
    return [json.loads(line) for line in (dest / FAILURES_NAME).read_text().splitlines()]


def _leftover_parts(dest: Path) -> list[Path]:
    return sorted(dest.rglob("*.part"))


def test_downloads_nested_files_and_verifies_them(http_file_server, tmp_path):
    items = [
        _serve(http_file_server, "a/b/one.bin", 70_000),
        _serve(http_file_server, "two.bin", 1),
        _serve(http_file_server, "a/empty.bin", 0),
    ]
    dest = tmp_path / "dest"
    report = _fetch(items, dest)
    assert report.all_ok and len(report.ok) == 3 and not report.skipped
    for item in items:
        served = http_file_server.root / item.relpath
        assert (dest / item.relpath).read_bytes() == served.read_bytes()
    assert _failures(dest) == [] and _leftover_parts(dest) == []


def test_concurrency_is_bounded(http_file_server, tmp_path):
    items = [_serve(http_file_server, f"f{i}.bin", 1000) for i in range(6)]
    for item in items:
        http_file_server.add_fault(item.relpath, Fault(delay_s=0.15))
    report = _fetch(items, tmp_path / "dest", concurrency=2)
    assert report.all_ok
    assert http_file_server.max_in_flight == 2


def test_500_then_200_is_retried(http_file_server, tmp_path):
    item = _serve(http_file_server, "flaky.bin", 5000)
    http_file_server.add_fault("flaky.bin", Fault(status=500, times=2))
    report = _fetch([item], tmp_path / "dest")
    assert report.all_ok and report.ok[0].attempts == 3
    assert [r.status for r in http_file_server.requests("flaky.bin")] == [500, 500, 200]


def test_persistent_500_gives_up_after_retries(http_file_server, tmp_path):
    item = _serve(http_file_server, "down.bin", 5000)
    http_file_server.add_fault("down.bin", Fault(status=503, times=None))
    dest = tmp_path / "dest"
    report = _fetch([item], dest, retries=2)
    (failure,) = report.failed
    assert failure.attempts == 3 and not failure.permanent and "HTTP 503" in failure.reason
    assert len(http_file_server.requests("down.bin")) == 3
    assert _failures(dest)[0]["relpath"] == "down.bin"
    assert not (dest / "down.bin").exists()


@pytest.mark.parametrize("status", [403, 404, 410])
def test_permanent_status_is_recorded_once_and_not_retried(http_file_server, tmp_path, status):
    good = _serve(http_file_server, "good.bin", 100)
    gone = DownloadItem(http_file_server.url("gone.mp4"), "gone.mp4")
    http_file_server.add_fault("gone.mp4", Fault(status=status, times=None))
    dest = tmp_path / "dest"
    report = _fetch([good, gone], dest)
    assert [o.relpath for o in report.ok] == ["good.bin"]
    (failure,) = report.failed
    assert failure.permanent and failure.http_status == status and failure.attempts == 1
    assert len(http_file_server.requests("gone.mp4")) == 1
    rows = _failures(dest)
    assert [(r["relpath"], r["http_status"], r["permanent"]) for r in rows] == [
        ("gone.mp4", status, True)
    ]


def test_truncated_body_is_resumed_with_range(http_file_server, tmp_path):
    item = _serve(http_file_server, "big.bin", 300_000)
    http_file_server.add_fault("big.bin", Fault(truncate_after_bytes=100_000))
    dest = tmp_path / "dest"
    report = _fetch([item], dest)
    assert report.all_ok and report.ok[0].resumed
    requests = http_file_server.requests("big.bin")
    assert [(r.range_header, r.status) for r in requests] == [(None, 200), ("bytes=100000-", 206)]
    assert hashlib.sha256((dest / "big.bin").read_bytes()).hexdigest() == item.sha256
    assert report.ok[0].bytes_received == 300_000


def test_server_ignoring_range_restarts_from_zero(http_file_server, tmp_path):
    item = _serve(http_file_server, "big.bin", 200_000)
    http_file_server.add_fault("big.bin", Fault(truncate_after_bytes=50_000))
    http_file_server.add_fault("big.bin", Fault(ignore_range=True))
    dest = tmp_path / "dest"
    report = _fetch([item], dest)
    assert report.all_ok and not report.ok[0].resumed
    assert [(r.range_header, r.status) for r in http_file_server.requests("big.bin")] == [
        (None, 200),
        ("bytes=50000-", 200),
    ]
    assert hashlib.sha256((dest / "big.bin").read_bytes()).hexdigest() == item.sha256


def test_leftover_part_from_an_earlier_run_is_resumed(http_file_server, tmp_path):
    item = _serve(http_file_server, "v/clip.mp4", 90_000)
    dest = tmp_path / "dest"
    (dest / "v").mkdir(parents=True)
    served = (http_file_server.root / "v/clip.mp4").read_bytes()
    (dest / "v/clip.mp4.part").write_bytes(served[:40_000])
    report = _fetch([item], dest)
    assert report.all_ok and report.ok[0].bytes_received == 50_000
    assert [r.range_header for r in http_file_server.requests("v/clip.mp4")] == ["bytes=40000-"]
    assert _leftover_parts(dest) == []


def test_complete_part_of_unknown_size_is_finished_without_refetching(http_file_server, tmp_path):
    served = _serve(http_file_server, "u.bin", 5000)
    item = DownloadItem(served.url, "u.bin")  # no size, no sha256: only the server knows
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "u.bin.part").write_bytes((http_file_server.root / "u.bin").read_bytes())
    report = _fetch([item], dest)
    assert report.all_ok and report.ok[0].bytes_received == 0
    assert [(r.range_header, r.status) for r in http_file_server.requests("u.bin")] == [
        ("bytes=5000-", 416)
    ]
    assert (dest / "u.bin").read_bytes() == (http_file_server.root / "u.bin").read_bytes()


def test_overlong_part_is_discarded_and_fetched_again(http_file_server, tmp_path):
    served = _serve(http_file_server, "o.bin", 5000)
    item = DownloadItem(served.url, "o.bin")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "o.bin.part").write_bytes(os.urandom(6000))
    report = _fetch([item], dest)
    assert report.all_ok and report.ok[0].attempts == 2
    assert [(r.range_header, r.status) for r in http_file_server.requests("o.bin")] == [
        ("bytes=6000-", 416),
        (None, 200),
    ]
    assert (dest / "o.bin").read_bytes() == (http_file_server.root / "o.bin").read_bytes()


def test_retry_after_is_honoured(http_file_server, tmp_path):
    item = _serve(http_file_server, "busy.bin", 100)
    http_file_server.add_fault("busy.bin", Fault(status=429, retry_after_s=1))
    started = time.monotonic()
    report = _fetch([item], tmp_path / "dest")
    assert report.all_ok and report.ok[0].attempts == 2
    assert time.monotonic() - started >= 0.95


def test_corrupted_body_is_detected_and_fetched_again(http_file_server, tmp_path):
    item = _serve(http_file_server, "c.bin", 20_000)
    http_file_server.add_fault("c.bin", Fault(corrupt=True))
    dest = tmp_path / "dest"
    report = _fetch([item], dest)
    assert report.all_ok and report.ok[0].attempts == 2
    assert [r.range_header for r in http_file_server.requests("c.bin")] == [None, None]
    assert hashlib.sha256((dest / "c.bin").read_bytes()).hexdigest() == item.sha256


@pytest.mark.parametrize("field", ["sha256", "size_bytes"])
def test_wrong_expectation_fails_and_leaves_nothing(http_file_server, tmp_path, field):
    item = _serve(http_file_server, "x.bin", 3000)
    wrong = {"sha256": "0" * 64, "size_bytes": 2999}[field]
    item = dataclasses.replace(item, **{field: wrong})
    dest = tmp_path / "dest"
    report = _fetch([item], dest, retries=1)
    (failure,) = report.failed
    assert "mismatch" in failure.reason and failure.attempts == 2
    assert not (dest / "x.bin").exists() and _leftover_parts(dest) == []


def test_timeout_is_retried(http_file_server, tmp_path):
    item = _serve(http_file_server, "slow.bin", 1000)
    http_file_server.add_fault("slow.bin", Fault(delay_s=1.0))
    report = _fetch([item], tmp_path / "dest", timeout_s=0.3)
    assert report.all_ok and report.ok[0].attempts == 2


def test_rerun_fetches_nothing(http_file_server, tmp_path):
    items = [_serve(http_file_server, f"d/{i}.bin", 4000) for i in range(3)]
    items.append(DownloadItem(http_file_server.url("nosize.bin"), "nosize.bin"))
    (http_file_server.root / "nosize.bin").write_bytes(b"abc")
    dest = tmp_path / "dest"
    assert _fetch(items, dest).all_ok
    before = len(http_file_server.log.entries)
    report = _fetch(items, dest)
    assert len(report.skipped) == 4 and not report.ok and not report.failed
    assert len(http_file_server.log.entries) == before


def test_rerun_refetches_only_damaged_files(http_file_server, tmp_path):
    items = [_serve(http_file_server, f"{i}.bin", 4000) for i in range(3)]
    dest = tmp_path / "dest"
    _fetch(items, dest)
    damaged = dest / "1.bin"
    damaged.write_bytes(b"\0" * 4000)  # same size, other bytes: only the sha256 can tell
    (dest / "2.bin").write_bytes(b"short")
    http_file_server.log.clear()
    report = _fetch(items, dest)
    assert sorted(o.relpath for o in report.ok) == ["1.bin", "2.bin"]
    assert [o.relpath for o in report.skipped] == ["0.bin"]
    assert {e.path for e in http_file_server.log.entries} == {"1.bin", "2.bin"}
    assert hashlib.sha256(damaged.read_bytes()).hexdigest() == items[1].sha256


def test_recorded_permanent_failures_can_be_skipped(http_file_server, tmp_path):
    gone = DownloadItem(http_file_server.url("gone.mp4"), "gone.mp4")
    http_file_server.add_fault("gone.mp4", Fault(status=404, times=None))
    dest = tmp_path / "dest"
    _fetch([gone], dest)
    report = _fetch([gone], dest, skip_recorded_permanent=True)
    assert [o.relpath for o in report.skipped] == ["gone.mp4"] and not report.failed
    assert len(http_file_server.requests("gone.mp4")) == 1
    assert [r["relpath"] for r in _failures(dest)] == ["gone.mp4"]  # still listed
    _fetch([gone], dest)  # without the flag it is asked again
    assert len(http_file_server.requests("gone.mp4")) == 2


def _start_download_in_child(item: DownloadItem, dest: Path, min_bytes: int):
    """Run download_files in a subprocess; return it once its part file has `min_bytes`."""
    script = textwrap.dedent(f"""
        from vfcache.pipelines.fetch.http import DownloadItem, download_files
        item = DownloadItem({item.url!r}, {item.relpath!r}, {item.size_bytes}, {item.sha256!r})
        download_files([item], {str(dest)!r}, progress=False)
    """)
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stderr=subprocess.DEVNULL,
    )
    part = dest / f"{item.relpath}.part"
    deadline = time.monotonic() + 20
    while not (part.exists() and part.stat().st_size >= min_bytes):
        assert child.poll() is None and time.monotonic() < deadline, "download never got going"
        time.sleep(0.02)
    return child, part


def test_ctrl_c_stops_workers_promptly_and_keeps_the_part(http_file_server, tmp_path):
    item = _serve(http_file_server, "long.bin", 2_000_000)
    http_file_server.add_fault("long.bin", Fault(throttle_bytes_per_s=250_000))
    dest = tmp_path / "dest"
    child, part = _start_download_in_child(item, dest, 50_000)
    child.send_signal(signal.SIGINT)
    started = time.monotonic()
    assert child.wait(timeout=15) != 0
    assert time.monotonic() - started < 3.0  # the rest of the file would take over 7 s
    assert part.stat().st_size < item.size_bytes and not (dest / "long.bin").exists()


def test_killed_download_resumes_on_rerun(http_file_server, tmp_path):
    item = _serve(http_file_server, "long.bin", 2_000_000)
    http_file_server.add_fault("long.bin", Fault(throttle_bytes_per_s=1_000_000))
    dest = tmp_path / "dest"
    child, part = _start_download_in_child(item, dest, 300_000)
    child.send_signal(signal.SIGKILL)
    child.wait()
    kept = part.stat().st_size
    assert 0 < kept < item.size_bytes and not (dest / "long.bin").exists()

    report = _fetch([item], dest)
    assert report.all_ok and report.ok[0].resumed
    assert report.ok[0].bytes_received == item.size_bytes - kept
    assert http_file_server.requests("long.bin")[-1].range_header == f"bytes={kept}-"
    assert hashlib.sha256((dest / "long.bin").read_bytes()).hexdigest() == item.sha256


@pytest.mark.parametrize("relpath", ["../x.bin", "/etc/x.bin", "a/../../x", "", "a\\b", "x.part"])
def test_unsafe_relpath_is_refused(tmp_path, relpath):
    with pytest.raises(ValueError, match="relpath"):
        download_files([DownloadItem("http://127.0.0.1:1/x", relpath)], tmp_path, progress=False)


def test_duplicate_relpath_and_bad_scheme_are_refused(tmp_path):
    with pytest.raises(ValueError, match="same relpath"):
        download_files([DownloadItem("http://h/a", "a"), DownloadItem("http://h/b", "a")], tmp_path)
    with pytest.raises(ValueError, match="ftp://h/a"):
        download_files([DownloadItem("ftp://h/a", "a")], tmp_path)


def test_backoff_doubles_and_is_capped():
    assert [backoff_delay_s(n, 0.5) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_delay_s(30, 0.5, cap_s=60.0) == 60.0
    with pytest.raises(ValueError):
        backoff_delay_s(0, 0.5)


def test_parse_content_range():
    assert parse_content_range("bytes 100-199/200") == (100, 200)
    assert parse_content_range("bytes 0-9/*") == (0, None)
    with pytest.raises(ValueError, match="Content-Range"):
        parse_content_range("items 0-1/2")
