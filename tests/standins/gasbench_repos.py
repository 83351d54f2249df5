"""A miniature of GASBench's video datasets in their real shapes, for the Hub stand-in.

Three dataset repos, as GASBench's bundled YAMLs use them (gasbench.md section 1-2): one repo
carved into several datasets by sub-path (`faridlab/deepaction_v1` + `include_paths: [Veo/]`),
zip and tar.gz archives of mp4s, a parquet table with a video-bytes column (a `datasets.Video`-
like struct with `bytes` and `path`) and a frames-parquet (`video_id`, `frame_idx`, JPEG bytes).
`write_gasbench_yamls` writes the split real/synthetic YAML files pointing at them.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from tests.standins.layouts import FPS, jpeg_frames, tar_folder, tiny_video, zip_folder

MEDIA_REPO = "mini-gas/deepaction_v1"
ARCHIVE_REPO = "mini-gas/archived_videos"
PARQUET_REPO = "mini-gas/parquet_videos"

# entry name -> (label, generator, videos) that a full cache of the miniature holds
EXPECTED = {
    "deepaction_veo": (1, "veo", 3),
    "deepaction_pexels": (0, "deepaction_pexels", 2),
    "zipped_swaps": (1, "semisynthetic:faceswap", 2),
    "tarred_real": (0, "tarred_real", 2),
    "bytes_parquet": (1, "bytes_parquet", 2),  # 3 rows, filter_value keeps 2
    "frames_parquet": (1, "framegen", 2),
}


def build_media_repo(repo: Path) -> None:
    tiny_video(repo / "Veo" / "batch1" / "v0.mp4", fake=True)
    tiny_video(repo / "Veo" / "batch1" / "v1.mp4", fake=True)
    tiny_video(repo / "Veo" / "batch2" / "v2.mp4", fake=True)
    tiny_video(repo / "Pexels" / "p0.mp4")
    tiny_video(repo / "Pexels" / "p1.mp4")
    tiny_video(repo / "Pexels" / "thumbs" / "skip_me.mp4")  # excluded by exclude_paths
    (repo / "README.md").write_text("# deepaction (miniature)\n")


def build_archive_repo(repo: Path) -> None:
    for index in range(2):
        tiny_video(repo / "swaps" / f"s{index}.mp4", fake=True)
        tiny_video(repo / "real" / f"r{index}.mp4")
    (repo / "zips").mkdir(parents=True)
    zip_folder(repo / "swaps", repo / "zips" / "swaps_000.zip", junk=True)
    (repo / "tars").mkdir()
    tar_folder(repo / "real", repo / "tars" / "real_000.tar.gz")


def build_parquet_repo(repo: Path, tmp: Path) -> None:
    (repo / "data").mkdir(parents=True)
    rows = []
    for index, keep in enumerate(["yes", "no", "yes"]):
        video = tiny_video(tmp / f"b{index}.mp4", fake=True)
        rows.append({"video": {"bytes": video.read_bytes(), "path": f"b{index}.mp4"}, "keep": keep})
    video_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table(
        {
            "video": pa.array([r["video"] for r in rows], video_type),
            "keep": [r["keep"] for r in rows],
        }
    )
    pq.write_table(table, repo / "data" / "train-00000-of-00001.parquet", row_group_size=1)
    (repo / "frames").mkdir()
    ids, idx, images = [], [], []
    for video_id, count, seed in (("clipA", 6, 3), ("clipB", 5, 4)):
        order = list(range(count))
        random.Random(seed).shuffle(order)  # frame_idx order is restored by the reader
        frames = jpeg_frames(count, seed)
        for k in order:
            ids.append(video_id)
            idx.append(k)
            images.append(frames[k])
    table = pa.table(
        {
            "video_id": ids,
            "frame_idx": pa.array(idx, pa.int32()),
            "image": pa.array(images, pa.binary()),
            "fps": pa.array([float(FPS)] * len(ids)),
        }
    )
    pq.write_table(table, repo / "frames" / "frames-00000.parquet", row_group_size=4)


def write_gasbench_yamls(folder: Path) -> list[Path]:
    """GASBench's split layout: real_videos.yaml and synthetic_videos.yaml (+ an image entry,
    and a key GASBench does not read, as `generator_variant` in the bundled files)."""
    real = [
        {
            "name": "deepaction_pexels",
            "path": MEDIA_REPO,
            "modality": "video",
            "media_type": "real",
            "source_format": "mp4",
            "media_per_archive": -1,
            "archives_per_dataset": -1,
            "include_paths": ["Pexels/"],
            "exclude_paths": ["thumbs/"],
            "content_category": "people",
        },
        {
            "name": "tarred_real",
            "path": ARCHIVE_REPO,
            "modality": "video",
            "media_type": "real",
            "source_format": "tar.gz",
            "archives_per_dataset": 1,
        },
        {
            "name": "some_images",
            "path": "mini-gas/images",
            "modality": "image",
            "media_type": "real",
        },
    ]
    synthetic = [
        {
            "name": "deepaction_veo",
            "path": MEDIA_REPO,
            "modality": "video",
            "media_type": "synthetic",
            "source_format": "mp4",
            "include_paths": ["Veo/"],
            "generator_family": "veo",
            "generator_variant": "veo-2",
            "notes": "carved out of one repo by sub-path",
        },
        {
            "name": "zipped_swaps",
            "path": ARCHIVE_REPO,
            "modality": "video",
            "media_type": "semisynthetic",
            "source_format": "zip",
            "generator_family": "faceswap",
        },
        {
            "name": "bytes_parquet",
            "path": PARQUET_REPO,
            "modality": "video",
            "media_type": "synthetic",
            "source_format": "parquet",
            "include_paths": ["data/"],
            "data_columns": ["video"],
            "filter_column": "keep",
            "filter_value": "yes",
        },
        {
            "name": "frames_parquet",
            "path": PARQUET_REPO,
            "modality": "video",
            "media_type": "synthetic",
            "source_format": "parquet",
            "include_paths": ["frames/"],
            "generator_family": "framegen",
        },
    ]
    paths = [folder / "real_videos.yaml", folder / "synthetic_videos.yaml"]
    for path, entries in zip(paths, (real, synthetic)):
        path.write_text(yaml.safe_dump({"datasets": entries}, sort_keys=False))
    return paths


def serve_gasbench(hf_hub, tmp: Path) -> None:
    """Build the three repos below `tmp` and commit them to the Hub stand-in."""
    builders = {
        MEDIA_REPO: build_media_repo,
        ARCHIVE_REPO: build_archive_repo,
        PARQUET_REPO: lambda repo: build_parquet_repo(repo, tmp / "parquet_src"),
    }
    for repo_id, build in builders.items():
        folder = tmp / repo_id.replace("/", "__")
        build(folder)
        hf_hub.add_commit(repo_id, folder)
