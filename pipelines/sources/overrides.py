"""Fetch options a user gives on the command line, applied to a dataset config.

`vfcache fetch NAME --server URL --accept-terms` must not require editing YAML: `--server`
replaces the one key that says where the kind's data is served from (the Hub endpoint of a
mirror, the GenVideo base URL, the FaceForensics++ server of the email), and
`--accept-terms` records the user's acceptance for kinds whose download is conditional on
terms (FaceForensics++). The result is validated like a config file.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Sequence, Union

from vfcache.pipelines.sources.base import get_source

from vfcache.config import DatasetConfig
from vfcache.errors import ConfigError

log = logging.getLogger(__name__)

SERVER_KEYS = {
    "huggingface": "endpoint",
    "aegis_keyframes": "endpoint",
    "dvf": "endpoint",
    "webvid": "endpoint",
    "genvideo": "base_url",
    "ffpp": "server_url",
}
TERMS_KINDS = frozenset({"ffpp"})
MULTI_SERVER_KINDS = frozenset({"ffpp"})


def apply_fetch_options(
    config: DatasetConfig,
    *,
    server: Union[str, Sequence[str], None] = None,
    accept_terms: bool = False,
) -> DatasetConfig:
    """`config` with `--server` (one URL, or several for FF++'s fail-over) / `--accept-terms`
    applied; raises ConfigError naming the option."""
    source = dict(config.source)
    servers = [server] if isinstance(server, str) else list(server or ())
    if servers:
        key = SERVER_KEYS.get(config.kind)
        if key is None:
            raise ConfigError(
                "--server",
                "server",
                servers[0],
                f"no --server for kind {config.kind!r}; it applies to kinds {sorted(SERVER_KEYS)}",
            )
        for url in servers:
            if not url.startswith(("http://", "https://")):
                raise ConfigError("--server", "server", url, "an http:// or https:// URL")
        if len(servers) > 1 and config.kind not in MULTI_SERVER_KINDS:
            raise ConfigError(
                "--server",
                "server",
                servers,
                f"one URL: several are tried in turn only for {sorted(MULTI_SERVER_KINDS)}",
            )
        urls = [url.rstrip("/") for url in servers]
        source[key] = urls if len(urls) > 1 else urls[0]
    if accept_terms:
        if config.kind in TERMS_KINDS:
            source["accept_terms"] = True
        else:
            log.info(
                "--accept-terms has no effect for %s (kind %s): its download needs no form",
                config.name,
                config.kind,
            )
    updated = dataclasses.replace(config, source=source)
    get_source(updated)  # validates the result the same way as a config file
    return updated
