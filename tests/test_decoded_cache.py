"""DecodedClipCache: fill then hit, budget, failure and crash recovery, sharing across processes."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from clip_split_fixtures import small_spec, write_split_cache
from torch.utils.data import BatchSampler, RandomSampler
from vfcache.cache_tools.decoded_cache import (
    READY,
    WRITING,
    DecodedClipCache,
    budget_bytes_from_gb,
    slots_for_budget,
)
from vfcache.trainers.dataset import ClipDataset, open_decode_cache
from vfcache.trainers.loader import make_loader

SHAPE = (2, 4, 5, 3)  # 120 bytes, one 4 KiB page per slot


class RecordingLoader:
    """A loader writing a known clip per key and remembering how often it ran."""

    def __init__(self, seed: int = 0):
        self.clips = {
            k: np.random.default_rng([seed, k]).integers(0, 256, SHAPE, dtype=np.uint8)
            for k in range(64)
        }
        self.calls: list[int] = []

    def __call__(self, key: int):
        def fill(dest: np.ndarray) -> None:
            self.calls.append(key)
            dest[...] = self.clips[key]

        return fill


def make_cache(path: Path, slots: int, **kwargs) -> DecodedClipCache:
    return DecodedClipCache(path, clip_shape=SHAPE, budget_bytes=slots * 4096, **kwargs)


def test_first_read_fills_later_reads_copy_identical_arrays(tmp_path):
    cache, loader = make_cache(tmp_path / "decoded", 8), RecordingLoader()
    first = cache.get_or_load(3, loader(3))
    second = cache.get_or_load(3, loader(3))
    out = np.zeros(SHAPE, np.uint8)
    third = cache.get_or_load(3, loader(3), out=out)
    assert loader.calls == [3]
    assert third is out
    for clip in (first, second, third):
        assert np.array_equal(clip, loader.clips[3])
    assert first is not second and first.flags.writeable  # callers own what they get
    second[...] = 0
    assert np.array_equal(cache.get_or_load(3, loader(3)), loader.clips[3])
    assert (cache.stats.fills, cache.stats.hits, cache.stats.fallbacks) == (1, 3, 0)
    assert cache.ready_count() == 1


def test_the_file_holds_as_many_slots_as_the_budget_allows(tmp_path):
    assert slots_for_budget(10 * 4096 + 4095, 120) == 10
    assert slots_for_budget(24 * 224 * 224 * 3 * 5, 24 * 224 * 224 * 3) == 5
    assert budget_bytes_from_gb(1.5) == 3 * 2**29
    cache = make_cache(tmp_path / "decoded", 10)
    assert cache.n_slots == 10
    assert os.path.getsize(cache.path) == cache.layout.data_offset + 10 * 4096
    with pytest.raises(ValueError, match="-1"):
        budget_bytes_from_gb(-1)


def test_keys_over_budget_fall_back_to_the_loader_every_time(tmp_path):
    cache, loader = make_cache(tmp_path / "decoded", 2), RecordingLoader()
    for _ in range(3):
        for key in range(4):
            assert np.array_equal(cache.get_or_load(key, loader(key)), loader.clips[key])
    assert sorted(loader.calls) == [0, 1] + [2] * 3 + [3] * 3
    assert cache.stats.fallbacks == 6
    empty = make_cache(tmp_path / "none", 0)
    assert empty.n_slots == 0
    assert np.array_equal(empty.get_or_load(0, loader(0)), loader.clips[0])


def test_a_failing_loader_leaves_the_slot_empty_for_the_next_reader(tmp_path):
    cache, loader = make_cache(tmp_path / "decoded", 4), RecordingLoader()

    def broken(dest):
        dest[...] = 7
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        cache.get_or_load(1, broken)
    assert cache.ready_count() == 0
    assert np.array_equal(cache.get_or_load(1, loader(1)), loader.clips[1])
    assert loader.calls == [1]


def test_a_slot_left_writing_by_a_dead_process_is_refilled(tmp_path):
    cache, loader = make_cache(tmp_path / "decoded", 4), RecordingLoader()
    cache._current().states[2] = WRITING  # what a worker killed mid-fill leaves, with its lock gone
    assert np.array_equal(cache.get_or_load(2, loader(2)), loader.clips[2])
    assert loader.calls == [2] and cache._current().states[2] == READY


def _hold_slot_lock(path: str, offset: int, locked, release) -> None:
    fd = os.open(path, os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX, 1, offset, os.SEEK_SET)
    locked.set()
    release.wait(10)
    os.close(fd)


def test_a_slot_being_filled_elsewhere_is_not_waited_for_and_not_touched(tmp_path):
    cache, loader = make_cache(tmp_path / "decoded", 4), RecordingLoader()
    context = multiprocessing.get_context("fork")
    locked, release = context.Event(), context.Event()
    offset = cache.layout.states_offset + 1
    holder = context.Process(
        target=_hold_slot_lock, args=(str(cache.path), offset, locked, release)
    )
    holder.start()
    try:
        assert locked.wait(10)
        assert np.array_equal(cache.get_or_load(1, loader(1)), loader.clips[1])
        assert cache.stats.fallbacks == 1 and cache.ready_count() == 0
    finally:
        release.set()
        holder.join(10)
    cache.get_or_load(1, loader(1))
    assert cache.ready_count() == 1 and loader.calls == [1, 1]


def test_a_matching_fingerprint_reuses_the_file_warm_and_anything_else_starts_empty(tmp_path):
    loader = RecordingLoader()
    first = make_cache(tmp_path / "decoded", 4, fingerprint="dataset-a")
    first.get_or_load(0, loader(0))
    first.close()
    warm = make_cache(tmp_path / "decoded", 4, fingerprint="dataset-a")
    assert warm.ready_count() == 1
    assert np.array_equal(warm.get_or_load(0, loader(0)), loader.clips[0]) and loader.calls == [0]
    warm.close()
    assert make_cache(tmp_path / "decoded", 4, fingerprint="dataset-b").ready_count() == 0
    assert (
        make_cache(tmp_path / "decoded", 4).ready_count() == 0
    )  # no fingerprint: a scratch file per run
    assert not list(tmp_path.glob("*.tmp-*"))


def test_a_pickled_cache_attaches_to_the_same_slots(tmp_path):
    cache, loader = make_cache(tmp_path / "decoded", 4), RecordingLoader()
    cache.get_or_load(2, loader(2))
    clone = pickle.loads(pickle.dumps(cache))  # how a spawned worker receives it
    assert clone.ready_count() == 1
    clone.get_or_load(3, loader(3))
    assert cache.ready_count() == 2
    assert np.array_equal(cache.get_or_load(3, loader(3)), loader.clips[3]) and loader.calls == [
        2,
        3,
    ]


class CountingDataset(ClipDataset):
    """Appends one line per shard decode to a file, from whichever worker process decodes."""

    def __init__(self, *args, counter: Path, **kwargs):
        super().__init__(*args, **kwargs)
        self.counter = counter

    def _decode_into(self, index, dest):
        fd = os.open(self.counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{index} {os.getpid()}\n".encode())
        finally:
            os.close(fd)
        super()._decode_into(index, dest)


def decodes(counter: Path) -> list[tuple[int, int]]:
    if not counter.exists():
        return []
    return [tuple(map(int, line.split())) for line in counter.read_text().splitlines()]


@pytest.mark.filterwarnings(
    "ignore:This DataLoader will create"
)  # 3 workers on a 2-core machine, on purpose
@pytest.mark.parametrize("workers,budget_slots", [(3, 100), (2, 7)])
def test_workers_share_the_cache_and_the_second_epoch_is_served_from_it(
    tmp_path, workers, budget_slots
):
    fixture = write_split_cache(
        tmp_path, "aegis", small_spec(), labels=[0, 1] * 9, clips_per_shard=5
    )
    counter = tmp_path / "decodes.txt"
    clip_bytes = int(np.prod(small_spec().clip_shape))
    cache = DecodedClipCache(
        tmp_path / "decoded", clip_shape=small_spec().clip_shape, budget_bytes=budget_slots * 4096
    )
    assert clip_bytes <= 4096
    dataset = CountingDataset(fixture.split_file, decode_cache=cache, counter=counter)
    sampler = BatchSampler(
        RandomSampler(dataset, generator=torch.Generator().manual_seed(0)), 4, drop_last=False
    )
    loader = make_loader(dataset, sampler, workers=workers, prefetch_factor=2)
    cached = set(range(min(budget_slots, len(dataset))))
    for epoch in range(2):
        before = len(decodes(counter))
        seen = []
        for batch in loader:
            for row, index in enumerate(batch["index"].tolist()):
                assert np.array_equal(batch["clip"][row].numpy(), fixture.clips[index])
                seen.append(index)
        assert sorted(seen) == list(range(len(dataset)))
        this_epoch = decodes(counter)[before:]
        if epoch == 0:
            assert sorted(i for i, _ in this_epoch) == list(range(len(dataset)))
            assert (
                len({pid for _, pid in this_epoch} - {os.getpid()}) == workers
            )  # filled by every worker
        else:
            assert sorted(i for i, _ in this_epoch) == sorted(set(range(len(dataset))) - cached)
    assert cache.ready_count() == len(cached)


def test_open_decode_cache_names_the_file_after_the_dataset_and_finds_it_warm_next_run(tmp_path):
    fixture = write_split_cache(tmp_path, "aegis", small_spec(), labels=[0, 1, 1])
    first = ClipDataset(fixture.split_file)
    cache = open_decode_cache(first, tmp_path / "shm", budget_bytes=10 * 4096)
    assert first.decode_cache is cache and first.fingerprint in cache.path.name
    for index in range(len(first)):
        first[index]
    cache.close()
    second = ClipDataset(fixture.split_file)
    warm = open_decode_cache(second, tmp_path / "shm", budget_bytes=10 * 4096)
    assert warm.ready_count() == 3
    assert all(np.array_equal(second[i]["clip"].numpy(), fixture.clips[i]) for i in range(3))
    assert warm.stats.hits == 3 and warm.stats.fills == 0
    other = DecodedClipCache(
        tmp_path / "other",
        clip_shape=small_spec().clip_shape,
        budget_bytes=4096,
        fingerprint="another-dataset",
    )
    with pytest.raises(ValueError, match="fingerprint=dataset.fingerprint"):
        second.attach_decode_cache(other)
    with pytest.raises(ValueError, match=r"\(2, 4, 5, 3\)"):
        second.attach_decode_cache(make_cache(tmp_path / "shape", 1))
