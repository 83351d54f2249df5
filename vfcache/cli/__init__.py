"""The `vfcache` command: a thin click group whose commands parse arguments and call the
library. `app` holds the group and the shared options; each module beside it registers its
commands on the group when imported here."""

from vfcache.cli import bundle, shared_videos, stages  # noqa: F401  (commands register on `cli`)
from vfcache.cli.app import Context, cli
from vfcache.cli.bench import bench

cli.add_command(bench)

__all__ = ["Context", "cli", "main"]


def main() -> None:
    cli(prog_name="vfcache")
