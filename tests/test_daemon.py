"""``replicator run`` as a process: registry webhooks, SQS on moto, and signals."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab.fixtures import FaultProxyFactory, RegistryFactory
from tests.lab.images import (
    build_image,
    make_layer,
    random_tar,
    sample_image,
    stdlib_tar,
)
from tests.lab.moto import REGION, MotoServer, Queues, ecr_event
from tests.lab.proxy import Respond, SlowBody, oci_error_body
from tests.lab.pusher import LabClient
from tests.lab.registry import NotificationEndpoint, RegistryProcess, find_free_port

TOKEN = "webhook-token-for-tests-0123456789"
ENVELOPE_TYPE = "application/vnd.docker.distribution.events.v1+json"


class Daemon:
    """A ``replicator run`` child process and its HTTP endpoint."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        listen = config.get("server", {}).get("listen")
        self.port = (
            int(listen.rsplit(":", 1)[1]) if listen else find_free_port("127.0.0.1")
        )
        config["server"] = {"listen": f"127.0.0.1:{self.port}", "shutdown_grace_s": 20}
        self.config_path = workdir / f"daemon-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / f"daemon-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Daemon:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "replicator", "run"),
                    *("--config", str(self.config_path), "--log-format", "json"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "WEBHOOK_TOKEN": TOKEN},
            )
        wait_for(lambda: self.status("/readyz") == 200, 20, self.log_tail)
        return self

    def status(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    def post_envelope(self, body: bytes, token: str = TOKEN) -> int:
        request = urllib.request.Request(
            self.url + "/webhook",
            data=body,
            method="POST",
            headers={"Content-Type": ENVELOPE_TYPE, "Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code

    def metric(self, name: str, **labels: str) -> float:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") and all(
                f'{key}="{value}"' in line for key, value in labels.items()
            ):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def wait(self, timeout_s: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout_s)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def log_events(self) -> list[dict[str, Any]]:
        return [
            json.loads(line)
            for line in self.log_path.read_text().splitlines()
            if line.startswith("{")
        ]


def wait_for(
    condition: Callable[[], bool], timeout_s: float, describe: Callable[[], str]
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met in {timeout_s} s\n{describe()}")


def has_manifest(registry: RegistryProcess, repository: str, reference: str) -> bool:
    try:
        LabClient(registry.url).get_manifest(repository, reference)
    except Exception:
        return False
    return True


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], Daemon]]:
    started: list[Daemon] = []

    def start(config: dict[str, Any]) -> Daemon:
        daemon = Daemon(config, tmp_path).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def base_config(source_url: str, destinations: dict[str, str]) -> dict[str, Any]:
    registries = {"src": {"url": source_url, "insecure": True}}
    registries.update(
        {name: {"url": url, "insecure": True} for name, url in destinations.items()}
    )
    return {
        "version": 1,
        "source": "src",
        "registries": registries,
        "rules": [
            {
                "name": "apps",
                "destinations": [{"registry": name} for name in destinations],
                "repositoryFilters": [{"filter": "app", "filterType": "PREFIX_MATCH"}],
            }
        ],
        "retry": {"attempts": 2, "initial_backoff_s": 0.1, "job_retry_delays_s": []},
        "sources": {"webhook": {"enabled": True, "token_env": "WEBHOOK_TOKEN"}},
        "log": {"level": "info"},
    }


def push_envelope(
    repository: str, digest: str, tag: str | None, event_id: str
) -> bytes:
    target: dict[str, Any] = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "repository": repository,
        "digest": digest,
        "url": f"http://registry/v2/{repository}/manifests/{digest}",
    }
    if tag:
        target["tag"] = tag
    event = {
        "id": event_id,
        "timestamp": "2026-01-01T00:00:00Z",
        "action": "push",
        "target": target,
    }
    return json.dumps({"events": [event]}).encode()


