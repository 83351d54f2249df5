"""A clip spec chosen once: one videos.parquet per dataset, `--spec` given only to `extract`."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner
from video_corpus import write_local_dataset

from vfcache.cli import cli


def _dataset(tmp_path: Path) -> Path:
    return write_local_dataset(
        tmp_path, 8, splits={"sizes": {"train": 4, "val": 2, "test": "rest"}, "support": 1}
    )


def test_the_spec_is_given_once_to_extract(tmp_path):
    config = _dataset(tmp_path)
    root = tmp_path / "data"
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(
            cli,
            [
                "--root",
                str(root),
                "--workers",
                "1",
                "--no-progress",
                *args,
                "--config",
                str(config),
            ],
        )
        assert "Traceback" not in result.output
        return result

    assert run("build-manifest", "mine").exit_code == 0
    assert (root / "cache" / "mine" / "videos.parquet").is_file()
    other = tmp_path / "short_4x32.yaml"
    other.write_text(
        yaml.safe_dump(
            {
                "name": "short_4x32",
                "frames": 4,
                "sampling": "fps",
                "fps": 8,
                "size": [32, 32],
                "resize": "short_side_crop",
                "short_policy": "pad_last",
                "start": "center",
                "clips_per_video": 1,
            }
        )
    )
    extracted = run("extract", "mine", "--spec", str(other))
    assert extracted.exit_code == 0, extracted.output
    for stage in (
        ("split", "mine"),
        ("audit", "mine"),
        ("verify", "mine"),
        ("gc", "mine", "--dry-run"),
    ):
        result = run(*stage)
        assert result.exit_code == 0, (stage, result.output)
    assert (root / "cache" / "mine" / "short_4x32" / "splits" / "default" / "split.json").is_file()
    assert "short_4x32" in run("audit", "mine").output
    # a second spec: the manifest is shared, and stages without --spec name the choices
    assert run("extract", "mine").exit_code == 0  # the dataset's default, sample_8x112
    assert sorted(p.name for p in (root / "cache" / "mine").iterdir() if p.is_dir()) == [
        "sample_8x112",
        "short_4x32",
    ]
    ambiguous = run("split", "mine")
    assert ambiguous.exit_code == 2
    assert (
        "several clip specs (sample_8x112, short_4x32); choose one with --spec" in ambiguous.output
    )
    assert run("split", "mine", "--spec", "sample_8x112").exit_code == 0
