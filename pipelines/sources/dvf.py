"""Source kind `dvf`: Diffusion Video Forensics (MM-Det), from a Hugging Face repo or from a
folder the user downloaded by hand (the Google Drive / Baidu archives).

    kind: dvf
    source:
      repo: null            # a Hub dataset repo holding DVF (archives or folders), or
      path: downloads/DVF   # the folder with the hand-downloaded archives or extracted classes
                            # (a relative path lies below the data root)
      revision: main        # with repo
      allow_patterns: null  # with repo
      endpoint: null        # with repo
      splits_url: https://raw.githubusercontent.com/SparkleXFantasy/MM-Det/<commit>/splits
      splits_sha256: {train.json: <sha256>, val.json: <sha256>}
      splits_dir: null      # a folder of train.json / val.json you have (instead of splits_url)
      test_classes: [videocrafter1, zeroscope, opensora, sora, pika, stablediffusion, stablevideo]
      test_rule: per_class  # or shared_real_pool (the paper's: one real pool, see below)
      real_pool_classes: [videocrafter1, zeroscope, opensora]
      keep_archives: true   # with path: keep the user's archives after extracting them

Layout: `<class>/0_real/<file>` (label 0) and `<class>/1_fake/<file>` (label 1), under any
leading folders; the class is the generator, and some classes hold only `1_fake`. The
official splits are not in the data release but in the MM-Det GitHub repository:
`train.json` / `val.json` map `{class: {"0_real/x.mp4": 0, ...}}` and are fetched from a pinned
commit into `<raw>/splits/`, checked against their sha256. Listed videos get `source_split`
train / val; with `test_rule: per_class` every video of a test class gets `test`; with
`shared_real_pool` (the paper's test, MM-Det's test.py: the real videos are scored once and
reused for every class) test holds every fake of a test class and the reals of
`real_pool_classes` only, and evaluation scores each fake class against the domain's real
pool (the per-generator rows of every protocol). A label in a split file that disagrees with
the folder stops the listing; split entries without a file are counted and logged (the full
release is known to lack some real videos). Archives are extracted in place, volume sets
included (`.z01 ... .zip`, `.zip.001`), and zip members that are damaged (CRC errors are known
in some `0_real.zip` volumes, MM-Det issue #18) are skipped, recorded in the extraction marker
and named in the fetch summary; they never abort the class.

The documented route is the folder (`source.path`): the data comes from MM-Det's Google Drive
folder (Baidu is reported dead, MM-Det issue #16), by hand. `fetch --dry-run` on it prints the
archives expected there (`<class>/0_real.zip`, `<class>/1_fake.zip`, split volumes allowed:
`dvf_download`), which are here, and which are missing; their sizes are not published.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Optional

from vfcache.manifests.records import LABEL_FAKE, LABEL_REAL
from vfcache.pipelines.fetch import DownloadItem, download_files, read_extraction_marker
from vfcache.pipelines.fetch.http import download_failure
from vfcache.pipelines.sources._fetching import (
    FetchSummary,
    extract_in_place,
    first_volumes,
    hf_fetch_once,
    update_fetch_record,
)
from vfcache.pipelines.sources._options import SourceOptions, extensions_option
from vfcache.pipelines.sources.base import VideoCandidate, require_raw_dir
from vfcache.pipelines.sources.dvf_download import expected_archives
from vfcache.pipelines.sources.huggingface import hub_location
from vfcache.pipelines.sources.labels import VIDEO_EXTENSIONS, walk_video_files
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

DVF_SOURCE_KEYS = {
    "repo",
    "path",
    "revision",
    "allow_patterns",
    "endpoint",
    "splits_dir",
    "splits_url",
    "splits_sha256",
    "test_classes",
    "test_rule",
    "real_pool_classes",
    "keep_archives",
    "extensions",
    "expected_size",
}
LABEL_FOLDERS = {"0_real": LABEL_REAL, "1_fake": LABEL_FAKE}
TEST_CLASSES = (
    "videocrafter1",
    "zeroscope",
    "opensora",
    "sora",
    "pika",
    "stablediffusion",
    "stablevideo",
)
SPLIT_FILES = {"train": "train.json", "val": "val.json"}
TEST_RULES = ("per_class", "shared_real_pool")
REAL_POOL_CLASSES = ("videocrafter1", "zeroscope", "opensora")
FETCHED_SPLITS_DIR = "splits"


def parse_dvf_path(relpath: str) -> Optional[tuple[str, str, str]]:
    """(class, label folder, path below it) for `.../<class>/<0_real|1_fake>/<rest>`."""
    parts = relpath.split("/")
    for index in range(len(parts) - 2, 0, -1):
        if parts[index] in LABEL_FOLDERS:
            return parts[index - 1], parts[index], "/".join(parts[index + 1 :])
    return None


def read_split_file(path: Path) -> dict[tuple[str, str], int]:
    """{(class, "0_real/x.mp4"): label} from an official DVF split file; StageError if malformed."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise StageError(f"{path}: unreadable DVF split file ({err})") from err
    if not isinstance(payload, dict):
        raise StageError(
            f'{path}: expected {{class: {{"0_real/x.mp4": 0, ...}}}}, '
            f"found a {type(payload).__name__}"
        )
    entries = {}
    for klass, videos in payload.items():
        if not isinstance(videos, dict):
            raise StageError(
                f"{path}: class {klass!r} maps to a {type(videos).__name__}, "
                "expected {path: label}"
            )
        for video, label in videos.items():
            if label not in (LABEL_REAL, LABEL_FAKE) or isinstance(label, bool):
                raise StageError(f"{path}: {klass}/{video} has label {label!r}, expected 0 or 1")
            entries[(klass, video.strip("/"))] = label
    return entries


