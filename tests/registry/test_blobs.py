"""Blob uploads and mounts against real registries, with faults where they matter."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from replicator.errors import RegistryError
from replicator.registry import blobs
from replicator.registry.blobs import ChunkSource, MountResult
from tests.lab.fixtures import (
    AuthenticatedRegistry,
    FaultProxyFactory,
    RegistryFactory,
)
from tests.lab.images import Blob, make_layer, random_tar
from tests.lab.proxy import (
    BLOB_UPLOAD_PATH,
    Reset,
    Respond,
    oci_error_body,
    service_unavailable,
)
from tests.lab.pusher import LabClient
from tests.lab.registry import RegistryProcess
from tests.support import client_for

STREAM_PIECE_BYTES = 48 * 1024


def _chunks_of(data: bytes) -> ChunkSource:
    """Return a chunk source that streams ``data`` in pieces, as a download would."""

    @asynccontextmanager
    async def open_chunks() -> AsyncIterator[AsyncIterator[bytes]]:
        async def pieces() -> AsyncIterator[bytes]:
            for start in range(0, len(data), STREAM_PIECE_BYTES):
                yield data[start : start + STREAM_PIECE_BYTES]

        yield pieces()

    return open_chunks


def _large_blob(seed: str) -> Blob:
    return make_layer(random_tar(200 * 1024, seed=seed), "none").blob


async def _upload(url: str, session: aiohttp.ClientSession, blob: Blob) -> None:
    client = client_for(session, url)
    await blobs.upload(
        client, "team/app", blob.digest, blob.size, _chunks_of(blob.data)
    )


async def test_uploads_a_blob_in_one_put(
    registry: RegistryProcess,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    proxy = fault_proxy_factory(registry)
    blob = _large_blob("monolithic")

    await _upload(proxy.url, session, blob)

    assert LabClient(registry.url).get_blob("team/app", blob.digest) == blob.data
    assert proxy.count("POST", BLOB_UPLOAD_PATH) == 1
    assert proxy.count("PATCH") == 0
    assert proxy.blob_upload_puts() == 1


async def test_uploads_in_chunks_when_one_put_is_refused_as_too_large(
    registry: RegistryProcess,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(blobs, "PATCH_CHUNK_BYTES", 64 * 1024)
    proxy = fault_proxy_factory(registry)
    proxy.add_fault(Respond(413), method="PUT", path=BLOB_UPLOAD_PATH)
    blob = _large_blob("chunked")

    await _upload(proxy.url, session, blob)

    assert LabClient(registry.url).get_blob("team/app", blob.digest) == blob.data
    assert proxy.count("PATCH", BLOB_UPLOAD_PATH) == -(-blob.size // (64 * 1024))
    assert proxy.blob_upload_puts() == 2


@pytest.mark.parametrize("refuse_whole", [False, True])
async def test_follows_relative_upload_locations(
    registry_factory: RegistryFactory,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    fault_proxy_factory: FaultProxyFactory,
    refuse_whole: bool,
) -> None:
    monkeypatch.setattr(blobs, "PATCH_CHUNK_BYTES", 64 * 1024)
    registry = registry_factory(relative_urls=True)
    started = LabClient(registry.url).request("POST", "/v2/team/app/blobs/uploads/")
    assert (started.header("Location") or "").startswith("/v2/team/app/")
    proxy = fault_proxy_factory(registry)
    if refuse_whole:
        proxy.add_fault(Respond(413), method="PUT", path=BLOB_UPLOAD_PATH)
    blob = _large_blob(f"relative-{refuse_whole}")

    await _upload(proxy.url, session, blob)

    assert LabClient(registry.url).get_blob("team/app", blob.digest) == blob.data


async def test_mounts_a_blob_from_another_repository(
    registry: RegistryProcess,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    blob = _large_blob("mounted")
    LabClient(registry.url).push_blob("team/source", blob)
    proxy = fault_proxy_factory(registry)
    client = client_for(session, proxy.url)

    result = await blobs.mount(client, "team/target", blob.digest, "team/source")

    assert result == MountResult(mounted=True)
    assert LabClient(registry.url).get_blob("team/target", blob.digest) == blob.data
    assert proxy.blob_upload_puts() == 0


async def test_uploads_through_the_session_a_refused_mount_opened(
    registry: RegistryProcess,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    proxy = fault_proxy_factory(registry)
    client = client_for(session, proxy.url)
    blob = _large_blob("not-in-source")

    result = await blobs.mount(client, "team/target", blob.digest, "team/source")
    assert not result.mounted
    assert result.upload_url is not None
    await blobs.upload(
        client,
        "team/target",
        blob.digest,
        blob.size,
        _chunks_of(blob.data),
        result.upload_url,
    )

    assert LabClient(registry.url).get_blob("team/target", blob.digest) == blob.data
    assert proxy.count("POST", BLOB_UPLOAD_PATH) == 1


async def test_falls_back_when_a_mount_is_refused_for_lack_of_scope(
    token_registry: AuthenticatedRegistry,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    blob = _large_blob("unauthorized-mount")
    lab = LabClient(token_registry.url, credentials=token_registry.credentials)
    lab.push_blob("team/source", blob)
    assert token_registry.token_server is not None
    proxy = fault_proxy_factory(token_registry.registry)
    client = client_for(session, proxy.url, token_registry.credentials)
    assert not await blobs.exists(client, "team/target", blob.digest)
    challenge = (
        f'Bearer realm="{token_registry.token_server.realm}",service="lab-registry",'
        'scope="repository:team/source:pull",error="insufficient_scope"'
    )
    proxy.add_fault(
        Respond(
            401,
            {"WWW-Authenticate": challenge},
            oci_error_body("UNAUTHORIZED", "authentication required"),
        ),
        method="POST",
        path=BLOB_UPLOAD_PATH,
        times=2,
    )

    result = await blobs.mount(client, "team/target", blob.digest, "team/source")
    await blobs.upload(
        client, "team/target", blob.digest, blob.size, _chunks_of(blob.data)
    )

    assert result == MountResult(mounted=False)
    assert lab.get_blob("team/target", blob.digest) == blob.data


async def test_falls_back_when_a_registry_refuses_mounts(
    registry: RegistryProcess,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    blob = _large_blob("mount-unsupported")
    LabClient(registry.url).push_blob("team/source", blob)
    proxy = fault_proxy_factory(registry)
    proxy.add_fault(
        Respond(400, body=oci_error_body("UNSUPPORTED", "no mounts here")),
        method="POST",
        path=BLOB_UPLOAD_PATH,
    )
    client = client_for(session, proxy.url)

    result = await blobs.mount(client, "team/target", blob.digest, "team/source")

    assert result == MountResult(mounted=False)


@pytest.mark.parametrize("fault", [service_unavailable(), Reset()])
async def test_retries_a_mount_that_failed_for_a_moment(
    registry: RegistryProcess,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
    fault: Respond | Reset,
) -> None:
    blob = _large_blob("mount-retried")
    LabClient(registry.url).push_blob("team/source", blob)
    proxy = fault_proxy_factory(registry)
    proxy.add_fault(fault, method="POST", path=BLOB_UPLOAD_PATH)
    client = client_for(session, proxy.url)

    result = await blobs.mount(client, "team/target", blob.digest, "team/source")

    assert result == MountResult(mounted=True)
    assert proxy.count("POST", BLOB_UPLOAD_PATH) == 2


async def test_a_blob_upload_refused_for_good_names_the_code(
    registry: RegistryProcess,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    proxy = fault_proxy_factory(registry)
    proxy.add_fault(
        Respond(403, body=oci_error_body("DENIED", "read-only registry")),
        method="PUT",
        path=BLOB_UPLOAD_PATH,
        times=None,
    )
    blob = _large_blob("denied")

    with pytest.raises(RegistryError) as caught:
        await _upload(proxy.url, session, blob)

    assert caught.value.codes == ("DENIED",)
    assert "DENIED" in str(caught.value)
    assert re.search(r"_state=(?!REDACTED)", str(caught.value)) is None
    assert proxy.blob_upload_puts() == 1
