"""`vfcache doctor`: the environment a run needs, checked in one table with what to fix.

Each check returns a `Check(name, status, found, fix)`: status "ok", "warn" (works, with a
caveat) or "fail" (a stage will stop). The decoders (PyAV and decord, and the FFmpeg decoders
the project's sources use), torch and CUDA, the Hub endpoint and token (one request to the
endpoint unless `offline`), the proxy variables, and the free disk under the data root.
"""

from __future__ import annotations

import importlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from vfcache.pipelines.fetch.diagnose import (
    PROXY_VARIABLES,
    diagnose_connection,
    free_bytes,
    human_bytes,
)

# H.264 (most sources), HEVC and VP9 (some YouTube/WebVid files), AV1 (newer generators), GIF
# (GenVideo-100K)
CODECS = ("h264", "hevc", "vp9", "av1", "gif")
MIN_FREE_BYTES = 20 * 2**30


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    found: str
    fix: str = ""


def _version(module: str) -> str | None:
    try:
        return getattr(importlib.import_module(module), "__version__", "installed")
    except ImportError:
        return None


def check_decoders() -> list[Check]:
    checks = []
    pyav = _version("av")
    if pyav is None:
        return [Check("PyAV", "fail", "not installed", "pip install av (the default reader)")]
    import av

    missing = []
    for codec in CODECS:
        try:
            av.codec.Codec(codec, "r")
        except (av.codec.codec.UnknownCodecError, ValueError):
            missing.append(codec)
    libavcodec = ".".join(map(str, av.library_versions["libavcodec"]))
    checks.append(Check("PyAV", "ok", f"{pyav}, libavcodec {libavcodec}"))
    checks.append(
        Check(
            "decoders",
            "warn" if missing else "ok",
            f"missing: {', '.join(missing)}" if missing else ", ".join(CODECS),
            "install a PyAV wheel whose FFmpeg has them" if missing else "",
        )
    )
    decord = _version("decord")
    checks.append(
        Check(
            "decord",
            "ok" if decord else "warn",
            decord or "not installed",
            "" if decord else "optional: pip install decord for --reader decord",
        )
    )
    return checks


def check_torch() -> list[Check]:
    version = _version("torch")
    if version is None:
        return [
            Check("torch", "fail", "not installed", "pip install torch (train and eval need it)")
        ]
    import torch

    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return [
            Check("torch", "ok", version),
            Check("CUDA", "ok", f"{torch.version.cuda}: {names}"),
        ]
    built = torch.version.cuda or "a CPU-only build"
    return [
        Check("torch", "ok", version),
        Check(
            "CUDA",
            "warn",
            f"no GPU visible ({built})",
            "training runs on the CPU; install a CUDA build of torch or check CUDA_VISIBLE_DEVICES",
        ),
    ]


def check_hub(offline: bool) -> list[Check]:
    from vfcache.pipelines.fetch.hf import resolve_endpoint
    from vfcache.pipelines.fetch.hub_errors import token_source

    endpoint = resolve_endpoint(None)
    source = token_source()
    checks = [
        Check(
            "HF token",
            "ok" if source else "warn",
            source or "none",
            "" if source else "gated or private repos need one: hf auth login (or HF_TOKEN)",
        )
    ]
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return [
            Check(
                "Hub endpoint",
                "warn",
                f"{endpoint}: HF_HUB_OFFLINE is set",
                "unset HF_HUB_OFFLINE to fetch from the Hub",
            ),
            *checks,
        ]
    if offline:
        return [Check("Hub endpoint", "ok", f"{endpoint} (not contacted: --offline)"), *checks]
    request = urllib.request.Request(f"{endpoint}/api/whoami-v2", method="GET")
    try:
        urllib.request.urlopen(request, timeout=10).close()
        reached = "reachable"
    except urllib.error.HTTPError as err:  # 401 without a token: the host answered
        reached = f"reachable (HTTP {err.code})"
        err.close()
    except (urllib.error.URLError, OSError) as err:
        diagnosis = diagnose_connection(err, endpoint)
        what = diagnosis.what if diagnosis else str(err)
        return [
            Check(
                "Hub endpoint",
                "fail",
                f"{endpoint}: {what}",
                diagnosis.hint if diagnosis else "check HF_ENDPOINT and the network",
            ),
            *checks,
        ]
    return [Check("Hub endpoint", "ok", f"{endpoint} {reached}"), *checks]


def check_proxies() -> list[Check]:
    found = []
    for name in PROXY_VARIABLES:
        value = os.environ.get(name) or os.environ.get(name.lower())
        if value:
            found.append(f"{name}={_without_password(value)}")
    return [
        Check(
            "proxy",
            "ok",
            "; ".join(found)
            or "none set (direct connections; behind a proxy, set HTTPS_PROXY and NO_PROXY)",
        )
    ]


def _without_password(url: str) -> str:
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def check_disk(root: Path, min_free_bytes: int = MIN_FREE_BYTES) -> list[Check]:
    free = free_bytes(root)
    if free is None:
        return [Check("disk", "fail", f"{root}: cannot be read", "check --root / VFCACHE_ROOT")]
    status = "ok" if free >= min_free_bytes else "warn"
    fix = (
        ""
        if status == "ok"
        else (
            f"under {human_bytes(min_free_bytes)} free: datasets take 3-30 GB, "
            "see each config's expected_size; pass --root on a larger disk"
        )
    )
    return [Check("disk", status, f"{human_bytes(free)} free under {root}", fix)]


def run_checks(root: Path, *, offline: bool = False) -> list[Check]:
    return [
        *check_decoders(),
        *check_torch(),
        *check_hub(offline),
        *check_proxies(),
        *check_disk(root),
    ]


def format_checks(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'check':<{width}}  status  found / what to fix"]
    for check in checks:
        lines.append(f"{check.name:<{width}}  {check.status:<6}  {check.found}")
        if check.fix:
            lines.append(f"{'':<{width}}  {'':<6}  -> {check.fix}")
    return "\n".join(lines)
