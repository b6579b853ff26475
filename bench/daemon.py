"""The daemon's scenarios (``replicator run``), next to the one-shot ones.

Each runs a fresh ``replicator run`` on loopback with its webhook enabled, against
fresh source and destination registries, ``runs`` times:

- ``daemon-events``: push events for images the destination already holds, POSTed
  as distribution notification envelopes by a few concurrent posters; measured
  from the first POST until ``/metrics`` shows every event acknowledged (one
  ``replicator_images_total`` per event, queue depth and oldest event age 0).
- ``daemon-burst``: new small images pushed to the source at once; the source
  registry's own notifications reach the daemon. Each tag's lag runs from its
  manifest PUT's answer to the tag showing in the destination's tag list (polled
  every 20 ms), and every tag's digest is checked afterwards.

skopeo has no daemon and the floor no event path, so there is no peer: these report
figures only.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import functools
import json
import math
import os
import random
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench import tools
from bench.results import CorpusStats, ScenarioResult, ToolRun
from bench.runner import BenchContext, Scenario, progress
from bench.sizes import CorpusSize
from tests.lab.images import (
    Image,
    Layer,
    base_layer,
    build_image,
    make_layer,
    tar_files,
)
from tests.lab.pusher import LabClient
from tests.lab.registry import NotificationEndpoint, RegistryProcess, find_free_port

TOKEN_ENV = "REPLICATOR_BENCH_WEBHOOK_TOKEN"
TOKEN = "bench-webhook-token-0123456789abcdef"
ENVELOPE_TYPE = "application/vnd.docker.distribution.events.v1+json"
EVENTS_PER_ENVELOPE = 10
POSTERS = 4
MAX_PUSHERS = 25
REPOSITORIES = 5
POLL_INTERVAL_S = 0.02
DEADLINE_S = 180.0
TOOLS = ("replicator",)
NO_PEER = (
    "No peer: skopeo has no daemon and the floor no event path, so these are"
    " replicator's figures only."
)


@dataclass(frozen=True, slots=True)
class DaemonLoad:
    """How many events and new images the daemon scenarios send at one size."""

    events: int
    images: int


LOADS = {
    "smoke": DaemonLoad(events=20, images=5),
    "small": DaemonLoad(events=200, images=20),
    "medium": DaemonLoad(events=500, images=50),
    "large": DaemonLoad(events=1000, images=100),
}


class DaemonError(RuntimeError):
    """The daemon did not become ready."""


class Daemon:
    """A ``replicator run`` child process on loopback with its webhook."""

    def __init__(self, config_path: Path, log_path: Path, port: int) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        """Start the process and wait until ``/readyz`` answers 200."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(tools.REPLICATOR), "run", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, TOKEN_ENV: TOKEN},
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if _status(self.url + "/readyz") == 200:
                return self
            time.sleep(0.05)
        self.stop()
        raise DaemonError(f"replicator run did not become ready (see {self.log_path})")

    def post(self, body: bytes) -> int:
        """POST one notification envelope to the webhook; return the status."""
        request = urllib.request.Request(
            self.url + "/webhook",
            data=body,
            method="POST",
            headers={"Content-Type": ENVELOPE_TYPE, "Authorization": f"Bearer {TOKEN}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code

    def metrics(self) -> list[tuple[str, str, float]]:
        """Return every sample of ``/metrics`` as (name, labels, value)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
            text = response.read().decode()
        samples = []
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            name, _, labels = key.partition("{")
            samples.append((name, labels, float(value)))
        return samples

    def cpu_s(self) -> float:
        """Return the process's user plus system CPU time so far."""
        if self.process is None:
            return 0.0
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return 0.0
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_bytes(self) -> int:
        """Return the process's resident high-water mark (``VmHWM``)."""
        if self.process is None:
            return 0
        try:
            text = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> int:
        """Stop the process (SIGTERM, then SIGKILL after 30 s); return its status."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@dataclass(slots=True)
class _Measured:
    """What one daemon run measured, before it becomes a ``ToolRun``."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_bytes: int = 0
    exit_code: int = 0
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)


def daemon_events(context: BenchContext, size: CorpusSize) -> list[ScenarioResult]:
    """Acknowledge many push events for images already at the destination."""
    load = LOADS[size.name]
    image = _small_image("events")
    references = [
        (f"bench/events-{number % REPOSITORIES}", f"e{number}")
        for number in range(load.events)
    ]
    repositories = sorted({repository for repository, _ in references})
    result = ScenarioResult(
        "daemon-events",
        f"daemon: {load.events} push events for images already present",
        _stats(f"daemon-events-{size.name}", repositories, len(references), [image]),
        1,
        TOOLS,
        moves_content=False,
        figures=("events_per_s",),
    )
    result.notes.append(
        f"{load.events} push events with distinct ids and tags, {EVENTS_PER_ENVELOPE}"
        f" per notification envelope, POSTed by {POSTERS} concurrent posters to"
        " the webhook; timed from the first POST until /metrics shows one"
        " replicator_images_total per event, replicator_queue_depth 0 and"
        " replicator_oldest_unacknowledged_event_age_seconds 0. Every tag is"
        f" already at the destination (up to date). {NO_PEER}"
    )
    for run in range(1, context.runs + 1):
        source = context.lab.start("daemon-source")
        destination = context.lab.start("destination")
        try:
            for registry in (source, destination):
                _push_tags(registry.url, image, references)
            label = f"daemon-events-replicator-run{run}"
            measured = _with_daemon(
                context,
                label,
                source,
                destination,
                functools.partial(_send_events, image=image, references=references),
            )
        finally:
            context.lab.discard(source)
            context.lab.discard(destination)
        result.runs.append(_tool_run(run, measured))
        _report(
            "daemon-events",
            run,
            measured,
            f"{measured.figures.get('events_per_s', 0):.0f} events/s",
        )
    return [result]


def daemon_burst(context: BenchContext, size: CorpusSize) -> list[ScenarioResult]:
    """Replicate a burst of new images notified by the source registry."""
    load = LOADS[size.name]
    pushes = [
        (
            f"bench/burst-{number % REPOSITORIES}",
            f"b{number}",
            _small_image(f"b{number}"),
        )
        for number in range(load.images)
    ]
    repositories = sorted({repository for repository, _, _ in pushes})
    images = [image for _, _, image in pushes]
    result = ScenarioResult(
        "daemon-burst",
        f"daemon: burst of {load.images} new images pushed at once",
        _stats(f"daemon-burst-{size.name}", repositories, len(pushes), images),
        1,
        TOOLS,
        moves_content=False,
        figures=("lag_p50_s", "lag_p99_s", "lag_max_s"),
    )
    result.notes.append(
        f"{load.images} new small images (a shared base layer and a 4 KiB unique"
        f" layer each) over {len(repositories)} repositories (the base layer is"
        " in each source repository beforehand), pushed to the source"
        f" by {min(load.images, MAX_PUSHERS)} concurrent pushers; the source"
        " registry's notifications (blob events filtered out) reach the daemon."
        " A tag's lag runs from its manifest PUT's answer at the source until the"
        " tag shows in the destination's tag list, polled every"
        f" {POLL_INTERVAL_S * 1000:.0f} ms; p99 is the nearest rank (with fewer"
        " than 100 images, the slowest tag). The time column runs from the first"
        f" push to the last tag in place. {NO_PEER}"
    )
    for run in range(1, context.runs + 1):
        port = find_free_port("127.0.0.1")
        notify = NotificationEndpoint(
            name="replicator",
            url=f"http://127.0.0.1:{port}/webhook",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout_s=5.0,
            backoff_s=0.5,
            ignored_media_types=("application/octet-stream",),
        )
        source = context.lab.start("daemon-source", notifications=[notify])
        destination = context.lab.start("destination")
        try:
            label = f"daemon-burst-replicator-run{run}"
            measured = _with_daemon(
                context,
                label,
                source,
                destination,
                functools.partial(_burst, source=source, pushes=pushes),
                port=port,
            )
        finally:
            context.lab.discard(source)
            context.lab.discard(destination)
        result.runs.append(_tool_run(run, measured))
        figures = measured.figures
        _report(
            "daemon-burst",
            run,
            measured,
            f"lag p50 {figures.get('lag_p50_s', 0):.2f} s,"
            f" p99 {figures.get('lag_p99_s', 0):.2f} s",
        )
    return [result]


DAEMON_SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "daemon-events", "daemon: many push events acknowledged", daemon_events
        ),
        Scenario("daemon-burst", "daemon: lag of a burst of new pushes", daemon_burst),
    )
}

