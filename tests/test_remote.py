"""Cache folders on object storage, against an S3-compatible server on 127.0.0.1 (moto behind a
proxy that can reset a connection mid-response): training reads single clips by range request,
retries a dropped read, keeps whole shards in a local disk cache under its budget, and takes
credentials from the environment only."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import yaml
from cache_fixtures import sample_cache_root
from click.testing import CliRunner
from vfcache.cache_tools.remote import RemoteReadError, ShardDiskCache, with_retries
from vfcache.trainers.dataset import ClipDataset

from vfcache.cli import cli
from vfcache.errors import StageError

pytest.importorskip("moto")
pytest.importorskip("obstore")
boto3 = pytest.importorskip("boto3")

from tests.standins.s3 import S3Standin  # noqa: E402

SPEC = "sample_8x112"
CACHE = f"cache/sample/{SPEC}"
BUCKET = "lab-clips"
PREFIX = f"s3://{BUCKET}/vfcache/{CACHE}"


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory) -> Path:
    return sample_cache_root(tmp_path_factory, "remote_sample_root")


def _s3_environment(monkeypatch, endpoint: str, home: Path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "vfcache-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "vfcache-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("VFCACHE_REMOTE_CACHE", str(home / "remote-cache"))
    monkeypatch.setenv("VFCACHE_REMOTE_CACHE_BYTES", "0")


def _client(endpoint: str):
    """boto3 for the test's own uploads and listings (vfcache itself talks to the store with
    obstore)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="vfcache-test",
        aws_secret_access_key="vfcache-test-secret",
    )


@pytest.fixture
def s3(sample_root, tmp_path, monkeypatch):
    """The stand-in, credentials in the environment, and the sample cache folder uploaded."""
    with S3Standin() as server:
        _s3_environment(monkeypatch, server.endpoint, tmp_path)
        client = _client(server.endpoint)
        client.create_bucket(Bucket=BUCKET)
        local = sample_root / CACHE
        for path in sorted(local.rglob("*")):
            if path.is_file() and path.suffix != ".lock":
                client.upload_file(str(path), BUCKET, f"vfcache/{CACHE}/{path.relative_to(local)}")
        server.requests.clear()
        yield server


def _same_clips(remote: ClipDataset, local: ClipDataset, indices) -> None:
    assert [e.clip_id for e in remote.entries] == [e.clip_id for e in local.entries]
    for i in indices:
        assert torch.equal(remote[i]["clip"], local[i]["clip"]), i


def test_training_reads_single_clips_by_range_from_s3(s3, sample_root):
    remote = ClipDataset(f"{PREFIX}/splits/default/train.jsonl")
    local = ClipDataset(sample_root / CACHE / "splits/default/train.jsonl")
    assert remote.clip_shape == local.clip_shape and len(remote) == len(local) > 4
    s3.requests.clear()
    _same_clips(remote, local, range(len(local)))
    ranged = s3.ranged_gets()
    assert len(ranged) == len(local)  # budget 0: one range request per clip, nothing else
    assert all(r[2].startswith("bytes=") for r in ranged)
    batch = remote.__getitems__([0, 1, 2])  # the batched path reads into one buffer
    assert all(torch.equal(sample["clip"], local[i]["clip"]) for i, sample in enumerate(batch))


def test_a_connection_reset_mid_read_is_retried(s3, sample_root, caplog):
    remote = ClipDataset(f"{PREFIX}/splits/default/train.jsonl")
    local = ClipDataset(sample_root / CACHE / "splits/default/train.jsonl")
    s3.requests.clear()
    s3.reset_next(ranged_gets=2, after_bytes=100)
    with caplog.at_level(logging.WARNING, logger="vfcache.cache_tools.remote"):
        _same_clips(remote, local, [3])
    outcomes = [r[3] for r in s3.ranged_gets()]
    assert outcomes[:2] == ["reset after 100 body bytes"] * 2 and outcomes[-1] == "ok"
    assert len({r[2] for r in s3.ranged_gets()}) == 1  # the same range, asked again
    assert "retrying" in caplog.text


def test_a_read_that_keeps_failing_is_one_clear_error():
    calls = []

    def always_reset() -> bytes:
        calls.append(1)
        raise ConnectionResetError("connection reset by peer")

    with pytest.raises(RemoteReadError, match="failed 3 times; last: ConnectionResetError"):
        with_retries(always_reset, "clip x", attempts=3, first_delay_s=0.001)
    assert len(calls) == 3
    with pytest.raises(FileNotFoundError):  # not worth retrying
        with_retries(
            lambda: (_ for _ in ()).throw(FileNotFoundError("gone")), "clip y", first_delay_s=0.001
        )


