"""`vfcache publish | pull | check-bundle`: clip bundles on the Hugging Face Hub ("my clips are
your clips"). Each command parses its options and calls pipelines/publish.py, pull.py or
check_bundle.py; the token and endpoint follow huggingface_hub (HF_TOKEN, HF_ENDPOINT).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import click

from vfcache.cli.app import (
    cli,
    config_option,
    dataset_config,
    extracted_spec,
    no_wait_option,
    spec_option,
)

if TYPE_CHECKING:
    from vfcache.cli.app import Context

endpoint_option = click.option(
    "--endpoint",
    default=None,
    help="Hub endpoint (default: $HF_ENDPOINT or https://huggingface.co).",
)


@cli.command()
@click.argument("name")
@config_option
@spec_option
@click.option(
    "--split", "split_name", default="default", show_default=True, help="The split to publish."
)
@click.option(
    "--repo", "repo_id", required=True, help="Hub dataset repo, OWNER/NAME (created if absent)."
)
@click.option(
    "--with-shards",
    is_flag=True,
    help="Also push the shards (only when the dataset's terms allow redistributing clips).",
)
@click.option("--private", is_flag=True, help="Create the repo private.")
@click.option(
    "--update", is_flag=True, help="Replace what an existing repo holds with this bundle."
)
@click.option(
    "--reader",
    type=click.Choice(["pyav", "decord"]),
    default="pyav",
    show_default=True,
    help="The reader the clips were extracted with (recorded in bundle.json).",
)
@endpoint_option
@click.pass_obj
def publish(
    ctx: Context,
    name,
    config_file,
    spec,
    split_name,
    repo_id,
    with_shards,
    private,
    update,
    reader,
    endpoint,
) -> None:
    """Push one split of NAME, its manifests, pixel digests, audit and provenance (and with
    --with-shards its shards) to a Hub dataset repo with a generated dataset card."""
    from vfcache.pipelines.bundles.publish import push_bundle, stage_bundle
    from vfcache.pipelines.extract.remote_cache import refuse_remote

    config = dataset_config(name, config_file)
    spec_name = extracted_spec(ctx, config, spec).name
    refuse_remote(ctx.root.cache_dir(config.name, spec_name), "publish")
    with ctx.client() as client:
        staged = stage_bundle(
            config,
            ctx.root,
            spec_name,
            split_name,
            repo_id=repo_id,
            with_shards=with_shards,
            reader=reader,
            client=client,
            progress=ctx.progress,
        )
    manifest = staged.manifest
    click.echo(
        f"bundle {config.name}/{spec_name}/{split_name}: {manifest.counts['clips']} clips of "
        f"{manifest.counts['videos']} videos, {len(staged.files)} files "
        f"({sum(f.bytes for f in manifest.files) / 2**20:.1f} MiB) -> {staged.staging_dir}"
    )
    result = push_bundle(
        staged, repo_id, private=private, update=update, endpoint=endpoint, progress=ctx.progress
    )
    if result.up_to_date:
        click.echo(f"{repo_id} already holds this bundle at commit {result.commit}; nothing pushed")
    else:
        click.echo(
            f"{'created' if result.created else 'updated'} {result.url}: commit {result.commit} "
            f"({result.uploaded} files uploaded, {result.deleted} deleted)"
        )
    click.echo(f"others pull it with: vfcache pull {repo_id} --revision {result.commit}")


@cli.command()
@click.argument("repo_id", metavar="OWNER/NAME")
@click.option(
    "--revision",
    default="main",
    show_default=True,
    help="Branch, tag or commit to pull (pin a commit).",
)
@endpoint_option
@no_wait_option
@click.pass_obj
def pull(ctx: Context, repo_id, revision, endpoint, no_wait) -> None:
    """Bring a published clip bundle into <root>/bundles/OWNER/NAME at one commit and verify every
    file."""
    from vfcache.pipelines.bundles.pull import pull_bundle

    result = pull_bundle(
        repo_id,
        ctx.root,
        revision=revision,
        endpoint=endpoint,
        progress=ctx.progress,
        wait=not no_wait,
    )
    manifest = result.manifest
    click.echo(
        f"{repo_id}@{result.commit}: {result.files} files ({result.total_bytes / 2**20:.1f} MiB) "
        f"verified "
        f"-> {result.folder}"
    )
    if result.removed:
        click.echo(f"  removed {len(result.removed)} files of an earlier pull")
    click.echo(
        f"  {manifest.dataset} / {manifest.spec_name} / split {manifest.split}: "
        f"{manifest.counts['clips']} "
        f"clips of {manifest.counts['videos']} videos; shards "
        f"{'included' if manifest.with_shards else 'not included'}"
    )
    if manifest.with_shards:
        click.echo(f"  train from it: split files in {result.folder / 'splits' / manifest.split}")
    else:
        click.echo(f"  check your own clips against it: vfcache check-bundle {repo_id}")


def _bundle_folder(ctx: Context, name: str) -> tuple[Path, str]:
    if "/" in name and not Path(name).is_dir():
        folder = ctx.root.bundle_dir(name)
        if not folder.is_dir():
            raise click.UsageError(
                f"no bundle {name} under {ctx.root.path / 'bundles'}; pull it first "
                f"(vfcache pull {name})"
            )
        return folder, name
    if Path(name).is_dir():
        return Path(name), name
    raise click.UsageError(f"{name} is neither a pulled bundle (OWNER/NAME) nor a bundle folder")


@cli.command("check-bundle")
@click.argument("name", metavar="OWNER/NAME|FOLDER")
@config_option
@click.option(
    "--raw",
    "raw_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Your raw videos (default: the dataset's raw folder under --root).",
)
@click.option("--reader", type=click.Choice(["pyav", "decord"]), default="pyav", show_default=True)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the per-video report as JSON.",
)
@click.pass_obj
def check_bundle_cmd(
    ctx: Context, name, config_file, raw_dir: Optional[str], reader, json_path
) -> None:
    """Re-extract a pulled bundle's clips from your own raw videos and compare clip ids and pixel
    digests: matched, missing, different, by clip and by video; exit 1 when any differ."""
    from vfcache.manifests.bundle import read_bundle_manifest
    from vfcache.pipelines.bundles.check import BundleChanged, check_bundle, write_check_report
    from vfcache.pipelines.sources.base import get_source

    folder, label = _bundle_folder(ctx, name)
    if raw_dir is None:
        dataset = read_bundle_manifest(folder).dataset
        raw_dir = str(get_source(dataset_config(dataset, config_file)).raw_dir(ctx.root))
    try:
        with ctx.client() as client:
            report = check_bundle(
                folder, raw_dir, name=label, reader=reader, client=client, progress=ctx.progress
            )
    except BundleChanged as err:
        click.echo(f"check FAILED: {err}", err=True)
        raise SystemExit(1) from err
    click.echo(report.format())
    if json_path:
        click.echo(f"report -> {write_check_report(json_path, report)}")
    if not report.ok:
        raise SystemExit(1)
