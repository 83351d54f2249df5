"""Source kind `genvideo`: GenVideo-Val / GenVideo-100K (DeMamba), archives over HTTP (ModelScope).

    kind: genvideo
    source:
      base_url: https://modelscope.cn
      repo: cccnju/Gen-Video
      revision: master
      url_template: "{base_url}/api/v1/datasets/{repo}/repo?Revision={revision}&FilePath={file}"
      archives:                                  # downloaded, then extracted in place
        - files: [GenVideo-Val.zip]              # Real/ and Fake/<Generator>/ inside
        - files: [Real_part_aa, Real_part_ab]    # volumes of one set, in order
          into: train                            # subfolder of the raw folder (default: none)
          label: real                            # every file of this archive is real / fake ...
          generator: youku                       # ... from this generator (real: real_generator)
      checksums: {GenVideo-Val.zip: <sha256>}    # optional, per file
      real_folders: [Real]
      fake_folders: [Fake]
      real_generator: msrvtt
      folder_layout: fake_subfolders             # or generator_folders (GenVideo-100K)
      generator_prefix: train_                   # with generator_folders: stripped from the name
      listing: modelscope                        # dry run: compare with the host's file listing
      concurrency: 2
      retries: 5

An archive the host refuses (404, 403, an unreachable host, a bad checksum) or that cannot be
extracted is a recorded failure, one note line naming it: the other archives are downloaded and
extracted all the same, and a re-run asks again for what is missing. A volume set is extracted
only when every volume is here. Only when no archive at all could be had does the fetch stop.
With `listing: modelscope`, `fetch --dry-run` lists what the repository serves
(`vfcache.pipelines.sources.modelscope`) and flags configured names it does not serve.

Labels: a file extracted from an archive that declares `label` takes that label and
generator; any other file is labelled by its folders. With `folder_layout: fake_subfolders`
(GenVideo-Val: `Real/`, `Fake/<Generator>/`): below a `Real` folder it is real (the next
folder, if any, is its generator, else `real_generator`), below a `Fake` folder it is fake
and the next folder is its generator. With `generator_folders` (GenVideo-100K: `Real/`,
`train_pika/`, `train_SVD/`, `I2VGEN_XL/`...): below a real folder it is real, and any other
top folder is one generator's fakes, named after the folder without `generator_prefix`.
Anything else stops the listing with the paths. `.gif` files (I2VGEN_XL ships GIFs) are videos.
Each video is its own leakage group. GenVideo ships no split: splits are ours (the preset).
Archives whose extraction marker exists are not downloaded again.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import Optional

from vfcache.manifests.records import LABEL_FAKE, LABEL_REAL
from vfcache.pipelines.fetch import DownloadItem, download_files, read_extraction_marker
from vfcache.pipelines.fetch.errors import ArchiveError, FetchError
from vfcache.pipelines.fetch.http import download_failure
from vfcache.pipelines.sources._fetching import (
    FetchSummary,
    extract_in_place,
    extracted_volume_names,
    is_archive_name,
    update_fetch_record,
)
from vfcache.pipelines.sources._options import SourceOptions, extensions_option
from vfcache.pipelines.sources.base import RawDirUnderRoot, VideoCandidate, require_raw_dir
from vfcache.pipelines.sources.labels import VIDEO_EXTENSIONS, walk_video_files
from vfcache.pipelines.sources.modelscope import list_repo_files
from vfcache.pipelines.sources.plan import FetchPlan, PlannedFile, planned_http_files

from vfcache.config import DatasetConfig
from vfcache.errors import StageError
from vfcache.layout import DataRoot

log = logging.getLogger(__name__)

GENVIDEO_SOURCE_KEYS = {
    "base_url",
    "repo",
    "revision",
    "url_template",
    "archives",
    "checksums",
    "real_folders",
    "fake_folders",
    "real_generator",
    "folder_layout",
    "generator_prefix",
    "concurrency",
    "retries",
    "extensions",
    "expected_size",
    "listing",
}
LISTINGS = ("modelscope",)
ARCHIVE_KEYS = {"files", "into", "label", "generator"}
FOLDER_LAYOUTS = ("fake_subfolders", "generator_folders")
DEFAULT_TEMPLATE = "{base_url}/{file}"
LABELS = {"real": LABEL_REAL, "fake": LABEL_FAKE}


class ArchiveSpec:
    """One archive (or volume set) of the config, with the label its files take, if any."""

    def __init__(self, entry: dict, position: int, options: SourceOptions, real_generator: str):
        field = f"archives[{position}]"
        files = entry["files"]
        if isinstance(files, str):
            files = [files]
        if not (isinstance(files, list) and files and all(isinstance(f, str) and f for f in files)):
            raise options.error(
                f"{field}.files", files, "a file name or a list of volume names in order"
            )
        for name in files:
            if "/" in name or name.startswith("."):
                raise options.error(
                    f"{field}.files", name, "plain file names (no folders, not hidden)"
                )
        self.files = tuple(files)
        into = entry.get("into") or ""
        if not isinstance(into, str) or ".." in PurePosixPath(into).parts or into.startswith("/"):
            raise options.error(f"{field}.into", into, "a relative folder inside the raw folder")
        self.into = into.strip("/")
        label = entry.get("label")
        if label is not None and label not in LABELS:
            raise options.error(f"{field}.label", label, "real or fake")
        self.label = LABELS.get(label)
        generator = entry.get("generator")
        if generator is not None and not (isinstance(generator, str) and generator):
            raise options.error(f"{field}.generator", generator, "a generator name")
        if self.label == LABEL_FAKE and generator is None:
            raise options.error(f"{field}.generator", None, "the generator of a fake archive")
        if label is None and generator is not None:
            raise options.error(f"{field}.label", None, "real or fake when a generator is given")
        self.generator = generator or (real_generator if self.label == LABEL_REAL else None)

    def relpath(self, name: str) -> str:
        return f"{self.into}/{name}" if self.into else name

    def folder(self, raw_dir: Path) -> Path:
        return raw_dir / self.into if self.into else raw_dir


class GenVideoSource(RawDirUnderRoot):
    def __init__(self, config: DatasetConfig):
        options = SourceOptions(config, GENVIDEO_SOURCE_KEYS, required=("base_url", "archives"))
        self.config = config
        self.base_url = options.url("base_url")
        self.repo = options.string("repo", "")
        self.revision = options.string("revision", "master")
        self.url_template = options.string("url_template", DEFAULT_TEMPLATE)
        try:
            self.url_template.format(base_url="b", repo="r", revision="v", file="f")
        except (KeyError, IndexError, ValueError) as err:
            raise options.error(
                "url_template",
                self.url_template,
                "a template using only {base_url}, {repo}, {revision}, {file}",
            ) from err
        self.real_generator = options.string("real_generator", "msrvtt")
        entries = options.records("archives", ARCHIVE_KEYS, required=("files",))
        self.archives = [
            ArchiveSpec(entry, i, options, self.real_generator) for i, entry in enumerate(entries)
        ]
        names = [archive.relpath(name) for archive in self.archives for name in archive.files]
        if len(set(names)) != len(names):
            raise options.error("archives", names, "each file listed once")
        self.checksums = options.sha256s("checksums", {})
        self.real_folders = options.strings("real_folders", ("Real",))
        self.fake_folders = options.strings("fake_folders", ("Fake",))
        if set(self.real_folders) & set(self.fake_folders):
            raise options.error(
                "fake_folders", self.fake_folders, "names not also in source.real_folders"
            )
        self.folder_layout = options.string("folder_layout", "fake_subfolders")
        if self.folder_layout not in FOLDER_LAYOUTS:
            raise options.error(
                "folder_layout", self.folder_layout, f"one of {list(FOLDER_LAYOUTS)}"
            )
        self.generator_prefix = options.string("generator_prefix", "train_")
        self.concurrency = options.integer("concurrency", 2, minimum=1)
        self.retries = options.integer("retries", 5, minimum=0)
        self.extensions = extensions_option(options, "extensions", VIDEO_EXTENSIONS)
        self.expected_size = options.string("expected_size", "")
        self.listing = options.string("listing", None, choices=LISTINGS)
        if self.listing is not None and not self.repo:
            raise options.error(
                "listing", self.listing, "null unless source.repo names the repository"
            )

    def describe(self) -> str:
        where = f"{self.base_url} {self.repo}@{self.revision}" if self.repo else self.base_url
        return f"http archives from {where}"

    def url(self, name: str) -> str:
        return self.url_template.format(
            base_url=self.base_url, repo=self.repo, revision=self.revision, file=name
        )

    def _pending(self, raw_dir: Path) -> list[DownloadItem]:
        items = []
        for archive in self.archives:
            extracted = extracted_volume_names(archive.folder(raw_dir))
            for name in archive.files:
                if name not in extracted:
                    items.append(
                        DownloadItem(
                            self.url(name), archive.relpath(name), sha256=self.checksums.get(name)
                        )
                    )
        return items

    def plan_fetch(self, root: DataRoot) -> FetchPlan:
        """Every archive volume: its size from the host's listing (`listing`) or a HEAD, unless it
        is here or was extracted; with a listing, configured names the host does not serve are
        flagged and served archives the config leaves out are named."""
        raw_dir = self.raw_dir(root)
        pending = {item.relpath for item in self._pending(raw_dir)}
        relpaths = [
            (self.url(name), archive.relpath(name), name)
            for archive in self.archives
            for name in archive.files
        ]
        present = [rel for _, rel, _ in relpaths if rel not in pending]
        if self.listing is None:
            files = planned_http_files(
                [(url, rel) for url, rel, _ in relpaths], raw_dir, present=present
            )
            return FetchPlan(
                self.config.name,
                self.describe(),
                self.config.terms,
                self.expected_size,
                tuple(files),
            )
        listing = list_repo_files(self.base_url, self.repo, self.revision)
        if listing.problem:  # the listing is a help, not a must: fall back to HEAD
            files = planned_http_files(
                [(url, rel) for url, rel, _ in relpaths], raw_dir, present=present
            )
            return FetchPlan(
                self.config.name,
                self.describe(),
                self.config.terms,
                self.expected_size,
                tuple(files),
                (f"{self.repo}: {listing.problem}; sizes asked by HEAD",),
            )
        files = [
            PlannedFile(
                rel,
                listing.files.get(name),
                present=rel in present,
                problem=""
                if rel in present or name in listing.files
                else f"not in the listing of {self.repo}@{self.revision}",
            )
            for _, rel, name in relpaths
        ]
        configured = {name for _, _, name in relpaths}
        extra = sorted(n for n in listing.files if n not in configured and is_archive_name(n))
        notes = [f"the host lists {len(listing.files)} files of {self.repo}@{self.revision}"]
        if extra:
            notes.append(f"served but not in {self.config.path}: {', '.join(extra)}")
        return FetchPlan(
            self.config.name,
            self.describe(),
            self.config.terms,
            self.expected_size,
            tuple(files),
            tuple(notes),
        )

    def fetch(self, root: DataRoot, *, progress: bool = True) -> FetchSummary:
        """Download what is missing, extract every archive whose volumes are all here; an archive
        that fails is one note line and a failure, the others go on."""
        raw_dir = self.raw_dir(root)
        items = self._pending(raw_dir)
        report = download_files(
            items, raw_dir, concurrency=self.concurrency, retries=self.retries, progress=progress
        )
        relpaths = [archive.relpath(name) for archive in self.archives for name in archive.files]
        record = update_fetch_record(
            raw_dir,
            source="http",
            repo_id=self.repo or self.base_url,
            revision=self.revision,
            endpoint=self.base_url,
            relpaths=relpaths,
        )
        refused = {o.relpath: o.reason for o in report.failed}
        notes = [
            f"{rel}: {reason}; not extracted, re-run `vfcache fetch {self.config.name}` to retry"
            for rel, reason in sorted(refused.items())
        ]
        extracted, broken = self._extract_complete(raw_dir, set(refused), progress)
        notes += broken
        if len(refused) + len(broken) and not self._any_archive_here(raw_dir):
            if report.failed:  # nothing arrived: the download's own line (host, cause, exit code)
                raise download_failure(
                    report, "GenVideo archives", command=f"vfcache fetch {self.config.name}"
                )
            raise FetchError(
                f"no GenVideo archive could be extracted from {self.describe()}: "
                + "; ".join(notes[:5])
            )
        return FetchSummary(
            dataset=self.config.name,
            raw_dir=str(raw_dir),
            source=f"http {self.describe()}",
            files=len(record.files),
            total_bytes=record.total_bytes,
            downloaded=len(report.ok),
            failed=len(refused) + len(broken),
            extracted_archives=len(extracted),
            up_to_date=not items and not extracted,
            failures_path=str(report.failures_path),
            notes=tuple(notes),
        )

    def _extract_complete(
        self, raw_dir: Path, refused: set[str], progress: bool
    ) -> tuple[list[Path], list[str]]:
        """Extract each archive whose volumes all arrived; (extracted now, one note per archive
        that could not be extracted)."""
        extracted, broken = [], []
        for archive in self.archives:
            folder = archive.folder(raw_dir)
            if any(archive.relpath(name) in refused for name in archive.files):
                continue
            done_before = extracted_volume_names(folder)
            if not all((folder / name).is_file() or name in done_before for name in archive.files):
                continue
            first = folder / archive.files[0]
            try:
                extracted += extract_in_place(
                    [first] if first.is_file() else [],
                    remove_archive=True,
                    on_corrupt_member="raise",
                    progress=progress,
                )
            except ArchiveError as err:
                broken.append(
                    f"{archive.relpath(archive.files[0])}: cannot be extracted ({err}); "
                    "delete it and re-run to download it again"
                )
        return extracted, broken

    def _any_archive_here(self, raw_dir: Path) -> bool:
        """At least one archive of the config is extracted (the release is usable in part)."""
        return any(
            archive.files[0] in extracted_volume_names(archive.folder(raw_dir))
            for archive in self.archives
        )

    def _declared_labels(self, raw_dir: Path) -> dict[str, tuple[int, str]]:
        """relpath -> (label, generator) for files of archives that declare a label."""
        declared = {}
        for archive in self.archives:
            if archive.label is None:
                continue
            folder = archive.folder(raw_dir)
            marker = read_extraction_marker(folder / archive.files[0], folder)
            if marker is None:
                continue
            for name in marker["files"]:
                declared[archive.relpath(name)] = (archive.label, archive.generator)
        return declared

    def _folder_label(self, relpath: str) -> Optional[tuple[int, str]]:
        folders = relpath.split("/")[:-1]
        if self.folder_layout == "generator_folders":
            return self._generator_folder_label(folders)
        for index in range(len(folders) - 1, -1, -1):
            below = folders[index + 1] if index + 1 < len(folders) else None
            if folders[index] in self.fake_folders:
                return (LABEL_FAKE, below) if below else None
            if folders[index] in self.real_folders:
                return LABEL_REAL, below or self.real_generator
        return None

    def _generator_folder_label(self, folders: list[str]) -> Optional[tuple[int, str]]:
        """GenVideo-100K: `Real/...` is real; `<prefix><Generator>/...` holds that generator's
        fakes."""
        if not folders:
            return None
        for index, folder in enumerate(folders):
            if folder in self.real_folders:
                below = folders[index + 1] if index + 1 < len(folders) else None
                return LABEL_REAL, below or self.real_generator
        top = folders[0]
        generator = (
            top[len(self.generator_prefix) :] if top.startswith(self.generator_prefix) else top
        )
        return (LABEL_FAKE, generator) if generator else None

    def list_videos(self, root: DataRoot) -> list[VideoCandidate]:
        raw_dir = self.raw_dir(root)
        require_raw_dir(raw_dir, self.config.name)
        declared = self._declared_labels(raw_dir)
        candidates, unlabelled = [], []
        for relpath in walk_video_files(raw_dir, self.extensions):
            labelled = declared.get(relpath) or self._folder_label(relpath)
            if labelled is None:
                unlabelled.append(relpath)
                continue
            label, generator = labelled
            candidates.append(
                VideoCandidate(
                    relpath=relpath,
                    label=label,
                    generator=generator,
                    domain=self.config.domain,
                    group=relpath.rsplit(".", 1)[0],
                )
            )
        if unlabelled:
            raise StageError(
                f"{len(unlabelled)} videos below {raw_dir} are neither below a real folder "
                f"{list(self.real_folders)} nor in a generator folder "
                f"({self.folder_layout}, fake folders {list(self.fake_folders)}), nor from an "
                f"archive that declares its label: {unlabelled[:5]}"
            )
        log.info("found %d GenVideo videos below %s", len(candidates), raw_dir)
        return candidates
