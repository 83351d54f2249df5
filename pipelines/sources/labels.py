"""Labels from folder layout: turn every video below a raw folder into a `VideoCandidate`.

A `LayoutRule` pattern such as `{domain}/{label}/{generator}/{name}` names the components of
a video's path relative to the raw folder. `{*}` matches one component and ignores it, `{**}`
(first component only) swallows any number of leading components, and a component without
braces must match literally. `{split}` gives the official split. `{name}` is the file name
without its extension and must be the last component.

Policy for files that do not fit (documented in the error): a video file whose path does not
match the pattern, or whose label folder is neither a `real` nor a `fake` name, is an error
that lists every offending path, because silently skipping videos changes a dataset. Files
without a video extension (truth.json, fetch.json, README...), hidden files or folders and
temp files (`.tmp-` in the name) are ignored; files with a video extension are listed even
when broken, so that probe records why they fail.
"""

from __future__ import annotations

import logging
import os
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from vfcache.manifests.records import LABEL_FAKE, LABEL_NAMES, LABEL_REAL
from vfcache.pipelines.sources.base import VideoCandidate, require_raw_dir

from vfcache.atomic import TEMP_MARK
from vfcache.config import LayoutRule
from vfcache.errors import StageError

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4",
    ".m4v",
    ".mov",
    ".avi",
    ".mkv",
    ".webm",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".3gp",
    ".ts",
    ".gif",  # GenVideo-100K's I2VGEN_XL ships animated GIFs; PyAV decodes them
)
PATTERN_FIELDS = ("domain", "label", "generator", "split", "name")
GROUP_FIELDS = ("domain", "label", "generator", "split", "name", "dataset", "relpath")
MAX_LISTED_PATHS = 20


@dataclass(frozen=True)
class PathPattern:
    """A parsed layout pattern: one entry per path component after an optional leading `{**}`."""

    components: tuple[str, ...]  # field name, "*" for an ignored component, or a literal ("=text")
    leading_any: bool


def parse_pattern(pattern: str) -> PathPattern:
    """Parse `{domain}/{label}/{generator}/{name}`-style patterns; raises `ValueError` naming the
    problem."""
    parts = [part for part in pattern.strip("/").split("/") if part]
    if not parts:
        raise ValueError(f"layout pattern {pattern!r} is empty")
    leading_any = parts[0] == "{**}"
    if leading_any:
        parts = parts[1:]
    components = []
    seen = set()
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            field = part[1:-1]
            if field == "**":
                raise ValueError(
                    f"layout pattern {pattern!r}: {{**}} is only allowed as the first component"
                )
            if field != "*" and field not in PATTERN_FIELDS:
                raise ValueError(
                    f"layout pattern {pattern!r}: unknown field {part}; expected one of "
                    f"{['{' + f + '}' for f in PATTERN_FIELDS]}, {{*}} or {{**}}"
                )
            if field != "*" and field in seen:
                raise ValueError(f"layout pattern {pattern!r} names {part} twice")
            seen.add(field)
            components.append(field)
        elif "{" in part or "}" in part:
            raise ValueError(
                f"layout pattern {pattern!r}: component {part!r} mixes text and a field"
            )
        else:
            components.append("=" + part)
    if not components or components[-1] != "name":
        raise ValueError(f"layout pattern {pattern!r} must end with {{name}}")
    if "label" not in components:
        raise ValueError(f"layout pattern {pattern!r} has no {{label}} component")
    return PathPattern(tuple(components), leading_any)


def match_path(relpath: str, pattern: PathPattern) -> Optional[dict[str, str]]:
    """The pattern's fields for a '/'-separated relpath, or None when it does not match."""
    parts = relpath.split("/")
    wanted = len(pattern.components)
    if len(parts) < wanted or (len(parts) > wanted and not pattern.leading_any):
        return None
    parts = parts[len(parts) - wanted :]
    fields: dict[str, str] = {}
    for component, part in zip(pattern.components, parts):
        if component.startswith("="):
            if part != component[1:]:
                return None
        elif component != "*":
            fields[component] = part
    fields["name"] = os.path.splitext(fields["name"])[0]
    return fields


