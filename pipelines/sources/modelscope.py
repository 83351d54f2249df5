"""What a ModelScope dataset repository serves: its file listing, for `fetch --dry-run`.

A GenVideo config names its archives by hand (third-party scripts are the only public list),
so a dry run asks the host which files it really serves and compares: a configured name the
host does not list is flagged before anything is downloaded, and a served volume or archive
the config leaves out is named. The listing is the route ModelScope's own clients and
third-party scripts use:

    GET
    <base_url>/api/v1/datasets/<namespace>/<name>/repo/tree?Revision=<rev>&Root=&PageSize=N&PageNumber=P
    -> {"Code": 200, "Data": {"Files": [{"Name", "Path", "Type": "blob"|"tree", "Size"}, ...]}}

Pages are read until one comes back shorter than the page size. Folders (`Type: tree`) are
not descended into: the GenVideo repositories keep their archives at the top.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Optional

from vfcache.pipelines.fetch._transfer import PermanentError, TransientError, remote_json

PAGE_SIZE = 500
MAX_PAGES = 40
TREE_TEMPLATE = (
    "{base_url}/api/v1/datasets/{repo}/repo/tree"
    "?Revision={revision}&Root=&PageSize={size}&PageNumber={page}"
)


@dataclass(frozen=True)
class RepoListing:
    """{file name: size in bytes} the host lists, or `problem` when it could not be listed."""

    files: dict[str, Optional[int]]
    problem: str = ""


def tree_url(base_url: str, repo: str, revision: str, page: int) -> str:
    return TREE_TEMPLATE.format(
        base_url=base_url,
        repo=repo,
        revision=urllib.parse.quote(revision, safe=""),
        size=PAGE_SIZE,
        page=page,
    )


def _page_files(payload: object, url: str) -> list[dict]:
    data = payload.get("Data") if isinstance(payload, dict) else None
    files = data.get("Files") if isinstance(data, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise PermanentError(f"{url}: not a ModelScope file listing (no Data.Files list)")
    return files


def list_repo_files(base_url: str, repo: str, revision: str) -> RepoListing:
    """The top-level files of `repo` at `revision` with their sizes; a refusal is a `problem`."""
    listed: dict[str, Optional[int]] = {}
    for page in range(1, MAX_PAGES + 1):
        url = tree_url(base_url, repo, revision, page)
        try:
            files = _page_files(remote_json(url), url)
        except (PermanentError, TransientError) as err:
            return RepoListing(listed, problem=f"listing unavailable ({err})")
        for entry in files:
            if entry.get("Type") == "tree":
                continue
            name = entry.get("Path") or entry.get("Name")
            size = entry.get("Size")
            if isinstance(name, str) and name:
                listed[name] = size if isinstance(size, int) and size >= 0 else None
        if len(files) < PAGE_SIZE:
            return RepoListing(listed)
    return RepoListing(
        listed, problem=f"listing longer than {MAX_PAGES} pages; read as far as that"
    )
