"""ModelScope's dataset file route, for the GenVideo stand-in.

ModelScope serves a dataset file at
`<endpoint>/api/v1/datasets/<namespace>/<name>/repo?Revision=<rev>&FilePath=<path>` (the URL
its own client builds). `modelscope_route` maps such a request to `<namespace>/<name>/<rev>/<path>`
below an `HttpFileServer` root, so the stand-in answers the same URLs with Range support and
fault injection; any other URL is a 404.
"""

from __future__ import annotations

import re
import urllib.parse

_ROUTE = re.compile(r"^/api/v1/datasets/(?P<repo>[^/]+/[^/]+)/repo$")


def modelscope_route(parsed: urllib.parse.SplitResult) -> str | None:
    match = _ROUTE.match(parsed.path)
    if match is None:
        return None
    query = urllib.parse.parse_qs(parsed.query)
    files = query.get("FilePath")
    if not files or ".." in files[0].split("/"):
        return None
    revision = query.get("Revision", ["master"])[0]
    return f"{match['repo']}/{revision}/{files[0].lstrip('/')}"


def modelscope_relpath(repo: str, revision: str, file: str) -> str:
    """Where a file of `repo` at `revision` lies below the server root."""
    return f"{repo}/{revision}/{file}"
