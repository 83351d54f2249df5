"""Source kind `gasbench`: the video datasets of GASBench's dataset YAML, cached the vfcache way.

    kind: gasbench
    source:
      config: gasbench/real_videos.yaml    # or a list; relative to this config's folder
      revision: main                       # resolved to one commit per repo, recorded
      endpoint: https://huggingface.co     # optional; default HF_ENDPOINT or the public Hub
      datasets: [deepaction_veo]           # optional; only these entry names

Every video entry of the YAML (see `gasbench_yaml`) is one domain, fetched into
`raw/<dataset>/<entry name>/` at the commit its repo resolved to (all entries of one repo
share it; an entry already fetched pins it for the others). The repo's listing is filtered as
GASBench does (include/exclude substrings, the entry's `source_format`, GASBench's fallback to
parquet/zip/tar when that format finds nothing), and every matching file is fetched: vfcache
caches everything an entry names (GASBench's `--full` budget without its sampling caps;
GASBench's seeded per-run sampling is not reproduced). mp4/avi/mov are used as they are,
zip/tar/tar.gz are extracted in place with the project's safe extraction, parquet tables
become video files (`gasbench_parquet`). Label from `media_type` (real 0, synthetic and
semisynthetic 1), generator from `generator_family` or the name.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
from pathlib import Path

from vfcache.pipelines.sources._fetching import (
    FetchSummary,
    extract_in_place,
    file_accounted,
    first_volumes,
    hf_fetch_once,
    read_record_or_none,
)
from vfcache.pipelines.sources._options import SourceOptions
from vfcache.pipelines.sources.base import RawDirUnderRoot, VideoCandidate, require_raw_dir
from vfcache.pipelines.sources.gasbench_parquet import convert_table
from vfcache.pipelines.sources.gasbench_yaml import GasbenchEntry, read_gasbench_yaml
from vfcache.pipelines.sources.labels import VIDEO_EXTENSIONS, walk_video_files
from vfcache.pipelines.sources.plan import FetchPlan, PlannedFile

from vfcache.config import DatasetConfig
from vfcache.errors import StageError
from vfcache.layout import DataRoot

log = logging.getLogger(__name__)

GASBENCH_SOURCE_KEYS = {"config", "revision", "endpoint", "datasets", "expected_size"}
ENTRY_MARKER = ".gasbench-entry.json"
_FORMAT_SUFFIXES = {
    "mp4": (".mp4",),
    "avi": (".avi",),
    "mov": (".mov",),
    "zip": (".zip",),
    "tar": (".tar",),
    "tar.gz": (".tar.gz", ".tgz"),
    "tgz": (".tar.gz", ".tgz"),
    "parquet": (".parquet",),
}
_FALLBACK = (".parquet", ".zip", ".tar", ".tar.gz", ".tgz")  # GASBench download/core.py
_ALL_SUFFIXES = tuple(sorted({s for v in _FORMAT_SUFFIXES.values() for s in v}))


def choose_files(entry: GasbenchEntry, listing: list[str]) -> list[str]:
    """The repo files an entry uses: path filters, then its format (or GASBench's fallback)."""
    wanted = [p for p in listing if entry.wants(p)]
    suffixes = _FORMAT_SUFFIXES.get(entry.source_format, _ALL_SUFFIXES)
    chosen = [p for p in wanted if p.lower().endswith(suffixes)]
    if not chosen and entry.source_format:
        chosen = [p for p in wanted if p.lower().endswith(_FALLBACK)]
        if chosen:
            log.warning(
                "%s: no %s file; using %d archives/tables",
                entry.name,
                entry.source_format,
                len(chosen),
            )
    return sorted(chosen)


def fingerprint(entry: GasbenchEntry) -> str:
    return hashlib.sha256(repr(entry).encode()).hexdigest()[:16]


class GasbenchSource(RawDirUnderRoot):
    def __init__(self, config: DatasetConfig):
        options = SourceOptions(config, GASBENCH_SOURCE_KEYS, required=("config",))
        self.config = config
        base = Path(config.path).parent if config.path else Path.cwd()
        files = [base / p for p in options.strings("config")]
        self.revision = options.string("revision", "main")
        self.endpoint = options.url("endpoint", None)
        self.expected_size = options.string("expected_size", "")
        parsed = read_gasbench_yaml(files)
        names = options.strings("datasets", None)
        entries = parsed.entries
        if names is not None:
            unknown = sorted(set(names) - {e.name for e in entries})
            if unknown:
                raise options.error("datasets", unknown, f"names among {[e.name for e in entries]}")
            entries = tuple(e for e in entries if e.name in names)
        foreign = [e.name for e in entries if e.source != "huggingface"]
        if foreign:
            raise options.error("config", foreign, "entries whose source is huggingface")
        self.entries = entries
        self.skipped = parsed.skipped
        self.unknown_keys = parsed.unknown_keys

    def describe(self) -> str:
        return f"gasbench YAML: {len(self.entries)} video datasets"

    def _marker(self, root: DataRoot, entry: GasbenchEntry) -> dict | None:
        path = self.raw_dir(root) / entry.name / ENTRY_MARKER
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def _is_done(self, root: DataRoot, entry: GasbenchEntry) -> bool:
        marker, dest = self._marker(root, entry), self.raw_dir(root) / entry.name
        record = read_record_or_none(dest)
        return (
            marker is not None
            and marker.get("fingerprint") == fingerprint(entry)
            and record is not None
            and record.commit_sha == marker.get("commit")
            and all(file_accounted(dest, f) for f in record.files)
        )

    def _commits(self, root: DataRoot, todo: list[GasbenchEntry]) -> dict[str, str]:
        """repo -> commit: pinned by an entry already fetched, else resolved once now."""
        commits: dict[str, str] = {}
        for entry in self.entries:
            marker = self._marker(root, entry)
            if marker and marker.get("repo") == entry.path and entry not in todo:
                commits.setdefault(entry.path, marker["commit"])
        return commits

    def _listing(self, repo: str, revision: str) -> tuple[str, list[tuple[str, int]]]:
        from vfcache.pipelines.fetch.hf import list_hf_dataset

        return list_hf_dataset(repo, revision=revision, endpoint=self.endpoint)

    def fetch(self, root: DataRoot, *, progress: bool = True) -> FetchSummary:
        todo = [e for e in self.entries if not self._is_done(root, e)]
        commits = self._commits(root, todo)
        listings: dict[str, list[str]] = {}
        total_files = total_bytes = extracted = 0
        for entry in todo:
            if entry.path not in listings:
                commit, files = self._listing(entry.path, commits.get(entry.path, self.revision))
                commits[entry.path] = commit
                listings[entry.path] = [p for p, _ in files]
            chosen = choose_files(entry, listings[entry.path])
            if not chosen:
                raise StageError(
                    f"{entry.name}: {entry.path}@{commits[entry.path]} has no "
                    f"{entry.source_format or 'video/archive/parquet'} file under include_paths "
                    f"{list(entry.include_paths)}"
                )
            dest = self.raw_dir(root) / entry.name
            record, _ = hf_fetch_once(
                entry.path,
                dest,
                revision=commits[entry.path],
                allow_patterns=[glob.escape(p) for p in chosen],
                endpoint=self.endpoint,
                progress=progress,
            )
            on_disk = [dest / f.relpath for f in record.files]
            extracted += len(
                extract_in_place(
                    first_volumes(on_disk),
                    remove_archive=True,
                    on_corrupt_member="raise",
                    progress=progress,
                )
            )
            for table in (p for p in on_disk if p.suffix == ".parquet" and p.is_file()):
                convert_table(table, entry)
            from vfcache.atomic import write_json_atomic

            write_json_atomic(
                dest / ENTRY_MARKER,
                {
                    "fingerprint": fingerprint(entry),
                    "repo": entry.path,
                    "commit": record.commit_sha,
                },
            )
        for entry in self.entries:
            record = read_record_or_none(self.raw_dir(root) / entry.name)
            if record is not None:
                total_files += len(record.files)
                total_bytes += record.total_bytes
        notes = [f"{len(self.entries)} video datasets, {len(todo)} fetched now"]
        if self.skipped:
            notes.append(f"skipped entries that are not video: {self.skipped}")
        if self.unknown_keys:
            notes.append(f"keys GASBench does not read: {', '.join(self.unknown_keys)}")
        return FetchSummary(
            dataset=self.config.name,
            raw_dir=str(self.raw_dir(root)),
            source=f"gasbench {', '.join(sorted({e.path for e in self.entries}))}",
            files=total_files,
            total_bytes=total_bytes,
            downloaded=None if todo else 0,
            failed=0,
            extracted_archives=extracted,
            up_to_date=not todo,
            notes=tuple(notes),
        )

    def list_videos(self, root: DataRoot) -> list[VideoCandidate]:
        raw_dir = self.raw_dir(root)
        require_raw_dir(raw_dir, self.config.name)
        candidates = []
        for entry in self.entries:
            folder = raw_dir / entry.name
            require_raw_dir(folder, self.config.name)
            for relpath in walk_video_files(folder, VIDEO_EXTENSIONS):
                candidates.append(
                    VideoCandidate(
                        relpath=f"{entry.name}/{relpath}",
                        label=entry.label,
                        generator=entry.generator,
                        domain=entry.name,
                        group=f"{entry.name}/{relpath}",
                    )
                )
        return sorted(candidates, key=lambda c: c.relpath)

    def plan_fetch(self, root: DataRoot) -> FetchPlan:
        files, listings = [], {}
        for entry in self.entries:
            if entry.path not in listings:
                listings[entry.path] = self._listing(entry.path, self.revision)
            sizes = dict(listings[entry.path][1])
            done = self._is_done(root, entry)
            for path in choose_files(entry, list(sizes)):
                files.append(PlannedFile(f"{entry.name}/{path}", sizes[path], present=done))
        return FetchPlan(
            self.config.name,
            self.describe(),
            self.config.terms,
            self.expected_size,
            tuple(files),
            notes=(f"skipped entries that are not video: {self.skipped}",) if self.skipped else (),
        )
