"""The monitoring lab: a real daemon, real registries and a real Prometheus.

``ReplicationLab`` starts a source registry whose notifications go to a
``replicator run`` daemon's webhook, two destination registries (one behind token
auth and a fault proxy that throttles and refuses now and then), and the Debian
``prometheus`` server scraping the daemon with the scrape job and alert rules of
``deploy/prometheus/``. The tests in ``tests/deploy`` and ``scripts/plot_dashboard.py``
use it; everything listens on loopback and stops with the lab.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.lab.fixtures import LAB_USER
from tests.lab.images import sample_image
from tests.lab.proxy import (
    MANIFEST_PATH,
    FaultProxy,
    Respond,
    oci_error_body,
    too_many_requests,
)
from tests.lab.pusher import LabClient
from tests.lab.registry import (
    NotificationEndpoint,
    RegistryProcess,
    find_free_port,
    probe_status,
)
from tests.lab.token_server import TokenServer

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
DASHBOARD_PATH = REPO_ROOT / "deploy" / "grafana" / "replicator.json"
PROMETHEUS_BINARY = "prometheus"
PUSHGATEWAY_BINARY = "prometheus-pushgateway"

WEBHOOK_TOKEN = "lab-webhook-token-0123456789"
SCRAPE_INTERVAL_S = 1
# Stand-ins for Grafana's variables when a dashboard expression goes to the API.
GRAFANA_VARIABLES = {
    "$__rate_interval": "2m",
    "$__range": "10m",
    "$job": "replicator",
    "$destination": ".*",
}
DESTINATIONS = ("mirror", "backup")
RULES = ("to-mirror", "to-backup")
# Repositories under this prefix also go to the backup registry.
BACKUP_PREFIX = "lab/app-00"
FAILING_REPOSITORY = "lab/app-007"

_POLL_INTERVAL_S = 0.1
_PUSH_WORKERS = 16
_STOP_TIMEOUT_S = 10.0


class LabTimeout(AssertionError):
    """Something the lab waited for did not happen in time."""


class PromQLError(AssertionError):
    """Prometheus refused a query."""


def repository_names(count: int, start: int = 0) -> list[str]:
    """Return ``lab/app-000``, ``lab/app-001``... for a push."""
    return [f"lab/app-{number:03d}" for number in range(start, start + count)]


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, log: Path | None = None
) -> None:
    """Poll until ``condition`` holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(_POLL_INTERVAL_S)
    tail = _tail(log) if log is not None else ""
    raise LabTimeout(f"{what}: not after {timeout_s} s\n{tail}")


def grafana_to_promql(
    expr: str, variables: Mapping[str, str] = GRAFANA_VARIABLES
) -> str:
    """Replace Grafana's variables in a dashboard expression with test values."""
    for variable, value in variables.items():
        expr = expr.replace(variable, value)
    return expr


def dashboard_expressions(
    dashboard: Mapping[str, Any], variables: Mapping[str, str] = GRAFANA_VARIABLES
) -> dict[str, str]:
    """Return every panel query of a dashboard as PromQL, by panel title and ref."""
    expressions = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            key = f"{panel['title']} [{target['refId']}]"
            expressions[key] = grafana_to_promql(target["expr"], variables)
    return expressions


def load_dashboard() -> dict[str, Any]:
    """Return the parsed Grafana dashboard of deploy/grafana/."""
    dashboard: dict[str, Any] = json.loads(DASHBOARD_PATH.read_text())
    return dashboard


