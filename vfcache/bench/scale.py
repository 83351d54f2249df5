"""`vfcache bench scale --clips N`: time and peak memory of the manifest stages at scale.

A synthetic cache folder of N clips (4 per video, 2 videos per group, two domains, real and
fake from several generators) is written once per size under `<root>/bench/scale/<N>/`:
spec.json, clips.parquet and sparse shard files of the right sizes (so the audit's shard
checks run for real, on no real pixels). Each stage then runs in a fresh process, so its peak
memory (the child's maximum RSS, from `os.wait4`) is its own:

- read: the columns of clips.parquet that split reads, as an Arrow table;
- split: `write_split` with the card's kind of preset (train/val counts, test rest, support);
- audit: `vfcache.manifests.audit.audit` of that split;
- loader index: `ClipDataset` over the train split file.

With several sizes it also prints how each stage grows per 10x. Targets on the 2-core
machine: 1M clips split + audit under 10 s and 1.5 GB; 10M under 2 min and 8 GB.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vfcache.atomic import write_json_atomic
from vfcache.config import parse_clip_spec
from vfcache.layout import CacheDir, DataRoot
from vfcache.manifests.records import ClipRecord, arrow_schema, optional_columns

CLIPS_PER_VIDEO = 4
VIDEOS_PER_GROUP = 2
CLIPS_PER_SHARD = 2000
CLIP_BYTES = 150_000
STAGES = ("read", "split", "audit", "loader_index")
TARGETS = {1_000_000: (10.0, 1.5e9), 10_000_000: (120.0, 8e9)}  # split + audit: seconds, bytes
_GENERATORS = ("real_a", "real_b", "gen_a", "gen_b", "gen_c")
SCALE_SPEC = {
    "name": "scale",
    "frames": 4,
    "sampling": "fps",
    "fps": 25,
    "size": [112, 112],
    "resize": "short_side_crop",
    "short_policy": "pad_last",
    "start": "center",
    "clips_per_video": CLIPS_PER_VIDEO,
}


def _hex_ids(count: int, seed: int, width: int = 32) -> pa.Array:
    raw = np.random.default_rng(seed).integers(0, 2**63, size=(count, 2), dtype=np.int64)
    return pa.array([f"{a:016x}{b:016x}"[:width] for a, b in raw.tolist()], pa.string())


def make_scale_cache(folder: Path, clips: int) -> CacheDir:
    """A manifest-only cache folder of `clips` clips (made once; a marker says it is complete)."""
    cache = CacheDir(folder)
    marker = folder / "scale.done"
    if marker.exists():
        return cache
    folder.mkdir(parents=True, exist_ok=True)
    videos = -(-clips // CLIPS_PER_VIDEO)
    video = np.arange(clips) // CLIPS_PER_VIDEO
    group = video // VIDEOS_PER_GROUP
    label = ((group % 5) >= 2).astype(np.int64)  # generator index 0-1 real, 2-4 fake
    generator = np.array(_GENERATORS, dtype=object)[group % 5]
    domain = np.where(group % 3 == 0, "domain_b", "domain_a").astype(object)
    video_ids = _hex_ids(videos, 1, 64)
    shard_no = np.arange(clips) // CLIPS_PER_SHARD
    offset = (np.arange(clips) % CLIPS_PER_SHARD) * CLIP_BYTES
    optional = optional_columns(
        ClipRecord
    )  # RGB clips: no colour-tag columns, as extraction writes
    schema = pa.schema([f for f in arrow_schema(ClipRecord) if f.name not in optional])
    columns = {
        "clip_id": _hex_ids(clips, 2),
        "video_id": video_ids.take(pa.array(video)),
        "clip_index": pa.array(np.arange(clips) % CLIPS_PER_VIDEO),
        "frame_indices": pa.array([[0, 1, 2, 3]] * clips, schema.field("frame_indices").type),
        "timestamps_s": pa.array(
            [[0.0, 0.04, 0.08, 0.12]] * clips, schema.field("timestamps_s").type
        ),
        "padded_frames": pa.array(np.zeros(clips, np.int64)),
        "short_policy": pa.array(["none"] * clips, pa.string()),
        "shard": pa.array(
            [f"shards/shard-{n // 1000:04d}-{n % 1000:04d}.npy.zst" for n in shard_no.tolist()]
        ),
        "offset": pa.array(offset),
        "nbytes": pa.array(np.full(clips, CLIP_BYTES)),
        "dataset": pa.array(["scale"] * clips, pa.string()),
        "domain": pa.array(domain.tolist(), pa.string()),
        "relpath": pa.array([f"v/{v:09d}.mp4" for v in video.tolist()], pa.string()),
        "label": pa.array(label),
        "generator": pa.array(generator.tolist(), pa.string()),
        "group": pa.array([f"g{g:09d}" for g in group.tolist()], pa.string()),
        "source_split": pa.nulls(clips, pa.string()),
    }
    table = pa.table(
        {name: columns[name].cast(schema.field(name).type) for name in schema.names}, schema=schema
    )
    pq.write_table(table, cache.clips_parquet, compression="zstd")
    cache.shards_dir.mkdir(exist_ok=True)
    for n in range(int(shard_no[-1]) + 1):  # sparse files: sizes, no bytes
        with open(
            cache.path / f"shards/shard-{n // 1000:04d}-{n % 1000:04d}.npy.zst", "wb"
        ) as handle:
            handle.truncate(CLIPS_PER_SHARD * CLIP_BYTES)
    write_json_atomic(cache.spec_json, parse_clip_spec(SCALE_SPEC, "bench scale").to_json())
    marker.write_text(str(clips))
    return cache


_STAGE_CODE = {
    "read": (
        "import pyarrow.parquet as pq; from vfcache.manifests.columns import SPLIT_FIELDS; "
        "t = pq.read_table(cache.clips_parquet, columns=list(SPLIT_FIELDS))"
    ),
    "split": (
        "from vfcache.pipelines.split import write_split; write_split(cache, sizes=sizes, seed=0, "
        "support=10, stratify=('label', 'generator'), name='scale')"
    ),
    "audit": (
        "from vfcache.manifests.audit import audit; r = audit([('scale', cache)], 'scale'); "
        "assert r.ok, [c for c in r.checks if not c.passed]"
    ),
    "loader_index": (
        "from vfcache.trainers.dataset import ClipDataset; "
        "d = ClipDataset(cache.split_file('scale', 'train')); assert len(d) > 0"
    ),
}


def _make_in_child(folder: Path, clips: int) -> CacheDir:
    """`make_scale_cache` in a child process. Made here, the manifest would leave this process
    gigabytes large, and a stage's child counts the pages it shared with it before `exec` in its
    peak RSS (that is how a 10M-clip run once reported the same 4.9 GB for every stage)."""
    code = (
        f"from pathlib import Path; from vfcache.bench.scale import make_scale_cache; "
        f"make_scale_cache(Path({str(folder)!r}), {clips})"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"bench scale could not make its {clips}-clip cache:\n{done.stderr[-3000:]}"
        )
    return CacheDir(folder)


def _run_stage(stage: str, cache: CacheDir, videos: int) -> tuple[float, int]:
    """(seconds, peak RSS bytes) of one stage in a fresh process."""
    per_group = VIDEOS_PER_GROUP  # whole groups: sizes the groups can make exactly
    sizes = (
        f"train={per_group * max(1, videos // (10 * per_group))},"
        f"val={per_group * max(1, videos // (20 * per_group))},test=rest"
    )
    code = (
        "import time, sys; from pathlib import Path; from vfcache.layout import CacheDir\n"
        f"cache = CacheDir(Path({str(cache.path)!r})); sizes = {sizes!r}\n"
        "started = time.perf_counter()\n"
        f"{_STAGE_CODE[stage]}\n"
        "print(time.perf_counter() - started)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"bench scale stage {stage} failed:\n{err[-3000:]}")
    return float(out.strip().splitlines()[-1]), usage.ru_maxrss * 1024


def run_scale_benchmark(root: DataRoot, clip_counts: Sequence[int]) -> dict:
    rows = []
    for clips in sorted(clip_counts):
        made = time.perf_counter()
        cache = _make_in_child(root.path / "bench" / "scale" / str(clips), clips)
        setup_s = time.perf_counter() - made
        videos = -(-clips // CLIPS_PER_VIDEO)
        row = {"clips": clips, "videos": videos, "setup_s": setup_s}
        for stage in STAGES:
            seconds, peak = _run_stage(stage, cache, videos)
            row[f"{stage}_s"], row[f"{stage}_peak_bytes"] = seconds, peak
        rows.append(row)
    growth = []
    for small, large in zip(rows, rows[1:]):
        decades = math.log10(large["clips"] / small["clips"])
        growth.append(
            {
                "from": small["clips"],
                "to": large["clips"],
                **{
                    f"{stage}_per_10x": (large[f"{stage}_s"] / max(small[f"{stage}_s"], 1e-9))
                    ** (1 / decades)
                    for stage in STAGES
                },
            }
        )
    checks = {}
    for row in rows:
        if row["clips"] in TARGETS:
            limit_s, limit_bytes = TARGETS[row["clips"]]
            seconds = row["split_s"] + row["audit_s"]
            peak = max(row["split_peak_bytes"], row["audit_peak_bytes"])
            checks[str(row["clips"])] = {
                "split_audit_s": seconds,
                "limit_s": limit_s,
                "peak_bytes": peak,
                "limit_bytes": limit_bytes,
                "meets": seconds < limit_s and peak < limit_bytes,
            }
    return {"benchmark": "scale", "rows": rows, "growth": growth, "targets": checks}


def format_scale_table(result: dict) -> str:
    """The table; memory in GB of 10^9 bytes, the unit of the targets."""
    lines = [f"{'clips':>11}" + "".join(f"{stage + ' s':>15}{'peak':>9}" for stage in STAGES)]
    for row in result["rows"]:
        cells = "".join(
            f"{row[f'{s}_s']:>15.2f}{row[f'{s}_peak_bytes'] / 1e9:>8.2f}G" for s in STAGES
        )
        lines.append(f"{row['clips']:>11,}{cells}")
    for step in result["growth"]:
        per = ", ".join(f"{s} x{step[f'{s}_per_10x']:.1f}" for s in STAGES)
        lines.append(f"per 10x from {step['from']:,} to {step['to']:,}: {per}")
    for clips, check in result["targets"].items():
        lines.append(
            f"{int(clips):,} clips: split + audit {check['split_audit_s']:.1f} s "
            f"(< {check['limit_s']:.0f}), peak {check['peak_bytes'] / 1e9:.2f} GB "
            f"(< {check['limit_bytes'] / 1e9:.1f}) {'PASS' if check['meets'] else 'FAIL'}"
        )
    return "\n".join(lines)


__all__ = ["format_scale_table", "make_scale_cache", "run_scale_benchmark"]
