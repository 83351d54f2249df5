"""The `vfcache` command: one click group whose commands parse arguments and call library functions.

Every command takes `--root` (data root), `--config FILE` (a dataset config outside
`configs/`); stages that run in parallel take `--workers N` or `--scheduler ADDRESS`.
User errors (`VfcacheError`) print one clean line and exit 2; a failed check exits 1.
"""
from __future__ import annotations

import contextlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import click

from manifests.layout import DataRoot, default_root
from vfcache.config import ClipSpec, DatasetConfig, load_clip_spec, load_dataset_config, parse_split_sizes
from vfcache.errors import VfcacheError

log = logging.getLogger("vfcache")


@dataclass
class Context:
    root: DataRoot
    workers: int
    scheduler: Optional[str]
    progress: bool

    @contextlib.contextmanager
    def client(self) -> Iterator[object]:
        from pipelines.runner import open_cluster

        with open_cluster(workers=self.workers, scheduler=self.scheduler) as client:
            yield client


def _dataset(name: str, config_file: Optional[str]) -> DatasetConfig:
    return load_dataset_config(name, config_file)


def _spec(config: DatasetConfig, spec: Optional[str]) -> ClipSpec:
    return load_clip_spec(spec or config.clip_spec)


config_option = click.option(
    "--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
    help="Dataset config file (default: configs/datasets/NAME.yaml).",
)
spec_option = click.option("--spec", default=None, help="Clip spec preset name or YAML path (default: the dataset's).")


class VfcacheGroup(click.Group):
    """Turns library errors into clean one-line messages."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VfcacheError as err:
            raise click.ClickException(str(err)) from err


@click.group(cls=VfcacheGroup)
@click.option("--root", type=click.Path(file_okay=False), default=None, help="Data root (default: $VFCACHE_ROOT or ./data).")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True, help="Local dask worker processes.")
@click.option("--scheduler", default=None, help="Address of an existing dask scheduler (tcp://host:8786).")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.version_option(package_name="vfcache")
@click.pass_context
def cli(ctx: click.Context, root, workers, scheduler, no_progress, verbose) -> None:
    """Turn video-forensics datasets into fixed-frame clip caches, and train from them."""
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = Context(DataRoot(Path(root) if root else default_root()), workers, scheduler, not no_progress)


def main() -> None:
    cli(prog_name="vfcache")


if __name__ == "__main__":
    sys.exit(main())