def test_remote_shards_are_kept_on_disk_under_a_budget(s3, sample_root, tmp_path):
    split = f"{PREFIX}/splits/default/train.jsonl"
    local = ClipDataset(sample_root / CACHE / "splits/default/train.jsonl")
    shard_sizes = {Path(p).name: Path(p).stat().st_size for p in local._shard_paths}
    roomy = ShardDiskCache(tmp_path / "roomy", budget_bytes=10**9)
    remote = ClipDataset(split, remote_cache=roomy)
    s3.requests.clear()
    _same_clips(remote, local, range(len(local)))
    downloads = [r for r in s3.requests if r[0] == "GET" and not r[2]]
    assert len(downloads) == len(shard_sizes)  # each shard once, whole
    assert roomy.used_bytes() == sum(shard_sizes.values())
    s3.requests.clear()
    again = ClipDataset(split, remote_cache=roomy)  # a new process, say: the copies are reused
    _same_clips(again, local, range(len(local)))
    assert [r for r in s3.requests if r[0] == "GET" and "/shards/" in r[1]] == []

    budget = max(shard_sizes.values()) + 1  # room for one shard at a time
    tight = ShardDiskCache(tmp_path / "tight", budget_bytes=budget)
    for i in range(len(local)):
        _same_clips(ClipDataset(split, remote_cache=tight), local, [i])
        assert tight.used_bytes() <= budget


def test_credentials_come_from_the_environment_only(s3, monkeypatch):
    with pytest.raises(StageError, match="credentials do not go in a URL"):
        ClipDataset(f"s3://AKIAKEY:secret@{BUCKET}/vfcache/{CACHE}/splits/default/train.jsonl")

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    with pytest.raises(StageError, match="no credentials"):
        ClipDataset(f"{PREFIX}/splits/default/train.jsonl")


def test_vfcache_train_and_eval_read_split_files_on_s3(s3, sample_root, tmp_path):
    configs = Path(__file__).resolve().parents[1] / "configs"
    train = yaml.safe_load((configs / "train/sample_cpu.yaml").read_text())
    train.update(
        epochs=1,
        workers=1,
        decode_cache_gb=0,
        device="cpu",
        out_dir=str(tmp_path / "run"),
        sampler={"kind": "class_balanced", "batches_per_epoch": 2},
        data={
            part: [f"{PREFIX}/splits/default/{part}.jsonl"] for part in ("train", "val", "support")
        },
    )
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(train))
    s3.requests.clear()
    result = CliRunner().invoke(
        cli, ["--root", str(sample_root), "--no-progress", "train", str(tmp_path / "train.yaml")]
    )
    assert result.exit_code == 0, result.output
    assert (
        s3.ranged_gets()
    )  # the clips came from the store (workers=1: read in a DataLoader worker)
    evaluation = yaml.safe_load((configs / "eval/sample_cpu.yaml").read_text())
    evaluation.update(
        checkpoint=str(tmp_path / "run" / "last.pt"),
        workers=0,
        out_dir=str(tmp_path / "report"),
        query=[f"{PREFIX}/splits/default/test.jsonl"],
        support=[f"{PREFIX}/splits/default/support.jsonl"],
    )
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(evaluation))
    result = CliRunner().invoke(
        cli, ["--root", str(sample_root), "--no-progress", "eval", str(tmp_path / "eval.yaml")]
    )
    assert result.exit_code == 0, result.output


# -- extraction to object storage ---------------------------------------------------------------


def _cli(root: Path, *args: str):
    return CliRunner().invoke(cli, ["--root", str(root), "--no-progress", *args])


def _remote_files(server: S3Standin, sub: str) -> dict[str, bytes]:
    """{name: bytes} of the objects directly below `sub` of the remote cache folder."""
    client = _client(server.endpoint)
    prefix = f"vfcache/{CACHE}/{sub}/" if sub else f"vfcache/{CACHE}/"
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix, Delimiter="/").get("Contents", [])
    return {
        o["Key"].rsplit("/", 1)[-1]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
        for o in listed
    }


