"""The `vfcache` command: one click group whose commands parse arguments and call library functions.

Every command takes `--root` (data root), `--config FILE` (a dataset config outside
`configs/`); stages that run in parallel take `--workers N` or `--scheduler ADDRESS`.
User errors (`VfcacheError`) print one clean line and exit 2; a failed check exits 1.
The stage commands and their options sit together here (a little over 400 lines); the
benchmark commands live in `cli_bench.py`, the Hub bundle commands (publish, pull,
check-bundle) in `cli_bundle.py`, the videos shared across datasets (audit and joint split
of several datasets) in `cli_shared.py`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Iterator, Optional

import click

from vfcache.cli.app import (
    Context,
    cli,
    config_option,
    dataset_config,
    default_spec,
    extracted_spec,
    no_wait_option,
    spec_option,
)
from vfcache.config import (
    ClipSpec,
    DatasetConfig,
    parse_split_sizes,
)

log = logging.getLogger("vfcache")


def _echo_failures(failures_by_reason: dict) -> None:
    if failures_by_reason:
        click.echo("failures by reason:")
        for reason, count in sorted(failures_by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
            click.echo(f"  {count:6d}  {reason}")


def _split_options(
    config: DatasetConfig, sizes, seed, support, name, unit=None, subset=None
) -> dict:
    from vfcache.pipelines.split import split_options

    return split_options(
        config.splits,
        sizes=parse_split_sizes(sizes, "--sizes") if sizes else None,
        seed=seed,
        support=support,
        name=name,
        unit=unit,
        subset=subset,
    )


@contextlib.contextmanager
def _naming_dataset(name: str) -> Iterator[None]:
    """A fetch error's line starts with the dataset it stopped."""
    from vfcache.pipelines.fetch.errors import FetchError

    try:
        yield
    except FetchError as err:
        err.dataset = err.dataset or name
        raise


def _run_fetch(ctx: Context, config: DatasetConfig) -> None:
    from vfcache.pipelines.sources.base import get_source

    source = get_source(config)
    with _naming_dataset(config.name):
        summary = source.fetch(ctx.root, progress=ctx.progress)
    if summary is None:  # sources that only generate or point at local files
        click.echo(f"fetched {config.name} -> {source.raw_dir(ctx.root)}")
        return
    state = (
        "up to date"
        if summary.up_to_date
        else (f"{summary.downloaded} downloaded" if summary.downloaded is not None else "synced")
    )
    click.echo(
        f"{summary.source}: {summary.files} files, {summary.total_bytes / 2**20:.1f} MiB, {state}, "
        f"{summary.failed} failed, {summary.extracted_archives} archives extracted -> "
        f"{summary.raw_dir}"
    )
    for note in summary.notes:
        click.echo(f"  note: {note}")
    if summary.failed:
        click.echo(f"  failures listed in {summary.failures_path}", err=True)


def _run_build_manifest(ctx: Context, config: DatasetConfig, client, force: bool = False) -> None:
    from vfcache.pipelines.probe import build_manifest

    report = build_manifest(
        config, ctx.root, client=client, progress=ctx.progress, force=force, wait=ctx.wait
    )
    click.echo(
        f"{report.videos_total} videos: {report.videos_ok} ok, {report.videos_failed} failed, "
        f"{report.videos_skipped} skipped (probed {report.probed}, unchanged {report.reused}) -> "
        f"{report.videos_parquet}"
    )
    if report.ignored.total:
        click.echo(f"ignored: {report.ignored.describe()} (listed in {report.ignored_path})")
    _echo_failures(report.failures_by_reason)


def _run_extract(
    ctx: Context,
    config: DatasetConfig,
    spec: ClipSpec,
    client,
    *,
    reader: str = "pyav",
    shard_mib: int = 128,
    max_failed: float = 0.05,
    zstd_level: Optional[int] = None,
    cache_url: Optional[str] = None,
) -> None:
    from vfcache.pipelines.extract import TooManyFailures, extract_clips

    try:
        report = extract_clips(
            config,
            ctx.root,
            spec,
            client=client,
            reader=reader,
            shard_target_bytes=shard_mib << 20,
            max_failed=max_failed,
            progress=ctx.progress,
            wait=ctx.wait,
            zstd_level=zstd_level,
            cache_url=cache_url,
        )
    except TooManyFailures as err:
        _echo_failures(err.report.failures_by_reason)
        raise
    click.echo(
        f"{report.clips} clips from {report.videos_with_clips}/{report.videos_total} videos in "
        f"{report.shards} shards ({report.shard_bytes / 2**20:.1f} MiB); this run wrote "
        f"{report.clips_written} clips in {report.tasks_run}/{report.tasks_total} tasks "
        f"({report.seconds:.1f} s) -> {report.clips_parquet}"
    )
    _echo_failures(report.failures_by_reason)


