"""The alert rules, the dashboard and the documented metrics, against real servers.

promtool checks and unit-tests the rules; a real Prometheus scrapes a real daemon
that replicated 200 repositories pushed to a real registry, and evaluates every
dashboard and alert expression; the daemon's /metrics must match
the README with bounded label values; a real Pushgateway receives a real
backfill's figures.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from replicator import metrics
from replicator.backfill import BackfillSummary, Selection, backfill
from replicator.clients import registry_clients
from replicator.config import parse_config
from replicator.copier.copier import Copier
from replicator.errors import InvalidInputError, ReplicatorError
from replicator.pushgateway import DEFAULT_JOB, push_backfill_figures
from replicator.registry.client import open_session
from replicator.rules import compile_rules
from tests.lab.fixtures import RegistryFactory
from tests.lab.images import sample_image
from tests.lab.monitoring import (
    DESTINATIONS,
    PROMETHEUS_DIR,
    REPO_ROOT,
    RULES,
    PushgatewayServer,
    ReplicationLab,
    dashboard_expressions,
    finite_values,
    grafana_to_promql,
    load_alert_rules,
    load_dashboard,
    repository_names,
    require_binary,
)
from tests.lab.pusher import LabClient
from tests.lab.registry import find_free_port, probe_status

MONITORING_DOC = REPO_ROOT / "README.md"
REPOSITORY_COUNT = 200
# Metric names the dashboard and rules may use besides replicator's own.
PROMETHEUS_METRICS = frozenset({"up"})
# Dashboard queries that may rightly be empty after a healthy lab run.
MAY_BE_EMPTY = frozenset({"Credential refreshes [A]"})
# Alerts whose expression, without the final threshold, must have data in the lab.
ALERTS_WITH_DATA = (
    "ReplicatorReplicationFailing",
    "ReplicatorReplicationLagHigh",
    "ReplicatorOldestEventTooOld",
    "ReplicatorDown",
)
FORBIDDEN_LABELS = frozenset({"repository", "tag", "digest", "reference", "image"})
# Labels every Prometheus series has, and the ones histograms add.
IMPLICIT_LABELS = frozenset({"le", "quantile"})
_METRIC_NAME = re.compile(r"\b(replicator_[a-z_]+|up)\b(?!\s*\()")
_HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
_THRESHOLD = re.compile(r"\s*(?:>=?|==)\s*[0-9.]+\s*$")
_BACKTICKED = re.compile(r"`([^`]+)`")
# Labels whose values come from the configuration or the package, not a list.
_CONFIGURED_LABELS = frozenset({"destination", "rule", "version"})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicationLab]:
    """Replicate 200 repositories through a daemon that Prometheus scrapes.

    The copies span many one-second scrapes, so counters rise between scrapes and
    rates and quantiles get real values.
    """
    lab = ReplicationLab(tmp_path_factory.mktemp("monitoring-lab"))
    try:
        lab.start()
        assert lab.prometheus is not None
        assert lab.send_unauthorized_webhook() == 401
        lab.push_one_image_everywhere(repository_names(REPOSITORY_COUNT))
        lab.wait_until_replicated()
        lab.prometheus.wait_for_scrapes_after(time.time())
        yield lab
    finally:
        lab.stop()


@pytest.fixture(scope="module")
def evaluated_at(lab: ReplicationLab) -> float:
    """Return the moment every query is evaluated at: after the last scrape."""
    assert lab.prometheus is not None
    return lab.prometheus.latest_scrape_s()


def test_alert_rules_pass_promtool_check() -> None:
    result = _promtool("check", "rules", "alerts.yaml")

    assert "SUCCESS: 7 rules found" in result.stdout


def test_alert_rule_unit_tests_pass() -> None:
    result = _promtool("test", "rules", "alerts.test.yaml")

    assert "SUCCESS" in result.stdout


def test_example_prometheus_config_passes_promtool_check() -> None:
    result = _promtool("check", "config", "prometheus.example.yaml")

    assert "is valid prometheus config file syntax" in result.stdout


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    alert_names = {rule["alert"] for rule in load_alert_rules()}
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts.test.yaml").read_text())
    cases = [case for test in tests["tests"] for case in test["alert_rule_test"]]

    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    silent = {case["alertname"] for case in cases if not case["exp_alerts"]}

    assert (firing, silent) == (alert_names, alert_names)


def test_every_alert_has_summary_description_runbook_and_severity() -> None:
    for rule in load_alert_rules():
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook"} <= set(annotations), rule["alert"]
        assert all(annotations[key].strip() for key in annotations), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]


def test_dashboard_takes_its_datasource_from_the_prometheus_input() -> None:
    dashboard = load_dashboard()
    expected = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    variables = {
        variable["name"]: variable for variable in dashboard["templating"]["list"]
    }

    assert [entry["name"] for entry in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    for panel in _data_panels(dashboard):
        assert panel["datasource"] == expected, panel["title"]
        assert all(target["datasource"] == expected for target in panel["targets"])
    for name in ("job", "destination"):
        assert variables[name]["datasource"] == expected


def test_dashboard_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = load_dashboard()["panels"]
    cells = [
        (panel["gridPos"]["x"] + dx, panel["gridPos"]["y"] + dy)
        for panel in panels
        for dx in range(panel["gridPos"]["w"])
        for dy in range(panel["gridPos"]["h"])
    ]

    assert len({panel["id"] for panel in panels}) == len(panels)
    assert len(set(cells)) == len(cells)
    assert all(panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24 for panel in panels)


def test_dashboard_has_the_panels_operators_need() -> None:
    titles = {panel["title"] for panel in _data_panels(load_dashboard())}

    assert {
        "Replication rate by destination and result",
        "Errors by destination",
        "Replication lag (push to destination tag)",
        "Throughput by destination",
        "Blob dedup ratio by destination",
        "Retries and 429s",
        "Queue depth and oldest event age",
        "Registry latency by method",
        "Registry requests by status class",
        "Credential refreshes",
        "Events received",
        "Events rejected by reason",
    } <= titles


def test_dashboard_and_alerts_use_only_exported_metrics() -> None:
    exported = _exported_metric_names() | PROMETHEUS_METRICS
    expressions = [
        *dashboard_expressions(load_dashboard()).values(),
        *(rule["expr"] for rule in load_alert_rules()),
    ]

    used = {
        _family(name) for expr in expressions for name in _METRIC_NAME.findall(expr)
    }

    assert used - exported == set()


def test_dashboard_expressions_parse_and_return_data(
    lab: ReplicationLab, evaluated_at: float
) -> None:
    assert lab.prometheus is not None
    empty = []
    for key, expr in dashboard_expressions(load_dashboard()).items():
        result = lab.prometheus.query(expr, evaluated_at)
        if not finite_values(result) and key not in MAY_BE_EMPTY:
            empty.append(f"{key}: {expr}")

    assert empty == []


def test_dashboard_variables_find_values(
    lab: ReplicationLab, evaluated_at: float
) -> None:
    assert lab.prometheus is not None
    variables = load_dashboard()["templating"]["list"]
    queries = {
        variable["name"]: variable["query"]["query"]
        for variable in variables
        if variable["type"] == "query"
    }

    values = {
        name: sorted(_label_values(lab, query, evaluated_at))
        for name, query in queries.items()
    }

    assert values == {"job": ["replicator"], "destination": sorted(DESTINATIONS)}


def test_alert_expressions_evaluate_without_errors(
    lab: ReplicationLab, evaluated_at: float
) -> None:
    assert lab.prometheus is not None
    prometheus = lab.prometheus
    rules = {rule["alert"]: rule for rule in load_alert_rules()}

    for rule in rules.values():
        prometheus.query(rule["expr"], evaluated_at)
    loaded = {rule["name"]: rule for rule in prometheus.rules()}
    without_thresholds = {
        name: prometheus.query(_THRESHOLD.sub("", rules[name]["expr"]), evaluated_at)
        for name in ALERTS_WITH_DATA
    }

    assert set(loaded) == set(rules)
    assert {name: rule["health"] for name, rule in loaded.items()} == dict.fromkeys(
        rules, "ok"
    )
    assert [name for name, result in without_thresholds.items() if not result] == []


def test_no_alert_fires_after_a_short_run(lab: ReplicationLab) -> None:
    assert lab.prometheus is not None

    states = {rule["name"]: rule["state"] for rule in lab.prometheus.rules()}

    # Pending is possible (one image fails on purpose); every rule waits minutes.
    assert [name for name, state in states.items() if state == "firing"] == []


def test_daemon_answers_the_kubernetes_probes(lab: ReplicationLab) -> None:
    assert lab.daemon is not None

    statuses = [_status(f"{lab.daemon.url}{path}") for path in ("/healthz", "/readyz")]

    assert statuses == [200, 200]


def test_documented_metrics_exist_with_their_labels(lab: ReplicationLab) -> None:
    assert lab.daemon is not None
    documented = _documented_metrics(section="Daemon metrics")
    families = lab.daemon.samples()

    observed = {
        name: _label_names(families.get(_family(name), [])) for name in documented
    }

    assert observed == documented


def test_documented_metrics_are_every_exported_metric() -> None:
    documented = set(_documented_metrics(section="Daemon metrics"))
    documented |= set(_documented_metrics(section="Backfill metrics"))

    assert {_family(name) for name in documented} == _exported_metric_names()


def test_label_values_stay_bounded_over_200_repositories(lab: ReplicationLab) -> None:
    assert lab.daemon is not None
    families = lab.daemon.samples()
    vocabulary = _documented_label_values()
    repositories = set(lab.pushed)
    assert len(repositories) == REPOSITORY_COUNT

    unexpected = []
    label_sets = 0
    for family, samples in families.items():
        if not family.startswith("replicator_"):
            continue
        distinct = {
            tuple(sorted((k, v) for k, v in labels.items() if k not in IMPLICIT_LABELS))
            for _, labels, _ in samples
        }
        label_sets += len(distinct)
        for labels in distinct:
            for label, value in labels:
                allowed = vocabulary.get((family, label), vocabulary.get(("", label)))
                if (
                    label in FORBIDDEN_LABELS
                    or value in repositories
                    or (allowed is not None and value not in allowed)
                ):
                    unexpected.append(f"{family} {label}={value}")

    assert unexpected == []
    # Distinct label sets over all families: fixed by the vocabularies, not by the
    # number of repositories (a repository label would make this 200 or more).
    assert label_sets < 100


async def test_backfill_figures_reach_the_pushgateway(
    tmp_path: Path, registry_factory: RegistryFactory
) -> None:
    source, destination = registry_factory(), registry_factory()
    for name in ("pg/one", "pg/two"):
        LabClient(source.url).push_image(name, "1.0", sample_image(name))
    gateway = PushgatewayServer(tmp_path / "pushgateway").start()
    try:
        summary = await _backfill(source.url, destination.url)
        push_backfill_figures(gateway.url, summary, grouping_key={"source": "lab"})
        families = gateway.samples()
    finally:
        gateway.stop()

    copied = [
        value
        for name, labels, value in families["replicator_images"]
        if name == "replicator_images_total"
        and labels["job"] == DEFAULT_JOB
        and labels["source"] == "lab"
        and labels["result"] == "copied"
    ]
    assert summary.failed == 0
    assert sum(copied) >= 2
    assert _gauge(families, "replicator_backfill_last_success_timestamp_seconds") > 0
    assert _gauge(families, "replicator_backfill_duration_seconds") > 0
    pushed = {
        name
        for samples in families.values()
        for name, labels, _ in samples
        if labels.get("job") == DEFAULT_JOB
    }
    # push_time_seconds and push_failure_time_seconds are the Pushgateway's own.
    assert {name for name in pushed if not name.startswith("replicator_")} == {
        "push_time_seconds",
        "push_failure_time_seconds",
    }


async def test_failed_backfill_keeps_the_last_success_time(
    tmp_path: Path, registry_factory: RegistryFactory
) -> None:
    source, destination = registry_factory(), registry_factory()
    LabClient(source.url).push_image("pg/fails", "1.0", sample_image("pg/fails"))
    nowhere = f"http://127.0.0.1:{find_free_port('127.0.0.1')}"
    gateway = PushgatewayServer(tmp_path / "pushgateway").start()
    try:
        succeeded = await _backfill(source.url, destination.url)
        push_backfill_figures(gateway.url, succeeded)
        first = _gauge(
            gateway.samples(), "replicator_backfill_last_success_timestamp_seconds"
        )
        failed = await _backfill(source.url, nowhere)
        push_backfill_figures(gateway.url, failed)
        families = gateway.samples()
    finally:
        gateway.stop()

    assert failed.failed == 1
    assert _gauge(families, "replicator_backfill_last_success_timestamp_seconds") == (
        first
    )
    assert _gauge(families, "replicator_backfill_last_run_timestamp_seconds") > first


def test_push_refuses_a_url_without_scheme() -> None:
    with pytest.raises(InvalidInputError, match="Pushgateway URL"):
        push_backfill_figures("pushgateway:9091", _empty_summary())


def test_push_to_a_closed_port_is_one_clear_error() -> None:
    url = f"http://127.0.0.1:{find_free_port('127.0.0.1')}"

    with pytest.raises(ReplicatorError, match="cannot push backfill metrics"):
        push_backfill_figures(url, _empty_summary(), timeout_s=2)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool", "prometheus")
    result = subprocess.run(
        [promtool, *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _data_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def _exported_metric_names() -> set[str]:
    """Return the family names metrics.py defines, as Prometheus shows them."""
    registries = (metrics.BACKFILL_REGISTRY, REGISTRY)
    return {
        family.name + ("_info" if family.type == "info" else "")
        for registry in registries
        for family in registry.collect()
        if family.name.startswith("replicator_")
    }


def _family(name: str) -> str:
    """Return the family a sample or metric name belongs to, as documented."""
    for suffix in _HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name != "replicator_build_info":
            return name.removesuffix(suffix)
    return name.removesuffix("_total") if name.endswith("_total") else name


def _label_names(samples: list[tuple[str, dict[str, str], float]]) -> set[str]:
    return {label for _, labels, _ in samples for label in labels} - IMPLICIT_LABELS


def _documented_metrics(section: str) -> dict[str, set[str]]:
    """Return metric -> label names from the first table under ``section``."""
    documented = {}
    for cells in _table_rows(section):
        names = _BACKTICKED.findall(cells[0])
        if names:
            documented[names[0]] = set(_BACKTICKED.findall(cells[2]))
    assert documented, f"no metrics table under {section!r} in {MONITORING_DOC}"
    return documented


def _documented_label_values() -> dict[tuple[str, str], set[str]]:
    """Return (metric or "", label) -> allowed values from the labels table.

    Destination and rule names come from the lab's configuration; the version of
    build info is the package's.
    """
    vocabulary: dict[tuple[str, str], set[str]] = {
        ("", "destination"): set(DESTINATIONS),
        ("", "rule"): set(RULES),
    }
    for cells in _table_rows("Labels"):
        labels = _BACKTICKED.findall(cells[0])
        on = _BACKTICKED.findall(cells[1])
        values = set(_BACKTICKED.findall(cells[2]))
        if not labels or not values or labels[0] in _CONFIGURED_LABELS:
            continue
        for metric in on or [""]:
            vocabulary[(_family(metric) if metric else "", labels[0])] = values
    return vocabulary


def _table_rows(section: str) -> list[list[str]]:
    """Return the cells of the first Markdown table after a heading."""
    lines = MONITORING_DOC.read_text().splitlines()
    heading = next(
        index
        for index, line in enumerate(lines)
        if line.startswith("#") and line.lstrip("#").strip() == section
    )
    rows = []
    for line in lines[heading + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|") and not re.fullmatch(r"\|[\s|:-]+\|", line):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows and not line.startswith("|"):
            break
    return rows[1:]


def _label_values(lab: ReplicationLab, query: str, at_s: float) -> set[str]:
    """Evaluate Grafana's ``label_values(selector, label)`` through the API."""
    assert lab.prometheus is not None
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", grafana_to_promql(query))
    assert match is not None, query
    selector, label = match.groups()
    result = lab.prometheus.query(f"group by ({label}) ({selector})", at_s)
    return {sample["metric"][label] for sample in result}


def _status(url: str) -> int | None:
    return probe_status(url, timeout_s=5)


def _gauge(families: dict[str, Any], name: str) -> float:
    values = [value for sample, _, value in families.get(name, []) if sample == name]
    assert len(values) == 1, f"{name}: {values}"
    return float(values[0])


def _empty_summary() -> BackfillSummary:
    return BackfillSummary()


async def _backfill(source_url: str, destination_url: str) -> BackfillSummary:
    """Run a real backfill in this process, as ``replicator backfill`` does."""
    document = {
        "version": 1,
        "source": "source",
        "registries": {
            "source": {"url": source_url, "insecure": True},
            "destination": {"url": destination_url, "insecure": True},
        },
        "rules": [
            {
                "name": "all",
                "destinations": [{"registry": "destination"}],
            }
        ],
        "retry": {"attempts": 1},
    }
    config = parse_config(document, "test")
    async with open_session() as session:
        clients = registry_clients(config, session)
        selection = Selection(clients["source"], compile_rules(config), clients)
        return await backfill(selection, Copier(), images_at_once=4)