def test_replicates_a_push_notified_by_the_registry_to_two_destinations(
    registry_factory: RegistryFactory,
    daemons: Callable[[dict[str, Any]], Daemon],
) -> None:
    one, two = registry_factory(), registry_factory()
    port = find_free_port("127.0.0.1")
    notify = NotificationEndpoint(
        name="replicator",
        url=f"http://127.0.0.1:{port}/webhook",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    source = registry_factory(notifications=[notify])
    config = base_config(source.url, {"one": one.url, "two": two.url})
    config["server"] = {"listen": f"127.0.0.1:{port}"}
    daemon = daemons(config)
    image = sample_image("webhook")

    LabClient(source.url).push_image("app/web", "1.0", image)

    for destination in (one, two):
        arrived = functools.partial(has_manifest, destination, "app/web", "1.0")
        wait_for(arrived, 30, daemon.log_tail)
        assert (
            LabClient(destination.url).get_manifest("app/web", "1.0")[0]
            == image.manifest
        )
    assert daemon.metric("replicator_events_received_total", source="webhook") >= 1
    assert daemon.metric("replicator_replication_lag_seconds_count") >= 2


def test_rejects_bad_requests_and_keeps_serving(
    registry_factory: RegistryFactory,
    daemons: Callable[[dict[str, Any]], Daemon],
) -> None:
    source, destination = registry_factory(), registry_factory()
    daemon = daemons(base_config(source.url, {"dst": destination.url}))
    digest = LabClient(source.url).push_image("app/ok", "1.0", sample_image("ok"))
    unknown_action = json.dumps(
        {"events": [{"id": "x1", "action": "explode", "target": {"repository": "app"}}]}
    ).encode()

    assert daemon.post_envelope(b"{}", token="wrong-token-wrong-token") == 401
    assert daemon.post_envelope(b"not json") == 400
    assert daemon.post_envelope(unknown_action) == 200
    assert daemon.post_envelope(push_envelope("other/repo", digest, "1.0", "x2")) == 200
    assert daemon.post_envelope(push_envelope("app/ok", digest, "1.0", "x3")) == 200

    wait_for(lambda: has_manifest(destination, "app/ok", "1.0"), 30, daemon.log_tail)
    rejected = "replicator_events_rejected_total"
    assert daemon.metric(rejected, reason="unauthorized") == 1
    assert daemon.metric(rejected, reason="malformed") == 1
    assert daemon.metric(rejected, reason="unsupported_action") == 1
    wait_for(
        lambda: daemon.metric(rejected, reason="not_selected") == 1, 10, daemon.log_tail
    )
    assert daemon.status("/healthz") == 200


def test_sigterm_lets_a_running_copy_finish_and_exits_zero(
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    daemons: Callable[[dict[str, Any]], Daemon],
) -> None:
    source, destination = registry_factory(), registry_factory()
    proxy = fault_proxy_factory(source)
    proxy.add_fault(
        SlowBody(chunk_bytes=64 * 1024, pause_s=0.05),
        method="GET",
        path="/blobs/",
        times=None,
    )
    image = build_image([make_layer(random_tar(2 * 1024 * 1024, seed="drain"), "none")])
    digest = LabClient(source.url).push_image("app/slow", "1.0", image)
    daemon = daemons(base_config(proxy.url, {"dst": destination.url}))

    assert (
        daemon.post_envelope(push_envelope("app/slow", digest, "1.0", "slow-1")) == 200
    )
    wait_for(lambda: proxy.blob_gets() >= 1, 20, daemon.log_tail)
    daemon.signal(signal.SIGTERM)

    assert daemon.wait(30) == 0
    assert LabClient(destination.url).get_manifest("app/slow", "1.0")[2] == digest
    events = [event["event"] for event in daemon.log_events()]
    assert events.index("daemon_draining") < events.index("image_replicated")
    assert daemon.status("/healthz") is None


def sqs_config(
    source_url: str,
    destinations: dict[str, str],
    queues: Queues,
    moto: MotoServer,
) -> dict[str, Any]:
    config = base_config(source_url, destinations)
    config["sources"] = {
        "sqs": {
            "queue_url": queues.url,
            "region": REGION,
            "endpoint_url": moto.url,
            "wait_time_s": 1,
            "visibility_timeout_s": 3,
            "retry_delay_s": 0,
        }
    }
    return config


async def wait_until_drained(queues: Queues, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await queues.counts() == (0, 0):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"queue still holds {await queues.counts()}")


async def test_replicates_sqs_events_and_deletes_their_messages(
    registry_factory: RegistryFactory,
    daemons: Callable[[dict[str, Any]], Daemon],
    moto: MotoServer,
    queues: Queues,
) -> None:
    source, destination = registry_factory(), registry_factory()
    digests = {
        f"app/svc{number}": LabClient(source.url).push_image(
            f"app/svc{number}", "1.0", sample_image(f"sqs-{number}")
        )
        for number in range(6)
    }
    config = sqs_config(source.url, {"dst": destination.url}, queues, moto)
    daemons(config)
    daemons(config)  # a second replica: competing consumers on one queue

    for repository, digest in digests.items():
        await queues.send(ecr_event("1.0", repository=repository, digest=digest))

    await wait_until_drained(queues, 60)
    for repository, digest in digests.items():
        assert LabClient(destination.url).get_manifest(repository, "1.0")[2] == digest
    assert await queues.counts(queues.dead_letter_url) == (0, 0)


async def test_a_failing_copy_leaves_its_message_to_the_dead_letter_queue(
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    daemons: Callable[[dict[str, Any]], Daemon],
    moto: MotoServer,
    queues: Queues,
) -> None:
    source, destination = registry_factory(), registry_factory()
    proxy = fault_proxy_factory(destination)
    proxy.add_fault(
        Respond(403, body=oci_error_body("DENIED", "read only")),
        method="PUT",
        path="/manifests/",
        times=None,
    )
    digest = LabClient(source.url).push_image("app/denied", "1.0", sample_image("dlq"))
    daemons(sqs_config(source.url, {"dst": proxy.url}, queues, moto))

    await queues.send(ecr_event("1.0", repository="app/denied", digest=digest))

    dead = await queues.receive_dead_letters(timeout_s=40)
    assert json.loads(dead[0])["detail"]["repository-name"] == "app/denied"


async def test_sigkill_mid_copy_loses_nothing_and_never_exposes_a_partial_image(
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    daemons: Callable[[dict[str, Any]], Daemon],
    moto: MotoServer,
    queues: Queues,
) -> None:
    source, destination = registry_factory(), registry_factory()
    proxy = fault_proxy_factory(source)
    big = make_layer(random_tar(2 * 1024 * 1024, seed="kill"), "none")
    # Only the big layer is slow, so the kill lands while it streams.
    slow_path = f"/blobs/{big.blob.digest}"
    proxy.add_fault(
        SlowBody(chunk_bytes=64 * 1024, pause_s=0.05),
        method="GET",
        path=slow_path,
        times=None,
    )
    image = build_image([big, make_layer(stdlib_tar("json"), "gzip")])
    digest = LabClient(source.url).push_image("app/big", "1.0", image)
    config = sqs_config(proxy.url, {"dst": destination.url}, queues, moto)
    first = daemons(config)

    await queues.send(ecr_event("1.0", repository="app/big", digest=digest))
    wait_for(lambda: proxy.count("GET", slow_path) >= 1, 30, first.log_tail)
    first.signal(signal.SIGKILL)
    first.wait(10)

    assert not has_manifest(destination, "app/big", "1.0")
    assert not has_manifest(destination, "app/big", digest)
    daemons(config)
    await wait_until_drained(queues, 60)
    assert (
        LabClient(destination.url).get_manifest("app/big", "1.0")[0] == image.manifest
    )