def _run_split(
    ctx: Context, config: DatasetConfig, spec: ClipSpec, options: dict, *, skip_current: bool
) -> None:
    from vfcache.pipelines.split import split_is_current, write_split

    cache_dir = ctx.root.cache_dir(config.name, spec.name)
    if skip_current and split_is_current(cache_dir, options):
        click.echo(f"split {options['name']} is current -> {cache_dir.split_dir(options['name'])}")
        return
    report = write_split(cache_dir, **options, wait=ctx.wait)
    subset = report.meta.subset
    if subset is not None:
        click.echo(
            f"  subset     {subset.obtained:6d} of {subset.of} {report.meta.unit} "
            f"(asked {subset.asked}, seed {subset.seed})"
        )
    for summary in report.meta.parts:
        clips = "" if summary.unit == "clips" else f" = {summary.clips} clips"
        asked = f" (asked {summary.asked})" if summary.asked else ""
        click.echo(f"  {summary.part:<10} {summary.obtained:6d} {summary.unit}{clips}{asked}")
    if not report.exact:
        click.echo(
            "warning: some parts could not be filled exactly (groups too large); see split.json",
            err=True,
        )
    click.echo(f"split {report.name} -> {report.split_dir}")
    from vfcache.pipelines.extract.remote_cache import push_split

    url = push_split(cache_dir, report.split_dir)
    if url:
        click.echo(f"uploaded -> {url}")


def _run_audit(
    ctx: Context,
    datasets: list[tuple[DatasetConfig, ClipSpec]],
    split_name: str,
    json_path: Optional[str],
) -> bool:
    from vfcache.atomic import write_json_atomic
    from vfcache.cli.shared_videos import shared_videos
    from vfcache.manifests.audit import audit, format_table

    # videos shared across datasets: by bytes and by frame hashes (computed once per file)
    shared = shared_videos(ctx, [config for config, _ in datasets]) if len(datasets) > 1 else None
    from vfcache.cache_tools.remote import remote_shard_sizes

    report = audit(
        [(config.name, ctx.root.cache_dir(config.name, spec.name)) for config, spec in datasets],
        split_name=split_name,
        shared=shared,
        remote_shard_sizes=remote_shard_sizes,
    )
    click.echo(format_table(report))
    if json_path:
        write_json_atomic(json_path, report.to_json())
        click.echo(f"audit -> {json_path}")
    return report.ok


server_option = click.option(
    "--server",
    multiple=True,
    help="Server/base URL or Hub endpoint (FF++: the URL you were sent; "
    "repeat it to fall over between several servers).",
)
terms_option = click.option(
    "--accept-terms", is_flag=True, help="Accept the dataset's terms (FF++ requires it)."
)


def _fetch_config(name: str, config_file, server, accept_terms) -> DatasetConfig:
    from vfcache.pipelines.sources.overrides import apply_fetch_options

    return apply_fetch_options(
        dataset_config(name, config_file), server=server, accept_terms=accept_terms
    )


@cli.command()
@click.argument("name")
@config_option
@server_option
@terms_option
@click.option(
    "--dry-run",
    is_flag=True,
    help="List what would be downloaded (files, bytes, terms); download nothing.",
)
@click.pass_obj
def fetch(ctx: Context, name: str, config_file, server, accept_terms, dry_run) -> None:
    """Bring the raw data of dataset NAME (for `sample`: generate it); re-runs fetch only what is
    missing."""
    config = _fetch_config(name, config_file, server, accept_terms)
    if dry_run:
        _run_fetch_plan(ctx, config)
    else:
        _run_fetch(ctx, config)


