"""Where the daemon's scenarios go (``replicator run``), next to the one-shot ones.

Each is a ``bench.scenarios.Scenario`` registered here by name; ``python -m bench
--scenarios`` then offers it like the others. The daemon scenarios of issue 6 are
push-to-replicated latency from registry notifications, a burst of pushes to one
tag converging, and throughput of many concurrent events; they need the daemon,
which the engine does not have yet, so the table is empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.scenarios import Scenario

DAEMON_SCENARIOS: dict[str, Scenario] = {}
