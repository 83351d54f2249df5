"""vfcache.pipelines.fetch.hf: the real huggingface_hub client against the local Hub stand-in."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from vfcache.pipelines.fetch.errors import HubAccessError, IntegrityError
from vfcache.pipelines.fetch.hf import fetch_hf_dataset
from vfcache.pipelines.fetch.record import FETCH_RECORD_NAME, read_fetch_record

from tests.standins.hf_hub import HfHubStandin

pytestmark = pytest.mark.network

REPO = "Clarifiedfish/AEGIS-mini"


def _write_tree(folder: Path, files: dict[str, bytes]) -> dict[str, bytes]:
    for relpath, payload in files.items():
        (folder / relpath).parent.mkdir(parents=True, exist_ok=True)
        (folder / relpath).write_bytes(payload)
    return files


@pytest.fixture
def two_commits(hf_hub: HfHubStandin, tmp_path: Path):
    """Commit v1 (tagged), then v2 on main changing one parquet file and adding one."""
    folder = tmp_path / "repo"
    v1 = _write_tree(
        folder,
        {
            **{f"data/train-{i:05d}-of-00004.parquet": os.urandom(3000 + i) for i in range(4)},
            "README.md": b"# AEGIS mini\n",
            "meta/info.json": b'{"videos": 4}',
            "test_data/real/youtube/a.mp4": os.urandom(2048),
        },
    )
    sha_v1 = hf_hub.add_commit(REPO, folder, tags=("v1",))
    v2 = dict(v1)
    v2.update(
        _write_tree(
            folder,
            {
                "data/train-00000-of-00004.parquet": os.urandom(4000),
                "data/extra.parquet": os.urandom(100),
            },
        )
    )
    sha_v2 = hf_hub.add_commit(REPO, folder)
    return {"v1": (sha_v1, v1), "v2": (sha_v2, v2)}


def _sha(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _file_gets(hub: HfHubStandin) -> list[str]:
    """Paths whose bytes were downloaded (resolve GETs answered 200, CDN GETs)."""
    return [
        e.path
        for e in hub.log.entries
        if e.method == "GET"
        and ("/resolve/" in e.path or e.path.startswith("/cdn-lfs/"))
        and e.status in (200, 206)
    ]


def test_pinned_revision_with_patterns(hf_hub, two_commits, tmp_path):
    sha_v1, files_v1 = two_commits["v1"]
    dest = tmp_path / "raw" / "aegis"
    record = fetch_hf_dataset(
        REPO, dest, revision="v1", allow_patterns=["data/*.parquet"], progress=False
    )
    expected = {p: b for p, b in files_v1.items() if p.startswith("data/")}
    assert record.commit_sha == sha_v1 and record.revision == "v1"
    assert record.endpoint == hf_hub.endpoint and record.allow_patterns == ("data/*.parquet",)
    assert [(f.relpath, f.size_bytes, f.sha256) for f in record.files] == [
        (p, len(b), _sha(b)) for p, b in sorted(expected.items())
    ]
    for relpath, payload in expected.items():
        assert (dest / relpath).read_bytes() == payload
    assert not (dest / "README.md").exists() and not (dest / "test_data").exists()
    assert read_fetch_record(dest) == record
    on_disk = json.loads((dest / FETCH_RECORD_NAME).read_text())
    assert on_disk["total_bytes"] == sum(len(b) for b in expected.values())
    # every file request named the pinned commit, never the tag or a branch
    resolves = [e.path for e in hf_hub.log.entries if "/resolve/" in e.path]
    assert resolves and all(f"/resolve/{sha_v1}/" in p for p in resolves)


def test_tree_listing_is_paged(hf_hub, two_commits, tmp_path):
    sha_v1, _ = two_commits["v1"]
    fetch_hf_dataset(REPO, tmp_path / "d", revision=sha_v1, progress=False)
    tree_pages = [e for e in hf_hub.log.entries if "/tree/" in e.path]
    assert any("cursor=" in e.query for e in tree_pages)
    assert all("recursive=true" in e.query for e in tree_pages)


def test_branch_resolves_to_its_head_commit(hf_hub, two_commits, tmp_path):
    sha_v2, files_v2 = two_commits["v2"]
    dest = tmp_path / "d"
    record = fetch_hf_dataset(
        REPO, dest, revision="main", allow_patterns=["data/*"], progress=False
    )
    assert record.commit_sha == sha_v2 and record.revision == "main"
    assert (dest / "data/extra.parquet").read_bytes() == files_v2["data/extra.parquet"]
    assert (dest / "data/train-00000-of-00004.parquet").read_bytes() == files_v2[
        "data/train-00000-of-00004.parquet"
    ]


def test_small_files_without_lfs_are_verified_by_git_blob_id(hf_hub, two_commits, tmp_path):
    _, files_v1 = two_commits["v1"]
    dest = tmp_path / "d"
    record = fetch_hf_dataset(
        REPO, dest, revision="v1", allow_patterns=["README.md", "meta/*"], progress=False
    )
    assert [f.relpath for f in record.files] == ["README.md", "meta/info.json"]
    assert (dest / "meta/info.json").read_bytes() == files_v1["meta/info.json"]
    assert not any(e.path.startswith("/cdn-lfs/") for e in hf_hub.log.entries)


def test_rerun_downloads_nothing(hf_hub, two_commits, tmp_path):
    dest = tmp_path / "d"
    first = fetch_hf_dataset(REPO, dest, revision="v1", allow_patterns=["data/*"], progress=False)
    hf_hub.log.clear()
    second = fetch_hf_dataset(REPO, dest, revision="v1", allow_patterns=["data/*"], progress=False)
    assert _file_gets(hf_hub) == []
    assert second.files == first.files and second.commit_sha == first.commit_sha


def test_rerun_repairs_a_damaged_file(hf_hub, two_commits, tmp_path):
    _, files_v1 = two_commits["v1"]
    dest = tmp_path / "d"
    fetch_hf_dataset(
        REPO, dest, revision="v1", allow_patterns=["data/*", "README.md"], progress=False
    )
    victim = "data/train-00002-of-00004.parquet"
    original = (dest / victim).read_bytes()
    (dest / victim).write_bytes(bytes(len(original)))  # same size, other bytes
    (dest / "README.md").write_bytes(b"edited")
    hf_hub.log.clear()
    record = fetch_hf_dataset(
        REPO, dest, revision="v1", allow_patterns=["data/*", "README.md"], progress=False
    )
    assert (dest / victim).read_bytes() == files_v1[victim]
    assert (dest / "README.md").read_bytes() == files_v1["README.md"]
    assert len(_file_gets(hf_hub)) == 2
    assert {f.relpath: f.sha256 for f in record.files}[victim] == _sha(files_v1[victim])


def test_hub_serving_wrong_bytes_raises_integrity_error(hf_hub, two_commits, tmp_path):
    victim = "data/train-00001-of-00004.parquet"
    _, files_v1 = two_commits["v1"]
    hf_hub.tamper(REPO, "v1", victim, bytes(len(files_v1[victim])))
    with pytest.raises(IntegrityError, match=victim):
        fetch_hf_dataset(
            REPO, tmp_path / "d", revision="v1", allow_patterns=["data/*"], progress=False
        )
    assert not (tmp_path / "d" / FETCH_RECORD_NAME).exists()


def test_missing_revision_repo_and_patterns_are_clear_errors(hf_hub, two_commits, tmp_path):
    with pytest.raises(HubAccessError, match="no revision 'v9'"):
        fetch_hf_dataset(REPO, tmp_path / "d", revision="v9", progress=False)
    with pytest.raises(HubAccessError, match="not found"):
        fetch_hf_dataset("nobody/nothing", tmp_path / "d", revision="main", progress=False)
    with pytest.raises(HubAccessError, match=r"no file matches allow_patterns=\['\*\.csv'\]"):
        fetch_hf_dataset(
            REPO, tmp_path / "d", revision="main", allow_patterns=["*.csv"], progress=False
        )


def test_gated_repo_needs_a_token(hf_hub, two_commits, tmp_path, monkeypatch):
    hf_hub.set_gated(REPO, "hf_secret")
    with pytest.raises(HubAccessError, match="gated"):
        fetch_hf_dataset(
            REPO, tmp_path / "d", revision="v1", allow_patterns=["README.md"], progress=False
        )
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    record = fetch_hf_dataset(
        REPO,
        tmp_path / "d",
        revision="v1",
        allow_patterns=["README.md", "data/train-00000*"],
        progress=False,
    )
    assert [f.relpath for f in record.files] == ["README.md", "data/train-00000-of-00004.parquet"]
    resolves = [e for e in hf_hub.log.entries if "/resolve/" in e.path and e.status < 400]
    assert resolves and all(e.authorization == "Bearer hf_secret" for e in resolves)
    cdn = [e for e in hf_hub.log.entries if e.path.startswith("/cdn-lfs/")]
    assert cdn and all(e.authorization is None for e in cdn)  # the token stays on the Hub


def test_configuration_from_environment_only_in_a_fresh_process(hf_hub, two_commits, tmp_path):
    """HF_ENDPOINT and HF_HUB_DISABLE_XET set before the client is imported, no arguments."""
    sha_v1, files_v1 = two_commits["v1"]
    dest = tmp_path / "d"
    script = (
        "from vfcache.pipelines.fetch.hf import fetch_hf_dataset\n"
        f"r = fetch_hf_dataset({REPO!r}, {str(dest)!r}, revision='v1', allow_patterns=['meta/*'],"
        " progress=False)\n"
        "print(r.commit_sha)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    assert env["HF_ENDPOINT"] == hf_hub.endpoint and env["HF_HUB_DISABLE_XET"] == "1"
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == sha_v1
    assert (dest / "meta/info.json").read_bytes() == files_v1["meta/info.json"]


def test_explicit_endpoint_wins_over_environment(hf_hub, two_commits, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    record = fetch_hf_dataset(
        REPO,
        tmp_path / "d",
        revision="v1",
        allow_patterns=["README.md"],
        endpoint=hf_hub.endpoint,
        progress=False,
    )
    assert record.endpoint == hf_hub.endpoint


# -- Xet-backed repos (the real AEGIS ones) ------------------------------------------------


@pytest.fixture
def xet_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A Hub stand-in whose LFS files are Xet-backed, with a CAS; the client's home in tmp_path."""
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_XET_CACHE", str(tmp_path / "xet_cache"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with HfHubStandin(page_size=3, xet=True) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        yield hub


