"""The registry client's transport against real registries: auth, redirects, errors."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import pytest
import structlog.testing

from replicator.errors import AuthenticationError, RegistryError
from replicator.manifest import make_manifest
from replicator.reference import sha256_digest
from replicator.registry import blobs, manifests, tags
from replicator.registry.auth import Credentials
from replicator.registry.client import RegistryClient, RegistryEndpoint
from tests.lab.fixtures import AuthenticatedRegistry, FaultProxyFactory
from tests.lab.images import sample_image
from tests.lab.proxy import (
    BLOB_UPLOAD_PATH,
    MANIFEST_PATH,
    Respond,
    SlowBody,
    oci_error_body,
)
from tests.lab.pusher import Credentials as LabCredentials
from tests.lab.pusher import LabClient
from tests.lab.registry import RegistryProcess
from tests.support import FAST_RETRY, client_for

WRONG_PASSWORD = "wrong-password-9f3a"


@dataclass(slots=True)
class RotatingCredentials:
    """A credential source whose credentials in hand go stale; a refresh fixes them."""

    current: Credentials
    fresh: Credentials
    gets: int = 0
    invalidations: int = 0

    async def get(self) -> Credentials:
        self.gets += 1
        return self.current

    def invalidate(self) -> None:
        self.invalidations += 1
        self.current = self.fresh


def _client(
    session: aiohttp.ClientSession, url: str, source: RotatingCredentials, name: str
) -> RegistryClient:
    endpoint = RegistryEndpoint(name, url, verify_tls=False)
    return RegistryClient(session, endpoint, source, FAST_RETRY)


async def test_reads_from_a_basic_auth_registry(
    basic_auth_registry: AuthenticatedRegistry, session: aiohttp.ClientSession
) -> None:
    image = sample_image("basic")
    lab = LabClient(
        basic_auth_registry.url, credentials=basic_auth_registry.credentials
    )
    lab.push_image("team/app", "1", image)
    client = client_for(
        session, basic_auth_registry.url, basic_auth_registry.credentials
    )

    manifest = await manifests.get(client, "team/app", "1")

    assert manifest.data == image.manifest


async def test_requests_one_token_per_scope_set_and_reuses_it(
    token_registry: AuthenticatedRegistry, session: aiohttp.ClientSession
) -> None:
    image = sample_image("token")
    lab = LabClient(token_registry.url, credentials=token_registry.credentials)
    lab.push_image("team/app", "1", image)
    token_server = token_registry.token_server
    assert token_server is not None
    before = len(token_server.requests)
    client = client_for(session, token_registry.url, token_registry.credentials)

    for _ in range(3):
        await manifests.head(client, "team/app", "1")
        await manifests.get(client, "team/app", image.digest)
        assert await blobs.exists(client, "team/app", image.config.digest)
    await blobs.start_upload(client, "team/copy", image.config.digest)
    await blobs.start_upload(client, "team/copy", image.config.digest)

    requested = Counter(
        frozenset(request.scopes) for request in token_server.requests[before:]
    )
    assert requested == Counter(
        {
            frozenset({"repository:team/app:pull"}): 1,
            frozenset({"repository:team/copy:pull,push"}): 1,
        }
    )


async def test_concurrent_requests_share_one_token(
    token_registry: AuthenticatedRegistry, session: aiohttp.ClientSession
) -> None:
    image = sample_image("concurrent-token")
    lab = LabClient(token_registry.url, credentials=token_registry.credentials)
    lab.push_image("team/app", "1", image)
    token_server = token_registry.token_server
    assert token_server is not None
    before = len(token_server.requests)
    client = client_for(session, token_registry.url, token_registry.credentials)

    found = await asyncio.gather(
        *(manifests.head(client, "team/app", "1") for _ in range(8))
    )

    assert {descriptor.digest for descriptor in found if descriptor} == {image.digest}
    assert len(token_server.requests[before:]) == 1


async def test_a_mount_asks_for_both_scopes_in_one_token_request(
    token_registry: AuthenticatedRegistry, session: aiohttp.ClientSession
) -> None:
    image = sample_image("mount")
    lab = LabClient(token_registry.url, credentials=token_registry.credentials)
    lab.push_image("team/source", "1", image)
    token_server = token_registry.token_server
    assert token_server is not None
    client = client_for(session, token_registry.url, token_registry.credentials)
    # A challenge learned for another repository must not widen the mount's token.
    await manifests.head(client, "team/other", "1")
    before = len(token_server.requests)

    result = await blobs.mount(
        client, "team/target", image.config.digest, "team/source"
    )

    assert result.mounted
    assert [set(request.scopes) for request in token_server.requests[before:]] == [
        {"repository:team/target:pull,push", "repository:team/source:pull"}
    ]
    assert lab.blob_exists("team/target", image.config.digest)


@pytest.mark.parametrize("auth", ["basic", "token"])
async def test_a_wrong_password_names_the_registry_and_not_the_password(
    basic_auth_registry: AuthenticatedRegistry,
    token_registry: AuthenticatedRegistry,
    session: aiohttp.ClientSession,
    auth: str,
) -> None:
    registry = basic_auth_registry if auth == "basic" else token_registry
    wrong = LabCredentials(registry.credentials.username, WRONG_PASSWORD)
    client = client_for(session, registry.url, wrong, name="eu-mirror")

    with (
        structlog.testing.capture_logs() as logs,
        pytest.raises(AuthenticationError) as caught,
    ):
        await manifests.head(client, "team/app", "1")

    message = str(caught.value)
    assert "eu-mirror" in message
    assert caught.value.status == 401
    assert WRONG_PASSWORD not in message
    assert WRONG_PASSWORD not in repr(logs)


async def test_refreshes_refused_credentials_once(
    basic_auth_registry: AuthenticatedRegistry, session: aiohttp.ClientSession
) -> None:
    lab = LabClient(
        basic_auth_registry.url, credentials=basic_auth_registry.credentials
    )
    image = sample_image("rotate")
    lab.push_image("team/app", "1", image)
    good = basic_auth_registry.credentials
    source = RotatingCredentials(
        current=Credentials(good.username, WRONG_PASSWORD),
        fresh=Credentials(good.username, good.password),
    )
    client = _client(session, basic_auth_registry.url, source, "rotating")

    found = await manifests.head(client, "team/app", "1")

    assert found is not None
    assert found.digest == image.digest
    assert source.invalidations == 1


async def test_refreshes_credentials_refused_after_they_worked_once(
    basic_auth_registry: AuthenticatedRegistry, session: aiohttp.ClientSession
) -> None:
    good = basic_auth_registry.credentials
    lab = LabClient(basic_auth_registry.url, credentials=good)
    image = sample_image("rotate-later")
    lab.push_image("team/app", "1", image)
    fresh = Credentials(good.username, good.password)
    source = RotatingCredentials(current=fresh, fresh=fresh)
    client = _client(session, basic_auth_registry.url, source, "rotating")
    assert await manifests.head(client, "team/app", "1") is not None
    # The credentials in hand expire: the registry now refuses them.
    source.current = Credentials(good.username, WRONG_PASSWORD)

    found = await manifests.head(client, "team/app", "1")

    assert found is not None
    assert source.invalidations == 1


async def test_refreshes_credentials_the_token_service_refused_once(
    token_registry: AuthenticatedRegistry, session: aiohttp.ClientSession
) -> None:
    good = token_registry.credentials
    LabClient(token_registry.url, credentials=good).push_image(
        "team/app", "1", sample_image("token-rotate")
    )
    source = RotatingCredentials(
        current=Credentials(good.username, WRONG_PASSWORD),
        fresh=Credentials(good.username, good.password),
    )
    client = _client(session, token_registry.url, source, "rotating")

    found = await manifests.head(client, "team/app", "1")

    assert found is not None
    assert source.invalidations == 1


async def test_gives_up_when_refreshed_credentials_are_refused_too(
    basic_auth_registry: AuthenticatedRegistry,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    proxy = fault_proxy_factory(basic_auth_registry.registry)
    wrong = Credentials(basic_auth_registry.credentials.username, WRONG_PASSWORD)
    source = RotatingCredentials(current=wrong, fresh=wrong)
    client = _client(session, proxy.url, source, "rotating")

    with pytest.raises(AuthenticationError):
        await manifests.head(client, "team/app", "1")

    assert source.invalidations == 1
    assert proxy.count("HEAD", MANIFEST_PATH) == 3


async def test_sends_no_authorization_to_the_host_a_blob_redirects_to(
    basic_auth_registry: AuthenticatedRegistry,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    credentials = basic_auth_registry.credentials
    image = sample_image("redirected")
    LabClient(basic_auth_registry.url, credentials=credentials).push_image(
        "team/app", "1", image
    )
    proxy = fault_proxy_factory(basic_auth_registry.registry)
    proxy.redirect_blobs()
    client = client_for(session, proxy.url, credentials)
    layer = image.layers[0]

    async with blobs.open_stream(client, "team/app", layer.digest) as chunks:
        data = b"".join([chunk async for chunk in chunks])

    assert data == layer.data
    assert [request.status for request in proxy.blob_host_requests] == [200]
    assert not any(request.authorized for request in proxy.blob_host_requests)


async def test_logs_a_signed_blob_url_without_its_signature(
    registry: RegistryProcess,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    image = sample_image("signed-url")
    LabClient(registry.url).push_image("team/app", "1", image)
    proxy = fault_proxy_factory(registry)
    proxy.redirect_blobs()
    client = client_for(session, proxy.url)

    with structlog.testing.capture_logs() as logs:
        async with blobs.open_stream(
            client, "team/app", image.layers[0].digest
        ) as chunks:
            async for _ in chunks:
                pass

    urls = [entry["url"] for entry in logs if entry["event"] == "http_request"]
    signed = [url for url in urls if url.startswith(proxy.blob_host_url)]
    assert len(signed) == 1
    assert "X-Amz-Signature=REDACTED" in signed[0]
    assert "X-Amz-Signature=secret" not in repr(logs)


@pytest.mark.parametrize(
    ("status", "code"), [(400, "MANIFEST_INVALID"), (403, "DENIED")]
)
async def test_fails_at_once_with_the_registry_error_code(
    registry: RegistryProcess,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
    status: int,
    code: str,
) -> None:
    proxy = fault_proxy_factory(registry)
    proxy.add_fault(
        Respond(status, body=oci_error_body(code, "lab says no")),
        method="PUT",
        path=MANIFEST_PATH,
        times=None,
    )
    image = sample_image("refused")
    client = client_for(session, proxy.url)

    with pytest.raises(RegistryError) as caught:
        await manifests.put(
            client, "team/app", "1", make_manifest(image.manifest, None, None)
        )

    assert caught.value.status == status
    assert caught.value.codes == (code,)
    assert code in str(caught.value)
    assert proxy.manifest_puts() == 1


async def test_reads_error_codes_from_a_body_that_arrives_in_pieces(
    registry: RegistryProcess,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    proxy = fault_proxy_factory(registry)
    proxy.add_fault(SlowBody(chunk_bytes=16, pause_s=0.001), method="PUT")
    image = sample_image("blobs-missing")
    client = client_for(session, proxy.url)

    with pytest.raises(RegistryError) as caught:
        await manifests.put(
            client, "team/app", "1", make_manifest(image.manifest, None, None)
        )

    assert caught.value.status == 400
    assert set(caught.value.codes) == {"MANIFEST_BLOB_UNKNOWN"}


async def test_sends_no_credentials_to_another_host_a_page_link_names(
    basic_auth_registry: AuthenticatedRegistry,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    proxy = fault_proxy_factory(basic_auth_registry.registry)
    elsewhere = f"{proxy.blob_host_url}/v2/_catalog?n=2&last=b"
    proxy.add_fault(
        Respond(
            200,
            {"Link": f'<{elsewhere}>; rel="next"', "Content-Type": "application/json"},
            b'{"repositories": ["a", "b"]}',
        ),
        method="GET",
        path="^/v2/_catalog$",
    )
    client = client_for(session, proxy.url, basic_auth_registry.credentials)
    await manifests.head(client, "team/app", "1")

    with pytest.raises(RegistryError):
        _ = [name async for name in tags.list_repositories(client)]

    assert len(proxy.blob_host_requests) == 1
    assert not proxy.blob_host_requests[0].authorized


async def test_sends_no_credentials_to_another_host_an_upload_location_names(
    basic_auth_registry: AuthenticatedRegistry,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    proxy = fault_proxy_factory(basic_auth_registry.registry)
    elsewhere = f"{proxy.blob_host_url}/v2/team/app/blobs/uploads/stolen"
    proxy.add_fault(
        Respond(202, {"Location": elsewhere}),
        method="POST",
        path=BLOB_UPLOAD_PATH,
    )
    client = client_for(session, proxy.url, basic_auth_registry.credentials)
    data = b"a blob that must not travel with credentials"
    assert not await blobs.exists(client, "team/app", sha256_digest(data))

    @asynccontextmanager
    async def open_chunks() -> AsyncIterator[AsyncIterator[bytes]]:
        async def pieces() -> AsyncIterator[bytes]:
            yield data

        yield pieces()

    with pytest.raises(RegistryError):
        await blobs.upload(
            client, "team/app", sha256_digest(data), len(data), open_chunks
        )

    assert proxy.blob_host_requests
    assert not any(request.authorized for request in proxy.blob_host_requests)


async def test_an_upload_answer_without_location_names_the_registry(
    registry: RegistryProcess,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    proxy = fault_proxy_factory(registry)
    proxy.add_fault(Respond(202), method="POST", path=BLOB_UPLOAD_PATH, times=None)
    client = client_for(session, proxy.url, name="eu-mirror")
    digest = sha256_digest(b"x")

    with pytest.raises(RegistryError) as caught:
        await blobs.start_upload(client, "team/app", digest)

    assert "Location" in str(caught.value)
    assert "registry=eu-mirror" in str(caught.value)
    assert "repository=team/app" in str(caught.value)