def walk_video_files(raw_dir: Path, extensions: tuple[str, ...]) -> list[str]:
    """Relpaths ('/'-separated, sorted) of every non-hidden file with a video extension."""
    wanted = {ext.lower() for ext in extensions}
    found = []
    for folder, subdirs, files in os.walk(raw_dir):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        for filename in files:
            if filename.startswith(".") or TEMP_MARK in filename:
                continue  # hidden files, and temp files of an interrupted download or generation
            if os.path.splitext(filename)[1].lower() not in wanted:
                continue
            found.append(Path(folder, filename).relative_to(raw_dir).as_posix())
    return sorted(found)


def _group_template_fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def _check_rule(rule: LayoutRule) -> PathPattern:
    try:
        pattern = parse_pattern(rule.pattern)
    except ValueError as err:
        raise StageError(f"layout.pattern: {err}") from err
    for name in _group_template_fields(rule.group):
        if name not in GROUP_FIELDS:
            raise StageError(
                f"layout.group {rule.group!r} uses {{{name}}}; allowed fields are "
                f"{list(GROUP_FIELDS)}"
            )
    overlap = set(rule.real) & set(rule.fake)
    if overlap:
        raise StageError(f"layout: folder names {sorted(overlap)} are listed as both real and fake")
    return pattern


def _listing(paths: list[str]) -> str:
    shown = "\n  ".join(paths[:MAX_LISTED_PATHS])
    more = (
        f"\n  ... and {len(paths) - MAX_LISTED_PATHS} more" if len(paths) > MAX_LISTED_PATHS else ""
    )
    return f"\n  {shown}{more}"


def candidates_from_layout(
    raw_dir: str | os.PathLike,
    rule: LayoutRule,
    *,
    dataset: str,
    default_domain: str,
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS,
) -> list[VideoCandidate]:
    """Every video below `raw_dir`, labelled from its path by `rule`, sorted by relpath."""
    raw_dir = Path(raw_dir)
    require_raw_dir(raw_dir, dataset)
    pattern = _check_rule(rule)
    unmatched: list[str] = []
    bad_labels: list[str] = []
    candidates = []
    for relpath in walk_video_files(raw_dir, extensions):
        fields = match_path(relpath, pattern)
        if fields is None:
            unmatched.append(relpath)
            continue
        folder = fields["label"]
        if folder in rule.real:
            label = LABEL_REAL
        elif folder in rule.fake:
            label = LABEL_FAKE
        else:
            bad_labels.append(f"{relpath} (label folder {folder!r})")
            continue
        if "generator" in fields:
            generator = fields["generator"]
        elif label == LABEL_REAL:
            generator = rule.real_generator or "real"
        else:
            generator = "unknown"
        domain = fields.get("domain") or rule.domain or default_domain
        template_values = {
            "domain": domain,
            "label": LABEL_NAMES[label],
            "generator": generator,
            "split": fields.get("split", ""),
            "name": fields["name"],
            "dataset": dataset,
            "relpath": relpath,
        }
        candidates.append(
            VideoCandidate(
                relpath=relpath,
                label=label,
                generator=generator,
                domain=domain,
                group=rule.group.format(**template_values),
                source_split=fields.get("split"),
            )
        )
    if unmatched:
        raise StageError(
            f"{len(unmatched)} video file(s) below {raw_dir} do not match the layout pattern "
            f"{rule.pattern!r} (fix the files or the dataset config's layout.pattern; "
            f"{{**}} at the start accepts extra leading folders):{_listing(unmatched)}"
        )
    if bad_labels:
        raise StageError(
            f"{len(bad_labels)} video file(s) below {raw_dir} sit in a label folder that is "
            f"neither real "
            f"{list(rule.real)} nor fake {list(rule.fake)} (add the name to layout.real or "
            f"layout.fake):"
            f"{_listing(bad_labels)}"
        )
    log.info("found %d videos below %s", len(candidates), raw_dir)
    return candidates
