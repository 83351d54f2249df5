"""The readers `vfcache bench load` puts side by side: timed clip reads, fresh-process probes
(first batch, reader memory) and the LitData baselines.

LitData 0.2.76 wraps zstd in three ways (`compression_level` of `litdata.optimize`): `chunk`
(the whole chunk file is one frame), `batch` (256 items per frame; what `compression="zstd:N"`
alone gives) and `sample` (one frame per item, the framing vfcache's shards have). The
benchmark builds the default and the sample mode from the same clips at the cache's zstd
level; the targets are stated against the sample mode, LitData's best setting for reading
clips one by one (see `../shared/docs/performance.md`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from vfcache.cache_tools.shards import ShardReader, decode_clip
from vfcache.trainers.dataset import ClipDataset, collate_clips

PROBE_BATCH = 8  # clips per batch in the first-batch / memory probes
# LitData wrap modes measured, and the suffix their figures carry in the JSON: the default keeps
# the names the benchmark had before the sample mode was added
LITDATA_MODES = {"default": "", "sample": "_sample"}
# what a reader is compared on: (figure of ours and LitData's, ratio name before the mode suffix)
LITDATA_RATIOS = (
    ("random_clips_per_s", "over_litdata{mode}_random"),
    ("sequential_clips_per_s", "over_litdata{mode}_sequential"),
    ("bytes", "bytes_over_litdata{mode}"),
    ("first_batch_s", "first_batch_over_litdata{mode}"),
    ("reader_rss_bytes", "reader_rss_over_litdata{mode}"),
)


def clips_per_s(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def timed(fn: Callable[[], int], repeats: int) -> float:
    """Best clips/s over `repeats` runs of `fn` (which returns how many clips it read)."""
    return timed_side_by_side({"fn": fn}, repeats)["fn"]


def timed_side_by_side(readers: Mapping[str, Callable[[], int]], repeats: int) -> dict[str, float]:
    """Best clips/s of each reader over `repeats` rounds, the readers taking turns within a round,
    so drifting machine load hits every side alike."""
    best = {name: 0.0 for name in readers}
    for _ in range(repeats):
        for name, fn in readers.items():
            started = time.perf_counter()
            count = fn()
            best[name] = max(best[name], clips_per_s(count, time.perf_counter() - started))
    return best


def _status_bytes(field: str) -> int:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in bytes; 0 where there is none."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _reset_peak_rss() -> bool:
    """Make VmHWM (the peak) restart from the current RSS (Linux >= 4.0); False where refused."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def reader_probe(kind: str, source: str, batch: int = PROBE_BATCH, seed: int = 0) -> dict:
    """Run in a fresh process (`probe_reader`): seconds from creating the reader to its first
    shuffled batch of `batch` clips, then one epoch; the peak resident memory of the process
    over its resident memory after the imports (the peak is reset there, so import-time peaks do
    not count) is what the reader adds."""
    if kind == "litdata":
        import litdata
    if not _reset_peak_rss():
        raise RuntimeError(
            "cannot reset the peak RSS (/proc/self/clear_refs): reader memory is measured on Linux "
            "only"
        )
    baseline = _status_bytes("VmRSS")
    started = time.perf_counter()
    if kind == "vfcache":
        generator = torch.Generator().manual_seed(seed)
        loader = DataLoader(
            ClipDataset(source),
            batch_size=batch,
            shuffle=True,
            generator=generator,
            collate_fn=collate_clips,
            num_workers=0,
        )
    elif kind == "litdata":
        cache_dir = tempfile.mkdtemp(
            prefix="vfcache-litdata-cache-"
        )  # empty: a first epoch on a new node
        stream = litdata.StreamingDataset(source, shuffle=True, seed=seed, cache_dir=cache_dir)
        loader = litdata.StreamingDataLoader(stream, batch_size=batch, num_workers=0)
    else:
        raise ValueError(f"unknown reader {kind!r}")
    batches = iter(loader)
    first = next(batches)
    first_batch_s = time.perf_counter() - started
    clips = len(first["clip"]) + sum(len(b["clip"]) for b in batches)
    peak = _status_bytes("VmHWM")
    return {
        "first_batch_s": first_batch_s,
        "reader_rss_bytes": max(0, peak - baseline),
        "clips": clips,
    }


