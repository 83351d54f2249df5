"""One writer per cache folder: waiting, --no-wait, dead holders, and two real extractions at
once."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from vfcache.cache_tools.writer_lock import LOCK_NAME, CacheBusy, read_holder, writer_lock
from video_corpus import write_local_dataset

from vfcache.cli import cli

REPO = Path(__file__).resolve().parents[1]


def test_a_second_writer_is_told_who_holds_the_folder(tmp_path):
    with writer_lock(tmp_path, "extraction of sample/sample_8x112") as me:
        holder = read_holder(tmp_path / LOCK_NAME)
        assert holder == me and holder.pid == os.getpid() and holder.host == socket.gethostname()
        with pytest.raises(CacheBusy) as busy:
            with writer_lock(tmp_path, "split default of sample/sample_8x112", wait=False):
                pass
        assert str(busy.value) == (
            f"extraction of sample/sample_8x112 is running (pid {os.getpid()} "
            f"on host {socket.gethostname()} since {me.since_utc})"
        )
    assert not (tmp_path / LOCK_NAME).exists()
    with writer_lock(tmp_path, "again", wait=False):
        pass


def test_a_waiting_writer_goes_on_when_the_holder_is_done(tmp_path, caplog):
    held, order = threading.Event(), []

    def first() -> None:
        with writer_lock(tmp_path, "first writer"):
            held.set()
            time.sleep(0.6)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait()
    with caplog.at_level(logging.WARNING, logger="vfcache.cache_tools.writer_lock"):
        with writer_lock(tmp_path, "second writer", poll_s=0.05):
            order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]
    assert "waiting: first writer is running" in caplog.text


def _write_holder(folder: Path, **fields) -> None:
    holder = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "process_start": None,
        "since_utc": "2026-01-01T00:00:00+00:00",
        "what": "extraction of x/y",
        **fields,
    }
    (folder / LOCK_NAME).write_text(json.dumps(holder))


def test_a_dead_holder_on_this_host_is_taken_over_with_a_warning(tmp_path, caplog):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _write_holder(tmp_path, pid=gone.pid)
    with caplog.at_level(logging.WARNING, logger="vfcache.cache_tools.writer_lock"):
        with writer_lock(tmp_path, "new writer", wait=False) as me:
            assert read_holder(tmp_path / LOCK_NAME) == me
    assert (
        f"taking over the lock of a dead writer: extraction of x/y is running (pid {gone.pid}"
        in caplog.text
    )
    assert not list(tmp_path.glob(f"{LOCK_NAME}*"))


def test_a_reused_pid_is_a_dead_holder(tmp_path):
    _write_holder(tmp_path, process_start=1.0)  # our pid, but a process that started at tick 1
    with writer_lock(tmp_path, "new writer", wait=False) as me:
        holder = read_holder(tmp_path / LOCK_NAME)
        assert holder == me and holder.what == "new writer"
        assert holder.process_start != 1.0  # the lock is ours now, not the old record
    assert not list(tmp_path.glob(f"{LOCK_NAME}*"))


def test_another_hosts_lock_is_dead_only_when_its_heartbeat_stopped(tmp_path):
    _write_holder(tmp_path, host="gpu-node-7", pid=1)
    with pytest.raises(CacheBusy, match="pid 1 on host gpu-node-7"):
        with writer_lock(tmp_path, "new writer", wait=False):
            pass
    old = time.time() - 3600
    os.utime(tmp_path / LOCK_NAME, (old, old))
    with writer_lock(tmp_path, "new writer", wait=False, stale_after_s=600):
        pass


def _local_dataset(tmp_path: Path, videos: int = 4) -> Path:
    return write_local_dataset(tmp_path, videos)


def _vfcache(root: Path, *args: str) -> list[str]:
    console_script = Path(sys.executable).parent / "vfcache"  # the installed `vfcache` command
    return [str(console_script), "--root", str(root), "--workers", "1", "--no-progress", *args]


def test_no_wait_is_one_line_and_exit_2(tmp_path):
    config = _local_dataset(tmp_path, videos=2)
    root = tmp_path / "data"
    runner = CliRunner()
    assert (
        runner.invoke(
            cli,
            [
                "--root",
                str(root),
                "--workers",
                "1",
                "build-manifest",
                "mine",
                "--config",
                str(config),
            ],
        ).exit_code
        == 0
    )
    cache = root / "cache" / "mine" / "sample_8x112"
    with writer_lock(cache, "extraction of mine/sample_8x112") as me:
        result = runner.invoke(
            cli,
            [
                "--root",
                str(root),
                "--workers",
                "1",
                "extract",
                "mine",
                "--config",
                str(config),
                "--no-wait",
            ],
        )
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"Error: extraction of mine/sample_8x112 is running (pid {me.pid} "
        f"on host {me.host} since {me.since_utc})"
    )


def test_two_extractions_at_once_end_as_one_would(tmp_path):
    """The bug this fixes: the second driver swept the first one's temp files and died."""
    config = _local_dataset(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    roots = [tmp_path / "together", tmp_path / "alone"]
    for root in roots:
        subprocess.run(
            _vfcache(root, "build-manifest", "mine", "--config", str(config)),
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
    together = [
        subprocess.Popen(
            _vfcache(roots[0], "extract", "mine", "--config", str(config)),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300) for proc in together]
    assert [proc.returncode for proc in together] == [0, 0], outputs
    assert not any("Traceback" in err for _, err in outputs)
    subprocess.run(
        _vfcache(roots[1], "extract", "mine", "--config", str(config)),
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )

    def digests(root: Path) -> dict[str, str]:
        cache = root / "cache" / "mine" / "sample_8x112"
        return {
            p.relative_to(cache).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(cache.rglob("*"))
            if p.is_file() and p.suffix in (".zst", ".parquet") and p.name != "probe_state.parquet"
        }

    assert digests(roots[0]) == digests(roots[1])
    assert not (roots[0] / "cache" / "mine" / "sample_8x112" / LOCK_NAME).exists()