@pytest.fixture
def empty_bucket(tmp_path, monkeypatch):
    with S3Standin() as server:
        _s3_environment(monkeypatch, server.endpoint, tmp_path)
        monkeypatch.setenv("VFCACHE_STAGING", str(tmp_path / "staging"))
        _client(server.endpoint).create_bucket(Bucket=BUCKET)
        yield server


def _local_shards(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / CACHE / "shards").glob("*.npy.zst"))}


def test_extract_uploads_shards_and_training_reads_them(empty_bucket, sample_root, tmp_path):
    root = tmp_path / "lab"
    for args in (
        ["fetch", "sample"],
        ["build-manifest", "sample"],
        ["extract", "sample", "--cache-url", f"s3://{BUCKET}/vfcache"],
    ):
        result = _cli(root, *args)
        assert result.exit_code == 0, result.output
    split = _cli(root, "split", "sample")
    assert split.exit_code == 0, split.output
    assert f"uploaded -> {PREFIX}/splits/default" in split.output
    mirror = root / CACHE
    assert not list(mirror.rglob("*.npy.zst"))  # the local folder keeps only the small files
    assert json.loads((mirror / "remote.json").read_text()) == {"url": PREFIX}
    remote_shards = {
        k: v for k, v in _remote_files(empty_bucket, "shards").items() if k.endswith(".npy.zst")
    }
    assert remote_shards == _local_shards(
        sample_root
    )  # the same shards as a local extraction, byte for byte
    top = _remote_files(empty_bucket, "")
    assert top["clips.parquet"] == (mirror / "clips.parquet").read_bytes()
    assert json.loads(top["spec.json"])["shards"]["level"] == 2
    remote = ClipDataset(f"{PREFIX}/splits/default/train.jsonl")
    local = ClipDataset(sample_root / CACHE / "splits/default/train.jsonl")
    _same_clips(remote, local, range(len(local)))

    # a task cut off between a shard's upload and its index's: the next run deletes the shard,
    # cuts the task again, and the remote folder ends as before
    client = _client(empty_bucket.endpoint)
    index = sorted(
        k for k in _remote_files(empty_bucket, "shards") if k.endswith(".index.parquet")
    )[0]
    writer = index.split("-")[1]
    client.delete_object(Bucket=BUCKET, Key=f"vfcache/{CACHE}/shards/{index}")
    client.delete_object(Bucket=BUCKET, Key=f"vfcache/{CACHE}/shards/task-{writer}.done.json")
    again = _cli(root, "extract", "sample")  # the URL is recorded in remote.json
    assert again.exit_code == 0, again.output
    assert "this run wrote" in again.output and "in 1/" in again.output
    assert {
        k: v for k, v in _remote_files(empty_bucket, "shards").items() if k.endswith(".npy.zst")
    } == remote_shards
    other = _cli(root, "extract", "sample", "--cache-url", f"s3://{BUCKET}/elsewhere")
    assert other.exit_code == 2 and "is the mirror of" in other.output
    for command in (
        "gc",
        "verify",
        "preview",
    ):  # they read shards from disk: one line, not a traceback
        refused = _cli(root, command, "sample")
        assert refused.exit_code == 2 and "does not work on a remote cache yet" in refused.output, (
            command
        )
    assert _cli(root, "audit", "sample").exit_code == 0  # audit reads the mirror's manifests


@pytest.mark.slow
@pytest.mark.network
def test_extract_on_an_external_dask_cluster_writes_to_s3(empty_bucket, sample_root, tmp_path):
    """`dask scheduler` + two `dask worker` processes; the workers find the store and their
    credentials in their own environment and stage shards on their own disk."""
    from test_dask_cluster import DaskProcesses

    root = tmp_path / "lab"
    for args in (["fetch", "sample"], ["build-manifest", "sample"]):
        assert _cli(root, *args).exit_code == 0
    (tmp_path / "dask").mkdir()
    cluster = DaskProcesses(
        tmp_path / "dask"
    )  # started after the environment was set: the workers inherit it
    try:
        cluster.start(workers=2)
        result = _cli(
            root,
            "--scheduler",
            cluster.address,
            "extract",
            "sample",
            "--cache-url",
            f"s3://{BUCKET}/vfcache",
        )
    finally:
        cluster.stop()
    assert result.exit_code == 0, result.output + cluster.log("worker0")
    remote_shards = {
        k: v for k, v in _remote_files(empty_bucket, "shards").items() if k.endswith(".npy.zst")
    }
    assert remote_shards == _local_shards(sample_root)
    assert not list((root / CACHE).rglob("*.npy.zst"))
