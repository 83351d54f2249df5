"""`make cache DATASET=<name>` as library calls, for the dataset-source tests: fetch ->
build_manifest -> extract_clips -> write_split -> audit, in this process (no dask cluster),
on a dataset config whose source points at a stand-in server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from vfcache.manifests.audit import AuditReport, audit
from vfcache.manifests.records import ClipRecord
from vfcache.pipelines.extract import ExtractReport, extract_clips
from vfcache.pipelines.probe import ManifestReport, build_manifest
from vfcache.pipelines.sources.base import get_source
from vfcache.pipelines.split import SplitReport, write_split

from vfcache.config import ClipSpec, DatasetConfig, load_dataset_config
from vfcache.layout import DataRoot

# 4 frames at 8 fps from the 6-frame 8 fps test videos; 3-frame videos are padded.
VIDEO_SPEC = ClipSpec(
    name="tiny_4x32",
    frames=4,
    sampling="fps",
    fps=8.0,
    height=32,
    width=32,
    start="start",
    short_policy="pad_last",
)
# 4 keyframes spread over a row's stored keyframes; big enough to read the frame-index code back.
KEYFRAME_SPEC = ClipSpec(
    name="kf_4x48", frames=4, sampling="uniform", height=48, width=48, short_policy="pad_last"
)


def config_for(name: str, *, splits: dict[str, Any] | None = None, **source: Any) -> DatasetConfig:
    """The shipped config `name` with some `source` keys replaced (None removes a key)."""
    config = load_dataset_config(name)
    merged = {**config.source, **source}
    merged = {key: value for key, value in merged.items() if value is not None}
    config = dataclasses.replace(config, source=merged)
    if splits:
        config = dataclasses.replace(config, splits=dataclasses.replace(config.splits, **splits))
    return config


@dataclass(frozen=True)
class CacheRun:
    fetch: Any
    manifest: ManifestReport
    extract: ExtractReport
    split: SplitReport
    audit: AuditReport


def run_cache(
    config: DatasetConfig, root: DataRoot, spec: ClipSpec = VIDEO_SPEC, *, fetch: bool = True
) -> CacheRun:
    """Every stage of `vfcache cache` with the config's split preset; each stage's report."""
    source = get_source(config)
    fetched = source.fetch(root, progress=False) if fetch else None
    manifest = build_manifest(config, root, spec, client=None, progress=False)
    extracted = extract_clips(config, root, spec, client=None, progress=False, max_failed=None)
    cache = root.cache_dir(config.name, spec.name)
    preset = config.splits
    split = write_split(
        cache,
        sizes=preset.sizes,
        seed=preset.seed,
        support=preset.support,
        stratify=preset.stratify,
        name=preset.name,
        unit=preset.unit,
        subset=preset.subset,
    )
    report = audit([(config.name, cache)], preset.name)
    return CacheRun(fetched, manifest, extracted, split, report)


def part_counts(run: CacheRun) -> dict[str, int]:
    return {summary.part: summary.clips for summary in run.split.meta.parts}


def clips_by_label_generator(clips: Iterable[ClipRecord]) -> dict[tuple[int, str], int]:
    """Number of clips per (label, generator)."""
    found: dict[tuple[int, str], int] = {}
    for clip in clips:
        found[(clip.label, clip.generator)] = found.get((clip.label, clip.generator), 0) + 1
    return found
