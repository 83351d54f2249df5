"""The `datasets` feature types of the cache's tables, derived from the records' Arrow schemas.

`datasets.load_dataset("json", data_files=..., features=split_features())` reads a split JSONL
file with these types, `load_dataset("parquet", ..., features=clip_features())` a clip
manifest; a published bundle's card carries the same features (`dataset_info`), so loading
it from the Hub gives them too. The label is a `ClassLabel` (0 real, 1 fake); every other
column keeps its Arrow type (int64 offsets, string ids, lists of frame indices).

`datasets` is imported here only, and only when a function is called.
"""

from __future__ import annotations

from vfcache.manifests.records import LABEL_NAMES, ClipRecord, SplitEntry, VideoRecord, arrow_schema


def features_of(record_type: type):
    """`datasets.Features` for the rows of `record_type`, with `label` as a ClassLabel."""
    import datasets

    features = datasets.Features.from_arrow_schema(arrow_schema(record_type))
    if "label" in features:
        features["label"] = datasets.ClassLabel(names=[LABEL_NAMES[i] for i in sorted(LABEL_NAMES)])
    return features


def split_features():
    """The features of a split JSONL file (one `SplitEntry` per line)."""
    return features_of(SplitEntry)


def clip_features():
    """The features of clips.parquet (one `ClipRecord` per row)."""
    return features_of(ClipRecord)


def video_features():
    """The features of videos.parquet (one `VideoRecord` per row)."""
    return features_of(VideoRecord)


def features_yaml(record_type: type) -> list:
    """The features as a dataset card's `dataset_info.features` list."""
    return features_of(record_type)._to_yaml_list()
