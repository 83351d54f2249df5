"""vfcache: fixed-frame clip caches for video-forensics datasets, and a lean PyTorch layer that
trains from them.

The ground layer lives here (`vfcache.config`, `vfcache.errors`, `vfcache.cores`,
`vfcache.pixels`) and imports nothing above it; the `vfcache` command is the `vfcache.cli`
package on top, the benchmarks are `vfcache.bench`. The stage folders of the repository
(`pipelines/`, `manifests/`, `cache_tools/`, `trainers/`, and the YAML `configs/`) sit beside
this package, as the design card lays them out; they import as `vfcache.pipelines`, ...
Installed from a wheel they are inside this package; in a source checkout the checkout's
top folder is added to this package's search path, so the same names resolve there.
"""

from pathlib import Path

__version__ = "0.1.0"

_HERE = Path(__file__).resolve().parent
if not (_HERE / "pipelines").is_dir() and (_HERE.parent / "pipelines" / "__init__.py").is_file():
    __path__.append(str(_HERE.parent))  # a source checkout: vfcache.pipelines is ../pipelines
