"""The dataset card (README.md) of a published bundle: YAML front matter that the Hub and
`datasets` read, then the manual a reader of the repo page needs.

The front matter carries `configs` (one named after the split, with train / validation /
test / support), so `datasets.load_dataset(REPO, SPLIT)` loads the split's tables;
`dataset_info` gives their feature types (manifests/hf_features.py); `license` comes from the
dataset config. The manifests are not configs: `datasets` builds every config of a repo with
one packaged loader, chosen from the most common file format, so a parquet config beside the
JSONL splits would be read as JSON. The card shows how to load them with the parquet loader. The
body has the terms,
the clip spec, the audit table, where the raw data came from, the decoder versions, and the
exact commands that rebuild the cache and check it.
"""

from __future__ import annotations

import json

import yaml
from vfcache.manifests.bundle import BundleManifest
from vfcache.manifests.hf_features import features_yaml
from vfcache.manifests.records import SplitEntry

from vfcache.layout import SPLIT_PARTS

# split part -> the split name `datasets` uses (it has no "val")
HF_SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test", "support": "support"}


def front_matter(manifest: BundleManifest, parts: list[str]) -> dict:
    """The card's YAML metadata for a bundle whose split has `parts`."""
    split = manifest.split
    configs = [
        {
            "config_name": split,
            "data_files": [
                {"split": HF_SPLIT_NAMES[part], "path": f"splits/{split}/{part}.jsonl"}
                for part in SPLIT_PARTS
                if part in parts
            ],
        }
    ]
    info = [{"config_name": split, "features": features_yaml(SplitEntry)}]
    meta = {
        "license": manifest.license,
        "pretty_name": f"vfcache clips: {manifest.dataset} / {manifest.spec_name} / {split}",
        "tags": ["vfcache", "video", "ai-generated-video-detection", "clip-bundle"],
        "task_categories": ["video-classification"],
        "configs": configs,
        "dataset_info": info,
    }
    if manifest.license == "other":
        meta["license_name"] = f"{manifest.dataset}-terms"
    return meta


def _source_lines(manifest: BundleManifest) -> list[str]:
    source = manifest.source
    if not source:
        return [
            "The raw data has no fetch record (a local folder or generated data): the video "
            "manifest's sha256 ids are what identifies each video."
        ]
    lines = [
        f"- source: {source.get('source')} `{source.get('repo_id')}` on {source.get('endpoint')}",
        f"- revision asked: `{source.get('revision')}`, resolved to commit "
        f"`{source.get('commit_sha')}`",
        f"- files: {source.get('files')} ({source.get('total_bytes', 0) / 2**20:.1f} MiB), each "
        f"with "
        "its sha256 in `provenance/fetch.json`",
    ]
    return lines


def render_card(
    manifest: BundleManifest,
    parts: list[str],
    spec: dict,
    audit_table: str,
    terms: str,
    description: str,
    repo_id: str,
) -> str:
    """README.md for the bundle: front matter, then the manual."""
    split = manifest.split
    counts = manifest.counts
    part_rows = "\n".join(
        f"| {part} | {counts['parts'][part]['clips']} | {counts['parts'][part]['videos']} |"
        for part in SPLIT_PARTS
        if part in parts
    )
    spec_rows = "\n".join(
        f"| {key} | {json.dumps(value)} |"
        for key, value in sorted(spec.items())
        if key != "description"
    )
    commands = "\n".join(manifest.commands)
    shards = (
        "The shards are included: training and evaluation read this bundle directly once pulled."
        if manifest.with_shards
        else "The shards are not included (the dataset's terms, or the publisher's choice): "
        "rebuild "
        "the clips from your own copy of the raw videos and check them against this bundle."
    )
    body = f"""# vfcache clips: {manifest.dataset} / {manifest.spec_name} / split `{split}`

{description.strip()}

This repository is a vfcache clip bundle: exactly which clips, split and
support bank a result was computed on, so that anyone can check that their own cache holds the
same clips. Clip ids come from the video's sha256, the clip spec and the clip's position;
`digests.parquet` holds the sha256 of every clip's decoded pixels. {shards}

- vfcache {manifest.vfcache_version}; bundle format {manifest.format_version}
- dataset `{manifest.dataset}` (domain `{manifest.domain}`), clip spec `{manifest.spec_name}` (hash
`{manifest.spec_hash}`)
- {counts["videos"]} videos, {counts["clips"]} clips
- decoded with {manifest.decoder.get("reader")} (PyAV {manifest.decoder.get("av")}, FFmpeg
libavcodec {manifest.decoder.get("libavcodec")})

## License and terms

License: `{manifest.license}`; redistribution of clips: {manifest.redistribution}.

{terms.strip() or "The dataset config states no terms."}

## Split `{split}`

| part | clips | videos |
|---|---|---|
{part_rows}

```python
import datasets
ds = datasets.load_dataset("{repo_id}", "{split}")   # train / validation / test / support
clips = datasets.load_dataset("parquet", data_files="hf://datasets/{repo_id}/clips.parquet")
```

With vfcache installed, `vfcache.manifests.hf_features.clip_features()` and `video_features()` give
the
manifests' feature types (`features=`), and `vfcache.trainers.hf_dataset.to_hf_dataset()` a dataset
whose
rows read their clips from the shards.

## Clip spec

| field | value |
|---|---|
{spec_rows}

## Audit

```text
{audit_table}
```

## Raw data

{chr(10).join(_source_lines(manifest))}

## Rebuild and check

```bash
{commands}
```

`vfcache check-bundle {repo_id}` re-extracts every clip from your raw videos and reports, by clip
and by video, which match, which are missing (video absent) and which differ (same video, other
pixels: another decoder version, a damaged download); it exits 1 when any differ.
"""
    head = yaml.safe_dump(front_matter(manifest, parts), sort_keys=False, allow_unicode=True)
    return f"---\n{head}---\n\n{body}"
