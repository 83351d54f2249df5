"""The `vfcache` command end to end through click's CliRunner, on small real data.

A `local` dataset config and a 4-frame 64x64 clip spec, both written by the tests, point at
the synthetic corpus of `video_corpus` (good videos plus a too-short, a truncated and a
not-a-video file). The dataset commands run once, in order, in module fixtures; each test
then checks one command's exit code, printed lines and files. Training and evaluation run
on the tiny cache of `train_fixtures`; the benchmarks on a folder of two tiny videos.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import click
import cv2
import pytest
import torch
import yaml
from click.testing import CliRunner, Result
from train_fixtures import toy_train_dict, write_toy_cache
from vfcache.manifests.parquet_io import read_records
from vfcache.manifests.records import STATUS_FAILED, STATUS_OK, ClipRecord, VideoRecord
from vfcache.pipelines.sources.synthetic import make_video
from video_corpus import GOOD_VIDEOS, LAYOUT, NOT_A_VIDEO, TOO_SHORT, TRUNCATED

from vfcache.cli import cli
from vfcache.config import list_dataset_names
from vfcache.layout import SHARD_SUFFIX, CacheDir, DataRoot

CLIPS_PER_VIDEO = 2
SPEC_NAME = "t4x64"
SPEC_YAML = f"""\
name: {SPEC_NAME}
frames: 4
sampling: fps
fps: 10
size: [64, 64]
start: random
clips_per_video: {CLIPS_PER_VIDEO}
short_policy: skip
"""
SPLIT_ARGS = ("--sizes", "train=0.5,val=0.25,test=rest", "--seed", "3", "--support", "1")
PARTS = ("train", "val", "test", "support")
VIDEOS_TOTAL = len(GOOD_VIDEOS) + 3  # + too short, truncated, not a video
CLIPS_TOTAL = len(GOOD_VIDEOS) * CLIPS_PER_VIDEO


def invoke(root: Path, *args: str) -> Result:
    """`vfcache --root ROOT --workers 1 --no-progress ARGS...`; library exceptions stay in the
    result."""
    return CliRunner().invoke(
        cli, ["--root", str(root), "--workers", "1", "--no-progress", *args], prog_name="vfcache"
    )


def assert_clean_exit(result: Result, code: int) -> None:
    """Exit `code` through click (SystemExit), never an escaped exception with a traceback."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output


def local_config_yaml(raw_dir: Path, name: str = "corpus") -> str:
    return (
        f"name: {name}\nkind: local\ndomain: {name}\nsource: {{path: {json.dumps(str(raw_dir))}}}\n"
        f"clip_spec: {SPEC_NAME}\n"
        f"layout: {{pattern: {json.dumps(LAYOUT['pattern'])}, group: "
        f"{json.dumps(LAYOUT['group'])}}}\n"
        "splits: {sizes: {train: 0.5, val: 0.25, test: rest}, seed: 0, support: 1}\n"
    )


@dataclass(frozen=True)
class Files:
    config: Path  # the local dataset config
    spec: Path  # the clip spec

    @property
    def args(self) -> tuple[str, ...]:
        return ("--config", str(self.config), "--spec", str(self.spec))


@pytest.fixture(scope="module")
def files(tmp_path_factory, corpus) -> Files:
    folder = tmp_path_factory.mktemp("cli_configs")
    (folder / "corpus.yaml").write_text(local_config_yaml(corpus.raw_dir))
    (folder / "spec.yaml").write_text(SPEC_YAML)
    return Files(folder / "corpus.yaml", folder / "spec.yaml")


@dataclass(frozen=True)
class Pipeline:
    root: Path
    cache: CacheDir
    runs: dict  # step -> Result


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, files) -> Pipeline:
    """fetch, build-manifest, extract (then extract again with --max-failed 0) on a fresh root."""
    root = tmp_path_factory.mktemp("cli_root")
    runs = {
        "fetch": invoke(root, "fetch", "corpus", "--config", str(files.config)),
        "build-manifest": invoke(root, "build-manifest", "corpus", *files.args),
        "extract": invoke(
            root, "extract", "corpus", *files.args, "--max-failed", "0.5", "--shard-mib", "1"
        ),
        "extract-strict": invoke(root, "extract", "corpus", *files.args, "--max-failed", "0"),
    }
    return Pipeline(root, DataRoot(root).cache_dir("corpus", SPEC_NAME), runs)


def split_snapshot(split_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(split_dir.iterdir())}