def _run_fetch_plan(ctx: Context, config: DatasetConfig) -> None:
    from vfcache.pipelines.sources.base import get_source
    from vfcache.pipelines.sources.plan import format_plan, write_plan

    with _naming_dataset(config.name):
        plan = get_source(config).plan_fetch(ctx.root)
    click.echo(format_plan(plan))
    click.echo(f"dry run: nothing downloaded; plan kept in {write_plan(ctx.root, plan)}")


@cli.command()
@click.option("--offline", is_flag=True, help="Do not contact the Hub endpoint.")
@click.pass_obj
def doctor(ctx: Context, offline: bool) -> None:
    """Check the environment a run needs (decoders, torch/CUDA, Hub, token, proxies, disk); exit 1
    on a failed check."""
    from vfcache.pipelines.doctor import format_checks, run_checks

    checks = run_checks(ctx.root.path, offline=offline)
    click.echo(format_checks(checks))
    if any(check.status == "fail" for check in checks):
        sys.exit(1)


@cli.command()
@click.pass_obj
def datasets(ctx: Context) -> None:
    """Every configured dataset: source, size on disk, terms, and which stages are done."""
    from vfcache.pipelines.sources.status import dataset_status, format_status_table

    click.echo(format_status_table(dataset_status(ctx.root)))


@cli.command("build-manifest")
@click.argument("name")
@config_option
@click.option(
    "--spec",
    hidden=True,
    default=None,
    help="Accepted for old scripts and ignored: probing does not depend on the clip spec.",
)
@click.option("--force", is_flag=True, help="Probe every file again, even unchanged ones.")
@no_wait_option
@click.pass_obj
def build_manifest_cmd(ctx: Context, name: str, config_file, spec, force, no_wait) -> None:
    """Probe every video of NAME into cache/NAME/videos.parquet, one manifest for every clip spec
    (failures get a row with a reason)."""
    ctx.wait = not no_wait
    config = dataset_config(name, config_file)
    with ctx.client() as client:
        _run_build_manifest(ctx, config, client, force=force)


@cli.command()
@click.argument("name")
@config_option
@spec_option
@click.option("--reader", type=click.Choice(["pyav", "decord"]), default="pyav", show_default=True)
@click.option(
    "--shard-mib", type=click.IntRange(1), default=128, show_default=True, help="Target shard size."
)
@click.option(
    "--zstd-level",
    type=click.IntRange(1, 19),
    default=None,
    help="zstd level of a new cache folder's shards (default 2; recorded in spec.json, which "
    "a grown cache keeps).",
)
@click.option(
    "--cache-url",
    default=None,
    metavar="URL",
    help="Keep the shards on object storage (s3://bucket/prefix): workers upload them there, "
    "the local cache folder keeps the small files (recorded; later runs need not repeat it).",
)
@click.option(
    "--max-failed",
    type=click.FloatRange(0, 1),
    default=0.05,
    show_default=True,
    help="Exit non-zero when more than this fraction of videos failed.",
)
@no_wait_option
@click.pass_obj
def extract(
    ctx: Context,
    name: str,
    config_file,
    spec,
    reader,
    shard_mib,
    zstd_level,
    cache_url,
    max_failed,
    no_wait,
) -> None:
    """Cut clips of NAME into shards and clips.parquet (resumable: re-run after a crash)."""
    ctx.wait = not no_wait
    config = dataset_config(name, config_file)
    with ctx.client() as client:
        _run_extract(
            ctx,
            config,
            default_spec(config, spec),
            client,
            reader=reader,
            shard_mib=shard_mib,
            max_failed=max_failed,
            zstd_level=zstd_level,
            cache_url=cache_url,
        )


