"""The `vfcache` command group: its context (data root, cluster, progress), the options
several commands share, and the one-line error handling; the commands live beside it
(stages, bundle, shared_videos, bench) and register on `cli`."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import click

from vfcache import __version__
from vfcache.config import (
    ClipSpec,
    DatasetConfig,
    load_clip_spec,
    load_dataset_config,
)
from vfcache.errors import VfcacheError
from vfcache.layout import DataRoot, default_root

log = logging.getLogger("vfcache")


@dataclass
class Context:
    root: DataRoot
    workers: int
    scheduler: Optional[str]
    progress: bool
    wait: bool = True  # writers wait for a cache folder another writer holds (--no-wait: exit 2)

    @contextlib.contextmanager
    def client(self) -> Iterator[object]:
        from vfcache.pipelines.runner import open_cluster

        with open_cluster(workers=self.workers, scheduler=self.scheduler) as client:
            yield client


def dataset_config(name: str, config_file: Optional[str]) -> DatasetConfig:
    from vfcache.pipelines.sources.base import get_source

    config = load_dataset_config(name, config_file)
    get_source(config)  # validates the kind's `source:` keys at load, naming file, field and value
    return config


def default_spec(config: DatasetConfig, spec: Optional[str]) -> ClipSpec:
    return load_clip_spec(spec or config.clip_spec)


def extracted_spec(ctx: Context, config: DatasetConfig, spec: Optional[str]) -> ClipSpec:
    """--spec when given; else the one spec extracted for the dataset (from its spec.json);
    else the dataset's default. Several extracted specs and no --spec is an error naming them."""
    if spec:
        return load_clip_spec(spec)
    found = ctx.root.extracted_specs(config.name)
    if len(found) == 1:
        return ctx.root.cache_dir(config.name, found[0]).read_spec()
    if len(found) > 1:
        raise click.UsageError(
            f"{config.name} has caches for several clip specs ({', '.join(found)}); "
            "choose one with --spec"
        )
    return default_spec(config, None)


config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Dataset config file (default: configs/datasets/NAME.yaml).",
)
spec_option = click.option(
    "--spec", default=None, help="Clip spec preset name or YAML path (default: the dataset's)."
)
no_wait_option = click.option(
    "--no-wait",
    is_flag=True,
    help="If another writer holds the cache folder, exit 2 naming it instead of waiting.",
)


class VfcacheGroup(click.Group):
    """Turns library errors into clean one-line messages: exit 2 for a user error, 1 for a failed
    check."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VfcacheError as err:
            from vfcache.pipelines.extract import TooManyFailures

            failure = click.ClickException(str(err))  # click's own exit code for it is 1
            # fetch errors carry theirs: 2 for a setting to change, 1 for a host that kept failing
            failure.exit_code = (
                1 if isinstance(err, TooManyFailures) else getattr(err, "exit_code", 2)
            )
            raise failure from err


@click.group(cls=VfcacheGroup)
@click.option(
    "--root",
    type=click.Path(file_okay=False),
    default=None,
    help="Data root (default: $VFCACHE_ROOT or ./data).",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=2,
    show_default=True,
    help="Local dask worker processes.",
)
@click.option(
    "--scheduler", default=None, help="Address of an existing dask scheduler (tcp://host:8786)."
)
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.version_option(version=__version__, prog_name="vfcache")
@click.pass_context
def cli(ctx: click.Context, root, workers, scheduler, no_progress, verbose) -> None:
    """Turn video-forensics datasets into fixed-frame clip caches, and train from them."""
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = Context(
        DataRoot(Path(root) if root else default_root()), workers, scheduler, not no_progress
    )