_Workload = Callable[[Daemon, RegistryProcess, _Measured], None]


def _with_daemon(
    context: BenchContext,
    label: str,
    source: RegistryProcess,
    destination: RegistryProcess,
    workload: _Workload,
    *,
    port: int | None = None,
) -> _Measured:
    port = port or find_free_port("127.0.0.1")
    log_path = context.log_path(label)
    config_path = log_path.with_suffix(".yaml")
    _write_config(config_path, source.url, destination.url, port)
    daemon = Daemon(config_path, log_path, port).start()
    measured = _Measured()
    try:
        cpu_before = daemon.cpu_s()
        workload(daemon, destination, measured)
        measured.cpu_s = daemon.cpu_s() - cpu_before
        measured.peak_rss_bytes = daemon.peak_rss_bytes()
    except Exception as error:  # any failure makes the run wrong
        measured.problems.append(f"{type(error).__name__}: {error} (see {log_path})")
    finally:
        measured.exit_code = daemon.stop()
    if measured.exit_code != 0:
        measured.problems.append(f"replicator run exited with {measured.exit_code}")
    return measured


def _send_events(
    daemon: Daemon,
    destination: RegistryProcess,
    measured: _Measured,
    *,
    image: Image,
    references: Sequence[tuple[str, str]],
) -> None:
    envelopes = [
        _envelope(references[start : start + EVENTS_PER_ENVELOPE], image)
        for start in range(0, len(references), EVENTS_PER_ENVELOPE)
    ]
    total = len(references)
    with concurrent.futures.ThreadPoolExecutor(POSTERS) as posters:
        started = time.perf_counter()
        statuses = posters.map(daemon.post, envelopes)
        done = _wait_acknowledged(daemon, total, started + DEADLINE_S)
        wall_s = time.perf_counter() - started
        refused = [status for status in statuses if not 200 <= status < 300]
    outcomes = _image_outcomes(daemon)
    measured.wall_s = wall_s
    measured.checked = int(sum(outcomes.values()))
    if refused:
        measured.problems.append(f"webhook refused {len(refused)} envelopes")
    if not done:
        measured.problems.append(f"not every event acknowledged: {outcomes}")
    unexpected = {k: v for k, v in outcomes.items() if k != "up_to_date" and v}
    if unexpected:
        measured.problems.append(f"outcomes other than up_to_date: {unexpected}")
    measured.figures["events_per_s"] = total / wall_s