def load_alert_rules() -> list[dict[str, Any]]:
    """Return every alerting rule of deploy/prometheus/alerts.yaml."""
    document = yaml.safe_load((PROMETHEUS_DIR / "alerts.yaml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def parse_metrics(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """Return the samples of a /metrics page by family: (name, labels, value)."""
    return {
        family.name: [
            (sample.name, dict(sample.labels), sample.value)
            for sample in family.samples
        ]
        for family in text_string_to_metric_families(text)
    }


class ChildProcess:
    """A server binary run as our child, with its output in a log file."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.workdir = workdir
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """Return where the child's stdout and stderr go."""
        return self.workdir / f"{self.name}.log"

    def spawn(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        """Start the child in the lab directory."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                list(argv),
                cwd=self.workdir,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_for_status(self, url: str, status: int, timeout_s: float) -> None:
        """Wait until ``GET url`` answers ``status``; fail if the child exits."""

        def answers() -> bool:
            if self.process is None or self.process.poll() is not None:
                raise LabTimeout(f"{self.name} exited:\n{_tail(self.log_path)}")
            return probe_status(url) == status

        wait_until(answers, timeout_s, f"{self.name} at {url}", self.log_path)

    def stop(self, timeout_s: float = _STOP_TIMEOUT_S) -> int | None:
        """Send SIGTERM, then SIGKILL after ``timeout_s``; return the exit status."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout_s)
        return process.returncode


class PrometheusServer(ChildProcess):
    """The Debian ``prometheus`` server on a loopback port, with its HTTP API."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, "prometheus")
        self.port = 0

    @property
    def url(self) -> str:
        """Return the server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, config: Mapping[str, Any]) -> PrometheusServer:
        """Write ``config`` and start the server; wait until it is ready."""
        self.launch(config)
        self.wait_until_ready()

        return self

    def launch(self, config: Mapping[str, Any]) -> None:
        """Write ``config`` and start the server without waiting for it."""
        binary = require_binary(PROMETHEUS_BINARY, "prometheus")
        config_path = self.workdir / "prometheus.yaml"
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
        self.port = find_free_port("127.0.0.1")
        self.spawn(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ]
        )

    def wait_until_ready(self) -> None:
        """Wait until the server answers ``/-/ready``."""
        self.wait_for_status(f"{self.url}/-/ready", 200, timeout_s=30)

    def query(self, expr: str, at_s: float | None = None) -> list[dict[str, Any]]:
        """Evaluate an instant query; return its vector (or scalar as one sample)."""
        params = {"query": expr}
        if at_s is not None:
            params["time"] = f"{at_s:.3f}"
        data = self._get("/api/v1/query", params)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_range(
        self, expr: str, start_s: float, end_s: float, step_s: float
    ) -> list[dict[str, Any]]:
        """Evaluate a range query; return its matrix."""
        params = {
            "query": expr,
            "start": f"{start_s:.3f}",
            "end": f"{end_s:.3f}",
            "step": f"{step_s}",
        }
        result: list[dict[str, Any]] = self._get("/api/v1/query_range", params)[
            "result"
        ]
        return result

    def rules(self) -> list[dict[str, Any]]:
        """Return the loaded rules with their health."""
        groups = self._get("/api/v1/rules", {})["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def latest_scrape_s(self, job: str = "replicator") -> float:
        """Return the time of the newest scrape of ``job``, or 0 before any."""
        samples = self.query(f'max(timestamp(up{{job="{job}"}}))')
        return float(samples[0]["value"][1]) if samples else 0.0

    def wait_for_scrapes_after(self, moment_s: float, timeout_s: float = 15) -> None:
        """Wait until two scrapes started after ``moment_s``."""
        target = moment_s + SCRAPE_INTERVAL_S
        wait_until(
            lambda: self.latest_scrape_s() > target,
            timeout_s,
            "a Prometheus scrape",
            self.log_path,
        )

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            body = json.load(error)
            error.close()
            raise PromQLError(
                f"{params.get('query', path)}: {body.get('errorType')}: "
                f"{body.get('error')}"
            ) from None
        return body["data"]


class DaemonProcess(ChildProcess):
    """``replicator run`` as a child process with its configuration file."""

    def __init__(self, workdir: Path, port: int) -> None:
        super().__init__(workdir, "replicator")
        self.port = port

    @property
    def url(self) -> str:
        """Return the daemon's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def host_port(self) -> str:
        """Return ``host:port`` for a scrape target."""
        return f"127.0.0.1:{self.port}"

    def start(self, config: Mapping[str, Any], env: Mapping[str, str]) -> DaemonProcess:
        """Write the configuration and start the daemon; wait until it is ready."""
        self.launch(config, env)
        self.wait_until_ready()

        return self

    def launch(self, config: Mapping[str, Any], env: Mapping[str, str]) -> None:
        """Write the configuration and start the daemon without waiting for it."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "replicator.yaml"
        config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
        argv = [sys.executable, "-m", "replicator", "run", "--config", str(config_path)]
        self.spawn(argv, env={**os.environ, **env})

    def wait_until_ready(self) -> None:
        """Wait until ``/readyz`` answers 200."""
        self.wait_for_status(f"{self.url}/readyz", 200, timeout_s=30)

    def metrics_text(self) -> str:
        """Return the daemon's /metrics page."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            text: str = response.read().decode()
        return text

    def samples(self) -> dict[str, list[tuple[str, dict[str, str], float]]]:
        """Return the daemon's metrics, parsed."""
        return parse_metrics(self.metrics_text())


class PushgatewayServer(ChildProcess):
    """The Debian ``prometheus-pushgateway`` on a loopback port, without persistence."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, "pushgateway")
        self.port = 0

    @property
    def url(self) -> str:
        """Return the Pushgateway's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PushgatewayServer:
        """Start the Pushgateway; wait until it is ready."""
        binary = require_binary(PUSHGATEWAY_BINARY, "prometheus-pushgateway")
        self.port = find_free_port("127.0.0.1")
        self.spawn(
            [
                binary,
                f"--web.listen-address=127.0.0.1:{self.port}",
                # Debian's build persists to /var/lib/prometheus by default.
                "--persistence.file=",
            ]
        )
        self.wait_for_status(f"{self.url}/-/ready", 200, timeout_s=15)

        return self

    def samples(self) -> dict[str, list[tuple[str, dict[str, str], float]]]:
        """Return what the Pushgateway exposes, parsed."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            return parse_metrics(response.read().decode())


def require_binary(name: str, package: str) -> str:
    """Return the path of a binary, or fail naming the Debian package to install."""
    path = shutil.which(name)
    if path is None:
        raise LabTimeout(f"{name} is not installed: apt-get install {package}")
    return path


@dataclass
class ReplicationLab:
    """Registries, a daemon replicating on their notifications, and Prometheus."""

    root: Path
    registries: list[RegistryProcess] = field(default_factory=list)
    token_server: TokenServer | None = None
    proxy: FaultProxy | None = None
    daemon: DaemonProcess | None = None
    prometheus: PrometheusServer | None = None
    pushed: list[str] = field(default_factory=list)

    def start(self) -> ReplicationLab:
        """Start every server; the daemon is ready and scraped when this returns."""
        daemon_port = find_free_port("127.0.0.1")
        self.token_server = TokenServer(
            self.root / "token-server",
            users={LAB_USER.username: LAB_USER.password},
        ).start()
        source = self._registry("source", self._notifications(daemon_port))
        mirror = self._registry("mirror", token_server=self.token_server)
        backup = self._registry("backup")
        self.proxy = FaultProxy(mirror.url).start()
        self._add_faults(self.proxy)
        # The daemon and Prometheus start side by side: both take seconds.
        self.daemon = DaemonProcess(self.root / "daemon", daemon_port)
        self.daemon.launch(
            daemon_config(source, self.proxy, backup, daemon_port),
            {"WEBHOOK_TOKEN": WEBHOOK_TOKEN, "MIRROR_PASSWORD": LAB_USER.password},
        )
        self.prometheus = PrometheusServer(self.root / "prometheus")
        self.prometheus.launch(prometheus_config(self.daemon.host_port))
        self.daemon.wait_until_ready()
        self.prometheus.wait_until_ready()
        self.prometheus.wait_for_scrapes_after(time.time())

        return self

    def stop(self) -> int | None:
        """Stop everything the lab started; return the daemon's exit status."""
        status = self.daemon.stop() if self.daemon is not None else None
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.proxy is not None:
            self.proxy.stop()
        for registry in self.registries:
            registry.stop()
        if self.token_server is not None:
            self.token_server.stop()
        return status

    @property
    def source(self) -> RegistryProcess:
        """Return the registry the daemon replicates from."""
        return self.registries[0]

    def push(self, repositories: Iterable[str], tag: str = "1.0") -> None:
        """Push a small image (shared base layer, own top layer) to each.

        Pushes run in parallel: each lab request waits on loopback round trips,
        and one at a time 200 pushes take over a minute.
        """
        names = list(repositories)

        def push_one(repository: str) -> None:
            image = sample_image(f"{repository}:{tag}")
            LabClient(self.source.url).push_image(repository, tag, image)

        with ThreadPoolExecutor(max_workers=_PUSH_WORKERS) as pool:
            list(pool.map(push_one, names))
        self.pushed.extend(names)

    def push_one_image_everywhere(
        self, repositories: Iterable[str], tag: str = "1.0"
    ) -> None:
        """Push one image to many repositories cheaply: blobs are mounted.

        The first repository gets the blobs uploaded; the others mount them
        (one request per blob) and get the manifest, so 200 repositories take
        seconds.
        """
        first, *others = list(repositories)
        image = sample_image("lab/shared")
        LabClient(self.source.url).push_image(first, tag, image)

        def push_one(repository: str) -> None:
            client = LabClient(self.source.url)
            for blob in image.blobs:
                query = urllib.parse.urlencode({"mount": blob.digest, "from": first})
                answer = client.request(
                    "POST", f"/v2/{repository}/blobs/uploads/?{query}"
                )
                assert answer.status == 201, (repository, answer.status)
            client.push_manifest(repository, tag, image.manifest, image.media_type)

        with ThreadPoolExecutor(max_workers=_PUSH_WORKERS) as pool:
            list(pool.map(push_one, others))
        self.pushed.extend([first, *others])

    def expected_copies(self) -> dict[str, int]:
        """Return how many images each destination must hold after the pushes."""
        backup = sum(name.startswith(BACKUP_PREFIX) for name in self.pushed)
        return {"mirror": len(self.pushed), "backup": backup}

    def wait_until_replicated(self, timeout_s: float = 90) -> None:
        """Wait until every pushed image reached its destinations, queue empty."""
        assert self.daemon is not None
        daemon = self.daemon
        expected = self.expected_copies()

        def replicated() -> bool:
            samples = daemon.samples()
            done = succeeded_by_destination(samples)
            queue = sum(value for _, _, value in samples["replicator_queue_depth"])
            return queue == 0 and all(
                done.get(name, 0) >= count for name, count in expected.items()
            )

        wait_until(replicated, timeout_s, f"replication of {expected}", daemon.log_path)

    def send_unauthorized_webhook(self) -> int:
        """POST a notification with a wrong token; return the answer's status."""
        assert self.daemon is not None
        request = urllib.request.Request(
            f"{self.daemon.url}/webhook",
            data=b'{"events": []}',
            headers={
                "Authorization": "Bearer not-the-token",
                "Content-Type": "application/json",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            error.close()
            return int(error.code)

    def _registry(
        self,
        name: str,
        notifications: Sequence[NotificationEndpoint] = (),
        token_server: TokenServer | None = None,
    ) -> RegistryProcess:
        registry = RegistryProcess(
            self.root / name,
            notifications=notifications,
            token_auth=token_server.registry_auth() if token_server else None,
        )
        self.registries.append(registry)
        return registry.start()

    def _notifications(self, daemon_port: int) -> list[NotificationEndpoint]:
        return [
            NotificationEndpoint(
                name="replicator",
                url=f"http://127.0.0.1:{daemon_port}/webhook",
                headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
                timeout_s=5.0,
                backoff_s=0.2,
            )
        ]

    def _add_faults(self, proxy: FaultProxy) -> None:
        # Throttling that a retry overcomes, and one refusal that fails an image
        # once (the scheduler runs it again), so error panels have data too.
        proxy.add_fault(
            too_many_requests(retry_after_s=0),
            method="HEAD",
            path=MANIFEST_PATH,
            times=3,
        )
        refusal = Respond(
            400,
            {"Content-Type": "application/json"},
            oci_error_body("MANIFEST_INVALID", "refused once (lab fault)"),
        )
        proxy.add_fault(
            refusal, method="PUT", path=f"^/v2/{FAILING_REPOSITORY}/manifests/", times=1
        )


def daemon_config(
    source: RegistryProcess, mirror: FaultProxy, backup: RegistryProcess, port: int
) -> dict[str, Any]:
    """Return the daemon's configuration for the lab's registries."""
    return {
        "version": 1,
        "source": "source",
        "registries": {
            "source": {"url": source.url, "insecure": True},
            "mirror": {
                "url": mirror.url,
                "insecure": True,
                "credentials": {
                    "username": LAB_USER.username,
                    "password_env": "MIRROR_PASSWORD",
                },
            },
            "backup": {"url": backup.url, "insecure": True},
        },
        "rules": [
            {"name": "to-mirror", "destinations": [{"registry": "mirror"}]},
            {
                "name": "to-backup",
                "destinations": [{"registry": "backup"}],
                "repositoryFilters": [
                    {"filter": BACKUP_PREFIX, "filterType": "PREFIX_MATCH"}
                ],
            },
        ],
        "concurrency": {"images": 8, "blobs_per_registry": 8},
        "retry": {"attempts": 4, "initial_backoff_s": 0.05, "max_backoff_s": 0.2},
        "log": {"format": "json", "level": "info"},
        "server": {"listen": f"127.0.0.1:{port}", "shutdown_grace_s": 5},
        "sources": {"webhook": {"token_env": "WEBHOOK_TOKEN"}},
    }


def prometheus_config(target: str) -> dict[str, Any]:
    """Return deploy/prometheus/prometheus.example.yaml aimed at one daemon."""
    example = yaml.safe_load((PROMETHEUS_DIR / "prometheus.example.yaml").read_text())
    job = next(
        job for job in example["scrape_configs"] if job["job_name"] == "replicator"
    )
    job["static_configs"] = [{"targets": [target]}]
    interval = f"{SCRAPE_INTERVAL_S}s"

    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(PROMETHEUS_DIR / rule) for rule in example["rule_files"]],
        "scrape_configs": [job],
    }


def succeeded_by_destination(
    samples: Mapping[str, list[tuple[str, dict[str, str], float]]],
) -> dict[str, float]:
    """Sum successful image replications by destination."""
    done: dict[str, float] = {}
    for name, labels, value in samples.get("replicator_images", []):
        if name.endswith("_total") and labels["result"] in ("copied", "tagged"):
            destination = labels["destination"]
            done[destination] = done.get(destination, 0.0) + value
    return done


def finite_values(result: Sequence[Mapping[str, Any]]) -> list[float]:
    """Return the finite values of an instant query's samples."""
    values = [float(sample["value"][1]) for sample in result]
    return [value for value in values if math.isfinite(value)]


def _tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
