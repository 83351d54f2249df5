"""`python -m vfcache.cli ...` runs the `vfcache` command."""

from vfcache.cli import main

main()
