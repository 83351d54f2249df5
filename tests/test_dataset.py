"""ClipDataset, collate_clips, make_loader, and the shard reader's decode-into path."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from clip_split_fixtures import small_spec, write_split_cache
from hypothesis import given, settings
from hypothesis import strategies as st
from vfcache.cache_tools.shards import (
    ShardCorruptError,
    ShardReader,
    decode_clip_into,
    encode_clip,
    new_compressor,
)
from vfcache.trainers.dataset import ClipDataset, collate_clips
from vfcache.trainers.loader import make_loader
from vfcache.trainers.samplers import ClassBalancedBatchSampler

from vfcache.errors import StageError


@pytest.fixture
def aegis(tmp_path):
    return write_split_cache(tmp_path, "aegis", small_spec(), labels=[0, 1] * 6, seed=1)


def test_random_access_returns_the_exact_clips_and_metadata(aegis):
    dataset = ClipDataset(aegis.split_file)
    assert len(dataset) == 12 and dataset.clip_shape == (3, 8, 10, 3)
    for index in np.random.default_rng(0).permutation(len(dataset)):
        sample = dataset[int(index)]
        entry = aegis.entries[index]
        assert sample["clip"].dtype == torch.uint8
        assert np.array_equal(sample["clip"].numpy(), aegis.clips[index])
        assert (
            sample["label"],
            sample["domain"],
            sample["generator"],
            sample["clip_id"],
            sample["index"],
        ) == (entry.label, entry.domain, entry.generator, entry.clip_id, index)
    assert np.array_equal(dataset[-1]["clip"].numpy(), aegis.clips[-1])
    assert dataset.labels.tolist() == [e.label for e in aegis.entries]
    assert dataset.generators.tolist() == [e.generator for e in aegis.entries]
    with pytest.raises(IndexError, match="12"):
        dataset[12]


def test_several_split_files_share_one_index_space(tmp_path, aegis):
    dvf = write_split_cache(tmp_path, "dvf", small_spec(), labels=[1, 1, 0], seed=2)
    genvideo = write_split_cache(
        tmp_path, "genvideo", small_spec(name="other"), labels=[0, 1, 1, 0, 1], seed=3
    )
    dataset = ClipDataset([aegis.split_file, dvf.split_file, genvideo.split_file])
    clips = aegis.clips + dvf.clips + genvideo.clips
    assert len(dataset) == len(clips) == 20
    assert [s.first_index for s in dataset.sources] == [0, 12, 15]
    assert dataset.domains.tolist() == ["aegis"] * 12 + ["dvf"] * 3 + ["genvideo"] * 5
    for index in range(len(dataset)):
        assert np.array_equal(dataset[index]["clip"].numpy(), clips[index])


def test_split_files_with_different_clip_shapes_do_not_combine(tmp_path, aegis):
    other = write_split_cache(tmp_path, "dvf", small_spec(frames=4), labels=[0, 1])
    with pytest.raises(ValueError, match=r"share a clip shape.*\(3, 8, 10, 3\).*\(4, 8, 10, 3\)"):
        ClipDataset([aegis.split_file, other.split_file])


def test_a_clip_listed_twice_is_refused(aegis):
    with pytest.raises(ValueError, match=aegis.entries[0].clip_id):
        ClipDataset([aegis.split_file, aegis.split_file])


def test_a_split_file_outside_a_cache_folder_is_refused(tmp_path, aegis):
    stray = tmp_path / "train.jsonl"
    stray.write_text(aegis.split_file.read_text())
    with pytest.raises(StageError, match="spec.json"):  # a user error: one line from the CLI
        ClipDataset(stray)


def test_a_malformed_line_names_the_file_and_line(aegis):
    lines = aegis.split_file.read_text().splitlines()
    row = json.loads(lines[2])
    del row["nbytes"]
    lines[2] = json.dumps(row)
    aegis.split_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"train.jsonl:3"):
        ClipDataset(aegis.split_file)


def test_a_corrupt_shard_raises_naming_the_clip(aegis):
    dataset = ClipDataset(aegis.split_file)
    victim = 5
    entry = aegis.entries[victim]
    shard = dataset.sources[0].cache_dir.resolve_shard(entry.shard)
    payload = bytearray(shard.read_bytes())
    payload[entry.offset + entry.nbytes // 2] ^= 0x40
    shard.write_bytes(bytes(payload))
    with pytest.raises(ShardCorruptError, match=entry.clip_id) as caught:
        dataset[victim]
    assert caught.value.clip_id == entry.clip_id and caught.value.shard == str(shard)
    neighbours = [i for i, e in enumerate(aegis.entries) if e.shard == entry.shard and i != victim]
    for index in neighbours:  # the other clips of that shard still read back exactly
        assert np.array_equal(dataset[index]["clip"].numpy(), aegis.clips[index])


def test_a_truncated_shard_raises_naming_the_clip(aegis):
    dataset = ClipDataset(aegis.split_file)
    last = max(
        range(len(aegis.entries)), key=lambda i: (aegis.entries[i].shard, aegis.entries[i].offset)
    )
    entry = aegis.entries[last]
    shard = dataset.sources[0].cache_dir.resolve_shard(entry.shard)
    shard.write_bytes(shard.read_bytes()[:-7])
    with pytest.raises(ShardCorruptError, match=f"{entry.clip_id}.*truncated"):
        dataset[last]


def test_getitems_fills_one_batch_buffer_that_collate_passes_on_without_a_copy(aegis):
    dataset = ClipDataset(aegis.split_file)
    indices = [7, 2, 11, 0]
    samples = dataset.__getitems__(indices)
    batch = collate_clips(samples)
    assert batch["clip"].shape == (4, 3, 8, 10, 3) and batch["clip"].dtype == torch.uint8
    assert (
        batch["clip"].data_ptr() == samples[0]["clip"].data_ptr()
    )  # the rows were written in place
    for row, index in enumerate(indices):
        assert np.array_equal(batch["clip"][row].numpy(), aegis.clips[index])
    assert batch["index"].tolist() == indices
    assert batch["label"].tolist() == [aegis.entries[i].label for i in indices]
    assert batch["clip_id"] == [aegis.entries[i].clip_id for i in indices]


def test_collate_copies_independent_samples_into_one_batch(aegis):
    dataset = ClipDataset(aegis.split_file)
    samples = [dataset[i] for i in (3, 1, 4)]
    batch = collate_clips(samples)
    assert batch["clip"].data_ptr() != samples[0]["clip"].data_ptr()
    for row, index in enumerate((3, 1, 4)):
        assert np.array_equal(batch["clip"][row].numpy(), aegis.clips[index])
    with pytest.raises(ValueError, match="empty"):
        collate_clips([])


def test_readers_reopen_in_a_new_process_and_never_travel_in_a_pickle(aegis):
    dataset = ClipDataset(aegis.split_file)
    dataset[0]
    parent_reader = next(iter(dataset._readers.values()))
    dataset._readers_pid = -1  # what a forked worker sees: another process id
    dataset[0]
    assert parent_reader not in dataset._readers.values()
    clone = pickle.loads(pickle.dumps(dataset))
    assert not clone._readers
    assert np.array_equal(clone[4]["clip"].numpy(), aegis.clips[4])


def test_open_shards_are_bounded(aegis):
    dataset = ClipDataset(aegis.split_file, max_open_shards=1)
    for index in range(len(dataset)):
        assert np.array_equal(dataset[index]["clip"].numpy(), aegis.clips[index])
        assert len(dataset._readers) == 1


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_yields_exact_batches_in_sampler_order(aegis, workers):
    dataset = ClipDataset(aegis.split_file)
    sampler = ClassBalancedBatchSampler(dataset.labels, 4, seed=5)
    loader = make_loader(dataset, sampler, workers=workers, prefetch_factor=2)
    assert loader.pin_memory is torch.cuda.is_available()
    if workers:
        assert loader.multiprocessing_context.get_start_method() == "fork"
    for epoch in range(2):
        sampler.set_epoch(epoch)
        batches = list(loader)
        assert [b["index"].tolist() for b in batches] == sampler.epoch_batches(epoch)
        for batch in batches:
            assert batch["label"].tolist().count(0) == 2
            for row, index in enumerate(batch["index"].tolist()):
                assert np.array_equal(batch["clip"][row].numpy(), aegis.clips[index])


@settings(max_examples=25, deadline=None)
@given(
    frames=st.integers(1, 4),
    height=st.integers(1, 9),
    width=st.integers(1, 9),
    seed=st.integers(0, 1000),
)
def test_decode_into_round_trips_any_clip_shape(frames, height, width, seed):
    clip = np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    frame = encode_clip(clip, new_compressor())
    out = np.empty_like(clip)
    assert decode_clip_into(frame, out) is out
    assert np.array_equal(out, clip)
    with pytest.raises(ValueError, match="expected uint8"):
        decode_clip_into(frame, np.empty((frames + 1, height, width, 3), np.uint8))


def test_read_into_reports_a_bad_checksum_as_corruption(tmp_path, aegis):
    entry = aegis.entries[0]
    shard = aegis.split_file.parents[2] / entry.shard
    payload = bytearray(shard.read_bytes())
    payload[entry.offset + entry.nbytes - 2] ^= 0x01  # inside the content checksum itself
    shard.write_bytes(bytes(payload))
    with ShardReader(shard) as reader, pytest.raises(ShardCorruptError, match="checksum"):
        reader.read_into(
            entry.offset, entry.nbytes, np.empty((3, 8, 10, 3), np.uint8), clip_id=entry.clip_id
        )


def test_a_batch_read_on_threads_equals_one_read_at_a_time(aegis, monkeypatch):
    """In the main process __getitems__ decompresses a batch on threads, through shared readers."""
    import vfcache.trainers.dataset as dataset_module

    split = aegis.split_file
    threaded = ClipDataset(split, max_open_shards=64)
    monkeypatch.setattr(dataset_module, "usable_cores", lambda: 4)
    indices = list(range(len(threaded)))[::-1] * 2  # every clip, twice, so threads share readers
    batch = threaded.__getitems__(indices)
    assert threaded._pool is not None
    monkeypatch.setattr(dataset_module, "usable_cores", lambda: 1)
    one_by_one = ClipDataset(split)
    serial = one_by_one.__getitems__(indices)
    assert one_by_one._pool is None
    for a, b in zip(batch, serial):
        assert a["clip_id"] == b["clip_id"] and torch.equal(a["clip"], b["clip"])
        assert np.array_equal(a["clip"].numpy(), aegis.clips[a["index"]])
