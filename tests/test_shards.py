"""The shard format: round trips, random access, corruption and atomic commit."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from vfcache.cache_tools.shards import (
    ShardCorruptError,
    ShardReader,
    ShardWriter,
    decode_clip,
    iter_shard,
)

from vfcache.atomic import TEMP_MARK

clip_shapes = st.tuples(st.integers(1, 6), st.integers(1, 17), st.integers(1, 17), st.just(3))


@st.composite
def clip_lists(draw):
    count = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, draw(clip_shapes), dtype=np.uint8) for _ in range(count)]


@settings(max_examples=40, deadline=None)
@given(clips=clip_lists(), order_seed=st.integers(0, 1000))
def test_round_trip_random_access(tmp_path_factory, clips, order_seed):
    path = tmp_path_factory.mktemp("shard") / "shard-0000-0000.npy.zst"
    with ShardWriter(path) as writer:
        entries = [writer.append(clip) for clip in clips]
    # Offsets tile the file exactly: no gaps, no overlap.
    assert entries[0].offset == 0
    for before, after in zip(entries, entries[1:]):
        assert after.offset == before.offset + before.nbytes
    assert path.stat().st_size == entries[-1].offset + entries[-1].nbytes
    reader = ShardReader(path)
    order = np.random.default_rng(order_seed).permutation(len(clips))
    for i in order:
        got = reader.read(entries[i].offset, entries[i].nbytes)
        assert got.shape == clips[i].shape
        assert np.array_equal(got, clips[i])
    walked = list(iter_shard(path))
    assert [entry for entry, _ in walked] == entries
    for (_, got), want in zip(walked, clips):
        assert np.array_equal(got, want)


def test_each_frame_is_a_complete_npy_file(tmp_path):
    rng = np.random.default_rng(1)
    clip = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    path = tmp_path / "s.npy.zst"
    with ShardWriter(path) as writer:
        entry = writer.append(clip)
        writer.append(clip[::-1].copy())
    frame = path.read_bytes()[entry.offset : entry.offset + entry.nbytes]
    params = zstandard.get_frame_parameters(frame)
    assert params.has_checksum and params.content_size > clip.nbytes
    payload = zstandard.ZstdDecompressor().decompress(frame)
    import io

    assert np.array_equal(np.load(io.BytesIO(payload)), clip)


@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd command-line tool not installed")
def test_zstd_cli_decompresses_a_whole_shard(tmp_path):
    import io

    rng = np.random.default_rng(2)
    clips = [rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8) for _ in range(3)]
    path = tmp_path / "s.npy.zst"
    with ShardWriter(path) as writer:
        for clip in clips:
            writer.append(clip)
    stream = io.BytesIO(
        subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
    )
    for clip in clips:
        assert np.array_equal(np.load(stream), clip)


@settings(max_examples=30, deadline=None)
@given(byte_index=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_a_flipped_bit_is_an_error_never_wrong_pixels(tmp_path_factory, byte_index, bit):
    rng = np.random.default_rng(3)
    clip = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("corrupt") / "s.npy.zst"
    with ShardWriter(path) as writer:
        entry = writer.append(clip)
    data = bytearray(path.read_bytes())
    position = byte_index % len(data)
    data[position] ^= 1 << bit
    path.write_bytes(bytes(data))
    try:
        got = ShardReader(path).read(entry.offset, entry.nbytes, clip_id="clip-x")
    except ShardCorruptError as err:
        assert "clip-x" in str(err) and str(path) in str(err)
    else:
        # zstd ignores a few header bits (e.g. the unused descriptor bit); the pixels must then be
        # exact.
        assert np.array_equal(got, clip)


def test_a_flipped_payload_byte_raises_naming_clip_and_shard(tmp_path):
    rng = np.random.default_rng(4)
    clips = [rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8) for _ in range(2)]
    path = tmp_path / "s.npy.zst"
    with ShardWriter(path) as writer:
        entries = [writer.append(clip) for clip in clips]
    data = bytearray(path.read_bytes())
    data[entries[1].offset + entries[1].nbytes // 2] ^= 0x10
    path.write_bytes(bytes(data))
    reader = ShardReader(path)
    assert np.array_equal(reader.read(entries[0].offset, entries[0].nbytes), clips[0])
    with pytest.raises(ShardCorruptError) as info:
        reader.read(entries[1].offset, entries[1].nbytes, clip_id="clip-1")
    assert "clip-1" in str(info.value) and str(path) in str(info.value)


def test_truncated_shard_names_clip_and_shard(tmp_path):
    clip = np.zeros((2, 4, 4, 3), np.uint8)
    path = tmp_path / "s.npy.zst"
    with ShardWriter(path) as writer:
        entry = writer.append(clip)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ShardCorruptError, match="truncated"):
        ShardReader(path).read(entry.offset, entry.nbytes, clip_id="c0")
    with pytest.raises(ShardCorruptError):
        list(iter_shard(path))


def test_writer_is_atomic_and_never_overwrites(tmp_path):
    path = tmp_path / "s.npy.zst"
    writer = ShardWriter(path)
    writer.append(np.zeros((1, 2, 2, 3), np.uint8))
    assert not path.exists(), "a shard must not appear under its final name before commit"
    assert any(TEMP_MARK in p.name for p in tmp_path.iterdir())
    writer.commit()
    assert path.exists() and not any(TEMP_MARK in p.name for p in tmp_path.iterdir())
    with pytest.raises(FileExistsError):
        ShardWriter(path)


def test_writer_aborts_on_exception(tmp_path):
    path = tmp_path / "s.npy.zst"
    with pytest.raises(RuntimeError):
        with ShardWriter(path) as writer:
            writer.append(np.zeros((1, 2, 2, 3), np.uint8))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 4, 4, 3), np.float32),
        np.zeros((4, 4, 3), np.uint8),
        np.zeros((2, 4, 4, 4), np.uint8),
    ],
)
def test_writer_rejects_non_clips(tmp_path, bad):
    with pytest.raises(ValueError, match="uint8"):
        with ShardWriter(tmp_path / "s.npy.zst") as writer:
            writer.append(bad)


def test_frame_without_checksum_is_refused():
    frame = zstandard.ZstdCompressor(write_checksum=False).compress(b"x" * 100)
    with pytest.raises(ValueError, match="checksum"):
        decode_clip(frame)


def test_reader_pickles_by_path(tmp_path):
    import pickle

    path = tmp_path / "s.npy.zst"
    clip = np.arange(2 * 3 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3, 3)
    with ShardWriter(path) as writer:
        entry = writer.append(clip)
    clone = pickle.loads(pickle.dumps(ShardReader(path)))
    assert np.array_equal(clone.read(entry.offset, entry.nbytes), clip)
