"""The command line against real registries: backfill, verify, copy, check-config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.fixtures import FaultProxyFactory, RegistryFactory
from tests.lab.images import build_corpus, sample_image, sample_index
from tests.lab.monitoring import PushgatewayServer
from tests.lab.pusher import LabClient, push_corpus
from tests.lab.registry import RegistryProcess

REPLICATOR = [sys.executable, "-m", "replicator"]


def run(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, with JSON logs on stderr."""
    return subprocess.run(
        [*REPLICATOR, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def write_config(
    path: Path, source_url: str, destinations: dict[str, str], extra_rule: str = ""
) -> Path:
    registries = "".join(
        f"  {name}: {{url: '{url}', insecure: true}}\n"
        for name, url in destinations.items()
    )
    targets = ", ".join(f"{{registry: {name}}}" for name in destinations)
    path.write_text(
        "version: 1\n"
        "source: src\n"
        "registries:\n"
        f"  src: {{url: '{source_url}', insecure: true}}\n"
        f"{registries}"
        "rules:\n"
        f"  - destinations: [{targets}]\n"
        f"{extra_rule}"
    )
    return path


def log_events(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


@pytest.fixture
def corpus_source(registry_factory: RegistryFactory) -> RegistryProcess:
    source = registry_factory()
    corpus = build_corpus(
        30, repositories=("team/app", "team/app/sidecar", "web", "tools/cli")
    )
    push_corpus(source.url, corpus)
    LabClient(source.url).push_image("multi", "latest", sample_index("multi"))
    return source


def test_backfill_copies_a_corpus_and_a_second_run_pushes_nothing(
    corpus_source: RegistryProcess,
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    tmp_path: Path,
) -> None:
    destination = registry_factory()
    proxy = fault_proxy_factory(destination)
    config = write_config(tmp_path / "c.yaml", corpus_source.url, {"dst": proxy.url})
    report = tmp_path / "report.json"

    first = run("backfill", "--config", str(config), "--report", str(report))
    proxy.clear_requests()
    second = run("backfill", "--config", str(config))

    assert first.returncode == 0, first.stderr
    assert json.loads(report.read_text())["outcomes"] == {"copied": 31}
    source, target = LabClient(corpus_source.url), LabClient(destination.url)
    for repository in source.list_repositories():
        for tag in source.list_tags(repository):
            assert target.get_manifest(repository, tag) == source.get_manifest(
                repository, tag
            )
    assert second.returncode == 0, second.stderr
    assert "31 up_to_date" in second.stdout
    assert proxy.manifest_puts() == 0
    assert proxy.blob_upload_puts() == 0
    # One HEAD per tag at the destination, nothing else.
    assert len(proxy.requests) == 31


def test_backfill_transfers_each_shared_blob_once(
    corpus_source: RegistryProcess,
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    tmp_path: Path,
) -> None:
    proxy = fault_proxy_factory(corpus_source)
    destination = registry_factory()
    config = write_config(tmp_path / "c.yaml", proxy.url, {"dst": destination.url})

    result = run("backfill", "--config", str(config))

    assert result.returncode == 0, result.stderr
    unique_blobs = {
        blob
        for repository in LabClient(destination.url).list_repositories()
        for blob in _blob_digests(destination, repository)
    }
    assert proxy.blob_gets() == len(unique_blobs)


def _blob_digests(registry: RegistryProcess, repository: str) -> set[str]:
    client = LabClient(registry.url)
    digests: set[str] = set()
    for tag in client.list_tags(repository):
        document = json.loads(client.get_manifest(repository, tag)[0])
        manifests = document.get("manifests")
        children = (
            [
                json.loads(client.get_manifest(repository, m["digest"])[0])
                for m in manifests
            ]
            if manifests
            else [document]
        )
        for child in children:
            digests.add(child["config"]["digest"])
            digests.update(layer["digest"] for layer in child["layers"])
    return digests


def test_dry_run_pushes_nothing(
    corpus_source: RegistryProcess, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    destination = registry_factory()
    config = write_config(
        tmp_path / "c.yaml", corpus_source.url, {"dst": destination.url}
    )

    result = run("backfill", "--config", str(config), "--dry-run")

    assert result.returncode == 0, result.stderr
    assert "would copy: 31 images (31 planned)" in result.stdout
    assert LabClient(destination.url).list_repositories() == []


def test_backfill_applies_repository_and_tag_filters_and_prefix(
    corpus_source: RegistryProcess, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    destination = registry_factory()
    config = tmp_path / "c.yaml"
    config.write_text(
        "version: 1\n"
        "source: src\n"
        "registries:\n"
        f"  src: {{url: '{corpus_source.url}', insecure: true}}\n"
        f"  dst: {{url: '{destination.url}', insecure: true}}\n"
        "rules:\n"
        "  - destinations: [{registry: dst, repositoryPrefix: 'mirror/'}]\n"
        "    repositoryFilters: [{filter: 'team/', filterType: PREFIX_MATCH}]\n"
        "    repositoryExclusions: [{filter: '**/sidecar', filterType: GLOB}]\n"
        "    tagFilters: [{filter: 'v[0-9]*', filterType: REGEX}]\n"
    )

    result = run("backfill", "--config", str(config))

    assert result.returncode == 0, result.stderr
    assert LabClient(destination.url).list_repositories() == ["mirror/team/app"]


def test_verify_reports_a_drifted_tag(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    source, destination = registry_factory(), registry_factory()
    LabClient(source.url).push_image("app", "1.0", sample_image("one"))
    LabClient(source.url).push_image("app", "2.0", sample_image("two"))
    config = write_config(tmp_path / "c.yaml", source.url, {"dst": destination.url})
    assert run("backfill", "--config", str(config)).returncode == 0
    LabClient(destination.url).push_image("app", "2.0", sample_image("drift"))
    report = tmp_path / "verify.json"

    result = run("verify", "--config", str(config), "--report", str(report))

    assert result.returncode == 1
    assert "drifted" in result.stdout
    problems = json.loads(report.read_text())["problems"]
    assert [(p["reference"], p["state"]) for p in problems] == [("2.0", "drifted")]


def test_backfill_exits_non_zero_when_an_image_fails(
    corpus_source: RegistryProcess,
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    tmp_path: Path,
) -> None:
    from tests.lab.proxy import Respond, oci_error_body

    destination = registry_factory()
    proxy = fault_proxy_factory(destination)
    proxy.add_fault(
        Respond(403, body=oci_error_body("DENIED", "no")),
        method="PUT",
        path=r"/v2/web/manifests/",
        times=None,
    )
    config = write_config(tmp_path / "c.yaml", corpus_source.url, {"dst": proxy.url})

    result = run("backfill", "--config", str(config), "--log-format", "json")

    assert result.returncode == 1
    failed = [e for e in log_events(result.stderr) if e.get("outcome") == "failed"]
    assert failed
    assert all(e["repository"] == "web" for e in failed)
    assert all("DENIED" in str(e["error"]) for e in failed)


def test_copy_copies_one_image_under_a_new_tag(
    registry_factory: RegistryFactory,
) -> None:
    source, destination = registry_factory(), registry_factory()
    image = sample_image("copy")
    LabClient(source.url).push_image("app", "1.0", image)

    result = run(
        "copy",
        f"{source.host_port}/app:1.0",
        f"{destination.host_port}/copies/app:stable",
        "--src-insecure",
        "--dest-insecure",
    )

    assert result.returncode == 0, result.stderr
    assert (
        LabClient(destination.url).get_manifest("copies/app", "stable")[2]
        == image.digest
    )


def test_copy_uses_credentials_from_the_environment(
    registry_factory: RegistryFactory,
) -> None:
    source = registry_factory()
    destination = registry_factory(htpasswd={"alice": "s3cret-pass"})
    LabClient(source.url).push_image("app", "1.0", sample_image("auth"))

    denied = run(
        "copy",
        f"{source.host_port}/app:1.0",
        f"{destination.host_port}/app:1.0",
        "--src-insecure",
        "--dest-insecure",
        "--dest-creds-env",
        "DST_CREDS",
        env={"DST_CREDS": "alice:wrong-pass"},
    )
    allowed = run(
        "copy",
        f"{source.host_port}/app:1.0",
        f"{destination.host_port}/app:1.0",
        "--src-insecure",
        "--dest-insecure",
        "--dest-creds-env",
        "DST_CREDS",
        env={"DST_CREDS": "alice:s3cret-pass"},
    )

    assert denied.returncode == 1
    assert "unauthorized" in denied.stdout
    assert "wrong-pass" not in denied.stdout + denied.stderr
    assert allowed.returncode == 0, allowed.stderr + allowed.stdout


def test_check_config_prints_effective_rules(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.yaml", "http://127.0.0.1:1", {"dst": "http://127.0.0.1:2"}
    )

    result = run("check-config", str(config))

    assert result.returncode == 0, result.stderr
    assert '"registry": "dst"' in result.stdout


def test_check_config_names_the_key_path_of_an_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "version: 1\nsource: src\nregistries:\n"
        "  src: {url: 'http://h:1', insecure: true}\n"
        "rules:\n  - destinations: [{registry: nowhere}]\n"
    )

    result = run("check-config", str(config))

    assert result.returncode == 2
    assert "rules[0].destinations[0].registry" in result.stderr


def test_backfill_pushes_its_figures_to_a_pushgateway(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    source, destination = registry_factory(), registry_factory()
    LabClient(source.url).push_image("app", "1.0", sample_image("pushed"))
    config = write_config(tmp_path / "c.yaml", source.url, {"dst": destination.url})
    gateway = PushgatewayServer(tmp_path / "pushgateway").start()
    try:
        result = run("backfill", "--config", str(config), "--pushgateway", gateway.url)
        samples = gateway.samples()
    finally:
        gateway.stop()

    assert result.returncode == 0, result.stderr
    assert samples["replicator_backfill_last_success_timestamp_seconds"]
    copied = [
        value
        for _, labels, value in samples["replicator_images"]
        if labels.get("result") == "copied"
    ]
    assert copied == [1.0]


def test_copy_from_a_plain_http_registry_without_insecure_says_what_to_do(
    registry_factory: RegistryFactory,
) -> None:
    source, destination = registry_factory(), registry_factory()
    LabClient(source.url).push_image("app", "1.0", sample_image("tls"))

    result = run(
        "copy",
        f"{source.host_port}/app:1.0",
        f"{destination.host_port}/app:1.0",
        "--dest-insecure",
        "--log-format",
        "json",
    )

    assert result.returncode == 1
    assert "TLS handshake failed" in result.stdout
    assert "--src-insecure" in result.stdout
    retries = [e for e in log_events(result.stderr) if e["event"] == "request_retried"]
    assert retries == []


def test_check_config_also_takes_the_config_option(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.yaml", "http://127.0.0.1:1", {"dst": "http://127.0.0.1:2"}
    )

    result = run("check-config", "--config", str(config))

    assert result.returncode == 0, result.stderr
