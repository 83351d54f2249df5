"""Fixtures shared by the test modules: the synthetic video corpus (`corpus`, made once per
session) and the stand-in servers (`hf_hub`, `http_file_server`, from tests/standins/fixtures.py).
Helpers that are not fixtures (builders, constants) are imported from their modules."""

from __future__ import annotations

import pytest
from video_corpus import Corpus, build_corpus

pytest_plugins = ("tests.standins.fixtures",)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    """A small labelled corpus of synthetic videos plus broken files (see video_corpus.py)."""
    return build_corpus(tmp_path_factory.mktemp("corpus") / "raw")
