"""Run the command line interface as ``python -m replicator``."""

from __future__ import annotations

from replicator.cli import main

main()
