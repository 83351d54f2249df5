"""Where everything lives under the data root (`--root`, `VFCACHE_ROOT`, default `./data`).

    raw/<dataset>/...                       downloaded or generated as-is, plus fetch.json
    cache/<dataset>/<spec-name>/            one folder per (dataset, clip spec)
        spec.json  videos.parquet  clips.parquet  failures.parquet
        shards/shard-<writer>-<n>.npy.zst (+ .index.parquet written after the shard is final)
        splits/<split-name>/{train,val,test,support}.jsonl + split.json
        publish/<split-name>/                the generated files of the last `vfcache publish`
    bundles/<owner>/<name>/                 a clip bundle pulled from the Hub (a cache folder too)
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from vfcache.cache_tools.shards import LEGACY_ZSTD_LEVEL
from vfcache.config import ClipSpec, clip_spec_from_json
from vfcache.errors import StageError

SPLIT_PARTS = ("train", "val", "test", "support")


VIDEOS_PARQUET_NAME = "videos.parquet"

def default_root() -> Path:
    return Path(os.environ.get("VFCACHE_ROOT", "data"))


@dataclass(frozen=True)
class CacheDir:
    """The cache folder of one (dataset, clip spec)."""

    path: Path

    @property
    def spec_json(self) -> Path:
        return self.path / "spec.json"

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
        """The clip spec recorded in spec.json; raises StageError when it is missing or unreadable."""
        try:
            return clip_spec_from_json(json.loads(self.spec_json.read_text(encoding="utf-8")))
        except FileNotFoundError as err:
            raise StageError(f"{self.spec_json} does not exist; this is not an extracted cache folder "
                             "(run build-manifest and extract first)") from err
        except (json.JSONDecodeError, TypeError, ValueError) as err:
            raise StageError(f"{self.spec_json} is not a readable clip spec: {err}") from err


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
        return sorted(d.name for d in folder.iterdir() if (d / "spec.json").is_file()) if folder.is_dir() else []


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
