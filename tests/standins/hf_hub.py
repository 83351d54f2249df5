"""A Hugging Face Hub stand-in that the real `huggingface_hub` client downloads from.

It serves dataset repos whose commits are snapshots of local folders, and speaks the
routes that `snapshot_download` (huggingface_hub 2.x, `HF_HUB_DISABLE_XET=1`) calls:

    GET  /api/datasets/<repo>[/revision/<rev>]        repo info: sha, siblings (of main without a
    rev)
    GET  /api/datasets/<repo>/tree/<rev>[/<path>]     listing, paged by a Link rel="next"
    HEAD /datasets/<repo>/resolve/<rev>/<path>        X-Repo-Commit, ETag, Content-Length
    GET  /datasets/<repo>/resolve/<rev>/<path>        the bytes (Range supported)

and the same for model repos (`/api/models/<repo>...`, `/<repo>/resolve/<rev>/<path>`), which
`from_pretrained` reads; a repo id is one namespace for both kinds here.

Like the real Hub, LFS files (by extension or size) are listed with an `lfs` block and
`resolve` answers them with a 302 to a second origin, the "CDN" (another port), carrying
`X-Linked-Etag` (the sha256) and `X-Linked-Size`; the CDN serves `/cdn-lfs/<sha256>` with
Range support. Missing files answer 404 `X-Error-Code: EntryNotFound`, unknown repos
`RepoNotFound`, unknown revisions `RevisionNotFound`. A repo can be gated: `resolve` then
answers 401 `X-Error-Code: GatedRepo` unless `Authorization: Bearer <token>` matches.

With `xet=True` the LFS files are Xet-backed, as on the real AEGIS repos: the tree lists their
`xetHash` (the real Xet file hash, computed by `hf_xet`), `resolve` adds `X-Xet-Hash` and the
token refresh route, and the client with `hf_xet` installed (the default path) takes the Xet
download protocol (huggingface/hub-docs docs/xet: auth.md, download-protocol.md, xorb.md):

    GET  /api/datasets/<repo>/xet-read-token/<rev>    casUrl, accessToken, exp (body and headers)
    GET  <cas>/v1/reconstructions/<file hash>         terms + fetch_info of one xorb per file
    GET  <cas>/xorb/<xorb hash>  (Range)              the xorb's chunks, stored uncompressed

The xorb hash here is a label (the sha256 of the file), not the Merkle hash a real CAS uses.

Uploads take the routes that `create_repo` and `create_commit` call with the Xet path disabled
(`HF_HUB_DISABLE_XET=1`; huggingface_hub 2.x `_commit_api.py` and `lfs.py`); every one wants
`Authorization: Bearer <write_token>`:

    POST /api/repos/create                              {name, organization, type, visibility}:
                                                        a first commit holding `.gitattributes`;
                                                        409 when the repo exists
    POST /api/validate-yaml                             {content, repoType}: front matter parses
    POST /api/datasets/<repo>/preupload/<rev>           files -> uploadMode lfs|regular,
    shouldIgnore,
                                                        oid of the file already at that path
    POST /datasets/<repo>.git/info/lfs/objects/batch    git-lfs batch API, "basic" transfer: an
                                                        upload href (on the CDN origin) and a
                                                        verify href per missing object
    PUT  <cdn>/lfs-upload/<sha256>                      the bytes; refused when their sha256 differs
    POST /datasets/<repo>.git/info/lfs/objects/verify   {oid, size}
    POST /api/datasets/<repo>/commit/<rev>              NDJSON: header (parentCommit checked: 412),
                                                        file (base64), lfsFile, deletedFile,
                                                        deletedFolder -> {commitOid, commitUrl}

A private repo answers reads without the write token as the Hub does: 404 RepoNotFound.

Failing answers (`add_fault(route, Fault)`, route "info", "tree", "resolve" or "cdn"): an
injected status with the Hub's headers (401 "Invalid credentials in Authorization header",
403/401 `X-Error-Code: GatedRepo`, 404 `EntryNotFound`, 429 with `Retry-After`, 500), a body
cut short after N bytes (the full Content-Length announced), or a flipped byte. Faults are
consumed in order, one per request, as on the plain file server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.standins._server import (
    LoggedRequest,
    QuietHandler,
    RequestLog,
    ThreadedServer,
    make_handler,
    parse_range,
    read_body,
    send_payload,
)
from tests.standins.http_files import Fault, FaultQueue, fault_headers

LFS_SUFFIXES = (".parquet", ".mp4", ".zip", ".gz", ".tar", ".bin", ".npy")
_REPO = r"(?P<repo>[^/]+/[^/]+)"
_ROUTES = {
    "info": re.compile(rf"^/api/datasets/{_REPO}(?:/revision/(?P<rev>[^/]+))?$"),
    "tree": re.compile(rf"^/api/datasets/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?$"),
    "resolve": re.compile(rf"^/datasets/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"),
}
_ROUTES["xet_token"] = re.compile(rf"^/api/datasets/{_REPO}/xet-read-token/(?P<rev>[^/]+)$")
# model repos (what `from_pretrained` reads): the same routes without the `datasets` prefix
_ROUTES.update(
    {
        "model_info": re.compile(rf"^/api/models/{_REPO}(?:/revision/(?P<rev>[^/]+))?$"),
        "model_tree": re.compile(rf"^/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?$"),
        "model_resolve": re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"),
    }
)
_WRITE_ROUTES = {
    "preupload": re.compile(rf"^/api/datasets/{_REPO}/preupload/(?P<rev>[^/]+)$"),
    "commit": re.compile(rf"^/api/datasets/{_REPO}/commit/(?P<rev>[^/]+)$"),
    "lfs_batch": re.compile(rf"^/datasets/{_REPO}\.git/info/lfs/objects/batch$"),
    "lfs_verify": re.compile(rf"^/datasets/{_REPO}\.git/info/lfs/objects/verify$"),
}
_CDN_UPLOAD = re.compile(r"^/lfs-upload/(?P<sha256>[0-9a-f]{64})$")
WRITE_TOKEN = "hf_standin_write_token"
GITATTRIBUTES = (
    b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
    b"*.npy.zst filter=lfs diff=lfs merge=lfs -text\n"
)
_CDN_ROUTE = re.compile(r"^/cdn-lfs/(?P<sha256>[0-9a-f]{64})$")
_CAS_RECONSTRUCTION = re.compile(r"^/cas/(?:v1/)?reconstructions/(?P<hash>[0-9a-f]{64})$")
_CAS_XORB = re.compile(r"^/cas/xorb/(?:default/)?(?P<sha256>[0-9a-f]{64})$")
XET_CHUNK_BYTES = 64 * 1024
XET_TOKEN = "xet_standin_read_token"
XORB_SIGNATURE = "X-Amz-Signature=standin"


@dataclass(frozen=True)
class HubFile:
    path: str
    payload: bytes
    lfs: bool

    @property
    def size(self) -> int:
        return len(self.payload)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()

    @property
    def git_oid(self) -> str:
        """Git blob id of what git stores: the payload, or the LFS pointer for LFS files."""
        stored = self.pointer if self.lfs else self.payload
        return hashlib.sha1(b"blob %d\0" % len(stored) + stored).hexdigest()

    @property
    def pointer(self) -> bytes:
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\n"
            f"size {self.size}\n"
        ).encode()


@dataclass
class HubRepo:
    commits: dict[str, dict[str, HubFile]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    gated_token: str | None = None
    private: bool = False


class HfHubStandin:
    """Serve dataset repos; `endpoint` is what `HF_ENDPOINT` / `endpoint=` should be."""

    def __init__(self, *, page_size: int = 3, lfs_min_bytes: int = 10_000, xet: bool = False):
        self.page_size = page_size
        self.lfs_min_bytes = lfs_min_bytes
        self.xet = xet
        self._xet_hashes: dict[str, str] = {}  # sha256 -> Xet file hash
        self.log = RequestLog()
        self._repos: dict[str, HubRepo] = {}
        self._tampered: dict[str, bytes] = {}  # sha256 of the listed file -> bytes served
        self._uploaded: dict[str, bytes] = {}  # LFS objects PUT by clients, by sha256
        self.write_token = WRITE_TOKEN
        self._lock = threading.Lock()
        self._faults = FaultQueue()
        self._hub = ThreadedServer(
            make_handler(self._logging_handler(), self._serve_hub, writes=True)
        )
        self._cdn = ThreadedServer(
            make_handler(self._logging_handler(), self._serve_cdn, writes=True)
        )

    def __enter__(self) -> HfHubStandin:
        self._hub.start()
        self._cdn.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._hub.stop()
        self._cdn.stop()

    @property
    def endpoint(self) -> str:
        return self._hub.base_url

    @property
    def cdn_url(self) -> str:
        return self._cdn.base_url

    def add_commit(
        self, repo_id: str, folder: Path, *, branch: str = "main", tags: tuple[str, ...] = ()
    ) -> str:
        """Snapshot `folder` as a new commit on `branch` (and `tags`); returns its sha."""
        files = {}
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            relpath = path.relative_to(folder).as_posix()
            payload = path.read_bytes()
            files[relpath] = HubFile(relpath, payload, self._is_lfs(relpath, len(payload)))
            if files[relpath].lfs and self.xet:
                self._xet_hashes[files[relpath].sha256] = xet_file_hash(path)
        with self._lock:
            return self._commit_locked(repo_id, files, branch, tags)

    def _is_lfs(self, relpath: str, size: int) -> bool:
        return relpath.endswith(LFS_SUFFIXES) or size >= self.lfs_min_bytes

    def _commit_locked(
        self, repo_id: str, files: dict[str, HubFile], branch: str, tags: tuple[str, ...] = ()
    ) -> str:
        repo = self._repos.setdefault(repo_id, HubRepo())
        parent = repo.refs.get(branch, "")
        digest = hashlib.sha1(parent.encode())
        for relpath, hub_file in sorted(files.items()):
            digest.update(f"{relpath}\0{hub_file.git_oid}\n".encode())
        commit = digest.hexdigest()
        repo.commits[commit] = files
        repo.refs[branch] = commit
        for tag in tags:
            repo.refs[tag] = commit
        return commit

    def files_at(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """What the repo holds at `revision`: path -> bytes (what a test checks after a push)."""
        with self._lock:
            repo = self._repos[repo_id]
            return {
                path: f.payload
                for path, f in repo.commits[repo.refs.get(revision, revision)].items()
            }

    def commit_count(self, repo_id: str) -> int:
        return len(self.history(repo_id))

    def history(self, repo_id: str) -> list[str]:
        """The repo's commits, oldest first."""
        with self._lock:
            return list(self._repos[repo_id].commits)

    def is_private(self, repo_id: str) -> bool:
        with self._lock:
            return self._repos[repo_id].private

    def set_gated(self, repo_id: str, token: str | None) -> None:
        with self._lock:
            self._repos[repo_id].gated_token = token

    def tamper(self, repo_id: str, revision: str, path: str, payload: bytes) -> None:
        """Serve `payload` for `path` while the listing still announces the original."""
        with self._lock:
            repo = self._repos[repo_id]
            hub_file = repo.commits[repo.refs.get(revision, revision)][path]
            self._tampered[hub_file.sha256] = payload

    def add_fault(self, route: str, fault: Fault) -> None:
        """Answer the next request(s) of `route` ("info", "tree", "resolve", "cdn") with `fault`."""
        if route not in (*_ROUTES, "cdn"):
            raise ValueError(f"unknown stand-in route {route!r}")
        self._faults.add(route, fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    def restore(self) -> None:
        """Serve every file's real bytes again (undo `tamper`)."""
        with self._lock:
            self._tampered.clear()

    def hub_requests(self) -> list[LoggedRequest]:
        return [e for e in self.log.entries if not e.path.startswith("/cdn-lfs/")]

    # -- request handling -------------------------------------------------------------

    def _serve_hub(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urllib.parse.urlsplit(handler.path)
        if method in ("POST", "PUT"):
            self._serve_write(handler, method, parsed)
            return
        for kind, pattern in _ROUTES.items():
            match = pattern.match(parsed.path)
            kind = kind.removeprefix("model_")
            if match and (method == "GET" or kind == "resolve"):
                fault = self._faults.next(kind)
                if fault is not None and fault.status is not None:
                    _send_json(
                        handler,
                        fault.status,
                        {"error": f"injected {fault.status}"},
                        fault_headers(fault),
                    )
                else:
                    self._route(kind, match, handler, method, parsed, fault)
                break
        else:
            _send_json(
                handler,
                404,
                {"error": f"stand-in has no route {parsed.path}"},
                {"X-Error-Code": "EntryNotFound"},
            )

    def _route(self, kind, match, handler, method, parsed, fault: Fault | None = None) -> int:
        repo_id = match["repo"]
        with self._lock:
            repo = self._repos.get(repo_id)
        if repo is None or (repo.private and not self._is_writer(handler)):
            return _send_json(
                handler, 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
            )
        revision = urllib.parse.unquote(match["rev"] or "main")
        commit = revision if revision in repo.commits else repo.refs.get(revision)
        if commit is None:
            return _send_json(
                handler,
                404,
                {"error": f"Invalid rev id: {revision}"},
                {"X-Error-Code": "RevisionNotFound"},
            )
        files = repo.commits[commit]
        if kind == "info":
            return self._info(handler, repo_id, repo, commit, files)
        if kind == "tree":
            return self._tree(handler, repo_id, revision, files, match["path"], parsed)
        if kind == "xet_token":
            return self._xet_token(handler)
        return self._resolve(
            handler,
            method,
            repo_id,
            repo,
            commit,
            files,
            urllib.parse.unquote(match["path"]),
            fault,
        )

    def _info(self, handler, repo_id, repo, commit, files) -> int:
        return _send_json(
            handler,
            200,
            {
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                "id": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit,
                "lastModified": "2025-01-01T00:00:00.000Z",
                "createdAt": "2025-01-01T00:00:00.000Z",
                "private": repo.private,
                "gated": "manual" if repo.gated_token else False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "cardData": {},
                "siblings": [{"rfilename": path} for path in files],
            },
        )

    def _tree(self, handler, repo_id, revision, files, subpath, parsed) -> int:
        query = urllib.parse.parse_qs(parsed.query)
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        prefix = urllib.parse.unquote(subpath).strip("/") + "/" if subpath else ""
        entries = _tree_entries(files, prefix, recursive, self._xet_hashes)
        if prefix and not entries:
            return _send_json(
                handler, 404, {"error": "path not found"}, {"X-Error-Code": "EntryNotFound"}
            )
        cursor = int(query.get("cursor", ["0"])[0])
        page = entries[cursor : cursor + self.page_size]
        headers = {}
        if cursor + self.page_size < len(entries):
            next_query = {k: v[0] for k, v in query.items()}
            next_query["cursor"] = str(cursor + self.page_size)
            next_url = f"{self.endpoint}{parsed.path}?{urllib.parse.urlencode(next_query)}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        return _send_json(handler, 200, page, headers)

    def _resolve(self, handler, method, repo_id, repo, commit, files, path, fault=None) -> int:
        if repo.gated_token is not None:
            auth = handler.headers.get("Authorization", "")
            if auth != f"Bearer {repo.gated_token}":
                return _send_json(
                    handler,
                    401,
                    {"error": "Access to this repo is restricted"},
                    {
                        "X-Error-Code": "GatedRepo",
                        "X-Error-Message": "Access to this repo is restricted.",
                    },
                )
        hub_file = files.get(path)
        if hub_file is None:
            return _send_json(
                handler,
                404,
                {"error": "Entry not found"},
                {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit},
            )
        common = {
            "X-Repo-Commit": commit,
            "ETag": f'"{hub_file.git_oid}"',
            "Accept-Ranges": "bytes",
        }
        if hub_file.lfs:
            handler.send_response(302)
            location = f"{self.cdn_url}/cdn-lfs/{hub_file.sha256}"
            xet_hash = self._xet_hashes.get(hub_file.sha256)
            if xet_hash is not None:
                refresh = f"{self.endpoint}/api/datasets/{repo_id}/xet-read-token/{commit}"
                common = {
                    **common,
                    "X-Xet-Hash": xet_hash,
                    "X-Xet-Refresh-Route": refresh,
                    "Link": f'<{refresh}>; rel="xet-auth"',
                }
            for key, value in {
                **common,
                "Location": location,
                "X-Linked-Etag": f'"{hub_file.sha256}"',
                "X-Linked-Size": str(hub_file.size),
                "Content-Length": "0",
            }.items():
                handler.send_header(key, value)
            handler.end_headers()
            return 302
        with self._lock:
            payload = self._tampered.get(hub_file.sha256, hub_file.payload)
        return _send_bytes(handler, method, payload, common, fault)

    def _xet_token(self, handler) -> int:
        expires = 4_000_000_000
        cas = f"{self.cdn_url}/cas"
        return _send_json(
            handler,
            200,
            {"accessToken": XET_TOKEN, "exp": expires, "casUrl": cas},
            {
                "X-Xet-Cas-Url": cas,
                "X-Xet-Access-Token": XET_TOKEN,
                "X-Xet-Token-Expiration": str(expires),
            },
        )

    def _serve_cdn(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urllib.parse.urlsplit(handler.path)
        upload = _CDN_UPLOAD.match(parsed.path)
        if method in ("POST", "PUT"):
            if upload and method == "PUT":
                self._lfs_put(handler, upload["sha256"])
            else:
                _send_json(
                    handler, 405, {"error": f"stand-in CDN takes no {method} on {parsed.path}"}
                )
        elif parsed.path.startswith("/cas/"):
            self._serve_cas(handler, method, parsed)
        else:
            match = _CDN_ROUTE.match(parsed.path)
            payload = self._lfs_blob(match["sha256"]) if match else None
            fault = self._faults.next("cdn") if payload is not None else None
            if payload is None:
                _send_json(handler, 404, {"error": "no such blob"})
            elif fault is not None and fault.status is not None:
                _send_json(
                    handler,
                    fault.status,
                    {"error": f"injected {fault.status}"},
                    fault_headers(fault),
                )
            else:
                _send_bytes(handler, method, payload, {"ETag": f'"{match["sha256"]}"'}, fault)

    def _serve_cas(self, handler, method, parsed) -> int:
        """The Xet CAS: one reconstruction term per file, one xorb of uncompressed chunks.

        The reconstruction API wants the Xet token; xorb URLs are presigned (the signature is in
        the query, no Authorization header), as the real transfer service's are. Only the v1
        reconstruction route is served: the client falls back to it when v2 answers 404."""
        match = _CAS_RECONSTRUCTION.match(parsed.path)
        if match and handler.headers.get("Authorization") != f"Bearer {XET_TOKEN}":
            return _send_json(handler, 401, {"error": "missing or wrong Xet token"})
        if match:
            sha256 = next(
                (sha for sha, xet in self._xet_hashes.items() if xet == match["hash"]), None
            )
            payload = None if sha256 is None else self._lfs_blob(sha256)
            if payload is None:
                return _send_json(handler, 404, {"error": "no such file"})
            xorb = xorb_bytes(payload)
            chunks = -(-len(payload) // XET_CHUNK_BYTES)
            return _send_json(
                handler,
                200,
                {
                    "offset_into_first_range": 0,
                    "terms": [
                        {
                            "hash": sha256,
                            "unpacked_length": len(payload),
                            "range": {"start": 0, "end": chunks},
                        }
                    ],
                    "fetch_info": {
                        sha256: [
                            {
                                "range": {"start": 0, "end": chunks},
                                "url": f"{self.cdn_url}/cas/xorb/{sha256}?{XORB_SIGNATURE}",
                                "url_range": {"start": 0, "end": len(xorb) - 1},
                            }
                        ]
                    },
                },
            )
        match = _CAS_XORB.match(parsed.path)
        if match and parsed.query != XORB_SIGNATURE:
            return _send_json(handler, 403, {"error": "xorb URL without its presigned signature"})
        payload = self._lfs_blob(match["sha256"]) if match else None
        if payload is None:
            return _send_json(handler, 404, {"error": f"stand-in CAS has no route {parsed.path}"})
        return _send_bytes(handler, method, xorb_bytes(payload), {})

    def _lfs_blob(self, sha256: str) -> bytes | None:
        with self._lock:
            if sha256 in self._uploaded:
                return self._tampered.get(sha256, self._uploaded[sha256])
            for repo in self._repos.values():
                for files in repo.commits.values():
                    for hub_file in files.values():
                        if hub_file.lfs and hub_file.sha256 == sha256:
                            return self._tampered.get(sha256, hub_file.payload)
        return None

    def _logging_handler(self) -> type[QuietHandler]:
        """A handler that logs each request as its status line is sent, before any byte of the
        answer: a client that got its answer always finds its request in the log (logging after
        the answer raced with tests that read the log as soon as the client returned)."""
        standin = self

        class LoggingHandler(QuietHandler):
            def send_response(self, code, message=None):  # noqa: D401 - stdlib signature
                parsed = urllib.parse.urlsplit(self.path)
                standin.log.add(
                    LoggedRequest(
                        self.command,
                        parsed.path,
                        parsed.query,
                        self.headers.get("Range"),
                        self.headers.get("Authorization"),
                        code,
                    )
                )
                super().send_response(code, message)

        return LoggingHandler

    # -- uploads ------------------------------------------------------------------------

    def _is_writer(self, handler) -> bool:
        return handler.headers.get("Authorization") == f"Bearer {self.write_token}"

    def _serve_write(self, handler, method: str, parsed) -> int:
        body = read_body(handler)
        if method == "POST" and parsed.path == "/api/validate-yaml":
            return self._validate_yaml(handler, body)
        if not self._is_writer(handler):
            return _send_json(
                handler,
                401,
                {"error": "Invalid credentials in Authorization header"},
                {"X-Error-Message": "Invalid credentials in Authorization header"},
            )
        if method == "POST" and parsed.path == "/api/repos/create":
            return self._create_repo(handler, json.loads(body))
        for kind, pattern in _WRITE_ROUTES.items():
            match = pattern.match(parsed.path)
            if match and method == "POST":
                break
        else:
            return _send_json(
                handler, 404, {"error": f"stand-in has no route {method} {parsed.path}"}
            )
        with self._lock:
            repo = self._repos.get(match["repo"])
        if repo is None:
            return _send_json(
                handler, 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
            )
        if kind == "lfs_batch":
            return self._lfs_batch(handler, match["repo"], json.loads(body))
        if kind == "lfs_verify":
            payload = json.loads(body)
            with self._lock:
                present = len(self._uploaded.get(payload["oid"], b"")) == payload["size"]
            return _send_json(
                handler,
                200 if present else 404,
                {"message": "ok" if present else "object not uploaded"},
            )
        revision = urllib.parse.unquote(match["rev"])
        with self._lock:
            commit = repo.refs.get(revision, revision if revision in repo.commits else None)
            files = dict(repo.commits[commit]) if commit else None
        if files is None:
            return _send_json(
                handler,
                404,
                {"error": f"Invalid rev id: {revision}"},
                {"X-Error-Code": "RevisionNotFound"},
            )
        if kind == "preupload":
            return self._preupload(handler, files, json.loads(body))
        return self._commit(handler, match["repo"], revision, commit, body)

    def _validate_yaml(self, handler, body: bytes) -> int:
        import yaml

        content = json.loads(body)["content"]
        errors = []
        if content.startswith("---\n"):
            try:
                metadata = yaml.safe_load(content[4:].split("\n---\n", 1)[0])
                if not isinstance(metadata, dict):
                    errors.append({"message": "metadata must be a YAML mapping"})
            except yaml.YAMLError as err:
                errors.append({"message": f"YAML: {err}"})
        status = 400 if errors else 200
        return _send_json(handler, status, {"errors": errors, "warnings": []})

    def _create_repo(self, handler, payload: dict) -> int:
        repo_id = f"{payload['organization']}/{payload['name']}"
        if payload.get("type") != "dataset":
            return _send_json(handler, 400, {"error": "the stand-in holds dataset repos only"})
        with self._lock:
            if repo_id in self._repos:
                return _send_json(
                    handler,
                    409,
                    {
                        "error": "You already created this dataset repo",
                        "url": f"{self.endpoint}/datasets/{repo_id}",
                    },
                )
            self._commit_locked(
                repo_id, {".gitattributes": HubFile(".gitattributes", GITATTRIBUTES, False)}, "main"
            )
            self._repos[repo_id].private = payload.get("visibility") == "private"
        return _send_json(
            handler,
            200,
            {"url": f"{self.endpoint}/datasets/{repo_id}", "name": repo_id, "id": repo_id},
        )

    def _preupload(self, handler, files: dict[str, HubFile], payload: dict) -> int:
        answer = []
        for item in payload["files"]:
            lfs = self._is_lfs(item["path"], item["size"])
            existing = files.get(item["path"])
            oid = (
                None
                if existing is None
                else (existing.sha256 if existing.lfs else existing.git_oid)
            )
            answer.append(
                {
                    "path": item["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": oid,
                }
            )
        return _send_json(handler, 200, {"files": answer, "commitOid": None})

    def _lfs_batch(self, handler, repo_id: str, payload: dict) -> int:
        if payload.get("operation") != "upload" or "basic" not in payload.get(
            "transfers", ["basic"]
        ):
            return _send_json(handler, 422, {"message": "the stand-in takes basic uploads only"})
        objects = []
        for obj in payload["objects"]:
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if self._lfs_blob(obj["oid"]) is None:
                answer["actions"] = {
                    "upload": {"href": f"{self.cdn_url}/lfs-upload/{obj['oid']}", "header": {}},
                    "verify": {
                        "href": f"{self.endpoint}/datasets/{repo_id}.git/info/lfs/objects/verify",
                        "header": {},
                    },
                }
            objects.append(answer)
        return _send_json(
            handler, 200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}
        )

    def _lfs_put(self, handler, sha256: str) -> int:
        body = read_body(handler)
        if hashlib.sha256(body).hexdigest() != sha256:
            return _send_json(
                handler, 400, {"error": "uploaded bytes do not hash to the object id"}
            )
        with self._lock:
            self._uploaded[sha256] = body
        return _send_json(handler, 200, {})

    def _commit(self, handler, repo_id: str, revision: str, parent: str, body: bytes) -> int:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            return _send_json(
                handler, 400, {"error": "commit payload must start with a header line"}
            )
        header = lines[0]["value"]
        if header.get("parentCommit") not in (None, parent):
            return _send_json(
                handler,
                412,
                {
                    "error": f"parent commit {header['parentCommit']} is not "
                    f"the head of {revision} ({parent})"
                },
            )
        with self._lock:
            files = dict(self._repos[repo_id].commits[parent])
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                path = value["path"]
                if key == "file":
                    payload = base64.b64decode(value["content"])
                    files[path] = HubFile(path, payload, False)
                elif key == "lfsFile":
                    payload = self._uploaded.get(value["oid"])
                    if payload is None:
                        return _send_json(
                            handler,
                            400,
                            {"error": f"LFS object {value['oid']} of {path} was never uploaded"},
                        )
                    files[path] = HubFile(path, payload, True)
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        return _send_json(
                            handler,
                            404,
                            {"error": "A file with this name doesn't exist"},
                            {"X-Error-Code": "EntryNotFound"},
                        )
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    files = {p: f for p, f in files.items() if not p.startswith(prefix)}
                else:
                    return _send_json(handler, 400, {"error": f"unknown commit operation {key}"})
            commit = self._commit_locked(repo_id, files, revision)
        return _send_json(
            handler,
            200,
            {
                "commitOid": commit,
                "pullRequestUrl": None,
                "commitUrl": f"{self.endpoint}/datasets/{repo_id}/commit/{commit}",
            },
        )


def xet_file_hash(path: Path) -> str:
    """The Xet file hash of `path`, as the real Hub lists it (`xetHash`)."""
    import hf_xet

    return hf_xet.hash_files([str(path)])[0].hash


def xorb_bytes(payload: bytes) -> bytes:
    """`payload` as a xorb's chunk sequence: 8-byte headers (version 0, compressed size, scheme
    0 = none, uncompressed size; sizes 3-byte little-endian) each followed by the chunk."""
    out = bytearray()
    for start in range(0, len(payload), XET_CHUNK_BYTES):
        chunk = payload[start : start + XET_CHUNK_BYTES]
        size = len(chunk).to_bytes(3, "little")
        out += b"\x00" + size + b"\x00" + size + chunk
    return bytes(out)


def _tree_entries(
    files: dict[str, HubFile], prefix: str, recursive: bool, xet_hashes: dict[str, str]
) -> list[dict]:
    """Tree listing under `prefix` ("" = root): folders and files, sorted by path."""
    folders: set[str] = set()
    entries = []
    for path, hub_file in files.items():
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :].split("/")
        for depth in range(1, len(rest)):
            if recursive or depth == 1:
                folders.add(prefix + "/".join(rest[:depth]))
        if recursive or len(rest) == 1:
            entry = {"type": "file", "oid": hub_file.git_oid, "size": hub_file.size, "path": path}
            if hub_file.lfs:
                entry["lfs"] = {
                    "oid": hub_file.sha256,
                    "size": hub_file.size,
                    "pointerSize": len(hub_file.pointer),
                }
                if hub_file.sha256 in xet_hashes:
                    entry["xetHash"] = xet_hashes[hub_file.sha256]
            entries.append(entry)
    entries += [
        {"type": "directory", "oid": hashlib.sha1(f.encode()).hexdigest(), "size": 0, "path": f}
        for f in folders
    ]
    return sorted(entries, key=lambda e: e["path"])


def _send_json(handler, status: int, payload, headers: dict[str, str] | None = None) -> int:
    send_payload(handler, status, json.dumps(payload).encode(), "application/json", headers)
    return status


def _send_bytes(
    handler, method: str, payload: bytes, headers: dict[str, str], fault: Fault | None = None
) -> int:
    try:
        byte_range = parse_range(handler.headers.get("Range"), len(payload))
    except ValueError:
        return _send_json(
            handler,
            416,
            {"error": "range not satisfiable"},
            {"Content-Range": f"bytes */{len(payload)}"},
        )
    start, end = byte_range if byte_range else (0, len(payload) - 1)
    status = 206 if byte_range else 200
    handler.send_response(status)
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.send_header("Content-Type", "application/octet-stream")
    handler.send_header("Content-Length", str(end + 1 - start))
    if byte_range:
        handler.send_header("Content-Range", f"bytes {start}-{end}/{len(payload)}")
    handler.end_headers()
    body = payload[start : end + 1]
    if fault is not None and fault.corrupt and body:
        body = bytes([body[0] ^ 0xFF]) + body[1:]
    if fault is not None and fault.truncate_after_bytes is not None:
        body = body[: fault.truncate_after_bytes]  # the full length was announced: a body cut short
    if method == "GET":
        handler.wfile.write(body)
    return status