def _burst(
    daemon: Daemon,
    destination: RegistryProcess,
    measured: _Measured,
    *,
    source: RegistryProcess,
    pushes: Sequence[tuple[str, str, Image]],
) -> None:
    pushed_at: dict[tuple[str, str], float] = {}
    seen_at: dict[tuple[str, str], float] = {}
    stop = threading.Event()
    poller = threading.Thread(
        target=_poll_tags,
        args=(destination.url, {(r, t) for r, t, _ in pushes}, seen_at, stop),
        daemon=True,
    )

    def push(entry: tuple[str, str, Image]) -> None:
        repository, tag, image = entry
        client = LabClient(source.url)
        for blob in image.blobs:
            client.push_blob(repository, blob)
        client.push_manifest(repository, tag, image.manifest, image.media_type)
        pushed_at[(repository, tag)] = time.perf_counter()

    # distribution answers 500 to a HEAD racing a concurrent upload of the same
    # blob into the same repository, so the shared base layer is there first, as
    # a base image's would be; the destination still lacks it.
    for repository in sorted({repository for repository, _, _ in pushes}):
        LabClient(source.url).push_blob(repository, _base_layer().blob)
    poller.start()
    started = time.perf_counter()
    try:
        with concurrent.futures.ThreadPoolExecutor(
            min(len(pushes), MAX_PUSHERS)
        ) as pushers:
            list(pushers.map(push, pushes))
        deadline = started + DEADLINE_S
        while len(seen_at) < len(pushes) and time.perf_counter() < deadline:
            time.sleep(POLL_INTERVAL_S)
    finally:
        stop.set()
        poller.join()
    missing = len(pushes) - len(seen_at)
    if missing:
        measured.problems.append(f"{missing} tags never reached the destination")
        return
    measured.wall_s = max(seen_at.values()) - started
    # The poller may see a tag a moment before its pusher hears the PUT's answer.
    lags = sorted(max(0.0, seen_at[key] - pushed_at[key]) for key in pushed_at)
    measured.figures.update(
        lag_p50_s=statistics.median(lags),
        lag_p99_s=_nearest_rank(lags, 0.99),
        lag_max_s=lags[-1],
    )
    _wait_acknowledged(daemon, 0, time.perf_counter() + 30)
    client = LabClient(destination.url)
    for repository, tag, image in pushes:
        manifest = client.get_manifest(repository, tag)[0]
        if manifest != image.manifest:
            measured.problems.append(f"{repository}:{tag} is not the pushed manifest")
        measured.checked += 1


