"""The benchmark suite runs end to end at its smoke size and writes its report.

Only completeness and form are asserted: timings on a shared test machine mean
nothing, and the bench itself fails a run that leaves a destination wrong.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = (
    "cold",
    "noop",
    "fanout",
    "big-layer",
    "scaling-smoke",
    "daemon-events",
    "daemon-burst",
)
TOOLS = {
    "cold": {"replicator", "skopeo", "floor"},
    "noop": {"replicator", "skopeo"},
    "fanout": {"replicator", "skopeo", "floor"},
    "big-layer": {"replicator", "skopeo", "floor"},
    "scaling-smoke": {"replicator", "floor"},
    "daemon-events": {"replicator"},
    "daemon-burst": {"replicator"},
}


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the smoke benchmark once; return its JSON report."""
    root = tmp_path_factory.mktemp("bench")
    out = root / "out"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--size",
            "smoke",
            "--runs",
            "1",
            "--out",
            str(out),
            "--cache-dir",
            str(root / "cache"),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=370,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report: dict[str, Any] = json.loads((out / "benchmarks.json").read_text())
    report["_markdown"] = (out / "benchmarks.md").read_text()
    report["_stdout"] = completed.stdout

    return report


@pytest.mark.timeout(400)
def test_runs_every_scenario_with_every_tool(smoke_report: dict[str, Any]) -> None:
    scenarios = {scenario["name"]: scenario for scenario in smoke_report["scenarios"]}

    assert tuple(scenarios) == SCENARIOS
    for name, scenario in scenarios.items():
        assert {run["tool"] for run in scenario["runs"]} == TOOLS[name]


@pytest.mark.timeout(400)
def test_every_run_is_checked_and_correct(smoke_report: dict[str, Any]) -> None:
    runs = [run for scenario in smoke_report["scenarios"] for run in scenario["runs"]]

    assert runs
    for run in runs:
        assert run["problems"] == []
        assert run["checked"] > 0
        assert run["wall_s"] > 0
        assert run["peak_rss_bytes"] > 0


@pytest.mark.timeout(400)
def test_reports_medians_ratios_and_targets(smoke_report: dict[str, Any]) -> None:
    cold = smoke_report["scenarios"][0]
    requirements = [target["requirement"] for target in smoke_report["targets"]]

    assert cold["summaries"]["replicator"]["median_wall_s"] > 0
    assert set(cold["ratios"]) == {"replicator/skopeo", "replicator/floor"}
    assert all(ratio > 0 for ratio in cold["ratios"].values())
    assert len(requirements) == 6
    assert all(target["met"] in (True, False) for target in smoke_report["targets"])


@pytest.mark.timeout(400)
def test_writes_markdown_with_machine_and_reproduction(
    smoke_report: dict[str, Any],
) -> None:
    markdown = smoke_report["_markdown"]

    for heading in ("## Targets", "## Figures", "## Machine", "## Reproduce"):
        assert heading in markdown
    assert smoke_report["machine"]["cpu_cores"] >= 1
    assert "targets" in smoke_report["_stdout"]


@pytest.mark.timeout(400)
def test_reports_the_daemon_figures(smoke_report: dict[str, Any]) -> None:
    scenarios = {scenario["name"]: scenario for scenario in smoke_report["scenarios"]}
    events = scenarios["daemon-events"]["figure_medians"]["replicator"]
    burst = scenarios["daemon-burst"]["figure_medians"]["replicator"]

    assert events["events_per_s"] > 0
    assert 0 <= burst["lag_p50_s"] <= burst["lag_p99_s"] <= burst["lag_max_s"]
    assert "lag p99 s" in smoke_report["_markdown"]
