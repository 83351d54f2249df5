"""Two CPU processes under `torchrun` (gloo): disjoint data per rank, rank 0 writes, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from train_fixtures import toy_train_dict, write_toy_cache
from vfcache.trainers.dataset import ClipDataset
from vfcache.trainers.models import read_checkpoint
from vfcache.trainers.samplers import ClassBalancedBatchSampler

REPO = Path(__file__).resolve().parents[1]


def _torchrun(config: Path, root: Path, log_dir: Path, stop: int) -> None:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(REPO / "tests" / "torchrun_worker.py"),
        str(config),
        str(root),
        str(log_dir),
        str(stop),
    ]
    done = subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]


@pytest.mark.slow
def test_two_ranks_split_every_epoch_and_resume_mid_epoch(tmp_path):
    toy = write_toy_cache(tmp_path)
    config = toy_train_dict(toy, batch_size=4, epochs=2, out_dir="runs/ddp", workers=1)
    config_path = tmp_path / "ddp.yaml"
    config_path.write_text(yaml.safe_dump(config))
    logs = tmp_path / "logs"
    logs.mkdir()
    _torchrun(config_path, tmp_path, logs, stop=3)  # 4 steps per rank and epoch: stop mid-epoch 1
    last = read_checkpoint(tmp_path / "runs" / "ddp" / "last.pt")
    assert last["epoch"] == 0 and last["train_state"]["progress"]["step_in_epoch"] == 3
    assert len(last["train_state"]["rng"]) == 2  # both ranks' RNG states
    _torchrun(config_path, tmp_path, logs, stop=0)

    # what each rank trained on, across the stop and the resume
    seen = {}
    for rank in (0, 1):
        first = json.loads((logs / f"seen-first-rank{rank}.json").read_text())
        second = json.loads((logs / f"seen-resume-rank{rank}.json").read_text())
        assert first["stopped_early"] and not second["stopped_early"]
        assert first["world_size"] == 2 and second["global_step"] == 8
        seen[rank] = first["steps"] + second["steps"]
    # expected: the sampler's global batches of each epoch, rank r taking batches r, r + 2, ...
    dataset = ClipDataset(tmp_path / toy.split_files["train"])
    ids = [e.clip_id for e in dataset.entries]
    reference = ClassBalancedBatchSampler(dataset.labels, 4, seed=config["seed"])
    for epoch in (1, 2):
        batches = [[ids[i] for i in batch] for batch in reference.epoch_batches(epoch - 1)]
        for rank in (0, 1):
            got = [step[2] for step in seen[rank] if step[0] == epoch]
            assert got == batches[rank::2]
        mine = [{c for step in seen[r] if step[0] == epoch for c in step[2]} for r in (0, 1)]
        assert not mine[0] & mine[1]  # disjoint
        assert mine[0] | mine[1] == set(ids)  # and together the whole train split

    run_dir = tmp_path / "runs" / "ddp"
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "best.pt",
        "config.json",
        "last.pt",
        "metrics.jsonl",
    ]
    final = read_checkpoint(run_dir / "last.pt")
    assert final["epoch"] == 2 and final["args"]["world_size"] == 2
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