@pytest.fixture(scope="module")
def split_twice(pipeline, files) -> tuple[Result, dict, Result, dict]:
    split_dir = pipeline.cache.split_dir("default")
    first = invoke(pipeline.root, "split", "corpus", *files.args, *SPLIT_ARGS)
    snapshot = split_snapshot(split_dir) if split_dir.exists() else {}
    second = invoke(pipeline.root, "split", "corpus", *files.args, *SPLIT_ARGS)
    return first, snapshot, second, split_snapshot(split_dir) if split_dir.exists() else {}


# -- datasets, fetch, build-manifest, extract ---------------------------------------------------
def test_datasets_lists_every_config(tmp_path):
    result = invoke(tmp_path, "datasets")
    assert_clean_exit(result, 0)
    rows = {
        line.split()[0]: line.split()
        for line in result.output.splitlines()
        if line.strip() and not line.startswith(" ")
    }
    names = list_dataset_names()
    assert len(names) >= 7 and {"sample", "ffpp", "aegis"} <= set(names)
    for name in names:
        assert name in rows, f"{name} missing from:\n{result.output}"
        assert rows[name][2] == "no", rows[name]  # nothing fetched on a fresh root
        assert f"\n{name}: " in result.output  # the per-dataset source / terms paragraph


def test_fetch_local_checks_the_folder(pipeline, corpus, tmp_path):
    assert_clean_exit(pipeline.runs["fetch"], 0)
    assert pipeline.runs["fetch"].output.strip() == f"fetched corpus -> {corpus.raw_dir}"
    missing = tmp_path / "not_there"
    (tmp_path / "gone.yaml").write_text(local_config_yaml(missing))
    result = invoke(tmp_path, "fetch", "corpus", "--config", str(tmp_path / "gone.yaml"))
    assert_clean_exit(result, 2)
    assert str(missing) in result.output and "not a folder" in result.output


def test_build_manifest_prints_counts_and_failures(pipeline):
    result = pipeline.runs["build-manifest"]
    assert_clean_exit(result, 0)
    lines = result.output.splitlines()
    assert lines[0] == (
        f"{VIDEOS_TOTAL} videos: {VIDEOS_TOTAL - 2} ok, 2 failed, 0 skipped "
        f"(probed {VIDEOS_TOTAL}, unchanged 0) -> {pipeline.cache.videos_parquet}"
    )
    # the corpus's truth file is not a video: counted, never dropped silently
    assert lines[1] == (
        f"ignored: 1 files not taken as videos: .json 1 (listed in "
        f"{pipeline.cache.path.parent / 'ignored_files.json'})"
    )
    assert lines[2] == "failures by reason:"
    assert sorted(line.split() for line in lines[3:]) == [["1", "not_a_video"], ["1", "truncated"]]
    videos = {v.relpath: v for v in read_records(pipeline.cache.videos_parquet, VideoRecord)}
    assert len(videos) == VIDEOS_TOTAL
    assert {videos[TRUNCATED].reason.split(":")[0], videos[NOT_A_VIDEO].reason.split(":")[0]} == {
        "truncated",
        "not_a_video",
    }
    assert videos[TRUNCATED].status == videos[NOT_A_VIDEO].status == STATUS_FAILED
    assert all(videos[relpath].status == STATUS_OK for relpath in [*GOOD_VIDEOS, TOO_SHORT])


def test_extract_writes_clips_and_shards(pipeline):
    result = pipeline.runs["extract"]
    assert_clean_exit(result, 0)
    summary = result.output.splitlines()[0]
    assert summary.startswith(
        f"{CLIPS_TOTAL} clips from {len(GOOD_VIDEOS)}/{VIDEOS_TOTAL} videos in "
    )
    assert f"this run wrote {CLIPS_TOTAL} clips in " in summary
    assert summary.endswith(f"-> {pipeline.cache.clips_parquet}")
    assert "failures by reason:" in result.output
    for reason in ("not_a_video", "truncated", "too_short"):
        assert f"  1  {reason}" in result.output
    clips = read_records(pipeline.cache.clips_parquet, ClipRecord)
    assert len(clips) == CLIPS_TOTAL
    assert {c.relpath for c in clips} == set(GOOD_VIDEOS)
    shards = sorted(
        p.name for p in pipeline.cache.shards_dir.iterdir() if p.name.endswith(SHARD_SUFFIX)
    )
    assert shards and sorted({Path(c.shard).name for c in clips}) == shards
    assert f"in {len(shards)} shards" in summary
    assert pipeline.cache.spec_json.exists() and pipeline.cache.failures_parquet.exists()


