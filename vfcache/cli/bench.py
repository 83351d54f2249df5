"""`vfcache bench extract|load|scale|train`: the benchmark commands (figures in the README).

Each command calls the benchmark's library function and prints its table; `--json PATH`
writes the same figures for machines.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import click

if TYPE_CHECKING:
    from vfcache.cli.app import Context


@click.group()
def bench() -> None:
    """Benchmarks: ratios measured side by side, printed as a table (and JSON with --json)."""


corpus_option = click.option(
    "--corpus",
    type=click.Choice(["natural", "synthetic"]),
    default="natural",
    show_default=True,
    help="Built-in corpus: a photograph panned and zoomed with sensor noise, or painted test "
    "patterns.",
)


corpora_option = click.option(
    "--corpus",
    "corpora",
    type=click.Choice(["natural", "synthetic"]),
    multiple=True,
    default=("natural", "synthetic"),
    show_default=True,
    help="Built-in corpora to measure, one table each (repeat the option); ignored with --videos.",
)


def _emit_benches(results: list[dict], tables: list[str], json_path: Optional[str]) -> None:
    """One table per corpus; the JSON is the one result, or {benchmark, corpora: [results]}."""
    payload = (
        results[0]
        if len(results) == 1
        else {"benchmark": results[0]["benchmark"], "corpora": results}
    )
    _emit_bench(payload, "\n\n".join(tables), json_path)


def _emit_bench(result: dict, table: str, json_path: Optional[str]) -> None:
    from vfcache.atomic import write_json_atomic

    click.echo(table)
    if json_path:
        write_json_atomic(json_path, result)
        click.echo(f"results -> {json_path}")


@bench.command("extract")
@click.option(
    "--videos",
    "videos_dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Measure this folder of videos instead of a built-in corpus.",
)
@corpora_option
@click.option("--repeats", type=click.IntRange(1), default=3, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
@click.pass_obj
def bench_extract(ctx: Context, videos_dir, corpora, repeats, json_path) -> None:
    """extract / decode floor, decode-all / extract, 2 workers / 1 worker; zstd levels on the
    clips."""
    from vfcache.bench.extract import format_extract_table, run_extract_benchmark

    results = [
        run_extract_benchmark(
            ctx.root,
            videos_dir=Path(videos_dir) if videos_dir else None,
            repeats=repeats,
            corpus=corpus,
        )
        for corpus in (corpora if not videos_dir else corpora[:1])
    ]
    _emit_benches(results, [format_extract_table(r) for r in results], json_path)


@bench.command("load")
@click.option(
    "--videos",
    "videos_dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Measure this folder of videos instead of a built-in corpus.",
)
@corpora_option
@click.option("--repeats", type=click.IntRange(1), default=3, show_default=True)
@click.option("--no-litdata", is_flag=True, help="Skip the LitData comparison.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
@click.pass_obj
def bench_load(ctx: Context, videos_dir, corpora, repeats, no_litdata, json_path) -> None:
    """Shard reads against the zstd bound, on-the-fly decoding, the warm decoded cache and
    LitData."""
    from vfcache.bench.load import format_load_table, run_load_benchmark

    results = [
        run_load_benchmark(
            ctx.root,
            repeats=repeats,
            with_litdata=not no_litdata,
            videos_dir=Path(videos_dir) if videos_dir else None,
            corpus=corpus,
        )
        for corpus in (corpora if not videos_dir else corpora[:1])
    ]
    _emit_benches(results, [format_load_table(r) for r in results], json_path)


@bench.command("scale")
@click.option(
    "--clips",
    "clip_counts",
    type=click.IntRange(2000),
    multiple=True,
    default=(100_000, 1_000_000),
    show_default=True,
    help="Manifest sizes to measure (repeat the option; at least 2,000, so that the train split "
    "holds the support bank of 10 clips per class and domain); 10,000,000 takes a while.",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
@click.pass_obj
def bench_scale(ctx: Context, clip_counts, json_path) -> None:
    """Time and peak memory of read, split, audit and the loader index on a synthetic manifest."""
    from vfcache.bench.scale import format_scale_table, run_scale_benchmark

    result = run_scale_benchmark(ctx.root, clip_counts)
    _emit_bench(result, format_scale_table(result), json_path)


@bench.command("train")
@click.option(
    "--videos",
    "videos_dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Measure this folder of videos instead of a built-in corpus.",
)
@corpus_option
@click.option(
    "--device",
    default=None,
    help="Default: cuda when present. `cpu` runs the path as a smoke test.",
)
@click.option(
    "--recipe",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Training config whose model, unfreeze, loss and amp run. Default: "
    "configs/train/supcon_mixed.yaml.",
)
@click.option(
    "--model",
    "model_name",
    default=None,
    help="Another model family with the recipe's loss and policy.",
)
@click.option(
    "--spec",
    default=None,
    help="Clip spec (preset name or YAML) of the benchmark cache. Default: the spec of the "
    "recipe's data (its split files' spec.json, else the preset their path names), else the "
    "model's input contract.",
)
@click.option("--batch-size", type=click.IntRange(1), default=24, show_default=True)
@click.option("--steps", type=click.IntRange(1), default=40, show_default=True)
@click.option(
    "--loader-workers",
    type=click.IntRange(0),
    default=None,
    help="Default: one per core left to the training process, at most 8.",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
@click.pass_obj
def bench_train(
    ctx: Context,
    videos_dir,
    corpus,
    device,
    recipe,
    model_name,
    spec,
    batch_size,
    steps,
    loader_workers,
    json_path,
) -> None:
    """GPU training step with the project's loader: data wait share, clips/s, loader ceiling."""
    from vfcache.bench.train import format_train_table, run_train_benchmark

    result = run_train_benchmark(
        ctx.root,
        device=device,
        model_name=model_name,
        recipe=Path(recipe) if recipe else None,
        batch_size=batch_size,
        steps=steps,
        workers=loader_workers,
        videos_dir=Path(videos_dir) if videos_dir else None,
        corpus=corpus,
        spec=spec,
    )
    _emit_bench(result, format_train_table(result), json_path)
