"""Source kind `huggingface`: video files in a Hugging Face dataset repo (AEGIS-Full), labelled
by the config's layout rule.

    kind: huggingface
    source:
      repo: Clarifiedfish/AEGIS-Full      # dataset repo id
      revision: main                       # branch, tag or commit; fetch.json records the commit
      allow_patterns: ["*test_data/*"]     # optional; fnmatch patterns, `*` crosses folders
      endpoint: https://huggingface.co     # optional; default HF_ENDPOINT or the public Hub
      extensions: [.mp4]                   # optional; which files are videos

`fetch` downloads the snapshot into `raw/<dataset>/` (resumable, verified, recorded; see
`vfcache.pipelines.fetch.hf`), and a re-run with the same request is a no-op that needs no network.
The token comes from the usual place (`HF_TOKEN` or the stored login).
"""

from __future__ import annotations

import logging
from pathlib import Path

from vfcache.pipelines.fetch import FetchRecord
from vfcache.pipelines.sources._fetching import FetchSummary, hf_fetch_once, hub_fetch_summary
from vfcache.pipelines.sources._options import SourceOptions, extensions_option
from vfcache.pipelines.sources.base import RawDirUnderRoot, VideoCandidate
from vfcache.pipelines.sources.labels import VIDEO_EXTENSIONS, candidates_from_layout
from vfcache.pipelines.sources.plan import FetchPlan, hub_access_lines, planned_hub_files

from vfcache.config import DatasetConfig
from vfcache.layout import DataRoot

log = logging.getLogger(__name__)

HF_SOURCE_KEYS = {"repo", "revision", "allow_patterns", "endpoint", "extensions", "expected_size"}


def hub_location(
    options: SourceOptions,
    *,
    repo_key: str = "repo",
    revision_key: str = "revision",
    patterns_key: str = "allow_patterns",
) -> tuple[str, str, object, object]:
    """(repo, revision, allow_patterns, endpoint) from the keys every Hub-backed kind shares."""
    repo = options.string(repo_key)
    if repo.count("/") != 1 or repo.startswith("/") or repo.endswith("/"):
        raise options.error(repo_key, repo, "a dataset repo id of the form owner/name")
    return (
        repo,
        options.string(revision_key, "main"),
        options.strings(patterns_key, None),
        options.url("endpoint", None),
    )


class HubSnapshotSource(RawDirUnderRoot):
    """What the Hub-backed kinds share: their repo (set from `hub_location`) is fetched once
    into root/raw/<dataset>."""

    repo: str
    revision: str
    allow_patterns: tuple[str, ...] | None
    endpoint: str | None

    def plan_fetch(self, root: DataRoot) -> FetchPlan:
        """The snapshot's files and sizes from the Hub's tree listing; nothing is downloaded."""
        commit, files = planned_hub_files(
            self.repo, self.revision, self.allow_patterns, self.endpoint, self.raw_dir(root)
        )
        return FetchPlan(
            self.config.name,
            f"huggingface dataset {self.repo}@{commit}",
            self.config.terms,
            getattr(self, "expected_size", ""),
            tuple(files),
            access=hub_access_lines(self.repo, commit, self.endpoint, files),
        )

    def fetch_snapshot(self, root: DataRoot, *, progress: bool) -> tuple[Path, FetchRecord, bool]:
        """(raw folder, fetch record, fetched now) after `hf_fetch_once` of the configured repo."""
        dest = self.raw_dir(root)
        record, fetched = hf_fetch_once(
            self.repo,
            dest,
            revision=self.revision,
            allow_patterns=self.allow_patterns,
            endpoint=self.endpoint,
            progress=progress,
        )
        return dest, record, fetched


class HuggingFaceSource(HubSnapshotSource):
    """Videos of a Hub dataset repo, labelled from their path by `config.layout`."""

    def __init__(self, config: DatasetConfig):
        options = SourceOptions(config, HF_SOURCE_KEYS, required=("repo",))
        self.config = config
        self.repo, self.revision, self.allow_patterns, self.endpoint = hub_location(options)
        self.extensions = extensions_option(options, "extensions", VIDEO_EXTENSIONS)
        self.expected_size = options.string("expected_size", "")

    def describe(self) -> str:
        return f"huggingface dataset {self.repo}@{self.revision}"

    def fetch(self, root: DataRoot, *, progress: bool = True) -> FetchSummary:
        dest, record, fetched = self.fetch_snapshot(root, progress=progress)
        return hub_fetch_summary(self.config.name, dest, self.repo, record, fetched)

    def list_videos(self, root: DataRoot) -> list[VideoCandidate]:
        return candidates_from_layout(
            self.raw_dir(root),
            self.config.layout,
            dataset=self.config.name,
            default_domain=self.config.domain,
            extensions=self.extensions,
        )