def _poll_tags(
    url: str,
    wanted: set[tuple[str, str]],
    seen_at: dict[tuple[str, str], float],
    stop: threading.Event,
) -> None:
    client = LabClient(url)
    repositories = sorted({repository for repository, _ in wanted})
    while not stop.is_set() and len(seen_at) < len(wanted):
        for repository in repositories:
            answer = client.request("GET", f"/v2/{repository}/tags/list")
            if answer.status != 200:
                continue
            now = time.perf_counter()
            for tag in json.loads(answer.body).get("tags") or []:
                key = (repository, tag)
                if key in wanted and key not in seen_at:
                    seen_at[key] = now
        stop.wait(POLL_INTERVAL_S)


def _wait_acknowledged(daemon: Daemon, images: int, deadline: float) -> bool:
    """Wait until the daemon counts ``images`` outcomes and holds no event."""
    while time.perf_counter() < deadline:
        samples = daemon.metrics()
        finished = sum(v for n, _, v in samples if n == "replicator_images_total")
        depth = sum(v for n, _, v in samples if n == "replicator_queue_depth")
        oldest = sum(
            v
            for n, _, v in samples
            if n == "replicator_oldest_unacknowledged_event_age_seconds"
        )
        if finished >= images and depth == 0 and oldest == 0:
            return True
        time.sleep(POLL_INTERVAL_S)
    return False


def _image_outcomes(daemon: Daemon) -> dict[str, float]:
    outcomes: dict[str, float] = {}
    for name, labels, value in daemon.metrics():
        if name == "replicator_images_total":
            outcome = labels.split('result="', 1)[1].split('"', 1)[0]
            outcomes[outcome] = outcomes.get(outcome, 0.0) + value
    return outcomes


def _envelope(references: Sequence[tuple[str, str]], image: Image) -> bytes:
    now = datetime.datetime.now(datetime.UTC).isoformat()
    events = [
        {
            "id": str(uuid.uuid4()),
            "timestamp": now,
            "action": "push",
            "target": {
                "mediaType": image.media_type,
                "repository": repository,
                "digest": image.digest,
                "tag": tag,
                "url": f"http://registry/v2/{repository}/manifests/{image.digest}",
            },
        }
        for repository, tag in references
    ]
    return json.dumps({"events": events}).encode()


def _push_tags(url: str, image: Image, references: Sequence[tuple[str, str]]) -> None:
    """Push one image to every repository, then tag it with every reference."""
    for repository in sorted({repository for repository, _ in references}):
        client = LabClient(url)
        for blob in image.blobs:
            client.push_blob(repository, blob)

    def tag(reference: tuple[str, str]) -> None:
        repository, name = reference
        LabClient(url).push_manifest(repository, name, image.manifest, image.media_type)

    with concurrent.futures.ThreadPoolExecutor(8) as taggers:
        list(taggers.map(tag, references))


def _write_config(path: Path, source_url: str, destination_url: str, port: int) -> None:
    config: dict[str, Any] = {
        "version": 1,
        "source": "source",
        "registries": {
            "source": {"url": source_url, "insecure": True},
            "destination": {"url": destination_url, "insecure": True},
        },
        "rules": [{"name": "all", "destinations": [{"registry": "destination"}]}],
        "server": {"listen": f"127.0.0.1:{port}", "shutdown_grace_s": 10},
        "sources": {"webhook": {"enabled": True, "token_env": TOKEN_ENV}},
        "log": {"format": "json", "level": "info"},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@functools.cache
def _base_layer() -> Layer:
    return base_layer()


def _small_image(name: str) -> Image:
    unique = random.Random(name).randbytes(4096)
    top = make_layer(tar_files({"app/name.txt": name.encode(), "app/data": unique}))
    return build_image([_base_layer(), top])


def _stats(
    name: str, repositories: Sequence[str], tags: int, images: Sequence[Image]
) -> CorpusStats:
    blobs = {blob.digest: blob.size for image in images for blob in image.blobs}
    return CorpusStats(
        name, len(repositories), tags, len(images), len(blobs), sum(blobs.values())
    )


def _nearest_rank(ordered: Sequence[float], quantile: float) -> float:
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]


def _tool_run(run: int, measured: _Measured) -> ToolRun:
    return ToolRun(
        tool="replicator",
        run=run,
        wall_s=measured.wall_s,
        peak_rss_bytes=measured.peak_rss_bytes,
        exit_code=measured.exit_code,
        checked=measured.checked,
        problems=tuple(measured.problems),
        cpu_s=measured.cpu_s,
        figures=dict(measured.figures),
    )


def _report(name: str, run: int, measured: _Measured, figures: str) -> None:
    progress(
        f"  {name} run {run} replicator: {measured.wall_s:.2f} s, {figures},"
        f" {measured.cpu_s:.2f} s CPU, {measured.peak_rss_bytes / 1e6:.0f} MB peak"
        + ("" if not measured.problems else f", WRONG: {measured.problems[:2]}")
    )


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None
