"""`vfcache publish`: push one split of a cache, with its manifests, audit and provenance (and
optionally its shards), to a Hugging Face dataset repo, so another lab can check that its
clips are the publisher's clips.

Two steps:
- `stage_bundle` refuses what must not be published (a split whose audit fails; shards of a
  dataset whose terms do not allow redistributing clips), computes the pixel digest of every
  clip from the shards, and writes the generated files (bundle.json, README.md, audit.json,
  digests.parquet) under `<cache>/publish/<split>/`. The bundle's other files are the cache's
  own, uploaded from where they are.
- `push_bundle` compares the staged bundle with the repo and makes one commit with
  `huggingface_hub` (`create_repo`, `create_commit` with `parent_commit`, so two people
  publishing at once cannot silently overwrite each other). A repo that already holds other
  content is refused unless `update=True`, which replaces it (files no longer in the bundle
  are deleted in the same commit); a repo that already holds exactly this bundle gets no
  commit.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pyarrow.compute as pc
import pyarrow.parquet as pq
from vfcache.cache_tools.shards import ShardReader
from vfcache.manifests.audit import audit, format_table
from vfcache.manifests.bundle import (
    AUDIT_NAME,
    BUNDLE_JSON,
    CARD_NAME,
    DIGESTS_NAME,
    SOURCE_FETCH_NAME,
    VIDEOS_NAME,
    BundleError,
    BundleManifest,
    ClipDigest,
    describe_file,
    pixel_digest,
    write_bundle_manifest,
)
from vfcache.manifests.columns import read_split_table
from vfcache.manifests.parquet_io import read_records, write_records
from vfcache.manifests.records import ClipRecord
from vfcache.manifests.split_files import SPLIT_META_NAME, read_split_meta
from vfcache.pipelines.bundles.card import render_card
from vfcache.pipelines.fetch.record import (
    FETCH_RECORD_NAME,
    fetch_record_to_json,
    read_fetch_record,
)
from vfcache.pipelines.runner import run_tasks
from vfcache.pipelines.sources.base import get_source

from vfcache import __version__
from vfcache.atomic import write_bytes_atomic, write_json_atomic
from vfcache.config import DatasetConfig
from vfcache.layout import INDEX_SUFFIX, SPLIT_PARTS, CacheDir, DataRoot

log = logging.getLogger(__name__)

PUBLISH_DIR = "publish"


@dataclass(frozen=True)
class StagedBundle:
    """A bundle ready to push: repo path -> local file."""

    manifest: BundleManifest
    files: dict[str, Path]
    staging_dir: Path


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    commit: str
    url: str
    created: bool  # the repo did not exist before
    uploaded: int  # files added or changed by the commit
    deleted: int
    up_to_date: bool  # the repo already held exactly this bundle: no commit


@dataclass(frozen=True)
class DigestTask:
    shard: str
    clips: tuple[
        tuple[str, str, int, int, int], ...
    ]  # clip_id, video_id, clip_index, offset, nbytes


def digest_shard(task: DigestTask) -> list[ClipDigest]:
    """The pixel digest of every listed clip of one shard."""
    with ShardReader(task.shard) as reader:
        return [
            ClipDigest(
                clip_id, video_id, clip_index, pixel_digest(reader.read(offset, nbytes, clip_id))
            )
            for clip_id, video_id, clip_index, offset, nbytes in task.clips
        ]


def clip_digests(
    cache: CacheDir, clips: list[ClipRecord], *, client=None, progress: bool = True
) -> list[ClipDigest]:
    """Digests of `clips` read back from the cache's shards (one task per shard), sorted by clip
    id."""
    by_shard: dict[str, list] = {}
    for clip in clips:
        by_shard.setdefault(clip.shard, []).append(
            (clip.clip_id, clip.video_id, clip.clip_index, clip.offset, clip.nbytes)
        )
    tasks = [
        DigestTask(str(cache.resolve_shard(shard)), tuple(rows))
        for shard, rows in sorted(by_shard.items())
    ]
    digests = [
        d
        for batch in run_tasks(client, digest_shard, tasks, "digest", progress=progress)
        for d in batch
    ]
    return sorted(digests, key=lambda d: d.clip_id)


def _refuse_shards(config: DatasetConfig) -> None:
    if config.redistribution == "allowed":
        return
    if config.redistribution == "forbidden":
        raise BundleError(
            f"{config.name}: its terms forbid redistributing videos or clips (redistribution: "
            f"forbidden in "
            f"{config.path}); publish without --with-shards: the manifests, splits and digests let "
            f"others "
            "rebuild and check the clips from their own copy"
        )
    raise BundleError(
        f"{config.name}: its config does not say that clips may be redistributed (redistribution: "
        f"unknown in "
        f"{config.path}); publish without --with-shards, or set `redistribution: allowed` in a "
        f"copy of the "
        "config (--config) once you have read the dataset's terms"
    )


def _decoder_versions(reader: str) -> dict:
    import av

    versions = {"reader": reader, "av": av.__version__}
    versions.update(
        {name: ".".join(str(n) for n in version) for name, version in av.library_versions.items()}
    )
    if reader == "decord":
        import decord

        versions["decord"] = decord.__version__
    return versions


def _rebuild_commands(
    config: DatasetConfig, spec_name: str, split_dir: Path, repo_id: str
) -> tuple[str, ...]:
    meta = read_split_meta(split_dir)
    sizes = ",".join(f"{part}={size}" for part, size in meta.sizes)
    subset = f" --subset {meta.subset.asked}" if meta.subset else " --subset 0"
    return (
        f"pip install vfcache=={__version__}",
        f"vfcache fetch {config.name}",
        f"vfcache build-manifest {config.name}",
        f"vfcache extract {config.name} --spec {spec_name}",
        f"vfcache split {config.name} --spec {spec_name} --name {meta.name} --sizes {sizes} --seed "
        f"{meta.seed} "
        f"--support {meta.support_per_class} --unit {meta.unit}{subset}"
        f"  # stratified by {', '.join(meta.stratify)}",
        f"vfcache audit {config.name} --spec {spec_name} --split {meta.name}",
        f"vfcache pull {repo_id}",
        f"vfcache check-bundle {repo_id}",
    )


def _source_summary(raw_dir: Path) -> Optional[dict]:
    """The raw data's fetch record without its file list (its count and bytes instead), or None."""
    if not (raw_dir / FETCH_RECORD_NAME).is_file():
        return None
    try:
        record = read_fetch_record(raw_dir)
    except ValueError as err:
        raise BundleError(f"cannot publish the provenance of {raw_dir}: {err}") from err
    return {**fetch_record_to_json(record), "files": len(record.files)}


