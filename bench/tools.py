"""The commands under test: replicator, skopeo sync and the raw floor.

Each is run the way an operator would run it. replicator backfills from one config
naming every destination. skopeo sync is pointed at one source repository at a time,
with the destination's matching parent path, so nested names such as
``team/app/sidecar`` land under the same name; ``--all --preserve-digests`` makes it
copy every platform byte for byte, as replicator does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from bench.corpus import Corpus

REPLICATOR = Path(sys.executable).with_name("replicator")
SKOPEO = "skopeo"
# skopeo keeps a blob-location cache on disk (root: /var/lib/containers/cache). It
# runs as an unprivileged user with a fresh HOME per run instead, so every run
# starts cold, as replicator's in-memory ledger does, and nothing of the machine's
# is touched.
UNPRIVILEGED = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def write_replicator_config(
    path: Path, source_url: str, destination_urls: Sequence[str]
) -> Path:
    """Write a config replicating every repository to every destination."""
    registries = {"source": {"url": source_url, "insecure": True}}
    names = [f"destination-{number}" for number in range(1, len(destination_urls) + 1)]
    for name, url in zip(names, destination_urls, strict=True):
        registries[name] = {"url": url, "insecure": True}
    config = {
        "version": 1,
        "source": "source",
        "registries": registries,
        "rules": [{"name": "all", "destinations": [{"registry": n} for n in names]}],
        "log": {"format": "json", "level": "info"},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))

    return path


def replicator_command(config_path: Path) -> list[str]:
    """Return the backfill command line for a config."""
    return [str(REPLICATOR), "backfill", "--config", str(config_path), "--no-progress"]


def skopeo_commands(
    corpus: Corpus, source_host: str, destination_host: str
) -> list[list[str]]:
    """Return one ``skopeo sync`` per source repository, in name order."""
    return [
        [
            *_unprivileged_prefix(),
            SKOPEO,
            "--insecure-policy",
            "sync",
            "--src",
            "docker",
            "--dest",
            "docker",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--all",
            "--preserve-digests",
            # Carry on past the referrers fallback tags it cannot copy unchanged.
            "--keep-going",
            f"{source_host}/{repository}",
            _parent(destination_host, repository),
        ]
        for repository in sorted(corpus.repositories)
    ]


def skopeo_environment(home: Path) -> dict[str, str]:
    """Return the environment for skopeo runs that share one fresh HOME."""
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o777)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_RUNTIME_DIR": str(home / "run"),
        "XDG_CONFIG_HOME": str(home / "config"),
    }


def floor_command(
    corpus: Corpus, source_url: str, destination_urls: Sequence[str]
) -> list[str]:
    """Return the raw floor's command line."""
    return [
        sys.executable,
        "-m",
        "bench.floor",
        str(corpus.directory),
        source_url,
        *destination_urls,
    ]


def version_command(tool: str) -> list[str]:
    """Return a command that starts a tool and exits: its start-up cost."""
    if tool == "replicator":
        return [str(REPLICATOR), "--version"]
    if tool == "skopeo":
        return [SKOPEO, "--version"]
    return [sys.executable, "-m", "bench.floor"]


def _parent(destination_host: str, repository: str) -> str:
    parent = repository.rpartition("/")[0]
    return f"{destination_host}/{parent}" if parent else destination_host


def _unprivileged_prefix() -> tuple[str, ...]:
    return UNPRIVILEGED if os.geteuid() == 0 else ()