def test_extract_max_failed_zero_exits_1_with_the_failure_summary(pipeline):
    result = pipeline.runs["extract-strict"]
    assert_clean_exit(result, 1)
    assert "failures by reason:" in result.output
    assert "  1  not_a_video" in result.output and "  1  truncated" in result.output
    assert f"2 of {VIDEOS_TOTAL} videos of 'corpus' failed" in result.output
    assert (
        "max_failed 0.0%" in result.output and str(pipeline.cache.failures_parquet) in result.output
    )
    assert (
        len(read_records(pipeline.cache.clips_parquet, ClipRecord)) == CLIPS_TOTAL
    )  # nothing lost


# -- split, audit, verify, preview --------------------------------------------------------------
def test_split_writes_jsonl_files_byte_identical_for_a_seed(pipeline, split_twice):
    first, snapshot, second, again = split_twice
    assert_clean_exit(first, 0)
    assert_clean_exit(second, 0)
    assert first.output == second.output
    split_dir = pipeline.cache.split_dir("default")
    assert first.output.splitlines()[-1] == f"split default -> {split_dir}"
    assert {f"{part}.jsonl" for part in PARTS} | {"split.json"} <= set(snapshot)
    assert again == snapshot
    # "  train  4 videos = 8 clips (asked 0.5)": sizes count videos, each line also gives clips
    rows = [line.split() for line in first.output.splitlines()[:-1]]
    printed = {row[0]: int(row[4] if row[2] == "videos" else row[1]) for row in rows}
    assert {row[0]: row[2] for row in rows} == {
        "train": "videos",
        "val": "videos",
        "test": "videos",
        "support": "clips",
    }
    lines = {part: snapshot[f"{part}.jsonl"].decode().splitlines() for part in PARTS}
    assert printed == {part: len(rows) for part, rows in lines.items()}
    assert sum(printed[part] for part in ("train", "val", "test")) == CLIPS_TOTAL
    assert (
        printed["support"] == 2 * 2
    )  # --support 1: one real + one fake clip per domain, two domains
    assert set(lines["support"]) <= set(lines["train"])
    meta = json.loads(snapshot["split.json"])
    assert meta["seed"] == 3


def test_gc_on_a_cache_without_garbage_deletes_nothing(pipeline, files):
    result = invoke(pipeline.root, "gc", "corpus", *files.args, "--dry-run")
    assert_clean_exit(result, 0)
    assert result.output.startswith("0 shards referenced by no manifest or split file, 0 B; ")
    assert "deleted" not in result.output


def test_split_with_another_seed_differs(pipeline, files, split_twice):
    result = invoke(
        pipeline.root,
        "split",
        "corpus",
        *files.args,
        "--sizes",
        "train=0.5,val=0.25,test=rest",
        "--seed",
        "4",
        "--support",
        "1",
        "--name",
        "seed4",
    )
    assert_clean_exit(result, 0)
    mine = split_snapshot(pipeline.cache.split_dir("seed4"))
    assert mine["split.json"] != split_twice[1]["split.json"]


def test_audit_prints_the_table_and_writes_json(pipeline, files, split_twice, tmp_path):
    out = tmp_path / "audit.json"
    result = invoke(pipeline.root, "audit", "corpus", *files.args, "--json", str(out))
    assert_clean_exit(result, 0)
    assert "corpus / street" in result.output and "corpus / studio" in result.output
    assert "total    train      val     test  support" in result.output
    assert "FAIL" not in result.output and "audit passed" in result.output
    assert result.output.splitlines()[-1] == f"audit -> {out}"
    report = json.loads(out.read_text())
    assert report["ok"] is True and report["split_name"] == "default"
    assert report["checks"] and all(check["passed"] for check in report["checks"])


def test_verify_passes_on_the_fresh_cache(pipeline, files):
    result = invoke(pipeline.root, "verify", "corpus", *files.args)
    assert_clean_exit(result, 0)
    assert f"{pipeline.cache.path}: {CLIPS_TOTAL} clips in " in result.output
    assert "(4, 64, 64, 3)" in result.output and result.output.splitlines()[-1] == "verify passed"


