"""For tests/test_torchrun.py: `torchrun ... torchrun_worker.py CONFIG ROOT LOG_DIR [STOP]`.

Runs `run_training` on this rank and writes the clip ids of every step it trained on to
LOG_DIR/seen-<launch>-rank<r>.json; STOP > 0 stops after that many steps, and a run whose
out_dir already holds last.pt is resumed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from vfcache.trainers.run_state import LAST_NAME
from vfcache.trainers.train import run_training
from vfcache.trainers.train_config import load_train_config, resolve_path


def main() -> None:
    config_path, root, log_dir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    stop = int(sys.argv[4]) if len(sys.argv) > 4 and int(sys.argv[4]) > 0 else None
    config = load_train_config(config_path)
    resume = (resolve_path(config.out_dir, root) / LAST_NAME).exists()
    steps = []
    result = run_training(
        config,
        root=root,
        resume=resume,
        stop_after_steps=stop,
        progress=False,
        on_step=lambda s: steps.append([s.epoch, s.step_in_epoch, list(s.clip_ids)]),
    )
    rank = int(os.environ["RANK"])
    launch = "resume" if resume else "first"
    (log_dir / f"seen-{launch}-rank{rank}.json").write_text(
        json.dumps(
            {
                "steps": steps,
                "world_size": int(os.environ["WORLD_SIZE"]),
                "global_step": result.global_step,
                "stopped_early": result.stopped_early,
            }
        )
    )


if __name__ == "__main__":
    main()
