"""Source kind `ffpp`: FaceForensics++, fetched from the server named in the email the user gets
after the terms-of-use form, the way the official `download-FaceForensics.py` does it.

    kind: ffpp
    source:
      server_url: null        # the server(s) of the email (`--server URL`, repeatable); never
      shipped
      accept_terms: false     # `--accept-terms`: the user accepts the FaceForensics terms of use
                              # (both are remembered in the raw folder's fetch.json, see
                              ffpp_servers)
      version: v3
      compression: c23        # raw | c23 | c40
      methods: [Deepfakes, Face2Face, FaceSwap, NeuralTextures]  # + FaceShifter, DeepFakeDetection
      originals: [youtube]    # also actors (the DeepFakeDetection originals)
      splits_url: https://raw.githubusercontent.com/ondyari/FaceForensics/<commit>/dataset/splits
      max_pairs: null         # a subset: the first N pairs of the server's file list
      dfd_group: actors       # DeepFakeDetection groups: actors | source_video

Protocol (official script): `<server>/<version>/misc/filelist.json` is the list of id pairs
`[["071", "054"], ...]`; originals are every id of every pair, a method's videos are `a_b` and
`b_a` per pair; DeepFakeDetection names come from `misc/deepfake_detection_filenames.json`
(`actors`, `DeepFakesDetection`). Videos are at
`<server>/<version>/<dataset path>/<compression>/videos/<name>.mp4`, saved under the same path
in the raw folder. The official splits (`train/val/test.json`, lists of pairs) come from the
FaceForensics GitHub repository. A pair `[a, b]` is the leakage group of originals a, b and fakes
a_b, b_a, and its split is their `source_split`. DeepFakeDetection has no official split; its
videos are grouped by `dfd_group`: `actors` (default) joins every video of connected actors, so
no identity crosses parts, but the DFD fakes swap faces among nearly all of its 28 actors, which
makes one group of the whole release and leaves no split; `source_video` groups a real video
`01__scene` with the fakes made on it (`01_02__scene__X`: actor 01's scene with actor 02's
face), so no scene crosses parts (identities may). Several servers are tried in turn
(`ffpp_servers`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

from vfcache.manifests.records import LABEL_FAKE, LABEL_REAL
from vfcache.pipelines.fetch._transfer import PermanentError, TransientError
from vfcache.pipelines.fetch.errors import FetchError
from vfcache.pipelines.fetch.http import remote_json
from vfcache.pipelines.sources._fetching import FetchSummary, update_fetch_record
from vfcache.pipelines.sources._options import SourceOptions
from vfcache.pipelines.sources.base import RawDirUnderRoot, VideoCandidate, require_raw_dir
from vfcache.pipelines.sources.ffpp_servers import (
    RECORD_SOURCE,
    download_with_failover,
    remembered_options,
    server_urls,
)
from vfcache.pipelines.sources.labels import walk_video_files
from vfcache.pipelines.sources.plan import FetchPlan, PlannedFile, planned_http_files

from vfcache.config import DatasetConfig
from vfcache.errors import StageError
from vfcache.layout import DataRoot

log = logging.getLogger(__name__)

DFD_GROUPINGS = ("actors", "source_video")
FFPP_SOURCE_KEYS = {
    "dfd_group",
    "server_url",
    "accept_terms",
    "version",
    "compression",
    "methods",
    "originals",
    "splits_url",
    "max_pairs",
    "concurrency",
    "retries",
    "expected_size",
}
DATASET_PATHS = {
    "youtube": "original_sequences/youtube",
    "actors": "original_sequences/actors",
    "Deepfakes": "manipulated_sequences/Deepfakes",
    "Face2Face": "manipulated_sequences/Face2Face",
    "FaceSwap": "manipulated_sequences/FaceSwap",
    "NeuralTextures": "manipulated_sequences/NeuralTextures",
    "FaceShifter": "manipulated_sequences/FaceShifter",
    "DeepFakeDetection": "manipulated_sequences/DeepFakeDetection",
}
METHODS = (
    "Deepfakes",
    "Face2Face",
    "FaceSwap",
    "NeuralTextures",
    "FaceShifter",
    "DeepFakeDetection",
)
ORIGINALS = ("youtube", "actors")
COMPRESSIONS = ("raw", "c23", "c40")
FILELIST = "misc/filelist.json"
DFD_FILELIST = "misc/deepfake_detection_filenames.json"
SPLIT_PARTS = ("train", "val", "test")
DFD_KINDS = {"actors", "DeepFakeDetection"}


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """A list of `["071", "054"]` pairs (filelist.json or a split file); StageError if malformed."""
    return parse_pairs(_read_json(path), path)


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise StageError(f"{path}: unreadable file list ({err})") from err


def parse_pairs(payload: object, where: object) -> list[tuple[str, str]]:
    if not isinstance(payload, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(i, str) and i for i in pair)
        for pair in payload
    ):
        raise StageError(f'{where}: expected a list of [id, id] pairs like [["071", "054"], ...]')
    return [(a, b) for a, b in payload]


def dfd_actors(stem: str) -> list[str]:
    """Actor ids of a DeepFakeDetection name: `01__scene` -> [01]; `01_02__scene__X` -> [01, 02]."""
    return stem.split("__", 1)[0].split("_")


def dfd_source_video(stem: str) -> str:
    """The real video a DeepFakeDetection name comes from: `01__scene` and `01_02__scene__X`
    -> `01__scene`."""
    parts = stem.split("__")
    return f"{dfd_actors(stem)[0]}__{parts[1] if len(parts) > 1 else ''}"


class _Components:
    """Union-find over actor ids, so DeepFakeDetection groups never share an identity."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self.parent.setdefault(item, item)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, items: list[str]) -> None:
        roots = sorted(self.find(i) for i in items)
        for root in roots[1:]:
            self.parent[root] = roots[0]


