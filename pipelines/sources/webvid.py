"""Source kind `webvid`: WebVid-10M real footage, from a CSV of URLs (the official CSVs were
withdrawn in February 2024; mirrors of the CSV exist on Hugging Face).

    kind: webvid
    source:
      csv_repo: TempoFunk/webvid-10M        # a Hub dataset repo holding the CSV partitions, or
      csv_urls: null                        # plain HTTP(S) URLs of CSV files
      csv_revision: main                    # with csv_repo
      csv_patterns: ["*.csv"]               # with csv_repo: which CSV files to fetch
      endpoint: null                        # with csv_repo
      max_videos: 1000                      # the first N rows, over the CSV files in name order
      concurrency: 8
      retries: 3

CSV columns `videoid, contentUrl, duration, page_dir, name` (checked before use). The first
`max_videos` usable rows form the selection; each video goes to
`videos/<page_dir>/<videoid>.mp4`. Downloads have bounded concurrency, retries with backoff
and resume (`vfcache.pipelines.fetch.http`); 403/404 answers (the stock previews rot) are permanent,
recorded in `_failures.jsonl` and not asked again. Every video is real (label 0, generator
`webvid`) and its `videoid` is its group. A video of the selection that could not be fetched
is left out of the listing, never counted as a negative.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from vfcache.manifests.records import LABEL_REAL
from vfcache.pipelines.fetch import DownloadItem, download_files
from vfcache.pipelines.fetch.errors import FetchError
from vfcache.pipelines.fetch.http import download_failure
from vfcache.pipelines.sources._fetching import FetchSummary, hf_fetch_once, update_fetch_record
from vfcache.pipelines.sources._options import SourceOptions
from vfcache.pipelines.sources.base import RawDirUnderRoot, VideoCandidate
from vfcache.pipelines.sources.huggingface import hub_location
from vfcache.pipelines.sources.plan import (
    FetchPlan,
    PlannedFile,
    hub_access_lines,
    planned_http_files,
    planned_hub_files,
)

from vfcache.config import DatasetConfig
from vfcache.errors import StageError
from vfcache.layout import DataRoot

log = logging.getLogger(__name__)

WEBVID_SOURCE_KEYS = {
    "csv_repo",
    "csv_urls",
    "csv_revision",
    "csv_patterns",
    "endpoint",
    "max_videos",
    "concurrency",
    "retries",
    "expected_size",
}
REQUIRED_COLUMNS = ("videoid", "contentUrl", "page_dir")
EXPECTED_COLUMNS = ("videoid", "contentUrl", "duration", "page_dir", "name")
CSV_DIR = "csv"
VIDEO_DIR = "videos"
GENERATOR = "webvid"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


class WebVidSource(RawDirUnderRoot):
    def __init__(self, config: DatasetConfig):
        options = SourceOptions(config, WEBVID_SOURCE_KEYS)
        self.config = config
        has_repo, has_urls = (
            config.source.get("csv_repo") is not None,
            config.source.get("csv_urls") is not None,
        )
        if has_repo == has_urls:
            raise options.error(
                "csv_repo",
                config.source.get("csv_repo"),
                "exactly one of source.csv_repo (a Hub dataset repo) or source.csv_urls",
            )
        self.csv_repo = self.csv_revision = self.csv_patterns = self.endpoint = None
        self.csv_urls: tuple[str, ...] = ()
        if has_repo:
            self.csv_repo, self.csv_revision, self.csv_patterns, self.endpoint = hub_location(
                options,
                repo_key="csv_repo",
                revision_key="csv_revision",
                patterns_key="csv_patterns",
            )
            self.csv_patterns = self.csv_patterns or ("*.csv",)
        else:
            self.csv_urls = options.strings("csv_urls")
            for url in self.csv_urls:
                if not url.startswith(("http://", "https://")) or not url.rsplit("/", 1)[-1]:
                    raise options.error("csv_urls", url, "http(s) URLs of CSV files")
        self.max_videos = options.integer("max_videos", 1000, minimum=1)
        self.concurrency = options.integer("concurrency", 8, minimum=1)
        self.retries = options.integer("retries", 3, minimum=0)
        self.expected_size = options.string("expected_size", "")

    def describe(self) -> str:
        if self.csv_repo:
            return (
                f"WebVid CSV from huggingface dataset {self.csv_repo}@{self.csv_revision}, "
                f"first {self.max_videos} videos"
            )
        return f"WebVid CSV from {len(self.csv_urls)} URL(s), first {self.max_videos} videos"

    def _fetch_csv(self, raw_dir: Path, progress: bool) -> tuple[list[str], str]:
        csv_dir = raw_dir / CSV_DIR
        if self.csv_repo:
            record, _ = hf_fetch_once(
                self.csv_repo,
                csv_dir,
                revision=self.csv_revision,
                allow_patterns=self.csv_patterns,
                endpoint=self.endpoint,
                progress=progress,
            )
            return (
                [f"{CSV_DIR}/{f.relpath}" for f in record.files if f.relpath.endswith(".csv")],
                f"{self.csv_repo}@{record.commit_sha}",
            )
        # its own folder: this call must not rewrite the videos' raw_dir/_failures.jsonl
        items = [DownloadItem(url, url.rsplit("/", 1)[-1].split("?")[0]) for url in self.csv_urls]
        report = download_files(items, csv_dir, concurrency=2, retries=self.retries, progress=False)
        if report.failed:
            raise download_failure(
                report, "WebVid CSV files", command=f"vfcache fetch {self.config.name}"
            )
        return [f"{CSV_DIR}/{item.relpath}" for item in items], ", ".join(self.csv_urls)

    def plan_fetch(self, root: DataRoot) -> FetchPlan:
        """The CSV partitions (Hub listing or HEAD); the videos once the CSVs are here."""
        raw_dir = self.raw_dir(root)
        csv_dir = raw_dir / CSV_DIR
        access: tuple[str, ...] = ()
        if self.csv_repo:
            commit, listed = planned_hub_files(
                self.csv_repo, self.csv_revision, self.csv_patterns, self.endpoint, csv_dir
            )
            files = [replace(f, relpath=f"{CSV_DIR}/{f.relpath}") for f in listed]
            access = hub_access_lines(self.csv_repo, commit, self.endpoint, listed)
        else:
            files = planned_http_files(
                [
                    (url, f"{CSV_DIR}/{url.rsplit('/', 1)[-1].split('?')[0]}")
                    for url in self.csv_urls
                ],
                raw_dir,
            )
        if self.csv_files(raw_dir):
            rows = list(self.selection(raw_dir))
            files += [
                PlannedFile(row["relpath"], None, present=(raw_dir / row["relpath"]).is_file())
                for row in rows
            ]
            notes = (
                f"{len(rows)} videos selected from the CSV (max_videos {self.max_videos}); "
                "stock previews, a few MB each, many answer 403/404 now",
            )
        else:
            notes = (f"up to {self.max_videos} videos, listed once the CSV is fetched",)
        return FetchPlan(
            self.config.name,
            self.describe(),
            self.config.terms,
            self.expected_size,
            tuple(files),
            notes,
            access=access,
        )

    def csv_files(self, raw_dir: Path) -> list[Path]:
        return sorted(p for p in (raw_dir / CSV_DIR).rglob("*.csv") if not p.name.startswith("."))

    def selection(self, raw_dir: Path) -> Iterator[dict]:
        """The first `max_videos` usable rows (unique videoid, safe names), with `relpath` added."""
        seen, rejected, count = set(), 0, 0
        for path in self.csv_files(raw_dir):
            with open(path, newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise StageError(
                        f"{path}: WebVid CSV without columns {missing}; found {reader.fieldnames}, "
                        f"expected {list(EXPECTED_COLUMNS)}"
                    )
                for row in reader:
                    videoid, page_dir, url = row["videoid"], row["page_dir"], row["contentUrl"]
                    if (
                        videoid in seen
                        or not _SAFE_NAME.match(videoid or "")
                        or not _SAFE_NAME.match(page_dir or "")
                        or not (url or "").startswith(("http://", "https://"))
                    ):
                        rejected += 1
                        continue
                    seen.add(videoid)
                    yield {**row, "relpath": f"{VIDEO_DIR}/{page_dir}/{videoid}.mp4"}
                    count += 1
                    if count >= self.max_videos:
                        break
            if count >= self.max_videos:
                break
        if rejected:
            log.warning(
                "WebVid: %d CSV rows skipped (repeated videoid, unsafe names or no URL)", rejected
            )

    def fetch(self, root: DataRoot, *, progress: bool = True) -> FetchSummary:
        raw_dir = self.raw_dir(root)
        csv_relpaths, origin = self._fetch_csv(raw_dir, progress)
        rows = list(self.selection(raw_dir))
        items = [DownloadItem(row["contentUrl"], row["relpath"]) for row in rows]
        report = download_files(
            items,
            raw_dir,
            concurrency=self.concurrency,
            retries=self.retries,
            progress=progress,
            skip_recorded_permanent=True,
        )
        record = update_fetch_record(
            raw_dir,
            source="webvid",
            repo_id=origin,
            revision="",
            endpoint="",
            relpaths=csv_relpaths + [item.relpath for item in items],
        )
        permanent = sum(1 for o in report.failed + report.skipped if o.permanent)
        missing = len(report.failed) + sum(1 for o in report.skipped if o.permanent)
        if rows and missing == len(rows):
            reasons = sorted({o.reason for o in report.failed + report.skipped})[:3]
            raise FetchError(
                f"none of the {len(rows)} WebVid videos selected could be downloaded "
                f"({', '.join(reasons)}); the list is in {report.failures_path}. The stock "
                f"previews "
                "rot: try other CSV rows (source.csv_patterns / max_videos) or check the network"
            )
        notes = (
            f"{len(rows)} videos selected, {len(rows) - missing} on disk; {permanent} answered "
            "403/404 or similar (recorded, not asked again)",
        )
        return FetchSummary(
            dataset=self.config.name,
            raw_dir=str(raw_dir),
            source=f"webvid {origin}",
            files=len(record.files),
            total_bytes=record.total_bytes,
            downloaded=len(report.ok),
            failed=missing,
            extracted_archives=0,
            up_to_date=not report.ok and not report.failed,
            failures_path=str(report.failures_path),
            notes=notes,
        )

    def list_videos(self, root: DataRoot) -> list[VideoCandidate]:
        raw_dir = self.raw_dir(root)
        if not (raw_dir / CSV_DIR).is_dir():
            raise StageError(
                f"no WebVid CSV in {raw_dir / CSV_DIR}; "
                f"run `vfcache fetch {self.config.name}` first"
            )
        candidates, missing = [], 0
        for row in self.selection(raw_dir):
            if not (raw_dir / row["relpath"]).is_file():
                missing += 1
                continue
            candidates.append(
                VideoCandidate(
                    relpath=row["relpath"],
                    label=LABEL_REAL,
                    generator=GENERATOR,
                    domain=self.config.domain,
                    group=row["videoid"],
                )
            )
        if missing:
            log.warning(
                "WebVid: %d selected videos were not fetched (see %s); they are left out",
                missing,
                raw_dir / "_failures.jsonl",
            )
        return sorted(candidates, key=lambda c: c.relpath)
