"""Source kind `sample`: the embedded synthetic dataset, generated on the machine (offline).

`fetch` runs `generate_sample` into `raw/<dataset>/` (a no-op when it is complete);
`list_videos` labels the files by the config's layout (`{domain}/{label}/{generator}/{name}`
for `configs/datasets/sample.yaml`). The deliberately broken files are listed too, so
probe and extract record why they fail.
"""

from __future__ import annotations

from vfcache.pipelines.sources.base import RawDirUnderRoot, VideoCandidate
from vfcache.pipelines.sources.labels import candidates_from_layout
from vfcache.pipelines.sources.plan import FetchPlan
from vfcache.pipelines.sources.sample import generate_sample

from vfcache.config import DatasetConfig
from vfcache.errors import ConfigError
from vfcache.layout import DataRoot

SAMPLE_SOURCE_KEYS = {"workers"}


class SampleSource(RawDirUnderRoot):
    def __init__(self, config: DatasetConfig):
        unknown = set(config.source) - SAMPLE_SOURCE_KEYS
        if unknown:
            key = sorted(unknown)[0]
            raise ConfigError(
                config.path or config.name,
                f"source.{key}",
                config.source[key],
                f"only the keys {sorted(SAMPLE_SOURCE_KEYS)}",
            )
        workers = config.source.get("workers", 2)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(
                config.path or config.name,
                "source.workers",
                workers,
                "a positive number of processes",
            )
        self.config = config
        self.workers = workers

    def plan_fetch(self, root: DataRoot) -> FetchPlan:
        return FetchPlan(
            self.config.name,
            "generated on this machine (PyAV), offline",
            self.config.terms,
            "",
            (),
            ("nothing is downloaded: `vfcache fetch sample` writes the videos",),
        )

    def fetch(self, root: DataRoot, *, progress: bool = True) -> None:
        generate_sample(self.raw_dir(root), workers=self.workers, progress=progress)

    def list_videos(self, root: DataRoot) -> list[VideoCandidate]:
        return candidates_from_layout(
            self.raw_dir(root),
            self.config.layout,
            dataset=self.config.name,
            default_domain=self.config.domain,
        )