def probe_reader(kind: str, source: str, repeats: int) -> dict:
    """`reader_probe` in `repeats` fresh processes; the best of each figure."""
    code = (
        "import json, sys; from vfcache.bench.readers import reader_probe; "
        "print(json.dumps(reader_probe(sys.argv[1], sys.argv[2])))"
    )
    runs = []
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-c", code, kind, source], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"the {kind} reader probe failed:\n{done.stderr[-2000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        "first_batch_s": min(r["first_batch_s"] for r in runs),
        "reader_rss_bytes": min(r["reader_rss_bytes"] for r in runs),
    }


def _litdata_clip(args: tuple[str, int, int]) -> dict:
    shard, offset, nbytes = args
    return {"clip": np.array(ShardReader(shard).read(offset, nbytes))}


def build_litdata(
    inputs: Sequence[tuple[str, int, int]], out: Path, level: int, compression_level: Optional[str]
) -> int:
    """`litdata.optimize` of the RGB clips at (shard, offset, nbytes), zstd at `level`, wrapped as
    `compression_level` (None: LitData's default); returns the bytes on disk."""
    import litdata

    litdata.optimize(
        fn=_litdata_clip,
        inputs=list(inputs),
        output_dir=str(out),
        chunk_bytes="128MB",
        compression=f"zstd:{level}",
        compression_level=compression_level,
        num_workers=1,
        verbose=False,
        mode="overwrite",
    )
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.suffix != ".json")


def litdata_reader(
    inputs: Sequence[tuple[str, int, int]], work: Path, level: int, mode: str, repeats: int
) -> dict:
    """LitData holding the clips in one wrap mode (`LITDATA_MODES`): random and sequential
    clips/s through `StreamingDataset`, bytes on disk, and the fresh-process probe's figures."""
    import litdata

    out = work / f"litdata_{mode}"
    nbytes = build_litdata(inputs, out, level, None if mode == "default" else mode)

    def read_streaming(shuffle: bool) -> int:
        stream = litdata.StreamingDataset(
            str(out), shuffle=shuffle, cache_dir=str(work / f"litdata_{mode}_cache")
        )
        return sum(int(sample["clip"].shape[0] > 0) for sample in stream)

    rates = timed_side_by_side(
        {
            "random_clips_per_s": lambda: read_streaming(True),
            "sequential_clips_per_s": lambda: read_streaming(False),
        },
        repeats,
    )
    return {**rates, "bytes": nbytes, **probe_reader("litdata", str(out), repeats)}


def litdata_comparison(
    ours: Mapping[str, float], theirs: Mapping[str, Mapping[str, float]], prefix: str = ""
) -> dict[str, float]:
    """Ratios of our reader's figures (`LITDATA_RATIOS`) over LitData's in each mode, named
    `<prefix><ratio name with the mode's suffix>`."""
    return {
        prefix + name.format(mode=LITDATA_MODES[mode]): ours[figure]
        / max(theirs[mode][figure], 1e-12)
        for mode in theirs
        for figure, name in LITDATA_RATIOS
    }


def in_memory_frames(dataset: ClipDataset) -> list[bytes]:
    """The compressed frame of every clip of a (local) dataset, read into memory."""
    cache = dataset.sources[0].cache_dir
    frames = []
    for entry in dataset.entries:
        with open(cache.resolve_shard(entry.shard), "rb") as handle:
            handle.seek(entry.offset)
            frames.append(handle.read(entry.nbytes))
    return frames


def cache_readers(
    dataset: ClipDataset, frames: Sequence[bytes], order: Sequence[int], prefix: str = ""
) -> dict[str, Callable[[], int]]:
    """Readers of one cache for `timed_side_by_side`: the zstd bound (decompressing the clips'
    frames from memory), shard reads through the dataset in `order`, and in shard order."""

    def zstd_bound() -> int:
        for i in order:
            decode_clip(frames[i])
        return len(order)

    def shard(indices: Sequence[int]) -> Callable[[], int]:
        def read() -> int:
            for i in indices:
                dataset[int(i)]
            return len(indices)

        return read

    return {
        f"{prefix}zstd_bound": zstd_bound,
        f"{prefix}shard": shard(order),
        f"{prefix}shard_sequential": shard(range(len(dataset))),
    }