def test_audit_and_verify_exit_1_on_a_deleted_shard(pipeline, files, split_twice, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(pipeline.root, root)
    cache = DataRoot(root).cache_dir("corpus", SPEC_NAME)
    shard = json.loads(cache.split_file("default", "train").read_text().splitlines()[0])["shard"]
    cache.resolve_shard(shard).unlink()
    audit = invoke(root, "audit", "corpus", *files.args)
    assert_clean_exit(audit, 1)
    assert "audit FAILED" in audit.output
    assert any(
        line.startswith("FAIL") and "clips_in_final_shards" in line
        for line in audit.output.splitlines()
    )
    verify = invoke(root, "verify", "corpus", *files.args)
    assert_clean_exit(verify, 1)
    assert any(
        line.startswith("BAD SHARD") and shard in line for line in verify.output.splitlines()
    )
    assert "verify FAILED" in verify.output


def test_preview_writes_a_png(pipeline, files, tmp_path):
    out = tmp_path / "x.png"
    result = invoke(
        pipeline.root, "preview", "corpus", *files.args, "--out", str(out), "--frames", "2"
    )
    assert_clean_exit(result, 0)
    assert result.output.strip() == str(out)
    image = cv2.imread(str(out))
    assert image is not None and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] >= 64 and image.shape[1] >= 2 * 64  # at least one clip's two frames


# -- cache --------------------------------------------------------------------------------------
def test_cache_runs_every_stage_then_skips_what_is_done(files, tmp_path):
    first = invoke(tmp_path, "cache", "corpus", *files.args, "--max-failed", "0.5")
    assert_clean_exit(first, 0)
    stages = [line for line in first.output.splitlines() if line.startswith("== ")]
    assert stages == [
        "== fetch corpus",
        f"== build-manifest corpus ({SPEC_NAME})",
        f"== extract corpus ({SPEC_NAME})",
        "== split corpus",
        "== audit corpus",
    ]
    cache = DataRoot(tmp_path).cache_dir("corpus", SPEC_NAME)
    assert f"this run wrote {CLIPS_TOTAL} clips" in first.output
    assert f"split default -> {cache.split_dir('default')}" in first.output
    assert first.output.splitlines()[-1] == "audit passed"
    split_files = split_snapshot(cache.split_dir("default"))
    assert {f"{part}.jsonl" for part in PARTS} <= set(split_files)

    second = invoke(tmp_path, "cache", "corpus", *files.args, "--max-failed", "0.5")
    assert_clean_exit(second, 0)
    assert "this run wrote 0 clips in 0/" in second.output
    assert f"(probed 0, unchanged {VIDEOS_TOTAL})" in second.output
    assert f"split default is current -> {cache.split_dir('default')}" in second.output
    assert second.output.splitlines()[-1] == "audit passed"
    assert split_snapshot(cache.split_dir("default")) == split_files


# -- error paths --------------------------------------------------------------------------------
def test_config_whose_name_differs_from_the_argument_exits_2(files, tmp_path):
    result = invoke(tmp_path, "build-manifest", "other", *files.args)
    assert result.exit_code == 2
    assert "name" in result.output and "'other'" in result.output and "corpus" in result.output


@pytest.mark.parametrize(
    "command",
    ["fetch", "build-manifest", "extract", "split", "audit", "verify", "preview", "cache"],
)
def test_unknown_dataset_exits_2_listing_the_known_ones(command, tmp_path):
    result = invoke(tmp_path, command, "nosuchset")
    assert_clean_exit(result, 2)
    assert "'nosuchset'" in result.output
    assert all(name in result.output for name in list_dataset_names())
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "source_extra, text, field, value",
    [
        ("", "clipspec: r2plus1d_24x224\n", "clipspec", "'r2plus1d_24x224'"),
        ("", "layout: {pattern: '{label}/{name}', labels: [real]}\n", "layout.labels", "['real']"),
        (", recursive: true", "", "source.recursive", "True"),  # checked by the `local` kind
    ],
)
def test_config_with_an_unknown_key_exits_2_naming_file_field_and_value(
    tmp_path, corpus, source_extra, text, field, value
):
    config = tmp_path / "typo.yaml"
    config.write_text(
        f"name: typo\nkind: local\nsource: {{path: "
        f"{json.dumps(str(corpus.raw_dir))}{source_extra}}}\n"
        f"{text}"
    )
    result = invoke(tmp_path, "build-manifest", "typo", "--config", str(config))
    assert_clean_exit(result, 2)
    assert f"{config}: field '{field}' = {value} is invalid" in result.output
    assert not (tmp_path / "cache").exists()


def test_fetch_ffpp_without_server_says_it_is_form_gated(tmp_path):
    result = invoke(tmp_path, "fetch", "ffpp")
    assert_clean_exit(result, 2)
    assert "form-gated" in result.output and "--server URL --accept-terms" in result.output
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").rglob("*.mp4"))


def test_audit_with_config_and_several_names_is_a_usage_error(files, tmp_path):
    result = invoke(tmp_path, "audit", "corpus", "sample", "--config", str(files.config))
    assert_clean_exit(result, 2)
    assert "--config names one dataset" in result.output


