"""Every way a fetch fails is one `Error:` line with the right exit code, and a rerun after the
fault resumes to the same bytes. The real CLI (`vfcache fetch` on the built-in `aegis` and
`genvideo_val` configs) runs against the Hub and HTTP stand-ins and their failing answers;
settings the Hub client reads once per process (HF_HUB_OFFLINE, proxies) run in a subprocess."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from vfcache.pipelines.fetch import hub_errors
from vfcache.pipelines.fetch.diagnose import human_bytes

from tests.standins._server import RefusingProxy, refused_url
from tests.standins.http_files import Fault, HttpFileServer
from tests.standins.modelscope import modelscope_relpath, modelscope_route
from vfcache.cli import cli

pytestmark = pytest.mark.network

REPO = "Clarifiedfish/AEGIS-Full"
ROOT_DIR = Path(__file__).resolve().parents[1]
VIDEOS = {f"videos/test_data/real/youtube/yt_{i}.mp4": os.urandom(30_000 + i) for i in range(2)}
VIDEOS["videos/test_data/ai_gen/sora/sora_0.mp4"] = os.urandom(25_000)


def _fetch(root: Path, *args: str):
    result = CliRunner().invoke(cli, ["--no-progress", "--root", str(root), "fetch", *args])
    lines = result.output.strip().splitlines()
    return result.exit_code, lines[-1] if lines else "", result


def _assert_one_line(result, code: int, *parts: str) -> str:
    exit_code, last, full = result
    assert exit_code == code, full.output
    assert full.exception is None or isinstance(full.exception, SystemExit), full.output
    assert last.startswith("Error: "), full.output
    for part in parts:
        assert part in last, last
    return last


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*.mp4")
    }


@pytest.fixture
def aegis(hf_hub, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    for relpath, payload in VIDEOS.items():
        (repo / relpath).parent.mkdir(parents=True, exist_ok=True)
        (repo / relpath).write_bytes(payload)
    hf_hub.add_commit(REPO, repo)
    monkeypatch.setattr(hub_errors, "FIRST_DELAY_S", 0.05)
    monkeypatch.setattr(hub_errors, "HUB_ATTEMPTS", 2)
    return hf_hub, tmp_path / "data"


def _resumes(root: Path) -> None:
    code, last, full = _fetch(root, "aegis")
    assert code == 0, full.output
    raw = root / "raw" / "aegis"
    assert _digests(raw) == {k: hashlib.sha256(v).hexdigest() for k, v in VIDEOS.items()}
    assert (raw / "fetch.json").is_file()


def test_hub_refused_connection_then_resumes(aegis, monkeypatch):
    hub, root = aegis
    monkeypatch.setenv("HF_ENDPOINT", refused_url())
    _assert_one_line(_fetch(root, "aegis"), 1, "aegis: ", "refused the connection", "after 2 tries")
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    _resumes(root)


def test_hub_name_resolution(aegis, monkeypatch):
    _, root = aegis
    monkeypatch.setenv("HF_ENDPOINT", "http://vfcache-standin.invalid")
    _assert_one_line(
        _fetch(root, "aegis"), 1, "cannot resolve the host name vfcache-standin.invalid"
    )


def test_hub_tls_failure(aegis, monkeypatch):
    hub, root = aegis
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint.replace("http://", "https://"))  # no TLS there
    _assert_one_line(_fetch(root, "aegis"), 2, "TLS handshake with 127.0.0.1", "SSL_CERT_FILE")


def test_hub_bad_token_401(aegis, monkeypatch):
    hub, root = aegis
    monkeypatch.setenv("HF_TOKEN", "hf_expired")
    hub.add_fault(
        "info",
        Fault(
            status=401,
            headers=(("X-Error-Message", "Invalid credentials in Authorization header"),),
        ),
    )
    _assert_one_line(_fetch(root, "aegis"), 2, "HTTP 401", "HF_TOKEN", "hf auth login")
    _resumes(root)


def test_hub_gated_without_token_then_with_it(aegis, monkeypatch):
    hub, root = aegis
    hub.set_gated(REPO, "hf_granted")
    line = _assert_one_line(
        _fetch(root, "aegis"),
        2,
        "is gated (HTTP 401)",
        f"accept the terms on {hub.endpoint}/datasets/{REPO}",
        "hf auth login",
    )
    assert "HF_TOKEN" in line
    monkeypatch.setenv("HF_TOKEN", "hf_granted")
    _resumes(root)


def test_hub_gated_403_for_a_token_not_yet_accepted(aegis, monkeypatch):
    hub, root = aegis
    monkeypatch.setenv("HF_TOKEN", "hf_someone")
    hub.add_fault(
        "resolve", Fault(times=None, status=403, headers=(("X-Error-Code", "GatedRepo"),))
    )
    _assert_one_line(
        _fetch(root, "aegis"),
        2,
        "is gated (HTTP 403)",
        "not on its authorized list",
        f"{hub.endpoint}/datasets/{REPO}",
    )
    hub.clear_faults()
    _resumes(root)


@pytest.mark.parametrize(
    "field,value,expected",
    [
        ("repo", "Clarifiedfish/Nope", "check source.repo"),
        ("revision", "v9", "no revision 'v9'"),
    ],
)
def test_hub_404_repo_and_revision_name_the_config_field(aegis, tmp_path, field, value, expected):
    _, root = aegis
    config = yaml.safe_load((ROOT_DIR / "configs/datasets/aegis.yaml").read_text())
    config["source"][field] = value
    path = tmp_path / "aegis.yaml"
    path.write_text(yaml.safe_dump(config))
    _assert_one_line(_fetch(root, "aegis", "--config", str(path)), 2, expected)


def test_hub_404_for_a_listed_file(aegis):
    hub, root = aegis
    hub.add_fault(
        "resolve", Fault(times=None, status=404, headers=(("X-Error-Code", "EntryNotFound"),))
    )
    _assert_one_line(_fetch(root, "aegis"), 2, "a listed file answers 404", "source.revision")
    hub.clear_faults()
    _resumes(root)


def test_hub_429_waits_retry_after_then_says_so(aegis):
    hub, root = aegis
    hub.add_fault("info", Fault(times=None, status=429, retry_after_s=1))
    _assert_one_line(_fetch(root, "aegis"), 1, "HTTP 429", "waited 1 s (Retry-After)", "rerun")
    infos = [e for e in hub.log.entries if e.path.startswith("/api/datasets/") and e.status == 429]
    assert len(infos) == 2
    hub.clear_faults()
    _resumes(root)


def test_hub_500_after_retries(aegis):
    hub, root = aegis
    hub.add_fault("info", Fault(times=None, status=500))
    _assert_one_line(_fetch(root, "aegis"), 1, "HTTP 500", "after 2 tries", "rerun")
    hub.clear_faults()
    _resumes(root)


def test_hub_body_cut_short_is_recovered(aegis):
    hub, root = aegis
    hub.add_fault("cdn", Fault(truncate_after_bytes=1000))
    _resumes(root)


def test_hub_wrong_sha256(aegis):
    hub, root = aegis
    victim = "videos/test_data/ai_gen/sora/sora_0.mp4"
    hub.tamper(REPO, "main", victim, os.urandom(25_000))
    _assert_one_line(_fetch(root, "aegis"), 1, victim, "sha256")
    assert not (root / "raw/aegis/fetch.json").exists()  # nothing counts as done
    hub.restore()
    _resumes(root)


def _subprocess_fetch(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "vfcache.cli",
            "--no-progress",
            "--root",
            str(root),
            "fetch",
            "aegis",
        ],
        cwd=ROOT_DIR,
        env={**os.environ, "PYTHONPATH": str(ROOT_DIR), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_hub_offline_mode(aegis):
    _, root = aegis
    done = _subprocess_fetch(root, {"HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("Error: aegis: HF_HUB_OFFLINE is set")


def test_hub_proxy_refusal(aegis):
    _, root = aegis
    with RefusingProxy() as proxy:
        done = _subprocess_fetch(
            root, {"HTTP_PROXY": proxy.url, "http_proxy": proxy.url, "NO_PROXY": "", "no_proxy": ""}
        )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: aegis: the proxy") and "HTTP 407" in last, last


class _FillingDisk:
    """The client's open `.incomplete` file on a disk with `room` bytes left (shared by the
    download threads): writes go through to the real file until the room is used up, then
    raise OSError(ENOSPC), as `write(2)` does on a full disk."""

    def __init__(self, file, state: dict):
        self._file, self._state = file, state

    def write(self, chunk: bytes) -> int:
        with self._state["lock"]:
            if len(chunk) > self._state["room"]:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self._state["room"] -= len(chunk)
        return self._file.write(chunk)

    def __getattr__(self, name):
        return getattr(self._file, name)


def test_hub_disk_full_keeps_nothing_as_done(aegis, monkeypatch):
    """ENOSPC in the middle of a Hub download. `huggingface_hub.file_download.http_get` writes
    every chunk of the response with `temp_file.write(chunk)` into the `.incomplete` file that
    `_download_to_tmp_and_move` opened (the lowest write the client makes; the stand-in never
    offers Xet, so the Rust writer is not used). The test wraps that file object, passed by the
    real client to the real `http_get`, so that the write which no longer fits raises
    OSError(errno.ENOSPC) after 20,000 bytes overall have landed. A symlink to /dev/full (the
    HTTP test's way) cannot be used: the client writes to a fresh uuid-suffixed name each time."""
    from huggingface_hub import file_download

    hub, root = aegis
    state = {"room": 20_000, "lock": threading.Lock()}
    real_http_get = file_download.http_get

    def http_get(url, temp_file, *args, **kwargs):
        return real_http_get(url, _FillingDisk(temp_file, state), *args, **kwargs)

    monkeypatch.setattr(file_download, "http_get", http_get)
    needed = sum(len(payload) for payload in VIDEOS.values())  # 85,001 bytes: 83.0 KiB
    _assert_one_line(
        _fetch(root, "aegis"),
        2,
        "aegis: ",
        "is full (ENOSPC)",
        f"needs {human_bytes(needed)} more",
        "--root on a larger disk",
    )
    raw = root / "raw" / "aegis"
    assert not (raw / "fetch.json").exists()  # nothing recorded as fetched
    for relpath, payload in VIDEOS.items():  # no partial file under a final name
        assert not (raw / relpath).exists() or (raw / relpath).read_bytes() == payload, relpath
    assert not [p for p in raw.rglob("*.incomplete") if p.stat().st_size]
    monkeypatch.setattr(file_download, "http_get", real_http_get)
    _resumes(root)


def test_dry_run_says_listing_token_and_bytes(aegis):
    hub, root = aegis
    code, _, full = _fetch(root, "aegis", "--dry-run")
    assert code == 0, full.output
    assert "listing: readable" in full.output and "token: not needed" in full.output
    assert "download: allowed" in full.output and "would fetch 3 files" in full.output
    hub.set_gated(REPO, "hf_granted")
    code, _, full = _fetch(root, "aegis", "--dry-run")
    assert code == 0, full.output
    assert "token: needed (gated: manual); none set" in full.output
    assert "download: refused" in full.output and "accept the terms" in full.output
    assert not (root / "raw" / "aegis").exists()


# -- plain HTTP (GenVideo-Val from a ModelScope-like host) ------------------------------------

ARCHIVE = "GenVideo-Val.zip"


@pytest.fixture
def genvideo(tmp_path):
    served = tmp_path / "served"
    store = served / modelscope_relpath("cccnju/Gen-Video", "master", "")
    store.mkdir(parents=True)
    with zipfile.ZipFile(store / ARCHIVE, "w") as archive:
        archive.writestr("Real/real_0.mp4", os.urandom(40_000))
    config = yaml.safe_load((ROOT_DIR / "configs/datasets/genvideo_val.yaml").read_text())
    config["source"].update(retries=1, concurrency=1)
    path = tmp_path / "genvideo_val.yaml"
    path.write_text(yaml.safe_dump(config))
    with HttpFileServer(served, route=modelscope_route) as server:
        yield server, str(path), tmp_path / "data", (store / ARCHIVE).read_bytes()


def _http_fetch(root: Path, config: str, server: str):
    return _fetch(root, "genvideo_val", "--config", config, "--server", server)


def _http_resumes(root: Path, config: str, server: HttpFileServer, archive: bytes) -> None:
    code, _, full = _http_fetch(root, config, server.base_url)
    assert code == 0, full.output
    marker = root / "raw/genvideo_val/.extracted"
    assert marker.is_dir() and (root / "raw/genvideo_val/Real/real_0.mp4").is_file()
    assert not list((root / "raw/genvideo_val").glob("*.part"))


def _relpath(server: HttpFileServer) -> str:
    return modelscope_relpath("cccnju/Gen-Video", "master", ARCHIVE)


def test_http_refused_connection_then_resumes(genvideo):
    server, config, root, archive = genvideo
    _assert_one_line(
        _http_fetch(root, config, refused_url()),
        1,
        "genvideo_val: ",
        "refused the connection",
        "rerun",
    )
    _http_resumes(root, config, server, archive)


@pytest.mark.parametrize(
    "status,code,expected",
    [
        (404, 2, "not at that address"),
        (403, 2, "refuses these files"),
        (401, 2, "wants credentials"),
        (500, 1, "kept failing after the retries"),
    ],
)
def test_http_status_then_resumes(genvideo, status, code, expected):
    server, config, root, archive = genvideo
    server.add_fault(_relpath(server), Fault(times=None, status=status))
    _assert_one_line(_http_fetch(root, config, server.base_url), code, f"HTTP {status}", expected)
    server.clear_faults()
    _http_resumes(root, config, server, archive)


def test_http_429_honours_retry_after_then_says_so(genvideo):
    server, config, root, archive = genvideo
    server.add_fault(_relpath(server), Fault(times=None, status=429, retry_after_s=1))
    _assert_one_line(_http_fetch(root, config, server.base_url), 1, "HTTP 429", "rerun")
    assert len(server.requests(_relpath(server))) == 2  # one retry, after Retry-After
    server.clear_faults()
    _http_resumes(root, config, server, archive)


def test_http_body_cut_short_resumes_with_range(genvideo):
    server, config, root, archive = genvideo
    server.add_fault(_relpath(server), Fault(times=None, truncate_after_bytes=10_000))
    _assert_one_line(_http_fetch(root, config, server.base_url), 1, "short body", "rerun")
    server.clear_faults()
    _http_resumes(root, config, server, archive)
    # two attempts of 10,000 bytes each were kept: the rerun asks for the rest only
    assert server.requests(_relpath(server))[-1].range_header == "bytes=20000-"


def test_http_disk_full_keeps_nothing_as_done(genvideo):
    server, config, root, archive = genvideo
    raw = root / "raw/genvideo_val"
    raw.mkdir(parents=True)
    (raw / (ARCHIVE + ".part")).symlink_to("/dev/full")  # the kernel answers ENOSPC on write
    _assert_one_line(
        _http_fetch(root, config, server.base_url), 2, "is full (ENOSPC)", "--root on a larger disk"
    )
    assert not (raw / ARCHIVE).exists() and not (raw / ".extracted").exists()
    (raw / (ARCHIVE + ".part")).unlink()
    _http_resumes(root, config, server, archive)


# -- vfcache doctor -----------------------------------------------------------------------------


def test_doctor_table_and_a_failing_endpoint(hf_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://user:secret@proxy.example:3128")
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "doctor"])
    assert result.exit_code == 0, result.output
    for name in (
        "PyAV",
        "decoders",
        "decord",
        "torch",
        "CUDA",
        "Hub endpoint",
        "HF token",
        "proxy",
        "disk",
    ):
        assert any(line.startswith(name) for line in result.output.splitlines()), result.output
    assert f"{hf_hub.endpoint} reachable" in result.output
    assert "user:***@proxy.example" in result.output and "secret" not in result.output
    monkeypatch.setenv("HF_ENDPOINT", refused_url())
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "doctor"])
    assert result.exit_code == 1 and "refused the connection" in result.output, result.output
