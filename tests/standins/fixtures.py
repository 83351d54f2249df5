"""Pytest fixtures for the stand-in servers, loaded for every test module by conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.standins.hf_hub import HfHubStandin
from tests.standins.http_files import HttpFileServer


@pytest.fixture
def http_file_server(tmp_path: Path) -> Iterator[HttpFileServer]:
    """A file server over `tmp_path / "served"` (empty; the test puts files there)."""
    root = tmp_path / "served"
    root.mkdir()
    with HttpFileServer(root) as server:
        yield server


@pytest.fixture
def hf_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HfHubStandin]:
    """A Hub stand-in with `HF_ENDPOINT` pointing at it, no token in the environment, the
    client's home in `tmp_path` and tree pages of 3 entries so paging is exercised.

    `HF_HUB_DISABLE_XET` is set for subprocesses; in this process the client read it at
    import, but the stand-in never advertises Xet, so downloads use plain HTTP anyway.
    """
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with HfHubStandin(page_size=3) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        yield hub
