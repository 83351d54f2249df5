"""vfcache.pipelines.bundles."""
