"""The dask runner, and extraction on a real `dask scheduler` with `dask worker` processes on
127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from distributed import Client, LocalCluster
from vfcache.pipelines.extract import extract_clips
from vfcache.pipelines.probe import build_manifest
from vfcache.pipelines.runner import open_cluster, run_tasks
from video_corpus import (
    SHARD_TARGET_BYTES,
    VIDEOS_PER_TASK,
    cache_snapshot,
    small_spec,
    temp_files,
)

from vfcache.errors import StageError
from vfcache.layout import DataRoot

REPO = Path(__file__).resolve().parents[1]


def square_after(task: tuple[int, float]) -> tuple[int, int]:
    number, sleep_s = task
    time.sleep(sleep_s)
    return number * number, os.getpid()


def fail_on_three(number: int) -> int:
    if number == 3:
        raise ValueError("three is not allowed")
    return number


def test_run_tasks_in_process_and_on_threads():
    tasks = [(n, 0.0) for n in range(6)]
    assert [r for r, _ in run_tasks(None, square_after, tasks, "square", progress=False)] == [
        n * n for n in range(6)
    ]
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        results = list(run_tasks(client, square_after, tasks, "square", progress=False))
        assert sorted(r for r, _ in results) == [n * n for n in range(6)]
        with pytest.raises(ValueError, match="three is not allowed"):
            list(run_tasks(client, fail_on_three, range(6), "fail", progress=False))
        with pytest.raises(ValueError, match="2 task names for 3 tasks"):
            list(
                run_tasks(
                    client, fail_on_three, range(3), "fail", task_names=["a", "b"], progress=False
                )
            )


@pytest.mark.slow
def test_open_cluster_starts_worker_processes():
    with open_cluster(workers=2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        assert set(client.nthreads().values()) == {1}
        pids = {
            pid
            for _, pid in run_tasks(
                client, square_after, [(n, 0.3) for n in range(6)], "pids", progress=False
            )
        }
    assert len(pids) == 2 and os.getpid() not in pids


def test_open_cluster_errors():
    with pytest.raises(StageError, match="--workers"):
        with open_cluster(workers=0):
            pass
    with pytest.raises(StageError, match="cannot reach the dask scheduler at tcp://127.0.0.1:9"):
        with open_cluster(scheduler="tcp://127.0.0.1:9", timeout_s=1.0):
            pass


class DaskProcesses:
    """A `dask scheduler` and `dask worker` processes (no nanny) on 127.0.0.1, started and stopped
    by a test."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.address = ""

    def start(self, workers: int) -> None:
        folder = self.folder
        scheduler_file = folder / "scheduler.json"
        self.scheduler = self._start(
            "scheduler",
            [
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
        )
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert self.scheduler.poll() is None, self.log("scheduler")
            assert time.monotonic() < deadline, "the dask scheduler did not start"
            time.sleep(0.05)
        self.address = json.loads(scheduler_file.read_text())["address"]
        for k in range(workers):
            self.workers.append(
                self._start(
                    f"worker{k}",
                    [
                        "distributed.cli.dask_worker",
                        self.address,
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--no-dashboard",
                        "--name",
                        f"w{k}",
                        "--local-directory",
                        str(folder / f"w{k}"),
                    ],
                )
            )
        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(workers, timeout=60)

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "wb")
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        started = [proc for proc in [*self.workers, self.scheduler] if proc is not None]
        for proc in started:
            if proc.poll() is None:
                proc.terminate()
        for proc in started:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def dask_processes(tmp_path):
    (tmp_path / "dask").mkdir()
    cluster = DaskProcesses(tmp_path / "dask")
    try:
        cluster.start(workers=2)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def reference_snapshot(corpus, tmp_path_factory):
    root = DataRoot(tmp_path_factory.mktemp("reference"))
    build_manifest(corpus.config(), root, small_spec(), client=None, progress=False)
    extract_clips(
        corpus.config(),
        root,
        small_spec(),
        client=None,
        shard_target_bytes=SHARD_TARGET_BYTES,
        videos_per_task=VIDEOS_PER_TASK,
        progress=False,
        max_failed=None,
    )
    return cache_snapshot(root.cache_dir("corpus", small_spec().name).path)


