from __future__ import annotations

import http.client
import json
import time
import urllib.parse

import pytest

from tests.lab.fixtures import AuthenticatedRegistry, FaultProxyFactory
from tests.lab.images import Blob, make_layer, random_tar, sample_image
from tests.lab.proxy import (
    BLOB_PATH,
    MANIFEST_PATH,
    Delay,
    ProxiedRequest,
    Reset,
    SlowBody,
    Truncate,
    service_unavailable,
    too_many_requests,
)
from tests.lab.pusher import HttpResult, LabClient, LabRegistryError
from tests.lab.registry import RegistryProcess


def _raw_get(url: str, headers: dict[str, str] | None = None) -> HttpResult:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}", headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        lowered = {name.lower(): value for name, value in response.getheaders()}
    finally:
        connection.close()
    return HttpResult(response.status, lowered, body)


def test_push_and_read_back_through_the_proxy(
    registry: RegistryProcess, fault_proxy_factory: FaultProxyFactory
) -> None:
    proxy = fault_proxy_factory(registry)
    image = sample_image()
    client = LabClient(proxy.url)

    client.push_image("lab/app", "v1", image)
    manifest, _, digest = client.get_manifest("lab/app", "v1")
    layer = client.get_blob("lab/app", image.layers[0].digest)

    assert (manifest, digest) == (image.manifest, image.digest)
    assert layer == image.layers[0].data
    assert proxy.blob_upload_puts() == len(image.blobs)
    assert proxy.manifest_puts() == 1
    assert proxy.blob_gets() == 1
    assert LabClient(registry.url).get_manifest("lab/app", "v1")[2] == image.digest


def test_rewrites_upstream_locations_to_the_proxy(
    registry: RegistryProcess, fault_proxy_factory: FaultProxyFactory
) -> None:
    proxy = fault_proxy_factory(registry)

    started = LabClient(proxy.url).request("POST", "/v2/lab/app/blobs/uploads/")

    assert started.status == 202
    assert (started.header("Location") or "").startswith(proxy.url + "/v2/lab/app/")


def test_streams_a_large_blob_both_ways(
    registry: RegistryProcess, fault_proxy_factory: FaultProxyFactory
) -> None:
    proxy = fault_proxy_factory(registry)
    layer = make_layer(random_tar(8 * 1024 * 1024, seed="large"), "none")
    client = LabClient(proxy.url)

    client.push_blob("lab/big", layer.blob)

    assert client.get_blob("lab/big", layer.blob.digest) == layer.blob.data


