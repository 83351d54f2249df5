"""vfcache.bench."""
