"""The `pixels: yuv420` figures of `vfcache bench load` (issue 18), beside today's RGB form.

The same videos are cut twice with one preset, as RGB and as yuv420 planes, and read side by
side in one run:

- bytes / raw RGB bytes: compressed bytes of the clips over T x H x W x 3, for each form
  (`bytes_over_raw_rgb`, today's; `yuv420_bytes_over_raw_rgb`, target <= 0.40 on natural footage).
- yuv420 / RGB reads: clips/s of shard reads of the planes (what training reads; RGB is made
  in the device batch step) over shard reads of RGB clips. Target >= 1.6.
- yuv420 shard / zstd bound: as for RGB. Target >= 0.85.
- YUV -> RGB on the CPU: clips/s of `vfcache.trainers.colour.yuv420_to_rgb` on one clip at a time,
  and its share of a CPU read in RGB form (`ClipDataset(form="rgb")`: read, decompress,
  convert). Reported. Both on one torch thread, as in a DataLoader worker (torch gives each
  worker one): on a busy 2-core machine torch's two intra-op threads made one clip's
  conversion 18x slower (0.57 s against 0.032 s).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from vfcache.trainers.colour import yuv420_to_rgb
from vfcache.trainers.dataset import ClipDataset

TARGETS = {
    "yuv420_bytes_over_raw_rgb": ("<=", 0.40),
    "yuv420_over_rgb_reads": (">=", 1.6),
    "yuv420_shard_over_zstd_bound": (">=", 0.85),
}


def conversion_readers(
    planes: ClipDataset, rgb_form: ClipDataset, order: Sequence[int]
) -> dict[str, Callable[[], int]]:
    """Readers for `timed_side_by_side`: the CPU conversion alone (planes already in memory) and
    CPU reads in RGB form, in `order`."""
    clips = [torch.from_numpy(planes.read_clip(int(i))) for i in order]
    codes = [int(planes.colour_codes[int(i)]) for i in order]

    def convert() -> int:
        with _one_torch_thread():
            for clip, code in zip(clips, codes):
                yuv420_to_rgb(clip, code)
        return len(clips)

    def read_rgb() -> int:
        with _one_torch_thread():
            for i in order:
                rgb_form[int(i)]
        return len(order)

    return {"yuv420_to_rgb": convert, "yuv420_rgb_form": read_rgb}


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def yuv420_figures(figures: dict, rgb_shape: Sequence[int]) -> dict[str, float]:
    """The ratios of the two forms, from the clips/s and bytes in `figures` (see the module)."""
    raw = float(np.prod(rgb_shape)) * figures["clips"]
    return {
        "bytes_over_raw_rgb": figures["shard_bytes"] / raw,
        "yuv420_bytes_over_raw_rgb": figures["yuv420_shard_bytes"] / raw,
        "yuv420_bytes_over_rgb_bytes": figures["yuv420_shard_bytes"] / figures["shard_bytes"],
        "yuv420_over_rgb_reads": figures["yuv420_shard_clips_per_s"] / figures["shard_clips_per_s"],
        "yuv420_shard_over_zstd_bound": (
            figures["yuv420_shard_clips_per_s"] / figures["yuv420_zstd_bound_clips_per_s"]
        ),
        # seconds converting over seconds of a whole CPU read in RGB form
        "yuv420_to_rgb_share_of_cpu_read": (
            figures["yuv420_rgb_form_clips_per_s"] / figures["yuv420_to_rgb_clips_per_s"]
        ),
        "yuv420_rgb_form_over_rgb_reads": figures["yuv420_rgb_form_clips_per_s"]
        / figures["shard_clips_per_s"],
    }
