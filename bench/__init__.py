"""Benchmarks of the copy engine against skopeo and a raw-transfer floor (issue 6).

``python -m bench`` builds a deterministic corpus from real files, starts local
registries, runs each scenario several times with fresh destinations, checks every
run's result and writes ``docs/benchmarks.md`` and ``docs/benchmarks.json``.
"""

from __future__ import annotations