# -- train, eval --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_train")
    toy = write_toy_cache(root, per_class={"train": 4, "val": 2, "test": 3, "support": 2})
    config = root / "train.yaml"
    config.write_text(json.dumps(toy_train_dict(toy, epochs=1)))  # JSON is YAML
    return toy, config, invoke(root, "train", str(config))


@pytest.mark.parametrize("missing", ["split_file", "cache_folder"])
def test_train_with_a_missing_split_is_one_line(trained, tmp_path, missing):
    toy, _, _ = trained
    train = Path(toy.split_files["train"])
    wrong = (
        train.with_name("absent.jsonl")
        if missing == "split_file"
        else tmp_path / "cache" / "nope" / "spec" / "splits" / "default" / "train.jsonl"
    )
    config = tmp_path / "train.yaml"
    payload = toy_train_dict(toy, epochs=1, out_dir=str(tmp_path / "runs"))
    payload["data"]["train"] = [str(wrong)]
    config.write_text(json.dumps(payload))
    result = invoke(toy.root, "train", str(config))
    assert_clean_exit(result, 2)
    assert len(result.output.strip().splitlines()) == 1 and str(wrong) in result.output


def test_train_writes_checkpoints_and_metrics(trained):
    toy, _, result = trained
    assert_clean_exit(result, 0)
    out_dir = toy.root / "runs" / "toy"
    first, second = result.output.splitlines()[:2]
    assert (
        first.startswith("tiny3d: ")
        and " trainable of " in first
        and first.endswith("(unfreeze all)")
    )
    assert second.startswith("1 epochs, ")
    assert f"best -> {out_dir / 'best.pt'}" in result.output
    assert f"last -> {out_dir / 'last.pt'}" in result.output
    metrics = [line for line in result.output.splitlines() if line.startswith("metrics -> ")]
    assert len(metrics) == 1 and Path(metrics[0].split(" -> ")[1]).parent == out_dir
    assert (out_dir / "best.pt").stat().st_size > 0 and (out_dir / "last.pt").stat().st_size > 0
    epochs = Path(metrics[0].split(" -> ")[1]).read_text().splitlines()
    assert len(epochs) >= 1 and all(json.loads(line) for line in epochs)


def test_eval_prints_markdown_and_writes_reports(trained):
    toy, _, train_result = trained
    assert_clean_exit(train_result, 0)
    config = toy.root / "eval.yaml"
    config.write_text(
        json.dumps(
            {
                "name": "toy_eval",
                "checkpoint": "runs/toy/best.pt",
                "protocols": ["prototype", "benchmark"],
                "query": [str(toy.split_files["test"])],
                "support": [str(toy.split_files["support"])],
                "out_dir": "reports/toy",
                "batch_size": 6,
                "workers": 0,
                "device": "cpu",
            }
        )
    )
    result = invoke(toy.root, "eval", str(config))
    assert_clean_exit(result, 0)
    written = {
        line.split(" -> ")[0]: Path(line.split(" -> ")[1])
        for line in result.output.splitlines()
        if " -> " in line and line.split(" -> ")[0] in ("json", "markdown", "predictions", "png")
    }
    assert set(written) == {"json", "markdown", "predictions", "png"}
    for path in written.values():
        assert path.parent == toy.root / "reports" / "toy" and path.stat().st_size > 0
    markdown = written["markdown"].read_text()
    assert markdown.strip() and markdown.strip() in result.output  # the report is printed
    assert "| Domain | Clips (real / fake) | AUROC | EER | Accuracy | MCC |" in result.output
    report = json.loads(written["json"].read_text())
    assert set(report["results"]) == {"prototype", "benchmark"}
    assert cv2.imread(str(written["png"])) is not None


# -- bench --------------------------------------------------------------------------------------
EXTRACT_FIGURES = (
    "extract_over_floor",
    "yuv420_extract_over_floor",
    "decode_all_over_extract",
    "workers2_over_workers1",
)
LITDATA_FIGURES = (
    "over_litdata{mode}_random",
    "over_litdata{mode}_sequential",
    "bytes_over_litdata{mode}",
    "first_batch_over_litdata{mode}",
    "reader_rss_over_litdata{mode}",
)
# with targets: the LitData table against its sample mode, for the RGB and the yuv420 reader
LOAD_FIGURES = (
    "shard_over_zstd_bound",
    "shard_over_on_the_fly_pyav",
    "shard_over_on_the_fly_decord",
    "warm_cache_over_shard",
    "yuv420_bytes_over_raw_rgb",
    "yuv420_over_rgb_reads",
    "yuv420_shard_over_zstd_bound",
    *(
        prefix + name.format(mode="_sample")
        for prefix in ("", "yuv420_")
        for name in LITDATA_FIGURES
    ),
)
# reported without a target: LitData's default wrap, today's bytes, the CPU conversion
LOAD_REPORTED = (
    "bytes_over_raw_rgb",
    "yuv420_bytes_over_rgb_bytes",
    "yuv420_to_rgb_share_of_cpu_read",
    "yuv420_rgb_form_over_rgb_reads",
    *(prefix + name.format(mode="") for prefix in ("", "yuv420_") for name in LITDATA_FIGURES),
)


