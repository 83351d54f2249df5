"""Source kind `aegis_keyframes`: the AEGIS parquet release, one video per row, frames as JPEG.

    kind: aegis_keyframes
    source:
      repo: Clarifiedfish/AEGIS
      revision: main
      allow_patterns: ["*.parquet"]   # which tables to fetch
      label_key: ground_truth          # meta_data key holding the label
      fake_values: [ai]                # values meaning AI-generated (label 1)
      real_values: [real]              # values meaning real (label 0); anything else is an error
      generator_key: generator         # meta_data key naming the generator (or real source)
      real_generator: real             # generator of real rows whose meta_data has none
      group_key: null                  # meta_data key of the leakage group; default: the row itself

Each row of each fetched table becomes a `VideoCandidate` with relpath
`<table>.parquet#<row>` (see `vfcache.pipelines.decode.keyframes`); probe and extract read its
frames through
`vfcache.pipelines.decode.media`. Every table's schema is checked at fetch and at listing, and a
row whose
label value is unknown stops the listing with the values found, because guessing a label
would silently corrupt the dataset.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from vfcache.manifests.records import LABEL_FAKE, LABEL_REAL
from vfcache.pipelines.decode.keyframes import check_schema, read_meta_rows, row_address
from vfcache.pipelines.sources._fetching import FetchSummary, hub_fetch_summary
from vfcache.pipelines.sources._options import SourceOptions
from vfcache.pipelines.sources.base import VideoCandidate, require_raw_dir
from vfcache.pipelines.sources.huggingface import HubSnapshotSource, hub_location
from vfcache.pipelines.sources.labels import walk_video_files

from vfcache.config import DatasetConfig
from vfcache.errors import StageError
from vfcache.layout import DataRoot

log = logging.getLogger(__name__)

KEYFRAME_SOURCE_KEYS = {
    "repo",
    "revision",
    "allow_patterns",
    "endpoint",
    "label_key",
    "fake_values",
    "real_values",
    "generator_key",
    "real_generator",
    "group_key",
    "expected_size",
}


def parquet_tables(raw_dir: Path) -> list[str]:
    """Relpaths of the parquet tables below `raw_dir`, sorted (hidden and temp files skipped)."""
    return walk_video_files(raw_dir, (".parquet",))


class AegisKeyframesSource(HubSnapshotSource):
    def __init__(self, config: DatasetConfig):
        options = SourceOptions(config, KEYFRAME_SOURCE_KEYS, required=("repo",))
        self.config = config
        self.repo, self.revision, self.allow_patterns, self.endpoint = hub_location(options)
        self.label_key = options.string("label_key", "ground_truth")
        self.fake_values = options.strings("fake_values", ("ai",))
        self.real_values = options.strings("real_values", ("real",))
        both = set(self.fake_values) & set(self.real_values)
        if both:
            raise options.error(
                "real_values", sorted(both), "values not also listed in source.fake_values"
            )
        self.generator_key = options.string("generator_key", "generator")
        self.real_generator = options.string("real_generator", "real")
        self.group_key = options.string("group_key", None)
        self.expected_size = options.string("expected_size", "")

    def describe(self) -> str:
        return f"huggingface dataset {self.repo}@{self.revision} (parquet keyframes)"

    def fetch(self, root: DataRoot, *, progress: bool = True) -> FetchSummary:
        dest, record, fetched = self.fetch_snapshot(root, progress=progress)
        tables = [f.relpath for f in record.files if f.relpath.endswith(".parquet")]
        if not tables:
            raise StageError(
                f"{self.repo}@{record.commit_sha} gave no parquet table into {dest} "
                f"(allow_patterns={self.allow_patterns}); AEGIS keyframes ship as data/*.parquet"
            )
        import pyarrow.parquet as pq

        for relpath in tables:  # fail now, not at probe time, when the release changed shape
            check_schema(pq.read_schema(dest / relpath), dest / relpath)
        return hub_fetch_summary(
            self.config.name,
            dest,
            self.repo,
            record,
            fetched,
            notes=(f"{len(tables)} parquet tables",),
        )

    def _label(self, value: object) -> int | None:
        if value in self.fake_values:
            return LABEL_FAKE
        if value in self.real_values:
            return LABEL_REAL
        return None

    def _candidate(self, address: str, meta: dict) -> VideoCandidate | None:
        label = self._label(meta.get(self.label_key))
        if label is None:
            return None
        generator = meta.get(self.generator_key)
        if not isinstance(generator, str) or not generator:
            generator = self.real_generator if label == LABEL_REAL else "unknown"
        group = address
        if self.group_key is not None:
            value = meta.get(self.group_key)
            if value is None or value == "":
                raise StageError(
                    f"{address}: meta_data has no {self.group_key!r} (source.group_key)"
                )
            group = str(value)
        return VideoCandidate(
            relpath=address,
            label=label,
            generator=generator,
            domain=self.config.domain,
            group=group,
            source_split=None,
        )

    def list_videos(self, root: DataRoot) -> list[VideoCandidate]:
        raw_dir = self.raw_dir(root)
        require_raw_dir(raw_dir, self.config.name)
        candidates, unknown = [], Counter()
        for table in parquet_tables(raw_dir):
            for row, meta in enumerate(read_meta_rows(raw_dir / table)):
                candidate = self._candidate(row_address(table, row), meta)
                if candidate is None:
                    unknown[repr(meta.get(self.label_key))] += 1
                else:
                    candidates.append(candidate)
        if unknown:
            raise StageError(
                f"{sum(unknown.values())} keyframe rows below {raw_dir} have a meta_data "
                f"{self.label_key!r} that is "
                f"neither fake {list(self.fake_values)} nor real {list(self.real_values)}: "
                f"{dict(unknown.most_common(5))}; set source.fake_values / source.real_values in "
                f"{self.config.path}"
            )
        unnamed = sum(1 for c in candidates if c.generator == "unknown")
        if unnamed:
            log.warning(
                "%d fake rows have no meta_data %r; their generator is 'unknown'",
                unnamed,
                self.generator_key,
            )
        log.info("found %d keyframe rows below %s", len(candidates), raw_dir)
        return candidates
