"""vfcache: fixed-frame clip caches for video-forensics datasets (the `vfcache` command lives in cli.py)."""

__version__ = "0.1.0"
