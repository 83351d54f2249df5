"""The dask.distributed runner: open a cluster, run independent tasks, yield results as they finish.

Tasks never coordinate: each one owns its output files and is safe to run again (a task whose
worker died is re-run by the scheduler on another worker and picks up where the files say it
stopped). The driver only merges what the tasks report. `client=None` runs the same tasks
one by one in this process, which tests and debugging use.

Workers of an existing cluster (`scheduler="tcp://host:8786"` or a scheduler JSON file) must
be able to import vfcache and see the data root under the same path as the driver.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence, TypeVar

from distributed import Client, KilledWorker, LocalCluster, as_completed
from tqdm.auto import tqdm

from vfcache.cores import usable_cores
from vfcache.errors import StageError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@contextlib.contextmanager
def open_cluster(
    workers: int = 2,
    scheduler: Optional[str] = None,
    *,
    processes: bool = True,
    timeout_s: float = 30.0,
) -> Iterator[Client]:
    """A `Client` on a fresh `LocalCluster` of `workers` single-threaded processes, or on
    `scheduler`.

    `scheduler` is an address (`tcp://host:8786`) or the path of a scheduler file written by
    `dask scheduler --scheduler-file`. The local cluster is closed on exit; an existing cluster
    is only disconnected from.
    """
    if scheduler:
        try:
            if scheduler.endswith(".json") and Path(scheduler).is_file():
                client = Client(scheduler_file=scheduler, timeout=timeout_s)
            else:
                client = Client(scheduler, timeout=timeout_s)
        except (OSError, TimeoutError) as err:
            raise StageError(f"cannot reach the dask scheduler at {scheduler}: {err}") from err
        log.info(
            "connected to dask scheduler %s (%d workers)",
            scheduler,
            len(client.scheduler_info()["workers"]),
        )
        try:
            yield client
        finally:
            client.close()
        return
    if not isinstance(workers, int) or workers < 1:
        raise StageError(f"--workers must be a positive number of processes, got {workers!r}")
    # distributed sets its own loggers to INFO; a user asked for vfcache's figures, not the
    # cluster's chatter.
    if not log.isEnabledFor(logging.DEBUG):
        logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=None,
        scheduler_kwargs={"dashboard": False},
        silence_logs=logging.WARNING,
    )
    client = Client(cluster)
    log.info("started a local dask cluster of %d worker(s)", workers)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def spare_core_per_task(client: Optional[Client]) -> bool:
    """Whether every task slot has a second core to itself: on every host of the cluster, the
    cores are at least twice the worker threads there (`client=None`: this process, one slot)."""
    if client is None:
        return usable_cores() >= 2
    workers = client.scheduler_info()["workers"]
    if not workers:
        return False
    slots = Counter()
    for info in workers.values():
        slots[info["host"]] += info.get("nthreads", 1)
    cores: dict[str, int] = {}
    for address, count in client.run(usable_cores).items():
        host = workers[address]["host"] if address in workers else address
        cores[host] = min(cores.get(host, count), count)
    return all(cores.get(host, 1) >= 2 * count for host, count in slots.items())


def run_tasks(
    client: Optional[Client],
    fn: Callable[[T], R],
    tasks: Iterable[T],
    desc: str,
    *,
    task_names: Optional[Sequence[str]] = None,
    progress: bool = True,
) -> Iterator[R]:
    """Run `fn(task)` for every task and yield the results in completion order, with a progress bar.

    `task_names` (one per task) become the dask keys, prefixed by `desc` and a run token so that two
    runs on one scheduler never share results. The first task that raises stops the run: the
    remaining tasks are cancelled and the error propagates (files already final stay final).
    """
    tasks = list(tasks)
    names = (
        list(task_names)
        if task_names is not None
        else [f"{index:05d}" for index in range(len(tasks))]
    )
    if len(names) != len(tasks):
        raise ValueError(f"{len(names)} task names for {len(tasks)} tasks")
    bar = tqdm(total=len(tasks), desc=desc, unit="task", disable=not progress)
    try:
        if client is None:
            for task in tasks:
                result = fn(task)
                bar.update(1)
                yield result
            return
        token = uuid.uuid4().hex[:8]
        futures = [
            client.submit(fn, task, key=f"{desc}-{name}-{token}", pure=False)
            for task, name in zip(tasks, names)
        ]
        try:
            for future in as_completed(futures):
                try:
                    result = future.result()
                except KilledWorker as err:
                    raise StageError(
                        f"task {future.key} killed its workers too often (out of memory or a crash "
                        f"in a "
                        f"decoder?); files already final are kept, re-run to resume: {err}"
                    ) from err
                bar.update(1)
                yield result
        finally:
            client.cancel([future for future in futures if not future.done()])
    finally:
        bar.close()