def stage_bundle(
    config: DatasetConfig,
    root: DataRoot,
    spec_name: str,
    split_name: str,
    *,
    repo_id: str,
    with_shards: bool = False,
    reader: str = "pyav",
    client=None,
    progress: bool = True,
) -> StagedBundle:
    """Check, digest and write everything one split's bundle needs; raise BundleError to refuse."""
    if with_shards:
        _refuse_shards(config)
    cache = root.cache_dir(config.name, spec_name)
    split_dir = cache.split_dir(split_name)
    if not (split_dir / SPLIT_META_NAME).is_file():
        raise BundleError(
            f"{config.name}: no split {split_name!r} in {cache.path} (run `vfcache split "
            f"{config.name} --name {split_name}` first)"
        )
    report = audit([(config.name, cache)], split_name=split_name)
    if not report.ok:
        failed = "; ".join(f"{c.name}: {c.detail}" for c in report.failed_checks)
        raise BundleError(
            f"{config.name}: split {split_name!r} fails its audit ({failed}); fix it and "
            f"run `vfcache audit {config.name} --split {split_name}` before publishing"
        )
    staging = cache.path / PUBLISH_DIR / split_name
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)

    files: dict[str, Path] = {
        "spec.json": cache.spec_json,
        "clips.parquet": cache.clips_parquet,
        VIDEOS_NAME: cache.videos_parquet,
    }
    if cache.failures_parquet.is_file():
        files["failures.parquet"] = cache.failures_parquet
    parts = [part for part in SPLIT_PARTS if (split_dir / f"{part}.jsonl").is_file()]
    for name in [f"{part}.jsonl" for part in parts] + [SPLIT_META_NAME]:
        files[f"splits/{split_name}/{name}"] = split_dir / name
    clips = read_records(cache.clips_parquet, ClipRecord)
    if with_shards:
        for shard in sorted({clip.shard for clip in clips}):
            files[shard] = cache.resolve_shard(shard)
            index = shard[: -len(".npy.zst")] + INDEX_SUFFIX
            if cache.resolve_shard(index).is_file():
                files[index] = cache.resolve_shard(index)
    raw_dir = get_source(config).raw_dir(root)  # where the source fetches to, and keeps fetch.json
    source = _source_summary(raw_dir)
    if source is not None:
        files[SOURCE_FETCH_NAME] = raw_dir / FETCH_RECORD_NAME

    write_json_atomic(staging / AUDIT_NAME, report.to_json())
    files[AUDIT_NAME] = staging / AUDIT_NAME
    digests = clip_digests(cache, clips, client=client, progress=progress)
    write_records(staging / DIGESTS_NAME, digests, ClipDigest)
    files[DIGESTS_NAME] = staging / DIGESTS_NAME

    parts_counts = {}
    for part in parts:
        table = read_split_table(split_dir / f"{part}.jsonl")
        parts_counts[part] = {
            "clips": table.num_rows,
            "videos": len(pc.unique(table.column("video_id"))) if table.num_rows else 0,
        }
    videos = pq.read_table(cache.videos_parquet, columns=["video_id"]).num_rows
    spec = json.loads(cache.spec_json.read_text(encoding="utf-8"))

    def manifest_with(listed: dict[str, Path]) -> BundleManifest:
        return BundleManifest(
            dataset=config.name,
            domain=config.domain,
            spec_name=spec_name,
            spec_hash=spec["spec_hash"],
            split=split_name,
            with_shards=with_shards,
            vfcache_version=__version__,
            license=config.license,
            redistribution=config.redistribution,
            source=source,
            decoder=_decoder_versions(reader),
            commands=_rebuild_commands(config, spec_name, split_dir, repo_id),
            counts={"videos": videos, "clips": len(clips), "parts": parts_counts},
            files=tuple(describe_file(path, relpath) for relpath, path in sorted(listed.items())),
        )

    draft = manifest_with(files)
    card = render_card(
        draft, parts, spec, format_table(report), config.terms, config.description, repo_id
    )
    write_bytes_atomic(staging / CARD_NAME, card.encode("utf-8"))
    files[CARD_NAME] = staging / CARD_NAME
    manifest = manifest_with(files)
    files[BUNDLE_JSON] = write_bundle_manifest(staging, manifest)
    return StagedBundle(manifest, dict(sorted(files.items())), staging)


