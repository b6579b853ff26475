"""Draw docs/dashboard.png: the Grafana dashboard's main panels from a real run.

Starts the monitoring lab of ``tests/deploy`` (registries, a ``replicator run``
daemon fed by registry notifications, a fault proxy, Prometheus scraping the
daemon), pushes waves of images for about two minutes, then evaluates the
queries of ``deploy/grafana/replicator.json`` over the run through Prometheus's
HTTP API and plots them with matplotlib. With ``--prometheus URL`` it plots from a
running Prometheus that already holds replicator data instead.

    PYTHONPATH=. .venv/bin/python scripts/plot_dashboard.py [--out docs/dashboard.png]

Needs the Debian packages docker-registry and prometheus, and matplotlib in the
virtualenv (``pip install matplotlib``; it is not a runtime dependency).
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, PercentFormatter

from tests.lab.images import base_layer, build_image, make_layer, random_tar
from tests.lab.monitoring import (
    GRAFANA_VARIABLES,
    PrometheusServer,
    ReplicationLab,
    load_dashboard,
    repository_names,
)
from tests.lab.proxy import MANIFEST_PATH, too_many_requests
from tests.lab.pusher import LabClient

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "dashboard.png"
# Shorter windows than a live dashboard's: the run lasts minutes, not hours.
PLOT_VARIABLES = {**GRAFANA_VARIABLES, "$__rate_interval": "20s", "$__range": "5m"}
STEP_S = 2.0
WAVES = 10
REPOSITORIES_PER_WAVE = 12
WAVE_INTERVAL_S = 10.0
# The panels drawn, by their titles in the dashboard, in reading order.
PANELS = (
    "Replication rate by destination and result",
    "Replication lag (push to destination tag)",
    "Throughput by destination",
    "Blob dedup ratio by destination",
    "Queue depth and oldest event age",
    "Retries and 429s",
    "Registry requests by status class",
    "Registry latency by method",
    "Events rejected by reason",
)
UNITS = {
    "ops": "per second",
    "reqps": "requests/s",
    "s": "seconds",
    "Bps": "bytes/s",
    "percentunit": "share",
    "none": "",
}


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a panel: its legend, times and values."""

    legend: str
    times_s: list[float]
    values: list[float]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the lab (or use --prometheus), plot the panels, write the PNG."""
    arguments = _parse_arguments(argv)
    if arguments.prometheus:
        prometheus = PrometheusServer(Path(tempfile.mkdtemp()))
        prometheus.port = int(arguments.prometheus.rsplit(":", 1)[1].rstrip("/"))
        end_s = time.time()
        _plot(prometheus, end_s - arguments.minutes * 60, end_s, arguments.out)
        return 0
    with tempfile.TemporaryDirectory(prefix="replicator-plot-") as workdir:
        lab = ReplicationLab(Path(workdir))
        try:
            started_s = _run_workload(lab.start())
            assert lab.prometheus is not None
            _plot(lab.prometheus, started_s, time.time(), arguments.out)
        finally:
            lab.stop()
    print(f"wrote {arguments.out}")
    return 0


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--prometheus",
        metavar="URL",
        help="plot from this Prometheus (http://127.0.0.1:PORT) instead of a lab run",
    )
    parser.add_argument(
        "--minutes", type=float, default=15, help="with --prometheus: how far back"
    )
    return parser.parse_args(argv)


def _run_workload(lab: ReplicationLab) -> float:
    """Push waves of images of growing size, with a burst of 429s midway."""
    assert lab.proxy is not None
    assert lab.prometheus is not None
    started_s = time.time()
    for wave in range(WAVES):
        names = repository_names(REPOSITORIES_PER_WAVE, wave * REPOSITORIES_PER_WAVE)
        if wave == WAVES // 2:
            lab.proxy.add_fault(
                too_many_requests(retry_after_s=1),
                method="HEAD",
                path=MANIFEST_PATH,
                times=15,
            )
        _push_wave(lab, names, size_bytes=(wave + 1) * 256 * 1024)
        print(f"wave {wave + 1}/{WAVES}: pushed {len(names)} images")
        time.sleep(WAVE_INTERVAL_S)
    lab.wait_until_replicated(timeout_s=180)
    lab.prometheus.wait_for_scrapes_after(time.time() + 5)
    _print_outcomes(lab)

    return started_s


def _print_outcomes(lab: ReplicationLab) -> None:
    """Say how the images ended, with the errors of failed attempts, from the log."""
    assert lab.daemon is not None
    outcomes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for line in lab.daemon.log_path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "image_replicated":
            outcomes[entry["outcome"]] += 1
            if entry.get("error"):
                errors[entry["error"].split(" (")[0]] += 1
    print(f"image replications by outcome: {dict(outcomes)}")
    for error, count in errors.most_common():
        print(f"  {count} x {error}")


def _push_wave(lab: ReplicationLab, names: list[str], size_bytes: int) -> None:
    """Push one image per repository: the shared base and a random layer."""
    client = LabClient(lab.source.url)
    for name in names:
        unique = make_layer(random_tar(size_bytes, seed=name), "none")
        client.push_image(name, "1.0", build_image([base_layer(), unique]))
    lab.pushed.extend(names)


def _plot(
    prometheus: PrometheusServer, start_s: float, end_s: float, out: Path
) -> None:
    """Draw the panels in a 3x3 grid and save the figure."""
    panels = {
        panel["title"]: panel
        for panel in load_dashboard()["panels"]
        if panel["type"] == "timeseries"
    }
    figure, axes = plt.subplots(3, 3, figsize=(18, 12), dpi=100)
    figure.suptitle(
        "replicator dashboard (deploy/grafana/replicator.json), lab run",
        fontsize=15,
        fontweight="bold",
    )
    for axis, title in zip(axes.flat, PANELS, strict=True):
        panel = panels[title]
        series = _panel_series(prometheus, panel, start_s, end_s)
        _draw(axis, panel, series, start_s)
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    plt.close(figure)


def _panel_series(
    prometheus: PrometheusServer, panel: dict[str, Any], start_s: float, end_s: float
) -> list[Series]:
    series = []
    for target in panel["targets"]:
        expr = target["expr"]
        for variable, value in PLOT_VARIABLES.items():
            expr = expr.replace(variable, value)
        for result in prometheus.query_range(expr, start_s, end_s, STEP_S):
            legend = _legend(target["legendFormat"], result["metric"])
            times = [float(point[0]) for point in result["values"]]
            values = [float(point[1]) for point in result["values"]]
            series.append(Series(legend, times, values))
    return series


def _legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), template)


def _draw(
    axis: Axes, panel: dict[str, Any], series: list[Series], start_s: float
) -> None:
    unit = panel["fieldConfig"]["defaults"].get("unit", "none")
    right_axis_names = _right_axis_names(panel)
    twin = axis.twinx() if right_axis_names else None
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, line in enumerate(sorted(series, key=lambda item: item.legend)):
        target_axis = (
            twin if twin is not None and line.legend in right_axis_names else axis
        )
        minutes = [(moment - start_s) / 60 for moment in line.times_s]
        # One color cycle across both axes, so no two lines share a color.
        color = colors[index % len(colors)]
        target_axis.plot(
            minutes, line.values, label=line.legend, linewidth=1.6, color=color
        )
    axis.set_title(panel["title"], fontsize=12, fontweight="bold")
    axis.set_xlabel("minutes into the run")
    axis.set_ylabel(UNITS.get(unit, unit))
    axis.grid(True, alpha=0.3)
    _format_axis(axis, unit)
    if twin is not None:
        twin.set_ylabel("seconds")
        lines = axis.get_lines() + twin.get_lines()
        labels = [str(line.get_label()) for line in lines]
        axis.legend(lines, labels, fontsize=8, loc="upper left")
    elif series:
        axis.legend(fontsize=8, loc="upper left", ncol=2)
    else:
        axis.text(
            0.5, 0.5, "no data", ha="center", va="center", transform=axis.transAxes
        )


def _right_axis_names(panel: dict[str, Any]) -> set[str]:
    names = set()
    for override in panel["fieldConfig"]["overrides"]:
        properties = {item["id"]: item["value"] for item in override["properties"]}
        if properties.get("custom.axisPlacement") == "right":
            names.add(override["matcher"]["options"])
    return names


def _format_axis(axis: Axes, unit: str) -> None:
    if unit == "percentunit":
        axis.yaxis.set_major_formatter(PercentFormatter(1.0))
        axis.set_ylim(0, 1.05)
    elif unit == "Bps":
        axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: _bytes(value)))


def _bytes(value: float) -> str:
    for suffix in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.3g} {suffix}/s"
        value /= 1024
    return f"{value:.3g} TiB/s"


if __name__ == "__main__":
    raise SystemExit(main())