class FfppSource(RawDirUnderRoot):
    def __init__(self, config: DatasetConfig):
        options = SourceOptions(config, FFPP_SOURCE_KEYS)
        self.config = config
        try:
            self.servers = server_urls(config.source.get("server_url"))
        except ValueError as err:
            raise options.error("server_url", config.source.get("server_url"), str(err)) from err
        self.accept_terms = options.boolean("accept_terms", False)
        self.version = options.string("version", "v3")
        self.compression = options.string("compression", "c23", choices=COMPRESSIONS)
        self.methods = options.strings("methods", METHODS[:4], choices=METHODS)
        self.originals = options.strings("originals", ("youtube",), choices=ORIGINALS)
        self.splits_url = options.url("splits_url")
        self.max_pairs = options.integer("max_pairs", None, minimum=1)
        self.dfd_group = options.string("dfd_group", "actors", choices=DFD_GROUPINGS)
        self.concurrency = options.integer("concurrency", 4, minimum=1)
        self.retries = options.integer("retries", 5, minimum=0)
        self.expected_size = options.string("expected_size", "")

    def describe(self) -> str:
        server = (
            " | ".join(self.servers) if self.servers else "<server from the FaceForensics email>"
        )
        kinds = ", ".join(self.originals + self.methods)
        return f"FaceForensics++ server {server} ({self.compression}; {kinds})"

    def _given(self, root: DataRoot) -> tuple[Optional[tuple[str, ...]], bool]:
        """(servers, terms accepted): the config's or command line's, else what a first fetch
        recorded in the raw folder."""
        remembered = remembered_options(self.raw_dir(root))
        servers = self.servers or (tuple(remembered.get("server_urls") or ()) or None)
        return servers, self.accept_terms or remembered.get("accept_terms") is True

    def _servers(self, root: DataRoot) -> tuple[str, ...]:
        servers, accepted = self._given(root)
        if servers is None:
            raise FetchError(
                "FaceForensics++ is form-gated: fill in the form at "
                "https://github.com/ondyari/FaceForensics, then pass the server URL of the email: "
                "`vfcache fetch ffpp --server URL --accept-terms` (the URLs are the `server_url = "
                "...` "
                "lines in parse_args() of the emailed download-FaceForensics.py)"
            )
        if not accepted:
            raise FetchError(
                f"FaceForensics++ may only be downloaded after accepting its terms of use "
                f"({servers[0]}/webpage/FaceForensics_TOS.pdf); pass --accept-terms (or set "
                f"source.accept_terms: true in {self.config.path}) to confirm that you accept them"
            )
        return servers

    def _url(self, server: str, relpath: str) -> str:
        if relpath.startswith("splits/"):
            return f"{self.splits_url}/{relpath.split('/', 1)[1]}"
        return f"{server}/{self.version}/{relpath}"

    def _download(self, relpaths: list[str], raw_dir: Path, servers, what: str, progress: bool):
        report = download_with_failover(
            relpaths,
            servers,
            self._url,
            raw_dir,
            concurrency=self.concurrency,
            retries=self.retries,
            progress=progress,
        )
        if report.failed:
            lines = "; ".join(report.per_server.values())
            raise FetchError(
                f"{len(report.failed)} FaceForensics++ {what} could not be downloaded from any of "
                f"{len(servers)} servers: {lines}; the list is in {report.failures_path}; re-run "
                "to resume (pass several --server URLs to fall over between them)"
            )
        return report

    def _file_names(self, lists: dict[str, object], kind: str) -> list[str]:
        """Video names (no extension) of one dataset kind, as the official script derives them
        from the server's file lists (`lists`: list name -> parsed JSON)."""
        if kind in DFD_KINDS:
            payload = lists[DFD_FILELIST]
            key = "actors" if kind == "actors" else "DeepFakesDetection"
            names = payload.get(key) if isinstance(payload, dict) else None
            if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
                raise StageError(f"{DFD_FILELIST}: expected a list of names under {key!r}")
            return names
        pairs = parse_pairs(lists[FILELIST], FILELIST)[: self.max_pairs]
        if kind == "youtube":
            return [video for pair in pairs for video in pair]
        return [f"{a}_{b}" for a, b in pairs] + [f"{b}_{a}" for a, b in pairs]

    def _list_names(self) -> list[str]:
        kinds = set(self.originals) | set(self.methods)
        return [FILELIST] + ([DFD_FILELIST] if DFD_KINDS & kinds else [])

    def _video_relpaths(self, lists: dict[str, object]) -> list[str]:
        videos = []
        for kind in list(self.originals) + list(self.methods):
            folder = f"{DATASET_PATHS[kind]}/{self.compression}/videos"
            videos += [f"{folder}/{name}.mp4" for name in self._file_names(lists, kind)]
        return videos

    def plan_fetch(self, root: DataRoot) -> FetchPlan:
        """The file lists and split files (sizes by HEAD) and every video the lists name; the
        lists are read into memory from the first server that answers, and the videos' sizes
        are not asked one by one."""
        servers, accepted = self._given(root)
        if servers is None:
            self._servers(root)  # says how to get the server URL
        raw_dir = self.raw_dir(root)
        meta = self._list_names() + [f"splits/{part}.json" for part in SPLIT_PARTS]
        files = planned_http_files([(self._url(servers[0], rel), rel) for rel in meta], raw_dir)
        lists, notes = None, []
        for server in servers:
            try:
                lists = {name: remote_json(self._url(server, name)) for name in self._list_names()}
                break
            except (PermanentError, TransientError) as err:
                notes.append(f"server {server}: file lists unavailable ({err})")
        if lists is None:
            raise FetchError(
                "FaceForensics++ file lists could not be read from any server: " + "; ".join(notes)
            )
        videos = self._video_relpaths(lists)
        files += [PlannedFile(rel, None, present=(raw_dir / rel).is_file()) for rel in videos]
        notes.append(
            f"{len(videos)} videos named by the server's file lists; their sizes are not "
            "asked one by one"
        )
        if not accepted:
            notes.append("the fetch itself needs --accept-terms")
        return FetchPlan(
            self.config.name,
            self.describe(),
            self.config.terms,
            self.expected_size,
            tuple(files),
            tuple(notes),
        )

    def _record(self, raw_dir: Path, servers, relpaths: list[str]):
        return update_fetch_record(
            raw_dir,
            source=RECORD_SOURCE,
            repo_id=servers[0],
            revision=self.version,
            endpoint=f"{servers[0]}/{self.version}",
            relpaths=relpaths,
            options={"server_urls": list(servers), "accept_terms": True},
        )

    def fetch(self, root: DataRoot, *, progress: bool = True) -> FetchSummary:
        servers, raw_dir = self._servers(root), self.raw_dir(root)
        meta = self._list_names() + [f"splits/{part}.json" for part in SPLIT_PARTS]
        listed = self._download(meta, raw_dir, servers, "file lists", progress=False)
        self._record(raw_dir, servers, meta)  # remembered from now on, even if videos fail
        for part in SPLIT_PARTS:
            read_pairs(raw_dir / "splits" / f"{part}.json")
        lists = {name: _read_json(raw_dir / name) for name in self._list_names()}
        videos = self._video_relpaths(lists)
        report = self._download(videos, raw_dir, servers, "videos", progress)
        record = self._record(raw_dir, servers, meta + videos)
        return FetchSummary(
            dataset=self.config.name,
            raw_dir=str(raw_dir),
            source=f"ffpp {servers[0]}/{self.version} ({self.compression})",
            files=len(record.files),
            total_bytes=record.total_bytes,
            downloaded=len(listed.ok) + len(report.ok),
            failed=0,
            extracted_archives=0,
            up_to_date=not listed.ok and not report.ok,
            failures_path=str(report.failures_path),
            notes=tuple(report.per_server.values()),
        )

    def _pairs(self, raw_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
        """(id -> pair key, pair key -> official split) from the split files and the file list."""
        pair_of, split_of = {}, {}
        sources = [(part, raw_dir / "splits" / f"{part}.json") for part in SPLIT_PARTS]
        sources.append((None, raw_dir / FILELIST))
        for part, path in sources:
            if not path.is_file():
                if part is not None:
                    raise StageError(
                        f"official split file {path} is missing; "
                        f"run `vfcache fetch {self.config.name}`"
                    )
                continue
            for a, b in read_pairs(path):
                key = f"{a}_{b}"
                for video in (a, b):
                    known = pair_of.setdefault(video, key)
                    if known != key and part is not None:
                        raise StageError(f"{path}: id {video} is in pairs {known} and {key}")
                if part is not None:
                    if split_of.get(key, part) != part:
                        raise StageError(
                            f"pair {key} is in both {split_of[key]}.json and {part}.json"
                        )
                    split_of[key] = part
        return pair_of, split_of

    def _candidate(
        self, kind: str, stem: str, relpath: str, pair_of: dict, split_of: dict, dfd: _Components
    ) -> VideoCandidate:
        label = LABEL_REAL if kind in ORIGINALS else LABEL_FAKE
        if kind in DFD_KINDS:
            group, split = f"dfd:{self._dfd_group(stem, dfd)}", None
        else:
            ids = stem.split("_")
            pairs = {pair_of.get(i) for i in ids}
            if None in pairs or len(pairs) != 1 or len(ids) not in (1, 2):
                raise StageError(
                    f"{relpath}: ids {ids} are not one pair of the FaceForensics++ file list"
                )
            group = pairs.pop()
            split = split_of.get(group)
        return VideoCandidate(
            relpath=relpath,
            label=label,
            generator=kind,
            domain=self.config.domain,
            group=group,
            source_split=split,
        )

    def _dfd_group(self, stem: str, dfd: _Components) -> str:
        if self.dfd_group == "source_video":
            return dfd_source_video(stem)
        return dfd.find(dfd_actors(stem)[0])

    def list_videos(self, root: DataRoot) -> list[VideoCandidate]:
        raw_dir = self.raw_dir(root)
        require_raw_dir(raw_dir, self.config.name)
        pair_of, split_of = self._pairs(raw_dir)
        found: list[tuple[str, str, str]] = []
        for kind in list(self.originals) + list(self.methods):
            folder = raw_dir / DATASET_PATHS[kind] / self.compression / "videos"
            if not folder.is_dir():
                log.warning("FaceForensics++: %s has no folder %s", kind, folder)
                continue
            for name in walk_video_files(folder, (".mp4",)):
                found.append(
                    (
                        kind,
                        name.rsplit(".", 1)[0],
                        f"{DATASET_PATHS[kind]}/{self.compression}/videos/{name}",
                    )
                )
        dfd = _Components()
        for kind, stem, _ in found:
            if kind in DFD_KINDS:
                dfd.union(dfd_actors(stem))
        candidates = [
            self._candidate(kind, stem, relpath, pair_of, split_of, dfd)
            for kind, stem, relpath in found
        ]
        log.info(
            "found %d FaceForensics++ videos (%s) below %s",
            len(candidates),
            self.compression,
            raw_dir,
        )
        return sorted(candidates, key=lambda c: c.relpath)