@cli.command()
@click.argument("names", nargs=-1, required=True)
@config_option
@spec_option
@click.option(
    "--sizes", default=None, help="e.g. train=50,val=50,test=rest (counts, fractions or rest)."
)
@click.option("--seed", type=int, default=None, help="Split seed (default: the dataset's preset).")
@click.option(
    "--support",
    type=click.IntRange(0),
    default=None,
    help="Support bank: N real + N fake per domain.",
)
@click.option("--name", "split_name", default=None, help="Split name (folder under splits/).")
@click.option(
    "--unit",
    type=click.Choice(["videos", "clips"]),
    default=None,
    help="What sizes count (default: the preset's, videos).",
)
@click.option(
    "--subset",
    type=click.IntRange(0),
    default=None,
    help="Split a seeded, stratified subset of N records (0: none, overriding the preset).",
)
@no_wait_option
@click.pass_obj
def split(
    ctx: Context, names, config_file, spec, sizes, seed, support, split_name, unit, subset, no_wait
) -> None:
    """Write reproducible split JSONL files of NAME (same seed -> byte-identical files).

    Several NAMES make a joint split: each dataset is split with its own preset (options given
    apply to every one), in the order named, and a video found in an earlier one (same bytes or
    same frames) goes to the part its copy went to."""
    ctx.wait = not no_wait
    if len(names) == 1:
        config = dataset_config(names[0], config_file)
        options = _split_options(config, sizes, seed, support, split_name, unit, subset)
        _run_split(ctx, config, extracted_spec(ctx, config, spec), options, skip_current=False)
        return
    if config_file:
        raise click.UsageError(
            "--config names one dataset; split several by their names in configs/"
        )
    if len(set(names)) != len(names):
        raise click.UsageError(f"a dataset is named twice: {' '.join(names)}")
    from vfcache.cli.shared_videos import run_joint_split

    configs = [dataset_config(name, None) for name in names]
    options = [
        _split_options(config, sizes, seed, support, split_name, unit, subset) for config in configs
    ]
    if len({o["name"] for o in options}) > 1:
        raise click.UsageError("the datasets' presets name different splits; give one with --name")
    run_joint_split(ctx, [(c, extracted_spec(ctx, c, spec)) for c in configs], options)


@cli.command()
@click.argument("name")
@config_option
@spec_option
@click.option(
    "--dry-run", is_flag=True, help="Say what would be deleted and freed; delete nothing."
)
@no_wait_option
@click.pass_obj
def gc(ctx: Context, name: str, config_file, spec, dry_run, no_wait) -> None:
    """Delete the shards of NAME that neither clips.parquet nor any split file references."""
    from vfcache.pipelines.extract.gc import collect_garbage
    from vfcache.pipelines.sources.plan import human_bytes

    config = dataset_config(name, config_file)
    cache_dir = ctx.root.cache_dir(config.name, extracted_spec(ctx, config, spec).name)
    from vfcache.pipelines.extract.remote_cache import refuse_remote

    refuse_remote(cache_dir, "gc")
    found = collect_garbage(cache_dir, dry_run=True, wait=not no_wait)
    click.echo(
        f"{len(found.shards)} shards referenced by no manifest or split file, "
        f"{human_bytes(found.bytes)}; {found.kept_shards} shards kept ({cache_dir.shards_dir})"
    )
    if dry_run or not found.shards:
        return
    done = collect_garbage(cache_dir, wait=not no_wait)
    click.echo(f"deleted {len(done.shards)} shards, freed {human_bytes(done.bytes)}")


@cli.command("audit")
@click.argument("names", nargs=-1, required=True)
@config_option
@spec_option
@click.option("--split", "split_name", default="default", show_default=True)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the report as JSON.",
)
@click.pass_obj
def audit_cmd(ctx: Context, names, config_file, spec, split_name, json_path) -> None:
    """Clips per domain x split x label, and the leakage/shard/count checks; exit 1 when a check
    fails."""
    if config_file and len(names) > 1:
        raise click.UsageError(
            "--config names one dataset; audit several by their names in configs/"
        )
    datasets = [
        (config, extracted_spec(ctx, config, spec))
        for config in (dataset_config(n, config_file) for n in names)
    ]
    if not _run_audit(ctx, datasets, split_name, json_path):
        raise SystemExit(1)


@cli.command()
@click.argument("name")
@config_option
@spec_option
@click.option(
    "--decode",
    is_flag=True,
    help="Also look at each clip's pixels: flag clips that "
    "look like a decoder's concealment (green with zero chroma, flat grey, all flat).",
)
@click.pass_obj
def verify(ctx: Context, name: str, config_file, spec, decode: bool) -> None:
    """Read every clip of NAME back and check it; names every bad clip and shard."""
    from vfcache.cache_tools.verify import verify_cache

    config = dataset_config(name, config_file)
    cache_dir = ctx.root.cache_dir(config.name, extracted_spec(ctx, config, spec).name)
    from vfcache.pipelines.extract.remote_cache import refuse_remote

    refuse_remote(cache_dir, "verify")
    report = verify_cache(cache_dir, progress=ctx.progress, decode=decode)
    click.echo(report.summary())
    if not report.ok:
        raise SystemExit(1)