@pytest.mark.slow
@pytest.mark.network
def test_extract_on_a_dask_scheduler_with_two_workers(
    corpus, reference_snapshot, dask_processes, tmp_path
):
    root = DataRoot(tmp_path / "data")
    spec = small_spec()
    with open_cluster(scheduler=dask_processes.address) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        build_manifest(corpus.config(), root, spec, client=client, progress=False)
        report = extract_clips(
            corpus.config(),
            root,
            spec,
            client=client,
            shard_target_bytes=SHARD_TARGET_BYTES,
            videos_per_task=VIDEOS_PER_TASK,
            progress=False,
            max_failed=None,
        )
    assert report.tasks_run == report.tasks_total and report.clips > 0
    assert cache_snapshot(root.cache_dir("corpus", spec.name).path) == reference_snapshot
    assert all(
        proc.poll() is None for proc in dask_processes.workers
    )  # disconnecting leaves the cluster up


DRIVER = """
import json, sys
from pathlib import Path
from vfcache.layout import DataRoot
from vfcache.pipelines.extract import extract_clips
from vfcache.pipelines.runner import open_cluster
from vfcache.config import ClipSpec
sys.path.insert(0, "tests")
from video_corpus import local_config
args = json.loads(sys.argv[1])
with open_cluster(scheduler=args["scheduler"]) as client:
    report = extract_clips(local_config(Path(args["raw"])), DataRoot(Path(args["root"])),
    ClipSpec(**args["spec"]),
                           client=client, shard_target_bytes=args["target"],
                           videos_per_task=args["per_task"],
                           progress=False, max_failed=None)
print(json.dumps({"tasks_run": report.tasks_run, "clips": report.clips}))
"""


@pytest.mark.slow
@pytest.mark.network
def test_a_worker_killed_mid_task_is_replaced_without_changing_the_output(
    corpus, reference_snapshot, dask_processes, tmp_path
):
    root = DataRoot(tmp_path / "data")
    spec = small_spec()
    build_manifest(corpus.config(), root, spec, client=None, progress=False)
    shards_dir = root.cache_dir("corpus", spec.name).shards_dir
    args = {
        "scheduler": dask_processes.address,
        "raw": str(corpus.raw_dir),
        "root": str(root.path),
        "spec": spec.__dict__,
        "target": SHARD_TARGET_BYTES,
        "per_task": VIDEOS_PER_TASK,
    }
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, json.dumps(args)],
        cwd=REPO,
        env=dask_processes.env,
        stdout=subprocess.PIPE,
    )
    with Client(dask_processes.address, timeout=30) as client:
        pid_of = client.run(os.getpid)
        victim = writer = None
        deadline = time.monotonic() + 120
        while victim is None:
            assert driver.poll() is None, "the extraction ended before a worker could be killed"
            assert time.monotonic() < deadline, "no extraction task ever ran"
            # a worker mid-task: its task has a shard being written (temp file) and is not done
            busy = {key: address for address, keys in client.processing().items() for key in keys}
            for key, address in busy.items():
                candidate = str(key).rsplit("-", 2)[-2]
                started = (
                    any(p.name.startswith(f"shard-{candidate}-") for p in shards_dir.glob("*"))
                    if shards_dir.exists()
                    else False
                )
                if started and not (shards_dir / f"task-{candidate}.done.json").exists():
                    victim, writer = address, candidate
                    os.kill(pid_of[address], signal.SIGKILL)
                    break
            time.sleep(0.002)
        killed_mid_task = not (shards_dir / f"task-{writer}.done.json").exists()
    out, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0
    assert killed_mid_task, f"task {writer} finished before its worker was killed"
    killed = next(proc for proc in dask_processes.workers if proc.pid == pid_of[victim])
    assert killed.wait(timeout=10) == -signal.SIGKILL
    assert json.loads(out)["tasks_run"] > 0
    assert cache_snapshot(shards_dir.parent) == reference_snapshot
    assert not temp_files(shards_dir.parent)