def push_bundle(
    staged: StagedBundle,
    repo_id: str,
    *,
    private: bool = False,
    update: bool = False,
    token: Optional[str] = None,
    endpoint: Optional[str] = None,
    progress: bool = True,
) -> PushResult:
    """One commit that makes the repo hold exactly the staged bundle (see the module docstring)."""
    from vfcache.pipelines.fetch.hf import hub_progress

    with hub_progress(progress):
        return _push(
            staged, repo_id, private=private, update=update, token=token, endpoint=endpoint
        )


def _push(
    staged: StagedBundle,
    repo_id: str,
    *,
    private: bool,
    update: bool,
    token: Optional[str],
    endpoint: Optional[str],
) -> PushResult:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.utils import RepositoryNotFoundError
    from vfcache.pipelines.fetch.hf import (
        hash_file,
        hub_errors,
        mismatch_reason,
        resolve_endpoint,
        tree_at,
    )

    endpoint = resolve_endpoint(endpoint)
    api = HfApi(endpoint=endpoint, token=token)
    created = False
    with hub_errors("publish to", repo_id, "main", endpoint):
        try:
            head = api.dataset_info(repo_id).sha
        except RepositoryNotFoundError:
            api.create_repo(repo_id, repo_type="dataset", private=private)
            head = api.dataset_info(repo_id).sha
            created = True
        remote = tree_at(api, repo_id, head)
    changed = []
    for relpath, path in staged.files.items():
        entry = remote.get(relpath)
        if entry is None or mismatch_reason(entry, path, *hash_file(path)) is not None:
            changed.append(relpath)
    stale = sorted(p for p in remote if p not in staged.files and p != ".gitattributes")
    url = f"{endpoint}/datasets/{repo_id}"
    if not changed and not stale:
        return PushResult(repo_id, head, url, created, 0, 0, up_to_date=True)
    other = sorted(stale + [p for p in changed if p in remote])
    if other and not update:
        raise BundleError(
            f"{repo_id} already holds other content ({len(other)} files differ from this bundle, "
            f"e.g. "
            f"{', '.join(other[:3])}); pass --update to replace it with this bundle, or publish to "
            f"a new repo"
        )
    operations = [
        CommitOperationAdd(path_in_repo=relpath, path_or_fileobj=str(staged.files[relpath]))
        for relpath in changed
    ]
    operations += [CommitOperationDelete(path_in_repo=relpath) for relpath in stale]
    manifest = staged.manifest
    message = (
        f"vfcache {manifest.vfcache_version}: {manifest.dataset} / {manifest.spec_name} "
        f"/ split {manifest.split}"
    )
    with hub_errors("publish to", repo_id, "main", endpoint):
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=message,
            repo_type="dataset",
            parent_commit=head,
            commit_description=f"{manifest.counts['clips']} clips of "
            f"{manifest.counts['videos']} videos; shards: {manifest.with_shards}",
        )
    return PushResult(repo_id, info.oid, url, created, len(changed), len(stale), up_to_date=False)