@cli.command()
@click.argument("name")
@config_option
@spec_option
@click.option(
    "--out",
    "out_png",
    type=click.Path(dir_okay=False),
    default=None,
    help="PNG path (default: <cache>/preview.png).",
)
@click.option(
    "--per-cell",
    type=click.IntRange(1),
    default=4,
    show_default=True,
    help="Clips per label x generator.",
)
@click.option(
    "--frames", type=click.IntRange(1), default=4, show_default=True, help="Frames shown per clip."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_obj
def preview(ctx: Context, name: str, config_file, spec, out_png, per_cell, frames, seed) -> None:
    """A contact sheet of frames from random clips per label and generator."""
    from vfcache.cache_tools.preview import contact_sheet

    config = dataset_config(name, config_file)
    cache_dir = ctx.root.cache_dir(config.name, extracted_spec(ctx, config, spec).name)
    from vfcache.pipelines.extract.remote_cache import refuse_remote

    refuse_remote(cache_dir, "preview")
    out = contact_sheet(
        cache_dir,
        out_png or cache_dir.path / "preview.png",
        per_cell=per_cell,
        frames_per_clip=frames,
        seed=seed,
    )
    click.echo(str(out))


@cli.command()
@click.argument("name")
@config_option
@spec_option
@server_option
@terms_option
@click.option("--max-failed", type=click.FloatRange(0, 1), default=0.05, show_default=True)
@no_wait_option
@click.pass_obj
def cache(
    ctx: Context, name: str, config_file, spec, server, accept_terms, max_failed, no_wait
) -> None:
    """fetch -> build-manifest -> extract -> split -> audit, each stage skipping what is done."""
    ctx.wait = not no_wait
    config = _fetch_config(name, config_file, server, accept_terms)
    clip_spec = default_spec(config, spec)
    click.echo(f"== fetch {config.name}")
    _run_fetch(ctx, config)
    with ctx.client() as client:
        click.echo(f"== build-manifest {config.name} ({clip_spec.name})")
        _run_build_manifest(ctx, config, client)
        click.echo(f"== extract {config.name} ({clip_spec.name})")
        _run_extract(ctx, config, clip_spec, client, max_failed=max_failed)
    options = _split_options(config, None, None, None, None)
    click.echo(f"== split {config.name}")
    _run_split(ctx, config, clip_spec, options, skip_current=True)
    click.echo(f"== audit {config.name}")
    if not _run_audit(ctx, [(config, clip_spec)], options["name"], None):
        raise SystemExit(1)


def _is_rank_zero() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


@cli.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--resume", is_flag=True, help="Continue the run in the config's out_dir where it stopped."
)
@click.option(
    "--stop-after-steps",
    type=click.IntRange(1),
    default=None,
    help="Stop (with a resumable checkpoint) after N optimizer steps.",
)
@click.pass_obj
def train(ctx: Context, config_path, resume, stop_after_steps) -> None:
    """Train from split JSONL files and shards (works under torchrun)."""
    from vfcache.trainers.train import run_training

    result = run_training(
        config_path,
        root=ctx.root.path,
        resume=resume,
        stop_after_steps=stop_after_steps,
        progress=ctx.progress,
    )
    if _is_rank_zero():
        click.echo(
            f"{result.epochs_completed} epochs, {result.global_step} steps in "
            f"{result.elapsed_s:.0f} s; "
            f"best epoch {result.best_epoch} (selection score {result.best_selection_score})"
        )
        click.echo(
            f"best -> {result.best_checkpoint}\nlast -> {result.last_checkpoint}\nmetrics -> "
            f"{result.metrics_path}"
        )


