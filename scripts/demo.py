"""The local demo: two real registries on loopback, real images, a real backfill.

Starts two CNCF distribution registries, pushes a multi-layer image built from
files of Python's standard library and a two-platform index to the first, then runs
``replicator backfill`` and ``replicator verify`` against them and shows the result.
Everything lives in a temporary directory and stops when the demo ends.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from tests.lab.images import (
    Platform,
    build_image,
    make_layer,
    sample_index,
    stdlib_tar,
)
from tests.lab.pusher import LabClient
from tests.lab.registry import RegistryProcess

REPLICATOR = str(Path(sys.executable).with_name("replicator"))


def main() -> int:
    """Run the demo; return the exit status of the final verify."""
    with tempfile.TemporaryDirectory(prefix="replicator-demo-") as workdir:
        root = Path(workdir)
        with (
            RegistryProcess(root / "source") as source,
            RegistryProcess(root / "mirror") as mirror,
        ):
            _step(f"source registry at {source.url}, mirror registry at {mirror.url}")
            _push_images(source)
            config = _write_config(root, source, mirror)
            _step(f"configuration:\n{config.read_text()}")
            _run("backfill", config)
            _step("second backfill: everything is up to date, nothing is pushed")
            _run("backfill", config)
            _step(
                "mirror catalog: "
                + ", ".join(LabClient(mirror.url).list_repositories())
            )
            return _run("verify", config)


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


def _write_config(root: Path, source: RegistryProcess, mirror: RegistryProcess) -> Path:
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
    )
    return config


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
