"""The local demo: two real registries on loopback, real images, backfill and daemon.

Starts two CNCF distribution registries, pushes a multi-layer image built from
files of Python's standard library and a two-platform index to the first, then runs
``replicator backfill`` and ``replicator verify`` against them. Then it starts the
daemon (``replicator run``), to which the source registry sends its push
notifications, pushes a new image, and shows it arriving at the mirror. Everything
lives in a temporary directory and stops when the demo ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.lab.images import (
    Platform,
    build_image,
    make_layer,
    sample_index,
    stdlib_tar,
)
from tests.lab.pusher import LabClient
from tests.lab.registry import NotificationEndpoint, RegistryProcess, find_free_port

REPLICATOR = str(Path(sys.executable).with_name("replicator"))
# The demo's webhook secret; a real deployment reads its own from a Secret.
WEBHOOK_TOKEN = "demo-webhook-token-0123456789"


def main() -> int:
    """Run the demo; return the exit status of its last failing step, or 0."""
    os.environ["DEMO_WEBHOOK_TOKEN"] = WEBHOOK_TOKEN
    with tempfile.TemporaryDirectory(prefix="replicator-demo-") as workdir:
        root = Path(workdir)
        daemon_port = find_free_port("127.0.0.1")
        notify = NotificationEndpoint(
            name="replicator",
            url=f"http://127.0.0.1:{daemon_port}/webhook",
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        )
        with (
            RegistryProcess(root / "source", notifications=[notify]) as source,
            RegistryProcess(root / "mirror") as mirror,
        ):
            _step(f"source registry at {source.url}, mirror registry at {mirror.url}")
            _push_images(source)
            config = _write_config(root, source, mirror, daemon_port)
            _step(f"configuration:\n{config.read_text()}")
            _run("backfill", config)
            _step("second backfill: everything is up to date, nothing is pushed")
            _run("backfill", config)
            repositories = LabClient(mirror.url).list_repositories()
            _step("mirror catalog: " + ", ".join(repositories))
            status = _run("verify", config)
            return status or _run_daemon(config, source, mirror, daemon_port)


def _push_images(source: RegistryProcess) -> None:
    client = LabClient(source.url)
    layers = [
        make_layer(stdlib_tar(package), "gzip") for package in ("json", "email", "http")
    ]
    image = build_image(layers, platform=Platform())
    client.push_image("demo/web", "1.0", image)
    _step(f"pushed demo/web:1.0 ({len(layers)} layers from Python's stdlib)")
    index = sample_index(
        "demo-tools", platforms=(Platform(), Platform(architecture="arm64"))
    )
    client.push_image("demo/tools", "latest", index)
    _step("pushed demo/tools:latest (an OCI index for linux/amd64 and linux/arm64)")


def _write_config(
    root: Path, source: RegistryProcess, mirror: RegistryProcess, daemon_port: int
) -> Path:
    config = root / "replicator.yaml"
    config.write_text(
        "version: 1\n"
        "source: local\n"
        "registries:\n"
        f"  local: {{url: '{source.url}', insecure: true}}\n"
        f"  mirror: {{url: '{mirror.url}', insecure: true}}\n"
        "rules:\n"
        "  - name: demo-to-mirror\n"
        "    destinations: [{registry: mirror, repositoryPrefix: 'copies/'}]\n"
        "    repositoryFilters: [{filter: 'demo/', filterType: PREFIX_MATCH}]\n"
        "server:\n"
        f"  listen: 127.0.0.1:{daemon_port}\n"
        "sources:\n"
        "  webhook: {enabled: true, token_env: DEMO_WEBHOOK_TOKEN}\n"
    )
    return config


def _run_daemon(
    config: Path, source: RegistryProcess, mirror: RegistryProcess, port: int
) -> int:
    _step(f"$ replicator run --config {config.name}   (the daemon, in the background)")
    daemon = subprocess.Popen(
        [REPLICATOR, "run", "--config", str(config), "--log-format", "console"]
    )
    try:
        _wait_until_ready(port)
        image = build_image(
            [make_layer(stdlib_tar(package), "gzip") for package in ("json", "xml")]
        )
        pushed_at = time.monotonic()
        LabClient(source.url).push_image("demo/api", "2.0", image)
        _step("pushed demo/api:2.0 to the source; its registry notifies the daemon")
        arrived_s = _wait_for_image(mirror, "copies/demo/api", "2.0", pushed_at)
        _step(
            f"copies/demo/api:2.0 reached the mirror {arrived_s:.2f} s after the push"
        )
        _step("metrics: " + _metric_lines(port))
    finally:
        daemon.send_signal(signal.SIGTERM)
        status = daemon.wait(timeout=60)
    _step(f"daemon stopped on SIGTERM with exit status {status}")
    return status


def _wait_until_ready(port: int) -> None:
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the daemon did not become ready")


def _wait_for_image(
    mirror: RegistryProcess, repository: str, tag: str, since: float
) -> float:
    client = LabClient(mirror.url)
    while time.monotonic() - since < 30:
        if tag in client.list_tags(repository):
            return time.monotonic() - since
        time.sleep(0.05)
    raise RuntimeError(f"{repository}:{tag} did not arrive within 30 s")


def _metric_lines(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
        text = page.read().decode()
    wanted = ("replicator_images_total{", "replicator_events_received_total{")
    lines = [line for line in text.splitlines() if line.startswith(wanted)]
    return "\n    " + "\n    ".join(lines)


def _run(command: str, config: Path) -> int:
    _step(f"$ replicator {command} --config {config.name}")
    completed = subprocess.run(
        [REPLICATOR, command, "--config", str(config), "--log-format", "console"],
        check=False,
    )
    return completed.returncode


def _step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