class DvfSource:
    def __init__(self, config: DatasetConfig):
        options = SourceOptions(config, DVF_SOURCE_KEYS)
        self.config = config
        repo, path = config.source.get("repo"), config.source.get("path")
        if (repo is None) == (path is None):
            raise options.error(
                "repo" if repo is not None else "path",
                repo or path,
                "exactly one of source.repo (a Hub dataset repo) or source.path (a local folder)",
            )
        self.repo = self.revision = self.allow_patterns = self.endpoint = None
        self.folder: Optional[Path] = None
        if repo is not None:
            self.repo, self.revision, self.allow_patterns, self.endpoint = hub_location(options)
        else:
            self.folder = Path(options.string("path")).expanduser()  # relative: below the data root
        splits_dir = options.string("splits_dir", None)
        self.splits_dir = Path(splits_dir).expanduser() if splits_dir else None
        self.splits_url = options.url("splits_url", None)
        self.splits_sha256 = options.sha256s("splits_sha256", {})
        if self.splits_dir is not None and self.splits_url is not None:
            raise options.error(
                "splits_dir", splits_dir, "null when source.splits_url fetches the official splits"
            )
        unknown = sorted(set(self.splits_sha256) - set(SPLIT_FILES.values()))
        if unknown:
            raise options.error(
                "splits_sha256", unknown, f"keys among {sorted(SPLIT_FILES.values())}"
            )
        self.test_classes = options.strings("test_classes", TEST_CLASSES)
        self.test_rule = options.string("test_rule", "per_class", choices=TEST_RULES)
        self.real_pool_classes = options.strings("real_pool_classes", REAL_POOL_CLASSES)
        outside = sorted(set(self.real_pool_classes) - set(self.test_classes))
        if outside:
            raise options.error("real_pool_classes", outside, "classes among source.test_classes")
        self.keep_archives = options.boolean("keep_archives", True)
        self.extensions = extensions_option(options, "extensions", VIDEO_EXTENSIONS)
        self.expected_size = options.string("expected_size", "")

    def describe(self) -> str:
        if self.repo is not None:
            return f"huggingface dataset {self.repo}@{self.revision}"
        return f"local folder {self.folder} (Google Drive / Baidu archives)"

    def raw_dir(self, root: DataRoot) -> Path:
        if self.folder is None:
            return root.raw_dir(self.config.name)
        return self.folder if self.folder.is_absolute() else root.path / self.folder

    def _fetch_splits(self, dest: Path) -> None:
        """The official train/val files from the pinned MM-Det commit, checked by sha256."""
        items = [
            DownloadItem(
                f"{self.splits_url}/{name}",
                f"{FETCHED_SPLITS_DIR}/{name}",
                sha256=self.splits_sha256.get(name),
            )
            for name in SPLIT_FILES.values()
        ]
        report = download_files(items, dest, concurrency=2, retries=3, progress=False)
        if report.failed:
            raise download_failure(
                report, "DVF official split files", command=f"vfcache fetch {self.config.name}"
            )

    def fetch(self, root: DataRoot, *, progress: bool = True) -> FetchSummary:
        dest = self.raw_dir(root)
        if self.folder is not None and not dest.is_dir():
            raise StageError(
                f"DVF folder {dest} (source.path of {self.config.path}) does not exist; download "
                "the archives from the MM-Det Google Drive folder "
                "(github.com/SparkleXFantasy/MM-Det, "
                "README: Full Version) into it first; `vfcache fetch dvf --dry-run` lists them"
            )
        if self.splits_url is not None:
            self._fetch_splits(dest)
        if self.repo is not None:
            record, fetched = hf_fetch_once(
                self.repo,
                dest,
                revision=self.revision,
                allow_patterns=self.allow_patterns,
                endpoint=self.endpoint,
                progress=progress,
            )
            origin = f"huggingface {self.repo}@{record.commit_sha}"
        else:
            fetched, origin = False, f"local {dest}"
        visible = sorted(p for p in dest.rglob("*") if not _hidden(p.relative_to(dest)))
        archives = first_volumes(visible)
        if self.repo is None:  # the user's download: record the archives as found
            relpaths = [a.relative_to(dest).as_posix() for a in archives]
            record = update_fetch_record(
                dest, source="local", repo_id=str(dest), revision="", endpoint="", relpaths=relpaths
            )
        remove = self.repo is not None or not self.keep_archives
        extracted = extract_in_place(
            archives, remove_archive=remove, on_corrupt_member="skip", progress=progress
        )
        self.split_entries(root)  # the official splits must be there before anything is probed
        return FetchSummary(
            dataset=self.config.name,
            raw_dir=str(dest),
            source=origin,
            files=len(record.files),
            total_bytes=record.total_bytes,
            downloaded=None if fetched else 0,
            failed=0,
            extracted_archives=len(extracted),
            up_to_date=not fetched and not extracted,
            notes=damaged_member_notes(archives, dest),
        )

    def plan_fetch(self, root: DataRoot) -> FetchPlan:
        """The official split files, then the Hub snapshot or the hand-downloaded archives."""
        dest = self.raw_dir(root)
        files: list[PlannedFile] = []
        if self.splits_url is not None:
            files += planned_http_files(
                [
                    (f"{self.splits_url}/{name}", f"{FETCHED_SPLITS_DIR}/{name}")
                    for name in SPLIT_FILES.values()
                ],
                dest,
            )
        notes = []
        access: tuple[str, ...] = ()
        if self.repo is not None:
            commit, listed = planned_hub_files(
                self.repo, self.revision, self.allow_patterns, self.endpoint, dest
            )
            files += listed
            where = f"huggingface dataset {self.repo}@{commit}"
            access = hub_access_lines(self.repo, commit, self.endpoint, listed)
        else:
            files += expected_archives(dest)
            where = f"local folder {dest} (archives downloaded by hand)"
            notes.append(
                "the archives come by hand from the MM-Det Google Drive folder "
                "(github.com/SparkleXFantasy/MM-Det, README: Full Version); their sizes are "
                "not published; fetch extracts what is in the folder"
            )
        return FetchPlan(
            self.config.name,
            where,
            self.config.terms,
            self.expected_size,
            tuple(files),
            tuple(notes),
            access=access,
        )

    def _find_splits_dir(self, raw_dir: Path) -> Path:
        if self.splits_url is not None:
            folder = raw_dir / FETCHED_SPLITS_DIR
            if not all((folder / name).is_file() for name in SPLIT_FILES.values()):
                raise StageError(
                    f"DVF's official splits are not in {folder} yet; run "
                    f"`vfcache fetch {self.config.name}` (it fetches them from "
                    f"{self.splits_url})"
                )
            return folder
        if self.splits_dir is not None:
            folder = self.splits_dir if self.splits_dir.is_absolute() else raw_dir / self.splits_dir
            candidates = [folder] if (folder / SPLIT_FILES["train"]).is_file() else []
        else:
            candidates = sorted(
                {
                    p.parent
                    for p in raw_dir.rglob(SPLIT_FILES["train"])
                    if p.parent.name == "splits" and not _hidden(p.relative_to(raw_dir))
                }
            )
        if len(candidates) != 1:
            where = self.splits_dir or f"a `splits` folder below {raw_dir}"
            found = f"found {[str(c) for c in candidates]}" if candidates else "found none"
            raise StageError(
                f"DVF's official splits (train.json, val.json) are expected in {where}; {found}. "
                "Put the MM-Det split files there or set source.splits_dir"
            )
        return candidates[0]

    def split_entries(self, root: DataRoot) -> dict[str, dict[tuple[str, str], int]]:
        """{"train": {(class, path): label}, "val": {...}} from the official split files."""
        folder = self._find_splits_dir(self.raw_dir(root))
        parts = {part: read_split_file(folder / name) for part, name in SPLIT_FILES.items()}
        both = sorted(set(parts["train"]) & set(parts["val"]))
        if both:
            raise StageError(
                f"{folder}: {len(both)} videos are in both train.json and val.json, e.g. {both[:3]}"
            )
        return parts

    def list_videos(self, root: DataRoot) -> list[VideoCandidate]:
        raw_dir = self.raw_dir(root)
        require_raw_dir(raw_dir, self.config.name)
        official = self.split_entries(root)
        split_of = {key: part for part, entries in official.items() for key in entries}
        candidates, unmatched, disagree = [], [], []
        for relpath in walk_video_files(raw_dir, self.extensions):
            parsed = parse_dvf_path(relpath)
            if parsed is None:
                unmatched.append(relpath)
                continue
            klass, label_folder, rest = parsed
            label = LABEL_FOLDERS[label_folder]
            key = (klass, f"{label_folder}/{rest}")
            part = split_of.get(key)
            if part is not None and official[part][key] != label:
                disagree.append(f"{relpath} ({part}.json says {official[part][key]})")
            if part is None and self._in_test(klass, label):
                part = "test"
            stem = rest.rsplit(".", 1)[0]
            candidates.append(
                VideoCandidate(
                    relpath=relpath,
                    label=label,
                    generator=klass,
                    domain=self.config.domain,
                    group=f"{klass}/{label_folder}/{stem}",
                    source_split=part,
                )
            )
        if unmatched:
            raise StageError(
                f"{len(unmatched)} video files below {raw_dir} are not in <class>/0_real or "
                f"<class>/1_fake, e.g. {unmatched[:5]}"
            )
        if disagree:
            raise StageError(
                f"{len(disagree)} videos sit in a label folder that their official split file "
                f"contradicts, e.g. {disagree[:5]}"
            )
        self._log_missing(candidates, official)
        return candidates

    def _in_test(self, klass: str, label: int) -> bool:
        if klass not in self.test_classes:
            return False
        return (
            self.test_rule == "per_class" or label == LABEL_FAKE or klass in self.real_pool_classes
        )

    def _log_missing(self, candidates: list[VideoCandidate], official: dict) -> None:
        present = set()
        for candidate in candidates:
            klass, label_folder, rest = parse_dvf_path(candidate.relpath)
            present.add((klass, f"{label_folder}/{rest}"))
        missing = defaultdict(int)
        for part, entries in official.items():
            for key in entries:
                if key not in present:
                    missing[part] += 1
        if missing:
            log.warning(
                "DVF: official split entries without a video file: %s (the release is known "
                "to lack some real videos; they are left out)",
                dict(missing),
            )


def damaged_member_notes(archives: list[Path], dest: Path) -> tuple[str, ...]:
    """One note per archive member skipped as damaged, from the extraction markers."""
    notes = []
    for archive in archives:
        marker = read_extraction_marker(archive, archive.parent) or {}
        for member in marker.get("corrupt_members", []):
            notes.append(
                f"{archive.relative_to(dest).as_posix()}: skipped damaged member "
                f"{member['member']} ({member['reason']})"
            )
    return tuple(notes)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)
