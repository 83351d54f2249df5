"""Where everything lives under the data root (`--root`, `VFCACHE_ROOT`, default `./data`).

    raw/<dataset>/...                       downloaded or generated as-is, plus fetch.json
    cache/<dataset>/<spec-name>/            one folder per (dataset, clip spec)
        spec.json  videos.parquet  clips.parquet  failures.parquet
        shards/shard-<writer>-<n>.npy.zst (+ .index.parquet written after the shard is final)
        splits/<split-name>/{train,val,test,support}.jsonl + split.json
        publish/<split-name>/                the generated files of the last `vfcache publish`
    bundles/<owner>/<name>/                 a clip bundle pulled from the Hub (a cache folder too)

This module owns the cache folder's format: every path and file name in it (shards, their
indexes, the extraction's plan and done files), spec.json (the clip spec, and under `shards`
how the clips are stored), and what makes a name a final shard. Writers and readers ask it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional

from vfcache.atomic import TEMP_MARK, write_json_atomic
from vfcache.config import ClipSpec, clip_spec_from_json
from vfcache.errors import StageError

SPLIT_PARTS = ("train", "val", "test", "support")
VIDEOS_PARQUET_NAME = "videos.parquet"
SPEC_JSON_NAME = "spec.json"
REMOTE_JSON_NAME = "remote.json"  # in a local cache folder: the URL of its remote home (a mirror)

# shards/: shard-<writer>-<n>.npy.zst, its index (the commit point) beside it, one done file
# per extraction task and one plan per generation of tasks
SHARD_SUFFIX = ".npy.zst"
INDEX_SUFFIX = ".index.parquet"
SHARD_NAME = re.compile(r"^shard-(?P<writer>\d+)-(?P<n>\d+)" + re.escape(SHARD_SUFFIX) + "$")
INDEX_NAME = re.compile(r"^shard-(?P<writer>\d+)-(?P<n>\d+)" + re.escape(INDEX_SUFFIX) + "$")
DONE_NAME = re.compile(r"^task-(?P<writer>\d+)\.done\.json$")
PLAN_NAME = re.compile(r"^plan-(?P<generation>\d{4})\.json$")

# Level 2: on natural footage about 1.7x level 3's compression speed for 4% more bytes (the
# table in the README); level 3 was the default before spec.json recorded the level.
DEFAULT_ZSTD_LEVEL = 2
LEGACY_ZSTD_LEVEL = 3


def shard_name(writer: str, n: int) -> str:
    return f"shard-{writer}-{n:04d}{SHARD_SUFFIX}"


def index_name(writer: str, n: int) -> str:
    return f"shard-{writer}-{n:04d}{INDEX_SUFFIX}"


def done_name(writer: str) -> str:
    return f"task-{writer}.done.json"


def plan_name(generation: int) -> str:
    return f"plan-{generation:04d}.json"


def shard_format(level: int) -> dict:
    """What spec.json records under `shards`: how the clips are stored. A reader needs none of
    it (every frame is a plain zstd frame of a plain `.npy`); it tells what a later run appends."""
    return {"compression": "zstd", "level": level, "filter": None}


def shard_path_problem(rel: str) -> str | None:
    """Why `rel` cannot name a final shard of a cache folder, or None when it can."""
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts:
        return "a shard path must stay inside the cache folder"
    if TEMP_MARK in path.name or not path.name.endswith(SHARD_SUFFIX):
        return f"not a final shard name (final shards end with {SHARD_SUFFIX})"
    return None


def default_root() -> Path:
    return Path(os.environ.get("VFCACHE_ROOT", "data"))


@dataclass(frozen=True)
class CacheDir:
    """The cache folder of one (dataset, clip spec)."""

    path: Path

    @property
    def spec_json(self) -> Path:
        return self.path / SPEC_JSON_NAME

    @property
    def videos_parquet(self) -> Path:
        """The dataset's video manifest, one per dataset: probing does not depend on the spec."""
        return self.path.parent / VIDEOS_PARQUET_NAME

    @property
    def clips_parquet(self) -> Path:
        return self.path / "clips.parquet"

    @property
    def failures_parquet(self) -> Path:
        return self.path / "failures.parquet"

    @property
    def shards_dir(self) -> Path:
        return self.path / "shards"

    def split_dir(self, split_name: str) -> Path:
        return self.path / "splits" / split_name

    def split_file(self, split_name: str, part: str) -> Path:
        if part not in SPLIT_PARTS:
            raise ValueError(f"split part {part!r} is not one of {SPLIT_PARTS}")
        return self.split_dir(split_name) / f"{part}.jsonl"

    def resolve_shard(self, relpath: str) -> Path:
        return self.path / relpath

    def shard_level(self) -> Optional[int]:
        """The zstd level spec.json records for the shards; the level of caches from before it was
        recorded (3) when spec.json has none; None when there is no spec.json."""
        try:
            payload = json.loads(self.spec_json.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except json.JSONDecodeError as err:
            raise StageError(f"{self.spec_json} is not a readable clip spec: {err}") from err
        shards = payload.get("shards") or {}
        return int(shards.get("level", LEGACY_ZSTD_LEVEL))

    def read_spec(self) -> ClipSpec:
        """The clip spec recorded in spec.json; raises StageError when it is missing or
        unreadable."""
        try:
            return clip_spec_from_json(json.loads(self.spec_json.read_text(encoding="utf-8")))
        except FileNotFoundError as err:
            raise StageError(
                f"{self.spec_json} does not exist; this is not an extracted cache folder "
                "(run build-manifest and extract first)"
            ) from err
        except (json.JSONDecodeError, TypeError, ValueError) as err:
            raise StageError(f"{self.spec_json} is not a readable clip spec: {err}") from err

    def check_spec(self, spec: ClipSpec) -> None:
        """A cache folder holds one spec forever: a different spec under the same name is an
        error."""
        if not self.spec_json.exists():
            return
        stored = self.read_spec()
        if stored.spec_hash != spec.spec_hash:
            raise StageError(
                f"{self.path} was built with a different clip spec named {spec.name!r} "
                f"(hash {stored.spec_hash}, now {spec.spec_hash}); give the changed spec a new "
                f"name "
                f"or remove {self.path}"
            )

    def write_spec(self, spec: ClipSpec, zstd_level: int) -> None:
        """spec.json of a new cache folder: the spec, and the shards' zstd level."""
        write_json_atomic(self.spec_json, {**spec.to_json(), "shards": shard_format(zstd_level)})

    @property
    def remote_json(self) -> Path:
        return self.path / REMOTE_JSON_NAME

    def remote_url(self) -> Optional[str]:
        """The URL this folder mirrors (its remote.json), or None for a cache folder on disk."""
        if not self.remote_json.exists():
            return None
        return json.loads(self.remote_json.read_text(encoding="utf-8"))["url"]

    def plan_path(self, generation: int) -> Path:
        return self.shards_dir / plan_name(generation)


@dataclass(frozen=True)
class DataRoot:
    path: Path

    def raw_dir(self, dataset: str) -> Path:
        return self.path / "raw" / dataset

    def dataset_dir(self, dataset: str) -> Path:
        """cache/<dataset>: the video manifest and probe state, and one folder per clip spec."""
        return self.path / "cache" / dataset

    def cache_dir(self, dataset: str, spec_name: str) -> CacheDir:
        return CacheDir(self.dataset_dir(dataset) / spec_name)

    def bundle_dir(self, repo_id: str) -> Path:
        """bundles/<owner>/<name>: a clip bundle pulled from the Hub (`vfcache pull`)."""
        owner, _, name = repo_id.partition("/")
        if not owner or not name or "/" in name or owner in (".", "..") or name in (".", ".."):
            raise StageError(f"{repo_id!r} is not a Hub repo id of the form OWNER/NAME")
        return self.path / "bundles" / owner / name

    def extracted_specs(self, dataset: str) -> list[str]:
        """Names of the clip specs with a cache folder (a spec.json) for `dataset`, sorted."""
        folder = self.dataset_dir(dataset)
        return (
            sorted(d.name for d in folder.iterdir() if (d / SPEC_JSON_NAME).is_file())
            if folder.is_dir()
            else []
        )


def cache_dir_of_split_file(jsonl_path: str | os.PathLike) -> CacheDir:
    """splits/<name>/<part>.jsonl lives three levels below its cache folder."""
    path = Path(jsonl_path).resolve()
    cache = CacheDir(path.parents[2])
    if not cache.spec_json.exists():
        raise StageError(  # a user error, one line: a wrong path in a train/eval config, say
            f"{jsonl_path} is not inside a vfcache cache folder (no {cache.spec_json}); "
            "split files must stay at cache/<dataset>/<spec>/splits/<name>/ (check the path, "
            "or run `vfcache extract` and `vfcache split` first)"
        )
    return cache