def test_answers_429_with_retry_after_then_recovers(
    registry: RegistryProcess, fault_proxy_factory: FaultProxyFactory
) -> None:
    proxy = fault_proxy_factory(registry)
    proxy.add_fault(too_many_requests(retry_after_s=1), method="GET", times=1)
    client = LabClient(proxy.url)

    limited = client.request("GET", "/v2/lab/app/tags/list")
    recovered = client.request("GET", "/v2/lab/app/tags/list")

    assert limited.status == 429
    assert limited.header("Retry-After") == "1"
    assert json.loads(limited.body)["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert recovered.status == 404
    assert [r.fault for r in proxy.requests] == ["Respond", None]


def test_always_fault_until_cleared(
    registry: RegistryProcess, fault_proxy_factory: FaultProxyFactory
) -> None:
    proxy = fault_proxy_factory(registry)
    proxy.add_fault(service_unavailable(), path=MANIFEST_PATH, times=None)
    client = LabClient(proxy.url)

    statuses = [client.request("GET", "/v2/lab/app/manifests/v1").status]
    statuses.append(client.request("GET", "/v2/lab/app/manifests/v1").status)
    statuses.append(client.request("GET", "/v2/").status)
    proxy.clear_faults()
    statuses.append(client.request("GET", "/v2/lab/app/manifests/v1").status)

    assert statuses == [503, 503, 200, 404]


def test_resets_the_connection(
    registry: RegistryProcess, fault_proxy_factory: FaultProxyFactory
) -> None:
    proxy = fault_proxy_factory(registry)
    proxy.add_fault(Reset(), path="^/v2/$")

    with pytest.raises(ConnectionResetError):
        LabClient(proxy.url).request("GET", "/v2/")

    assert proxy.requests == [
        ProxiedRequest("proxy", "GET", "/v2/", "", False, None, "Reset")
    ]


def test_truncates_the_response_body(
    registry: RegistryProcess, fault_proxy_factory: FaultProxyFactory
) -> None:
    proxy = fault_proxy_factory(registry)
    image = sample_image()
    LabClient(registry.url).push_image("lab/app", "v1", image)
    proxy.add_fault(Truncate(after_bytes=100), path=BLOB_PATH)

    with pytest.raises(http.client.IncompleteRead) as caught:
        LabClient(proxy.url).get_blob("lab/app", image.layers[0].digest)

    assert len(caught.value.partial) == 100


def test_delays_and_slows_responses(
    registry: RegistryProcess, fault_proxy_factory: FaultProxyFactory
) -> None:
    proxy = fault_proxy_factory(registry)
    blob = Blob("application/octet-stream", bytes(4096))
    LabClient(registry.url).push_blob("lab/app", blob)
    proxy.add_fault(Delay(0.3), path="^/v2/$")
    proxy.add_fault(SlowBody(chunk_bytes=1024, pause_s=0.1), path=BLOB_PATH)
    client = LabClient(proxy.url)

    started = time.monotonic()
    client.request("GET", "/v2/")
    delayed_s = time.monotonic() - started
    started = time.monotonic()
    data = client.get_blob("lab/app", blob.digest)
    slowed_s = time.monotonic() - started

    assert delayed_s >= 0.3
    assert slowed_s >= 0.3
    assert data == blob.data


def test_redirected_blob_is_served_by_the_blob_host(
    token_registry: AuthenticatedRegistry, fault_proxy_factory: FaultProxyFactory
) -> None:
    proxy = fault_proxy_factory(token_registry.registry)
    image = sample_image()
    client = LabClient(proxy.url, credentials=token_registry.credentials)
    client.push_image("lab/app", "v1", image)
    proxy.redirect_blobs()

    data = client.get_blob("lab/app", image.layers[1].digest)

    assert data == image.layers[1].data
    assert proxy.count("GET", BLOB_PATH) == 1
    [served] = proxy.blob_host_requests
    assert (served.status, served.authorized) == (200, False)
    assert "X-Amz-Signature=secret" in served.query


def test_blob_host_rejects_an_authorization_header(
    token_registry: AuthenticatedRegistry, fault_proxy_factory: FaultProxyFactory
) -> None:
    proxy = fault_proxy_factory(token_registry.registry)
    image = sample_image()
    client = LabClient(proxy.url, credentials=token_registry.credentials)
    client.push_image("lab/app", "v1", image)
    proxy.redirect_blobs()
    redirect = client.request("GET", f"/v2/lab/app/blobs/{image.config.digest}")
    location = redirect.header("Location") or ""

    leaked = _raw_get(location, {"Authorization": "Bearer leaked"})

    assert redirect.status == 307
    assert location.startswith("http://127.0.0.2:")
    assert leaked.status == 403
    assert proxy.blob_host_requests[0].authorized


def test_redirect_still_requires_registry_auth(
    token_registry: AuthenticatedRegistry, fault_proxy_factory: FaultProxyFactory
) -> None:
    proxy = fault_proxy_factory(token_registry.registry)
    proxy.redirect_blobs()
    digest = sample_image().config.digest

    with pytest.raises(LabRegistryError) as caught:
        LabClient(proxy.url).get_blob("lab/app", digest)

    assert caught.value.status == 401
    assert proxy.blob_host_requests == []


def test_unknown_signature_is_refused(fault_proxy_factory: FaultProxyFactory) -> None:
    proxy = fault_proxy_factory("http://127.0.0.1:9")

    answer = _raw_get(f"{proxy.blob_host_url}/b/data?X-Amz-Signature=secretforged")

    assert answer.status == 403


def test_unreachable_upstream_is_a_bad_gateway(
    registry: RegistryProcess, fault_proxy_factory: FaultProxyFactory
) -> None:
    proxy = fault_proxy_factory(registry)
    registry.stop()

    answer = LabClient(proxy.url).request("GET", "/v2/")

    assert answer.status == 502


def test_relays_head_lengths_and_chunked_uploads(
    registry: RegistryProcess, fault_proxy_factory: FaultProxyFactory
) -> None:
    proxy = fault_proxy_factory(registry)
    client = LabClient(proxy.url)
    blob = Blob("application/octet-stream", b"0123456789" * 1000)
    started = client.request("POST", "/v2/lab/app/blobs/uploads/")
    location = started.header("Location") or ""
    octets = {"Content-Type": "application/octet-stream"}

    patched = client.request("PATCH", location, body=blob.data[:6000], headers=octets)
    rest_url = f"{patched.header('Location')}&digest={blob.digest}"
    finished = client.request("PUT", rest_url, body=blob.data[6000:], headers=octets)
    head = client.request("HEAD", f"/v2/lab/app/blobs/{blob.digest}")

    assert (patched.status, patched.header("Range")) == (202, "0-5999")
    assert finished.status == 201
    assert head.header("Content-Length") == str(blob.size)
    assert head.header("Docker-Content-Digest") == blob.digest
