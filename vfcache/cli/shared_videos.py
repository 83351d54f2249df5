"""Videos shared across datasets, for the `audit` and `split` commands of several datasets:
find them (pipelines/shared_videos.py), print them, and make a joint split
(pipelines/joint_split.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import click

if TYPE_CHECKING:
    from vfcache.cli.app import Context
    from vfcache.config import ClipSpec, DatasetConfig
    from vfcache.manifests.shared_videos import SharedVideo

CLUSTER_FROM_VIDEOS = 64  # below this many videos to hash, a dask cluster costs more than it saves


def shared_videos(ctx: Context, configs: Sequence[DatasetConfig]) -> list[SharedVideo]:
    """The videos the datasets share, hashing the frames of videos not hashed before."""
    from vfcache.layout import VIDEOS_PARQUET_NAME
    from vfcache.manifests.parquet_io import read_records
    from vfcache.manifests.records import VideoRecord
    from vfcache.pipelines.frame_hash import load_frame_hashes, pending_videos
    from vfcache.pipelines.shared_videos import dataset_videos, find_shared_videos

    pending, probed = 0, []
    for config in configs:
        manifest = ctx.root.dataset_dir(config.name) / VIDEOS_PARQUET_NAME
        if not manifest.exists():  # a cache without its video manifest (a pulled bundle, say)
            click.echo(
                f"note: {config.name}: no {manifest}; its videos are not compared with the others'",
                err=True,
            )
            continue
        probed.append(config)
        stored = load_frame_hashes(ctx.root.dataset_dir(config.name))
        pending += len(pending_videos(read_records(manifest, VideoRecord), stored))
    configs = probed
    if pending >= CLUSTER_FROM_VIDEOS:
        with ctx.client() as client:
            found = [
                dataset_videos(c, ctx.root, client=client, progress=ctx.progress) for c in configs
            ]
    else:
        found = [dataset_videos(c, ctx.root, progress=ctx.progress) for c in configs]
    for dataset in found:
        if dataset.unhashed:
            click.echo(
                f"note: {dataset.name}: {dataset.unhashed} videos could not be decoded for frame "
                "hashes (raw files missing?); only their bytes are compared",
                err=True,
            )
    return find_shared_videos(found)


def run_joint_split(
    ctx: Context, datasets: Sequence[tuple[DatasetConfig, ClipSpec]], options: Sequence[dict]
) -> None:
    """Split the datasets together, in the order given, keeping shared videos in one part."""
    from vfcache.pipelines.split.joint import JointMember, write_joint_split

    shared = shared_videos(ctx, [config for config, _ in datasets])
    click.echo(f"{len(shared)} videos shared across {', '.join(c.name for c, _ in datasets)}")
    members = [
        JointMember(config.name, ctx.root.cache_dir(config.name, spec.name), opts)
        for (config, spec), opts in zip(datasets, options)
    ]
    for member, report in zip(members, write_joint_split(members, shared, wait=ctx.wait)):
        pinned = report.meta.joint.pinned_videos if report.meta.joint else 0
        parts = ", ".join(f"{s.part} {s.obtained}" for s in report.meta.parts)
        click.echo(
            f"{member.dataset}: {parts} {report.meta.unit}; {pinned} pinned to their copy's part"
        )
        if not report.exact:
            click.echo(
                f"warning: {member.dataset}: some parts are not the size asked "
                "(groups too large, or more shared videos pinned there than asked); see split.json",
                err=True,
            )
        click.echo(f"split {report.name} -> {report.split_dir}")