def _fetch_in_fresh_process(
    hub: HfHubStandin, dest: Path, *, disable_xet: bool
) -> subprocess.CompletedProcess:
    """The client reads HF_HUB_DISABLE_XET when imported: each path gets its own process."""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_XET"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    if disable_xet:
        env["HF_HUB_DISABLE_XET"] = "1"
    script = (
        "import json\n"
        "from vfcache.pipelines.fetch.hf import fetch_hf_dataset\n"
        f"r = fetch_hf_dataset({REPO!r}, {str(dest)!r}, revision='main', progress=False)\n"
        "print(json.dumps({f.relpath: f.sha256 for f in r.files}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180
    )


@pytest.mark.parametrize("disable_xet", [False, True], ids=["default-xet-path", "xet-disabled"])
def test_xet_backed_repo_fetches_and_verifies_on_both_paths(xet_hub, tmp_path, disable_xet):
    files = _write_tree(
        tmp_path / "repo",
        {
            "data/hard-00000.parquet": os.urandom(150_000),  # three 64 KiB Xet chunks
            "test_data/real/camera/a.mp4": os.urandom(5000),
            "README.md": b"# AEGIS\n",
        },
    )
    xet_hub.add_commit(REPO, tmp_path / "repo")
    done = _fetch_in_fresh_process(xet_hub, tmp_path / "d", disable_xet=disable_xet)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == {path: _sha(payload) for path, payload in files.items()}
    cas = [e.path for e in xet_hub.log.entries if e.path.startswith("/cas/") and e.status < 400]
    cdn = [e.path for e in xet_hub.log.entries if e.path.startswith("/cdn-lfs/") and e.status < 400]
    if disable_xet:
        assert not cas and len(cdn) == 2  # plain HTTP to the LFS store
    else:
        assert not cdn and sum("/reconstructions/" in p for p in cas) == 2
        assert sum("/xorb/" in p for p in cas) == 2


