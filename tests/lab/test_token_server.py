from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.lab.fixtures import LAB_USER, AuthenticatedRegistry, RegistryFactory
from tests.lab.images import Blob
from tests.lab.pusher import Credentials, LabClient, LabRegistryError
from tests.lab.token_server import ResourceAccess, TokenServer, parse_scope


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=="))
    return decoded


def _fetch_token(server: TokenServer, query: str, credentials: Credentials) -> str:
    request = urllib.request.Request(
        f"{server.realm}?{query}",
        headers={"Authorization": credentials.basic_header()},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        answer: dict[str, str] = json.load(response)
    return answer["token"]


def test_registry_challenges_with_the_bearer_realm(
    token_registry: AuthenticatedRegistry,
) -> None:
    assert token_registry.token_server is not None
    expected = (
        f'Bearer realm="{token_registry.token_server.realm}",service="lab-registry"'
    )

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(token_registry.url + "/v2/", timeout=5)
    caught.value.close()

    assert caught.value.code == 401
    assert caught.value.headers["WWW-Authenticate"] == expected


def test_token_lets_a_client_push_and_pull_a_blob(
    token_registry: AuthenticatedRegistry,
) -> None:
    client = LabClient(token_registry.url, credentials=token_registry.credentials)
    blob = Blob("application/octet-stream", b"pushed with a lab token")

    client.push_blob("lab/app", blob)
    pulled = client.get_blob("lab/app", blob.digest)

    assert pulled == blob.data
    assert token_registry.token_server is not None
    first = token_registry.token_server.requests[0]
    assert (first.user, first.scopes) == ("lab-user", ("repository:lab/app:pull",))


def test_token_carries_the_claims_distribution_checks(
    token_server: TokenServer,
) -> None:
    query = "service=lab-registry&scope=repository:lab/app:pull,push"

    claims = _claims(_fetch_token(token_server, query, LAB_USER))

    assert claims["iss"] == "lab-token-issuer"
    assert claims["aud"] == "lab-registry"
    assert claims["sub"] == "lab-user"
    assert claims["access"] == [
        {"type": "repository", "name": "lab/app", "actions": ["pull", "push"]}
    ]


def test_records_every_scope_asked(token_server: TokenServer) -> None:
    query = (
        "service=lab-registry&scope=repository:lab/a:pull"
        "&scope=repository:lab/b:pull,push"
    )

    _fetch_token(token_server, query, LAB_USER)

    assert token_server.requests[0].scopes == (
        "repository:lab/a:pull",
        "repository:lab/b:pull,push",
    )


def test_anonymous_clients_get_no_access(
    token_registry: AuthenticatedRegistry,
) -> None:
    client = LabClient(token_registry.url)

    with pytest.raises(LabRegistryError) as caught:
        client.list_tags("lab/app")

    assert caught.value.status == 401
    assert token_registry.token_server is not None
    assert token_registry.token_server.requests[0].granted == ()


def test_wrong_password_is_refused_by_the_token_service(
    token_server: TokenServer,
) -> None:
    wrong = Credentials(LAB_USER.username, "wrong")

    with pytest.raises(urllib.error.HTTPError) as caught:
        _fetch_token(token_server, "service=lab-registry", wrong)
    caught.value.close()

    assert caught.value.code == 401
    assert token_server.requests[0].status == 401


def test_read_only_user_cannot_push(
    tmp_path: Path, registry_factory: RegistryFactory
) -> None:
    server = TokenServer(
        tmp_path / "tokens",
        users={"reader": "pw"},
        actions_by_user={"reader": ["pull"]},
    ).start()
    try:
        registry = registry_factory(token_auth=server.registry_auth())
        client = LabClient(registry.url, credentials=Credentials("reader", "pw"))
        with pytest.raises(LabRegistryError) as caught:
            client.push_blob("lab/app", Blob("application/octet-stream", b"x"))
    finally:
        server.stop()

    assert caught.value.status == 401


def test_expires_in_is_configurable(token_server: TokenServer) -> None:
    token_server.expires_in_s = 2

    claims = _claims(_fetch_token(token_server, "service=lab-registry", LAB_USER))

    assert claims["exp"] == claims["iat"] + 2


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("repository:lab/app:pull", ResourceAccess("repository", "lab/app", ("pull",))),
        (
            "repository:127.0.0.1:5000/app:pull,push",
            ResourceAccess("repository", "127.0.0.1:5000/app", ("pull", "push")),
        ),
        ("registry:catalog:*", ResourceAccess("registry", "catalog", ("*",))),
    ],
)
def test_parses_scopes(scope: str, expected: ResourceAccess) -> None:
    assert parse_scope(scope) == expected
