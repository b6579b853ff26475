from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.lab.fixtures import AuthenticatedRegistry, RegistryFactory
from tests.lab.images import sample_image
from tests.lab.pusher import Credentials, LabClient, LabRegistryError
from tests.lab.registry import (
    NotificationEndpoint,
    RegistryProcess,
    RegistryStartError,
    TokenAuthConfig,
    probe_status,
)


def test_answers_the_api_version_check(registry: RegistryProcess) -> None:
    with urllib.request.urlopen(registry.url + "/v2/", timeout=5) as response:
        headers = response.headers

    assert headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert registry.host_port == f"127.0.0.1:{registry.port}"


def test_restart_keeps_port_and_content(registry: RegistryProcess) -> None:
    image = sample_image()
    LabClient(registry.url).push_image("lab/app", "v1", image)
    port = registry.port

    registry.stop()
    stopped_status = probe_status(registry.url + "/v2/")
    registry.start()

    assert stopped_status is None
    assert registry.port == port
    assert LabClient(registry.url).get_manifest("lab/app", "v1")[2] == image.digest


def test_runs_several_registries_on_other_loopback_hosts(
    registry_factory: RegistryFactory,
) -> None:
    first = registry_factory(host="127.0.0.3")
    second = registry_factory(host="127.0.0.4")

    assert probe_status(first.url + "/v2/") == 200
    assert probe_status(second.url + "/v2/") == 200
    assert first.storage_path != second.storage_path


def test_relative_urls_make_upload_locations_paths(
    registry_factory: RegistryFactory,
) -> None:
    registry = registry_factory(relative_urls=True)
    request = urllib.request.Request(
        registry.url + "/v2/lab/app/blobs/uploads/", method="POST"
    )

    with urllib.request.urlopen(request, timeout=5) as response:
        location = response.headers["Location"]

    assert location.startswith("/v2/lab/app/blobs/uploads/")


def test_writes_notification_endpoints(registry_factory: RegistryFactory) -> None:
    endpoint = NotificationEndpoint(
        name="daemon",
        url="http://127.0.0.1:9/events",
        headers={"Authorization": "Bearer lab"},
        timeout_s=0.5,
    )

    registry = registry_factory(notifications=[endpoint])
    config = yaml.safe_load(registry.config_path.read_text())

    assert config["notifications"]["endpoints"] == [
        {
            "name": "daemon",
            "url": "http://127.0.0.1:9/events",
            "headers": {"Authorization": ["Bearer lab"]},
            "timeout": "500ms",
            "threshold": 3,
            "backoff": "1000ms",
        }
    ]


def test_start_failure_carries_the_log_tail(tmp_path: Path) -> None:
    missing_bundle = TokenAuthConfig(
        realm="http://127.0.0.1:9/token",
        service="lab",
        issuer="lab",
        root_cert_bundle=tmp_path / "missing.pem",
    )
    registry = RegistryProcess(tmp_path, token_auth=missing_bundle)

    with pytest.raises(RegistryStartError, match=r"exited:\n.*missing\.pem"):
        registry.start()

    assert not registry.running


def test_basic_auth_challenges_anonymous_clients(
    basic_auth_registry: AuthenticatedRegistry,
) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(basic_auth_registry.url + "/v2/", timeout=5)
    caught.value.close()

    assert caught.value.code == 401
    assert caught.value.headers["WWW-Authenticate"] == 'Basic realm="lab-registry"'


def test_basic_auth_accepts_the_right_password(
    basic_auth_registry: AuthenticatedRegistry,
) -> None:
    client = LabClient(
        basic_auth_registry.url, credentials=basic_auth_registry.credentials
    )
    image = sample_image()

    digest = client.push_image("lab/app", "v1", image)

    assert digest == image.digest
    assert client.list_tags("lab/app") == ["v1"]


def test_basic_auth_refuses_a_wrong_password(
    basic_auth_registry: AuthenticatedRegistry,
) -> None:
    wrong = Credentials(basic_auth_registry.credentials.username, "wrong")
    client = LabClient(basic_auth_registry.url, credentials=wrong)

    with pytest.raises(LabRegistryError) as caught:
        client.list_tags("lab/app")

    assert caught.value.status == 401
    assert json.loads(caught.value.result.body)["errors"][0]["code"] == "UNAUTHORIZED"
