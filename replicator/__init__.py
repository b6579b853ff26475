"""replicator: copy container images between registries, byte for byte."""

from __future__ import annotations

__version__ = "0.1.0"
