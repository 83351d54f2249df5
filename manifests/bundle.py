"""Clip bundles: the folder `vfcache publish` pushes to a Hub dataset repo and `vfcache pull`
brings back, so that another lab can check that its clips are the publisher's clips.

A bundle is a cache folder (it has `spec.json`, `clips.parquet`, `splits/<name>/`, and with
shards `shards/`), so training and evaluation read a pulled bundle with shards as they read
any cache. Beside those:

    README.md              the dataset card (YAML front matter: configs, license, features)
    bundle.json            what this module reads and writes: dataset, spec, split, vfcache
                           version, decoder versions, the commands that rebuild it, and every
                           other file with its size and sha256
    videos.parquet         the dataset's video manifest (video_id = sha256 of the file)
    digests.parquet        one `ClipDigest` per clip: the sha256 of its decoded pixels
    audit.json             the audit of the split, as `vfcache audit --json` writes it
    provenance/fetch.json  the publisher's fetch record of the raw data, when there is one

A pulled bundle also holds `fetch.json` (pull's own record: repo, commit, files) and the
Hub's `.gitattributes`; bundle.json lists neither.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from vfcache.atomic import write_json_atomic
from vfcache.checksums import sha256_file
from vfcache.errors import VfcacheError

BUNDLE_FORMAT = "vfcache-bundle"
BUNDLE_VERSION = 1
BUNDLE_JSON = "bundle.json"
CARD_NAME = "README.md"
DIGESTS_NAME = "digests.parquet"
AUDIT_NAME = "audit.json"
SOURCE_FETCH_NAME = "provenance/fetch.json"
VIDEOS_NAME = "videos.parquet"
# Files a bundle folder may hold that bundle.json does not list: the Hub's attributes file and
# the record `vfcache pull` writes (the same fetch.json a Hub dataset fetch writes), and the
# lock a pull holds while it writes.
UNLISTED = (".gitattributes", "fetch.json", ".writer.lock")


class BundleError(VfcacheError):
    """A bundle that cannot be published, pulled or read: one line that says what to do."""


@dataclass(frozen=True)
class ClipDigest:
    """One row of digests.parquet."""

    clip_id: str
    video_id: str
    clip_index: int
    pixel_sha256: str  # pixel_digest() of the decoded clip


def pixel_digest(clip: np.ndarray) -> str:
    """sha256 of a decoded clip: its dtype and shape, then its pixels in C order.

    Two clips have the same digest exactly when they have the same shape and every pixel is
    equal, whatever the shard compression was.
    """
    header = f"{clip.dtype.str}:{'x'.join(str(n) for n in clip.shape)}:".encode()
    digest = hashlib.sha256(header)
    digest.update(np.ascontiguousarray(clip).data)
    return digest.hexdigest()


@dataclass(frozen=True)
class BundleFile:
    path: str  # relative to the bundle folder, POSIX separators
    bytes: int
    sha256: str


@dataclass(frozen=True)
class BundleManifest:
    """The content of bundle.json."""

    dataset: str
    domain: str
    spec_name: str
    spec_hash: str
    split: str
    with_shards: bool
    vfcache_version: str
    license: str
    redistribution: str
    source: Optional[dict]  # the raw data's fetch record without its file list, or None
    decoder: dict  # reader and library versions the clips were decoded with
    commands: tuple[str, ...]  # what rebuilds the cache and the split from the raw data
    counts: dict  # videos, clips, and clips per split part
    files: tuple[BundleFile, ...]
    format: str = BUNDLE_FORMAT
    format_version: int = BUNDLE_VERSION
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        payload = dataclasses.asdict(self)
        payload["commands"] = list(self.commands)
        payload["files"] = [dataclasses.asdict(f) for f in self.files]
        return payload

    def file(self, path: str) -> Optional[BundleFile]:
        return next((f for f in self.files if f.path == path), None)


def bundle_manifest_from_json(payload: dict, where: str) -> BundleManifest:
    if not isinstance(payload, dict) or payload.get("format") != BUNDLE_FORMAT:
        raise BundleError(
            f'{where} is not a vfcache bundle manifest (no "format": "{BUNDLE_FORMAT}")'
        )
    if payload.get("format_version") != BUNDLE_VERSION:
        raise BundleError(
            f"{where}: bundle format_version {payload.get('format_version')} is not "
            f"{BUNDLE_VERSION} (written by another vfcache version?)"
        )
    names = {f.name for f in dataclasses.fields(BundleManifest)}
    unknown, missing = sorted(set(payload) - names), sorted(names - set(payload) - {"extra"})
    if unknown or missing:
        raise BundleError(f"{where}: unknown fields {unknown}, missing fields {missing}")
    try:
        files = tuple(BundleFile(**row) for row in payload["files"])
        return BundleManifest(**{**payload, "commands": tuple(payload["commands"]), "files": files})
    except TypeError as err:
        raise BundleError(f"{where}: malformed bundle manifest ({err})") from err


def write_bundle_manifest(folder: str | os.PathLike, manifest: BundleManifest) -> Path:
    path = Path(folder) / BUNDLE_JSON
    write_json_atomic(path, manifest.to_json())
    return path


def read_bundle_manifest(folder: str | os.PathLike) -> BundleManifest:
    path = Path(folder) / BUNDLE_JSON
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise BundleError(
            f"{path} does not exist: {folder} is not a vfcache bundle "
            "(pull one with `vfcache pull OWNER/NAME`)"
        ) from err
    except json.JSONDecodeError as err:
        raise BundleError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from err
    return bundle_manifest_from_json(payload, str(path))


def describe_file(path: Path, relpath: str) -> BundleFile:
    """The bundle.json entry of the local file `path`, published as `relpath`."""
    return BundleFile(relpath, path.stat().st_size, sha256_file(path))


def bundle_file_problems(folder: str | os.PathLike, manifest: BundleManifest) -> list[str]:
    """Every way the folder's files differ from bundle.json: missing, changed (size or sha256),
    or present and not listed. Empty when the folder is exactly the bundle."""
    folder = Path(folder)
    problems = []
    for listed in manifest.files:
        path = folder / listed.path
        if not path.is_file():
            problems.append(f"{listed.path}: missing")
        elif path.stat().st_size != listed.bytes:
            problems.append(
                f"{listed.path}: {path.stat().st_size} bytes, bundle.json says {listed.bytes}"
            )
        elif sha256_file(path) != listed.sha256:
            problems.append(
                f"{listed.path}: sha256 differs from bundle.json (changed after publishing)"
            )
    listed_paths = {f.path for f in manifest.files} | {BUNDLE_JSON, *UNLISTED}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relpath = path.relative_to(folder).as_posix()
        if relpath not in listed_paths and not relpath.startswith(".cache/"):
            problems.append(f"{relpath}: not part of the bundle")
    return problems
