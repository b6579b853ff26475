"""The targets issue 6 sets, checked against the figures of one bench invocation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from bench.measure import Measurement
from bench.results import ScenarioResult

MB = 1_000_000
LAG_P99_LIMIT_S = 2.0


@dataclass(frozen=True, slots=True)
class Target:
    """One target: what is required, what was measured, whether it was met."""

    scenario: str
    requirement: str
    measured: str
    met: bool | None
    """None when the scenario did not run or a run was wrong."""
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """Return the target as JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Rule:
    scenario: str
    requirement: str
    peer: str
    limit: float
    strict: bool = False
    memory: bool = False


_RULES = (
    _Rule("cold", "cold backfill <= 1.2x the raw floor's time", "floor", 1.2),
    _Rule(
        "cold", "cold backfill >= 2x faster than skopeo sync (<= 0.5x)", "skopeo", 0.5
    ),
    _Rule("noop", "no-op re-run <= 0.5x skopeo sync's time", "skopeo", 0.5),
    _Rule("big-layer", "big layer: peak RSS < 120 MB", "", 120, True, True),
    _Rule("big-layer", "big layer: time within 1.2x the raw floor's", "floor", 1.2),
)


def evaluate(
    results: list[ScenarioResult], startup: Mapping[str, Measurement]
) -> list[Target]:
    """Check every target whose scenario ran."""
    by_name = {result.name: result for result in results}
    targets = [
        _evaluate(rule, by_name[rule.scenario], startup)
        for rule in _RULES
        if rule.scenario in by_name
    ]
    if "daemon-burst" in by_name:
        targets.append(_lag_target(by_name["daemon-burst"]))
    return targets


def _lag_target(result: ScenarioResult) -> Target:
    requirement = f"daemon burst: replication lag p99 < {LAG_P99_LIMIT_S:g} s"
    p99 = result.figure("replicator", "lag_p99_s")
    if p99 is None:
        return Target(result.name, requirement, "no figure (a run failed)", None)
    met = p99 < LAG_P99_LIMIT_S
    p50 = result.figure("replicator", "lag_p50_s") or 0.0
    detail = "" if met else f"median over runs of p50 {p50:.2f} s"
    return Target(result.name, requirement, f"{p99:.2f} s", met, detail)


def _evaluate(
    rule: _Rule, result: ScenarioResult, startup: Mapping[str, Measurement]
) -> Target:
    value = (
        _peak_rss_mb(result) if rule.memory else result.ratio("replicator", rule.peer)
    )
    if value is None:
        return Target(rule.scenario, rule.requirement, "no figure (a run failed)", None)
    met = value < rule.limit if rule.strict else value <= rule.limit
    shown = f"{value:.0f} MB" if rule.memory else f"{value:.2f}x"
    explain = _memory_detail if rule.memory else _time_detail
    detail = "" if met else explain(rule, result, startup)

    return Target(rule.scenario, rule.requirement, shown, met, detail)


def _peak_rss_mb(result: ScenarioResult) -> float | None:
    peak = result.summary("replicator").median_peak_rss_bytes
    return None if peak is None else peak / MB


def _time_detail(
    rule: _Rule, result: ScenarioResult, startup: Mapping[str, Measurement]
) -> str:
    ours = result.summary("replicator").median_wall_s or 0.0
    theirs = result.summary(rule.peer).median_wall_s or 0.0
    parts = [f"median {ours:.2f} s against {rule.peer}'s {theirs:.2f} s"]
    parts += _startup_parts(startup, ("replicator", rule.peer), _seconds)
    return "; ".join(parts)


def _memory_detail(
    rule: _Rule, result: ScenarioResult, startup: Mapping[str, Measurement]
) -> str:
    return "; ".join(_startup_parts(startup, ("replicator",), _megabytes))


def _startup_parts(
    startup: Mapping[str, Measurement],
    names: tuple[str, ...],
    show: Callable[[Measurement], str],
) -> list[str]:
    return [
        f"{name} start-up alone (--version) {show(startup[name])}"
        for name in names
        if name in startup
    ]


def _seconds(measurement: Measurement) -> str:
    return f"takes {measurement.wall_s:.2f} s"


def _megabytes(measurement: Measurement) -> str:
    return f"peaks at {measurement.peak_rss_bytes / MB:.0f} MB"