@cli.command("eval")
@click.argument("config_path", metavar="CONFIG", type=click.Path(exists=True))
@click.option(
    "--query",
    "queries",
    multiple=True,
    help="With a GASBench model directory: split files to score (repeat the option).",
)
@click.option(
    "--out-dir",
    default=None,
    help="With a GASBench model directory: the report folder (default reports/gasbench/<model "
    "name>).",
)
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="With a GASBench model directory: cpu, cuda, auto.",
)
@click.option(
    "--videos",
    default=None,
    metavar="FOLDER_OR_DATASET",
    help="With a GASBench model directory: score these videos the GASBench way (a folder laid out "
    "real|fake/<generator>/<video>, or a dataset name); clips are cached under the model's "
    "gasbench spec, so the next model with the same preprocessing decodes nothing.",
)
@click.pass_obj
def eval_cmd(ctx: Context, config_path, queries, out_dir, batch_size, device, videos) -> None:
    """Evaluate a checkpoint (an eval CONFIG), or a GASBench model directory or its .zip (CONFIG is
    the folder with model_config.yaml, model.py and model.safetensors; --query says what to score):
    uint8 (B, T, 3, H, W) input, GASBench's sn34 table, and vfcache's protocol; JSON, Markdown,
    PNG."""
    from vfcache.trainers.evaluate import run_evaluation
    from vfcache.trainers.gasbench_eval import run_gasbench_evaluation

    if Path(config_path).is_dir() or Path(config_path).suffix.lower() == ".zip":
        if videos:
            queries = queries + (_gasbench_clips(ctx, config_path, videos),)
        if not queries:
            raise click.UsageError(
                "a GASBench model directory needs --query SPLIT_FILE or --videos FOLDER_OR_DATASET"
            )
        out_dir = out_dir or f"reports/gasbench/{Path(config_path).stem}"
        result = run_gasbench_evaluation(
            config_path,
            list(queries),
            out_dir=out_dir,
            root=ctx.root.path,
            batch_size=batch_size,
            device=device,
            progress=ctx.progress,
        )
    else:
        result = run_evaluation(config_path, root=ctx.root.path, progress=ctx.progress)
    files = result.files
    click.echo(files.markdown.read_text(encoding="utf-8"))
    for kind, path in (
        ("json", files.json),
        ("markdown", files.markdown),
        ("predictions", files.predictions),
        ("png", files.png),
    ):
        if path is not None:
            click.echo(f"{kind} -> {path}")


def _videos_config(videos: str) -> DatasetConfig:
    """A dataset name, or a folder of videos as a `local` dataset named after it."""
    folder = Path(videos)
    if not folder.is_dir():
        return dataset_config(videos, None)
    from vfcache.config import parse_dataset_config

    name = "videos-" + "".join(
        c if c.isalnum() or c in "-_" else "-" for c in folder.resolve().name
    )
    return parse_dataset_config(
        {
            "name": name,
            "kind": "local",
            "domain": folder.resolve().name,
            "source": {"path": str(folder.resolve())},
        },
        f"--videos {videos}",
    )


def _gasbench_clips(ctx: Context, model_path: str, videos: str) -> str:
    """Cache `videos` under the model directory's gasbench spec (manifest, clips, one `gasbench`
    split holding every clip as test); returns the split file. A cache that is current is reused."""
    from vfcache.config import gasbench_clip_spec
    from vfcache.trainers.gasbench import opened_gasbench_dir, read_gasbench_config

    with opened_gasbench_dir(model_path) as folder:
        prep = read_gasbench_config(folder)["preprocessing"]
    spec = gasbench_clip_spec(
        num_frames=prep["num_frames"],
        height=prep["resize"][0],
        width=prep["resize"][1],
        frame_rate=prep.get("frame_rate"),
    )
    config = _videos_config(videos)
    options = {
        **_split_options(config, "test=rest", 0, 0, "gasbench", unit="videos"),
        "subset": None,
    }
    with _naming_dataset(config.name), ctx.client() as client:
        _run_build_manifest(ctx, config, client)
        _run_extract(ctx, config, spec, client, max_failed=1.0)
    _run_split(ctx, config, spec, options, skip_current=True)
    return str(ctx.root.cache_dir(config.name, spec.name).split_file("gasbench", "test"))


@cli.command()
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--gasbench",
    "gasbench_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Write the model as a GASBench directory (model_config.yaml, model.py, "
    "model.safetensors).",
)
@click.option(
    "--name",
    default=None,
    help="The model's name in model_config.yaml (default: the run folder's).",
)
def export(checkpoint, gasbench_dir, name) -> None:
    """Export a trained checkpoint for another tool (GASBench: a standalone model.py that never
    imports vfcache, the weights as safetensors, and the frames and size in model_config.yaml)."""
    from vfcache.trainers.gasbench import export_gasbench

    folder = export_gasbench(checkpoint, gasbench_dir, name=name)
    click.echo(f"GASBench model -> {folder}")
