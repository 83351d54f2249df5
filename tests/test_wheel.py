"""vfcache as a package: a wheel built from the checkout, installed into a fresh virtualenv and
run from an empty folder, lists every dataset, caches the sample, trains and evaluates on it,
and puts `vfcache` alone into site-packages.

No network: the wheel is built without build isolation, from the setuptools of the test's own
interpreter, and installed without its dependencies; the fresh virtualenv reaches the
dependencies through a `.pth` file naming this interpreter's site-packages (a `.pth` file does
not run the other `.pth` files of that folder, so the checkout's editable install of vfcache
stays out of sight).
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import vfcache
from vfcache.config import configs_dir

CHECKOUT = Path(vfcache.__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]  # builds, installs, trains


def _run(args: list, cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VFCACHE_CONFIGS")}
    dist = base / "dist"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            dist,
            CHECKOUT,
        ],
        cwd=base,
        env=env,
    )
    wheel = next(dist.glob("vfcache-*.whl"))
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=base, env=env)
    python = venv / "bin" / "python"
    purelib = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=base,
            env=env,
        ).stdout.strip()
    )
    deps = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    (purelib / "vfcache_test_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            wheel,
        ],
        cwd=base,
        env=env,
    )
    empty = base / "empty"
    empty.mkdir()
    return {
        "wheel": wheel,
        "venv": venv,
        "purelib": purelib,
        "cwd": empty,
        "env": env,
        "vfcache": venv / "bin" / "vfcache",
    }


def test_the_wheel_holds_one_top_level_package_and_the_configs(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"vfcache"}
    yaml_names = {
        name.split("vfcache/configs/")[1] for name in names if name.startswith("vfcache/configs/")
    }
    in_checkout = {p.relative_to(configs_dir()).as_posix() for p in configs_dir().rglob("*.yaml")}
    assert yaml_names == in_checkout
    ours = {
        p.name
        for p in installed["purelib"].iterdir()
        if not p.name.endswith((".dist-info", ".pth")) and p.name != "__pycache__"
    }
    assert ours == {"vfcache"}


def test_the_installed_command_runs_from_an_empty_folder(installed):
    def run(*args, **kw) -> subprocess.CompletedProcess:
        command = [installed["vfcache"], "--root", "data", "--no-progress", *args]
        return _run(command, cwd=installed["cwd"], env=installed["env"], **kw)

    listed = run("datasets").stdout
    expected = sorted(p.stem for p in (configs_dir() / "datasets").glob("*.yaml"))
    for name in expected:
        assert name in listed
    where = _run(
        [
            installed["venv"] / "bin" / "python",
            "-c",
            "import vfcache.pipelines, vfcache.config as c; print(vfcache.pipelines.__file__); "
            "print(c.configs_dir())",
        ],
        cwd=installed["cwd"],
        env=installed["env"],
    ).stdout.split()
    assert all(str(installed["purelib"]) in line for line in where)
    run("--workers", "1", "cache", "sample", timeout=900)
    trained = run("train", configs_dir() / "train" / "sample_cpu.yaml", timeout=900).stdout
    assert "epochs" in trained
    evaluated = run("eval", configs_dir() / "eval" / "sample_cpu.yaml", timeout=900).stdout
    assert "auroc" in evaluated.lower() or "AUROC" in evaluated
