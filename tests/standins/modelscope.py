"""ModelScope's dataset file route, for the GenVideo stand-in.

ModelScope serves a dataset file at
`<endpoint>/api/v1/datasets/<namespace>/<name>/repo?Revision=<rev>&FilePath=<path>` (the URL
its own client builds). `modelscope_route` maps such a request to `<namespace>/<name>/<rev>/<path>`
below an `HttpFileServer` root, so the stand-in answers the same URLs with Range support and
fault injection; any other URL is a 404.

The repository listing `<endpoint>/api/v1/datasets/<namespace>/<name>/repo/tree?Revision=<rev>&...`
answers, as the real host does, `{"Code": 200, "Data": {"Files": [{"Name", "Path", "Type",
"Size"}]}}`:
`write_tree_listing` writes that JSON from the served folder (files starting with `_` are left out,
as are names given in `hide`), and the route serves it for page 1.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path

_ROUTE = re.compile(r"^/api/v1/datasets/(?P<repo>[^/]+/[^/]+)/repo$")
_TREE = re.compile(r"^/api/v1/datasets/(?P<repo>[^/]+/[^/]+)/repo/tree$")
TREE_NAME = "_tree.json"


def modelscope_route(parsed: urllib.parse.SplitResult) -> str | None:
    query = urllib.parse.parse_qs(parsed.query)
    tree = _TREE.match(parsed.path)
    if tree is not None:
        page = query.get("PageNumber", ["1"])[0]
        revision = query.get("Revision", ["master"])[0]
        return f"{tree['repo']}/{revision}/{TREE_NAME}" if page == "1" else None
    match = _ROUTE.match(parsed.path)
    if match is None:
        return None
    files = query.get("FilePath")
    if not files or ".." in files[0].split("/"):
        return None
    revision = query.get("Revision", ["master"])[0]
    return f"{match['repo']}/{revision}/{files[0].lstrip('/')}"


def modelscope_relpath(repo: str, revision: str, file: str) -> str:
    """Where a file of `repo` at `revision` lies below the server root."""
    return f"{repo}/{revision}/{file}"


def write_tree_listing(store: Path, *, hide: tuple[str, ...] = ()) -> Path:
    """The host's listing of the files in `store` (one repository at one revision)."""
    files = [
        {"Name": p.name, "Path": p.name, "Type": "blob", "Size": p.stat().st_size}
        for p in sorted(store.iterdir())
        if p.is_file() and not p.name.startswith("_") and p.name not in hide
    ]
    files.append({"Name": "README.md", "Path": "README.md", "Type": "blob", "Size": 12})
    files.append({"Name": "docs", "Path": "docs", "Type": "tree", "Size": 0})
    path = store / TREE_NAME
    path.write_text(json.dumps({"Code": 200, "Data": {"Files": files}, "Success": True}))
    return path
