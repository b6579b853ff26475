"""What a scenario measured: every run of every tool, and medians and ratios of them.

Ratios pair the runs of one invocation: run *k* of replicator against run *k* of
the peer (same corpus, same machine state, order rotated per run), and the median
of those ratios is reported. A tool with any failed run gets no figures at all.
Daemon scenarios have no peer; they report per-run ``figures`` (events/s, lag
quantiles) and their medians.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.corpus import Corpus

FIGURE_LABELS = {
    "events_per_s": "events/s",
    "lag_p50_s": "lag p50 s",
    "lag_p99_s": "lag p99 s",
    "lag_max_s": "lag max s",
}
"""How reports head the per-run figures of the daemon scenarios."""


@dataclass(frozen=True, slots=True)
class ToolRun:
    """One measured, checked run of one tool."""

    tool: str
    run: int
    wall_s: float
    peak_rss_bytes: int
    exit_code: int
    checked: int
    problems: tuple[str, ...]
    excused_tags: int = 0
    cpu_s: float = 0.0
    figures: dict[str, float] = field(default_factory=dict)
    """Scenario-specific figures (daemon scenarios: events/s, lag quantiles)."""

    @property
    def ok(self) -> bool:
        """Say whether the run left every destination right."""
        return not self.problems


@dataclass(frozen=True, slots=True)
class CorpusStats:
    """The size of the corpus a scenario copied."""

    name: str
    repositories: int
    tags: int
    manifests: int
    blobs: int
    unique_bytes: int

    @classmethod
    def of(cls, corpus: Corpus) -> CorpusStats:
        """Return the figures of a corpus."""
        return cls(
            corpus.name,
            len(corpus.repositories),
            corpus.tag_count,
            len(corpus.manifests),
            len(corpus.blobs),
            corpus.unique_bytes,
        )


@dataclass(frozen=True, slots=True)
class ToolSummary:
    """Medians over a tool's runs; None when a run failed."""

    tool: str
    runs: int
    failed_runs: int
    median_wall_s: float | None
    min_wall_s: float | None
    max_wall_s: float | None
    median_peak_rss_bytes: int | None
    throughput_bytes_per_s: float | None
    median_cpu_s: float | None = None


@dataclass(slots=True)
class ScenarioResult:
    """Every run of a scenario, with what was copied and how often."""

    name: str
    title: str
    corpus: CorpusStats
    destinations: int
    tools: tuple[str, ...]
    moves_content: bool = True
    """False for runs that should push nothing (no throughput then)."""
    runs: list[ToolRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: tuple[str, ...] = ()
    """The names of the per-run figures this scenario reports instead of MB/s."""

    @property
    def bytes_moved(self) -> int:
        """Return the blob bytes one cold copy moves to all destinations."""
        return self.corpus.unique_bytes * self.destinations

    def runs_of(self, tool: str) -> list[ToolRun]:
        """Return a tool's runs in run order."""
        return sorted((r for r in self.runs if r.tool == tool), key=lambda r: r.run)

    def summary(self, tool: str) -> ToolSummary:
        """Return the medians of a tool's runs."""
        runs = self.runs_of(tool)
        failed = sum(1 for run in runs if not run.ok)
        if not runs or failed:
            return ToolSummary(tool, len(runs), failed, None, None, None, None, None)
        walls = [run.wall_s for run in runs]
        median_wall_s = statistics.median(walls)

        return ToolSummary(
            tool=tool,
            runs=len(runs),
            failed_runs=0,
            median_wall_s=median_wall_s,
            min_wall_s=min(walls),
            max_wall_s=max(walls),
            median_peak_rss_bytes=int(
                statistics.median(run.peak_rss_bytes for run in runs)
            ),
            throughput_bytes_per_s=(
                self.bytes_moved / median_wall_s if self.moves_content else None
            ),
            median_cpu_s=statistics.median(run.cpu_s for run in runs),
        )

    def figure(self, tool: str, name: str) -> float | None:
        """Return the median of one figure over a tool's runs; None if one failed."""
        runs = self.runs_of(tool)
        if not runs or any(not run.ok or name not in run.figures for run in runs):
            return None
        return statistics.median(run.figures[name] for run in runs)

    def ratio(self, tool: str, peer: str) -> float | None:
        """Return the median of tool / peer wall time over paired runs."""
        if self.summary(tool).failed_runs or self.summary(peer).failed_runs:
            return None
        peers = {run.run: run for run in self.runs_of(peer)}
        ratios = [
            run.wall_s / peers[run.run].wall_s
            for run in self.runs_of(tool)
            if run.run in peers and peers[run.run].wall_s > 0
        ]
        return statistics.median(ratios) if ratios else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScenarioResult:
        """Rebuild a scenario from what ``to_json`` wrote."""
        runs = [
            ToolRun(**{**run, "problems": tuple(run["problems"])})
            for run in data["runs"]
        ]
        return cls(
            name=data["name"],
            title=data["title"],
            corpus=CorpusStats(**data["corpus"]),
            destinations=data["destinations"],
            tools=tuple(data["summaries"]),
            moves_content=data.get("moves_content", True),
            runs=runs,
            notes=list(data["notes"]),
            figures=tuple(data.get("figures", ())),
        )

    def to_json(self) -> dict[str, Any]:
        """Return the scenario, its runs, summaries and ratios as JSON-ready data."""
        peers = [tool for tool in self.tools if tool != "replicator"]
        return {
            "name": self.name,
            "title": self.title,
            "corpus": asdict(self.corpus),
            "destinations": self.destinations,
            "moves_content": self.moves_content,
            "summaries": {tool: asdict(self.summary(tool)) for tool in self.tools},
            "ratios": {
                f"replicator/{peer}": self.ratio("replicator", peer) for peer in peers
            },
            "runs": [
                {**asdict(run), "problems": list(run.problems)} for run in self.runs
            ],
            "notes": self.notes,
            "figures": list(self.figures),
            "figure_medians": {
                tool: {name: self.figure(tool, name) for name in self.figures}
                for tool in self.tools
            }
            if self.figures
            else {},
        }