@pytest.fixture(scope="module")
def bench_videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bench_videos")
    for seed in range(2):
        make_video(
            folder / f"v{seed}.mp4",
            codec="h264",
            width=160,
            height=120,
            num_frames=60,
            fps=25,
            seed=seed,
            threads=1,
        )
    return folder


def assert_figures(result: Result, out: Path, figures: tuple[str, ...]) -> dict:
    assert_clean_exit(result, 0)
    assert result.output.splitlines()[-1] == f"results -> {out}"
    payload = json.loads(out.read_text())
    for key in figures:
        value = payload[key]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, (key, value)
        assert key in payload["targets"] and isinstance(payload["meets_targets"][key], bool)
    return payload


def test_bench_extract_on_a_folder_of_videos(bench_videos, tmp_path):
    out = tmp_path / "extract.json"
    result = invoke(
        tmp_path,
        "bench",
        "extract",
        "--videos",
        str(bench_videos),
        "--repeats",
        "1",
        "--json",
        str(out),
    )
    payload = assert_figures(result, out, EXTRACT_FIGURES)
    assert payload["benchmark"] == "extract" and payload["corpus"] == str(bench_videos)
    assert payload["videos_fps"] == payload["videos_uniform"] == 2 and payload["repeats"] == 1
    for label in (
        "extract / floor",
        "yuv420 extract / floor",
        "decode-all / extract",
        "2 workers / 1 worker",
    ):
        assert label in result.output