def test_xet_path_serving_wrong_bytes_is_caught(xet_hub, tmp_path):
    files = _write_tree(tmp_path / "repo", {"data/hard-00000.parquet": os.urandom(20_000)})
    xet_hub.add_commit(REPO, tmp_path / "repo")
    xet_hub.tamper(
        REPO, "main", "data/hard-00000.parquet", bytes(len(files["data/hard-00000.parquet"]))
    )
    done = _fetch_in_fresh_process(xet_hub, tmp_path / "d", disable_xet=False)
    assert done.returncode != 0 and "IntegrityError" in done.stderr
    assert "sha256" in done.stderr and "data/hard-00000.parquet" in done.stderr
    assert any("/reconstructions/" in e.path for e in xet_hub.log.entries)


def test_a_file_listed_with_a_xet_hash_only_is_checked_by_it(tmp_path):
    from huggingface_hub import RepoFile
    from tqdm import tqdm
    from vfcache.pipelines.fetch.hf import hash_file, mismatch_reason, xet_file_hash

    path = tmp_path / "clip.mp4"
    path.write_bytes(os.urandom(70_000))
    entry = RepoFile(path="clip.mp4", size=70_000, oid="0" * 40, xetHash=xet_file_hash(path))
    assert entry.lfs is None and entry.xet_hash
    with tqdm(disable=True) as bar:
        assert mismatch_reason(entry, path, *hash_file(path, bar)) is None
        data = bytearray(path.read_bytes())
        data[1234] ^= 1
        path.write_bytes(bytes(data))
        assert "Xet hash" in mismatch_reason(entry, path, *hash_file(path, bar))