def test_bench_load_on_a_folder_of_videos(bench_videos, tmp_path):
    """Every figure, RGB and yuv420 clips of the same videos and LitData in both wrap modes."""
    out = tmp_path / "load.json"
    result = invoke(
        tmp_path,
        "bench",
        "load",
        "--videos",
        str(bench_videos),
        "--repeats",
        "1",
        "--json",
        str(out),
    )
    payload = assert_figures(result, out, LOAD_FIGURES)
    assert payload["benchmark"] == "load" and payload["clips"] > 0 and payload["repeats"] == 1
    assert payload["loader_workers2_over_workers1"] > 0 and payload["zstd_level"] == 2
    assert payload["first_batch_s"] > 0 and payload["litdata_reader_rss_bytes"] > 0
    for key in LOAD_REPORTED:
        assert (
            isinstance(payload[key], float) and math.isfinite(payload[key]) and payload[key] > 0
        ), key
        assert key not in payload["targets"]
    for key in (*LOAD_FIGURES, *LOAD_REPORTED):
        assert any(line.split()[:1] == [key] for line in result.output.splitlines()), key
    # the yuv420 planes of the same clips (issue 18), read beside the RGB ones
    assert payload["yuv420_clips"] == payload["clips"]
    t, h, w, _ = payload["clip_shape"]
    assert payload["yuv420_clip_shape"] == [t, h * 3 // 2, w]
    assert 0 < payload["yuv420_shard_bytes"] < payload["shard_bytes"]
    assert 0 < payload["yuv420_bytes_over_raw_rgb"] < payload["bytes_over_raw_rgb"] < 1.5
    assert payload["yuv420_bytes_over_rgb_bytes"] == pytest.approx(
        payload["yuv420_shard_bytes"] / payload["shard_bytes"]
    )
    for mode in ("", "_sample"):  # LitData holds the RGB clips in both modes
        assert payload[f"litdata{mode}_bytes"] > payload["yuv420_shard_bytes"]
        assert payload[f"yuv420_bytes_over_litdata{mode}"] < payload[f"bytes_over_litdata{mode}"]
        for figure in (
            "random_clips_per_s",
            "sequential_clips_per_s",
            "first_batch_s",
            "reader_rss_bytes",
        ):
            assert payload[f"litdata{mode}_{figure}"] > 0, (mode, figure)
    assert payload["litdata_sample_bytes"] != payload["litdata_bytes"]  # two layouts were built
    for rate in ("yuv420_shard", "yuv420_zstd_bound", "yuv420_to_rgb", "yuv420_rgb_form"):
        assert payload[f"{rate}_clips_per_s"] > 0


def test_benchmarks_in_any_order_keep_their_corpora_apart(bench_videos, tmp_path):
    """Each corpus has its own working folder: another folder of videos (or the same folder
    after a video was added) never meets the first one's done markers, whatever the order."""
    from vfcache.bench.extract import CORPORA, corpus_folder
    from vfcache.layout import DataRoot

    other = tmp_path / "other_videos"
    other.mkdir()
    make_video(
        other / "w0.mp4",
        codec="h264",
        width=160,
        height=120,
        num_frames=50,
        fps=25,
        seed=7,
        threads=1,
    )
    root = tmp_path / "root"
    runs = [
        ("extract", bench_videos),
        ("load", other),
        ("extract", other),
        ("load", bench_videos),
        ("extract", bench_videos),
    ]
    for command, videos in runs:
        result = invoke(root, "bench", command, "--videos", str(videos), "--repeats", "1")
        assert_clean_exit(result, 0)
    folders = {
        *(corpus_folder(DataRoot(root), None, corpus) for corpus in CORPORA),
        corpus_folder(DataRoot(root), bench_videos),
        corpus_folder(DataRoot(root), other),
    }
    assert len(folders) == 4
    assert sorted(p.name for p in (root / "bench").iterdir()) == sorted(
        f.name for f in folders if f.name not in CORPORA
    )
    make_video(
        other / "w1.mp4",
        codec="h264",
        width=160,
        height=120,
        num_frames=50,
        fps=25,
        seed=8,
        threads=1,
    )
    assert corpus_folder(DataRoot(root), other) not in folders  # a grown folder is a new corpus
    assert_clean_exit(invoke(root, "bench", "extract", "--videos", str(other), "--repeats", "1"), 0)


def test_bench_scale_measures_every_stage(tmp_path):
    out = tmp_path / "scale.json"
    result = invoke(
        tmp_path, "bench", "scale", "--clips", "2000", "--clips", "20000", "--json", str(out)
    )
    assert_clean_exit(result, 0)
    payload = json.loads(out.read_text())
    assert [row["clips"] for row in payload["rows"]] == [2000, 20000]
    for row in payload["rows"]:
        for stage in ("read", "split", "audit", "loader_index"):
            assert row[f"{stage}_s"] > 0 and row[f"{stage}_peak_bytes"] > 10 * 2**20
    assert payload["growth"][0]["from"] == 2000 and payload["growth"][0]["split_per_10x"] > 0
    assert "per 10x from 2,000 to 20,000" in result.output


def test_bench_train_without_cuda_says_so_and_exits_0(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "train.json"
    result = invoke(tmp_path, "bench", "train", "--json", str(out))
    assert_clean_exit(result, 0)
    assert "no CUDA device" in result.output and "nothing was measured" in result.output
    assert json.loads(out.read_text())["cuda"] is False
    assert not (tmp_path / "bench").exists()  # nothing was built either


def test_bench_train_runs_the_recipes_step_on_cpu(bench_videos, tmp_path):
    """The smoke path: the recipe's model, policy, loss and amp through the project's loader;
    the data wait is the time blocked on the DataLoader, a part of the step time."""
    out = tmp_path / "train.json"
    recipe = Path(__file__).resolve().parent.parent / "configs" / "train" / "sample_cpu.yaml"
    result = invoke(
        tmp_path,
        "bench",
        "train",
        "--device",
        "cpu",
        "--recipe",
        str(recipe),
        "--videos",
        str(bench_videos),
        "--batch-size",
        "2",
        "--steps",
        "2",
        "--loader-workers",
        "0",
        "--json",
        str(out),
    )
    assert_clean_exit(result, 0)
    payload = json.loads(out.read_text())
    assert (
        payload["model"] == "tiny3d"
        and payload["dtype"] == "float32"
        and not payload["grad_scaler"]
    )
    assert 0 < payload["data_wait_share"] < 1 and payload["train_clips_per_s"] > 0
    assert payload["loader_ceiling_clips_per_s"] > 0
    assert 0 < payload["trainable_parameters"] <= payload["parameters"]
    assert "data wait share" in result.output and "tiny3d (cross_entropy" in result.output


REPO = Path(__file__).resolve().parent.parent
HF_CONFIGS = REPO / "tests" / "data" / "hf_configs"
TINY_VIDEOMAE = dict(
    num_hidden_layers=4, hidden_size=32, num_attention_heads=2, intermediate_size=64
)


def _videomae_recipe(tmp_path: Path) -> Path:
    """configs/train/videomae_ffpp.yaml as shipped, with its model built from the checkpoint's
    config (tests/data/hf_configs, its input fields kept: 16 frames, 224, tubelet 2) at four
    narrow layers and random weights instead of downloading `pretrained`."""
    recipe = yaml.safe_load((REPO / "configs" / "train" / "videomae_ffpp.yaml").read_text())
    config = json.loads((HF_CONFIGS / "videomae-base-finetuned-kinetics.json").read_text())
    config = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    kwargs = {
        k: v for k, v in recipe["model"]["kwargs"].items() if k not in ("pretrained", "revision")
    }
    recipe["model"]["kwargs"] = {**kwargs, "config": {**config, **TINY_VIDEOMAE}}
    path = tmp_path / "videomae_ffpp.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_bench_train_cuts_its_cache_with_the_recipes_clip_spec(bench_videos, tmp_path):
    """The VideoMAE recipe (16x224 data) runs its model through bench train: the benchmark
    cache is cut with the spec its split paths name (no cache of the recipe's own here), so the
    contract check passes where a 24x224 cache stopped it."""
    out = tmp_path / "train.json"
    args = ["bench", "train", "--device", "cpu", "--recipe", str(_videomae_recipe(tmp_path))]
    args += ["--videos", str(bench_videos), "--batch-size", "2", "--steps", "1"]
    result = invoke(tmp_path, *args, "--loader-workers", "0", "--json", str(out))
    assert_clean_exit(result, 0)
    payload = json.loads(out.read_text())
    assert payload["model"] == "videomae" and payload["clip_shape"][:3] == [16, 224, 224]
    assert payload["clip_spec"] == "videomae_16x224"
    assert "cache/ffpp_deepfakes/videomae_16x224" in payload["clip_spec_from"]
    assert payload["train_clips_per_s"] > 0 and 0 < payload["data_wait_share"] < 1
    assert "clip spec videomae_16x224 (from the preset" in result.output
    # an explicit spec the model cannot eat stops at the contract, in one line
    result = invoke(tmp_path, *args, "--spec", "r2plus1d_24x224")
    assert_clean_exit(result, 2)
    assert "model videomae eats 16 frames at 224x224" in result.output


def test_bench_train_reads_the_spec_json_of_the_recipes_cache(tmp_path):
    """A recipe whose data was extracted: the cache folder's spec.json decides (a custom spec
    under a preset's name gets a benchmark folder of its own); with another model the
    recipe's data says nothing and the model's contract decides."""
    from vfcache.trainers.input_contract import InputContract
    from vfcache.trainers.train_config import load_train_config

    from vfcache.bench.extract import bench_spec
    from vfcache.bench.train import recipe_clip_spec
    from vfcache.config import load_clip_spec
    from vfcache.layout import CacheDir, DataRoot

    config = load_train_config(REPO / "configs" / "train" / "videomae_ffpp.yaml")
    custom = dataclasses.replace(load_clip_spec("videomae_16x224"), sampling="fps", fps=12.0)
    cache = CacheDir(tmp_path / "cache" / "ffpp_deepfakes" / "videomae_16x224")
    cache.path.mkdir(parents=True)
    cache.write_spec(custom, 3)
    contract = InputContract(frames=16, size=(224, 224))
    spec, where = recipe_clip_spec(config, DataRoot(tmp_path), contract)
    assert spec == custom and where == str(cache.spec_json)
    assert bench_spec(spec).name == f"bench_videomae_16x224_{custom.spec_hash[:8]}"
    spec, where = recipe_clip_spec(
        config, DataRoot(tmp_path), InputContract(frames=8, size=(112, 112)), recipe_data=False
    )
    assert (spec.frames, spec.height, spec.width) == (8, 112, 112) and "contract" in where


# -- help ---------------------------------------------------------------------------------------
def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            paths += _command_paths(command, prefix + (name,))
        else:
            paths.append(prefix + (name,))
    return paths


COMMANDS = _command_paths(cli)


def test_every_documented_command_exists():
    assert {" ".join(path) for path in COMMANDS} >= {
        "datasets",
        "fetch",
        "build-manifest",
        "extract",
        "split",
        "audit",
        "verify",
        "preview",
        "cache",
        "train",
        "eval",
        "export",
        "bench",
        "bench extract",
        "bench load",
        "bench scale",
        "bench train",
        "gc",
    }


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "vfcache")
def test_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="vfcache")
    assert_clean_exit(result, 0)
    assert result.output.startswith(f"Usage: {' '.join(('vfcache',) + path)} ")
    command = cli
    for name in path:
        command = command.commands[name]
    assert command.help and command.help.split("\n")[0][:40] in " ".join(result.output.split())
