"""The copier under faults: retries, clean failures, one transfer per blob, secrets."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import time
from collections import Counter

import aiohttp
import pytest
import structlog.testing

from replicator.copier.copier import Copier
from replicator.copier.ledger import BlobOutcome
from replicator.copier.results import CopyJob, ImageOutcome
from replicator.registry.client import RegistryClient
from tests.lab.fixtures import (
    AuthenticatedRegistry,
    FaultProxyFactory,
    RegistryFactory,
)
from tests.lab.images import (
    Image,
    Index,
    build_corpus,
    build_image,
    make_layer,
    random_tar,
    sample_image,
    sample_index,
)
from tests.lab.proxy import (
    BLOB_PATH,
    BLOB_UPLOAD_PATH,
    FaultProxy,
    Reset,
    Respond,
    SlowBody,
    Truncate,
    oci_error_body,
    service_unavailable,
)
from tests.lab.pusher import LabClient
from tests.lab.registry import RegistryProcess
from tests.support import client_for, copy


def _large_image(name: str) -> Image:
    layer = make_layer(random_tar(300 * 1024, seed=name), "none")
    return build_image([layer])


def _blob_path(image: Image, index: int = 0) -> str:
    return f"/blobs/{image.layers[index].digest}$"


def assert_copied(
    destination: RegistryProcess, repository: str, tag: str, image: Image | Index
) -> None:
    """Check the destination's tag, manifests and blobs byte for byte."""
    target = LabClient(destination.url)
    assert target.get_manifest(repository, tag)[0] == image.manifest
    children = image.children if isinstance(image, Index) else (image,)
    for child in children:
        assert target.get_manifest(repository, child.digest)[0] == child.manifest
        for blob in child.blobs:
            assert target.get_blob(repository, blob.digest) == blob.data


def assert_nothing_pushed(
    destination: RegistryProcess, repository: str, image: Image | Index
) -> None:
    """Check that no tag and no manifest of the image reached the destination."""
    target = LabClient(destination.url)
    assert target.list_tags(repository) == []
    children = image.children if isinstance(image, Index) else ()
    for manifest in (image, *children):
        path = f"/v2/{repository}/manifests/{manifest.digest}"
        assert target.request("HEAD", path).status == 404


def _pair(
    session: aiohttp.ClientSession, source: str, destination: str
) -> tuple[RegistryClient, RegistryClient]:
    return client_for(session, source), client_for(session, destination)


async def test_copies_through_a_blob_redirect_without_sending_credentials_there(
    basic_auth_registry: AuthenticatedRegistry,
    registry: RegistryProcess,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    credentials = basic_auth_registry.credentials
    image = sample_index("redirected")
    LabClient(basic_auth_registry.url, credentials=credentials).push_image(
        "team/app", "1", image
    )
    proxy = fault_proxy_factory(basic_auth_registry.registry)
    proxy.redirect_blobs()

    result = await copy(
        client_for(session, proxy.url, credentials),
        client_for(session, registry.url),
        "team/app",
        "1",
    )

    assert result.outcome is ImageOutcome.COPIED
    assert_copied(registry, "team/app", "1", image)
    unique_blobs = {blob.digest for child in image.children for blob in child.blobs}
    assert len(proxy.blob_host_requests) == len(unique_blobs)
    assert not any(request.authorized for request in proxy.blob_host_requests)


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_honours_retry_after_on_a_throttled_manifest_put(
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
    form: str,
) -> None:
    source, destination = registry_factory(), registry_factory()
    image = sample_image("throttled")
    LabClient(source.url).push_image("team/app", "1", image)
    proxy = fault_proxy_factory(destination)
    retry_after = (
        "1"
        if form == "seconds"
        else email.utils.formatdate(time.time() + 2, usegmt=True)
    )
    proxy.add_fault(
        Respond(
            429,
            {"Retry-After": retry_after},
            oci_error_body("TOOMANYREQUESTS", "slow down"),
        ),
        method="PUT",
        path="/manifests/1$",
    )
    started = time.monotonic()

    result = await copy(*_pair(session, source.url, proxy.url), "team/app", "1")

    assert result.outcome is ImageOutcome.COPIED
    assert proxy.manifest_puts() == 2
    assert time.monotonic() - started >= 0.9
    assert_copied(destination, "team/app", "1", image)


@pytest.mark.parametrize(
    ("side", "method", "path"),
    [
        ("source", "GET", BLOB_PATH),
        ("destination", "HEAD", BLOB_PATH),
        ("destination", "PUT", BLOB_UPLOAD_PATH),
        ("destination", "POST", BLOB_UPLOAD_PATH),
    ],
)
@pytest.mark.parametrize(
    "fault", [service_unavailable(), Reset()], ids=["503", "reset"]
)
async def test_retries_transient_blob_failures(
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
    side: str,
    method: str,
    path: str,
    fault: Respond | Reset,
) -> None:
    source, destination = registry_factory(), registry_factory()
    image = _large_image(f"transient-{side}-{method}")
    LabClient(source.url).push_image("team/app", "1", image)
    source_proxy, destination_proxy = (
        fault_proxy_factory(source),
        fault_proxy_factory(destination),
    )
    faulty = source_proxy if side == "source" else destination_proxy
    faulty.add_fault(fault, method=method, path=path, times=2)

    result = await copy(
        *_pair(session, source_proxy.url, destination_proxy.url), "team/app", "1"
    )

    assert result.outcome is ImageOutcome.COPIED
    assert faulty.count(method, path) >= 3
    assert_copied(destination, "team/app", "1", image)


async def test_retries_a_truncated_blob_and_stores_only_the_right_bytes(
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    source, destination = registry_factory(), registry_factory()
    image = _large_image("truncated")
    LabClient(source.url).push_image("team/app", "1", image)
    source_proxy = fault_proxy_factory(source)
    destination_proxy = fault_proxy_factory(destination)
    source_proxy.add_fault(
        Truncate(100 * 1024), method="GET", path=_blob_path(image), times=2
    )

    result = await copy(
        *_pair(session, source_proxy.url, destination_proxy.url), "team/app", "1"
    )

    assert result.outcome is ImageOutcome.COPIED
    assert source_proxy.count("GET", _blob_path(image)) == 3
    # The cut uploads never completed: one stored PUT per blob, each the right one.
    stored = [
        record
        for record in destination_proxy.requests
        if record.method == "PUT" and record.status == 201
    ]
    assert len(stored) == len(image.blobs) + 1
    assert_copied(destination, "team/app", "1", image)


async def test_names_the_source_when_a_blob_download_keeps_breaking(
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    source, destination = registry_factory(), registry_factory()
    image = _large_image("always-truncated")
    LabClient(source.url).push_image("team/app", "1", image)
    source_proxy = fault_proxy_factory(source)
    source_proxy.add_fault(
        Truncate(100 * 1024), method="GET", path=_blob_path(image), times=None
    )
    src, dst = _pair(session, source_proxy.url, destination.url)

    result = await copy(src, dst, "team/app", "1")

    assert result.outcome is ImageOutcome.FAILED
    assert result.error is not None
    assert result.error.startswith("blob_get failed")
    assert f"registry={src.name}" in result.error
    assert source_proxy.count("GET", _blob_path(image)) == src.retry.attempts
    assert not LabClient(destination.url).blob_exists(
        "team/app", image.layers[0].digest
    )
    assert_nothing_pushed(destination, "team/app", image)


@pytest.mark.parametrize("reference", ["1", "child"])
async def test_retries_a_truncated_manifest(
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
    reference: str,
) -> None:
    source, destination = registry_factory(), registry_factory()
    index = sample_index("truncated-manifest")
    LabClient(source.url).push_image("team/app", "1", index)
    proxy = fault_proxy_factory(source)
    path = "/manifests/" + (
        index.digest if reference == "1" else index.children[0].digest
    )
    proxy.add_fault(Truncate(10), method="GET", path=path + "$")

    result = await copy(*_pair(session, proxy.url, destination.url), "team/app", "1")

    assert result.outcome is ImageOutcome.COPIED
    assert proxy.count("GET", path + "$") == 2
    assert_copied(destination, "team/app", "1", index)


async def test_copies_manifests_and_listings_that_arrive_slowly(
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    source, destination = registry_factory(), registry_factory()
    index = sample_index("slow-manifest")
    LabClient(source.url).push_image("team/app", "1", index)
    proxy = fault_proxy_factory(source)
    proxy.add_fault(
        SlowBody(chunk_bytes=200, pause_s=0.01),
        method="GET",
        path="/manifests/",
        times=None,
    )

    result = await copy(*_pair(session, proxy.url, destination.url), "team/app", "1")

    assert result.outcome is ImageOutcome.COPIED
    assert_copied(destination, "team/app", "1", index)


async def test_fails_without_pushing_when_a_blob_does_not_match_its_digest(
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    source, destination = registry_factory(), registry_factory()
    image = _large_image("corrupt")
    LabClient(source.url).push_image("team/app", "1", image)
    layer = image.layers[0]
    source_proxy = fault_proxy_factory(source)
    destination_proxy = fault_proxy_factory(destination)
    corrupt = bytes(reversed(layer.data))
    source_proxy.add_fault(
        Respond(200, {"Content-Type": "application/octet-stream"}, corrupt),
        method="GET",
        path=_blob_path(image),
        times=None,
    )

    result = await copy(
        *_pair(session, source_proxy.url, destination_proxy.url), "team/app", "1"
    )

    assert result.outcome is ImageOutcome.FAILED
    assert result.error is not None
    assert "does not match its digest" in result.error
    assert source_proxy.count("GET", _blob_path(image)) == 1
    assert not LabClient(destination.url).blob_exists("team/app", layer.digest)
    assert_nothing_pushed(destination, "team/app", image)


@pytest.mark.parametrize(
    ("status", "code"), [(400, "MANIFEST_INVALID"), (403, "DENIED")]
)
async def test_fails_at_once_when_the_manifest_is_refused(
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
    status: int,
    code: str,
) -> None:
    source, destination = registry_factory(), registry_factory()
    image = sample_image("refused")
    LabClient(source.url).push_image("team/app", "1", image)
    proxy = fault_proxy_factory(destination)
    proxy.add_fault(
        Respond(status, body=oci_error_body(code, "lab refuses")),
        method="PUT",
        path="/manifests/",
        times=None,
    )

    result = await copy(*_pair(session, source.url, proxy.url), "team/app", "1")

    assert result.outcome is ImageOutcome.FAILED
    assert result.error is not None
    assert code in result.error
    assert proxy.manifest_puts() == 1


async def test_pushes_no_manifest_and_no_tag_while_a_blob_keeps_failing(
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    source, destination = registry_factory(), registry_factory()
    index = sample_index("incomplete")
    LabClient(source.url).push_image("team/app", "1", index)
    proxy = fault_proxy_factory(source)
    failing = index.children[1].layers[1].digest
    proxy.add_fault(
        Respond(403, body=oci_error_body("DENIED", "no")),
        method="GET",
        path=f"/blobs/{failing}$",
        times=None,
    )
    destination_proxy = fault_proxy_factory(destination)

    result = await copy(
        *_pair(session, proxy.url, destination_proxy.url), "team/app", "1"
    )

    assert result.outcome is ImageOutcome.FAILED
    assert result.error is not None
    assert "DENIED" in result.error
    assert proxy.count("GET", f"/blobs/{failing}$") == 1
    assert destination_proxy.manifest_puts() == 0
    assert_nothing_pushed(destination, "team/app", index)


async def test_moves_each_shared_blob_once_across_concurrent_jobs(
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    source, destination = registry_factory(), registry_factory()
    corpus = build_corpus(9, repositories=("lab/alpha", "lab/beta", "lab/gamma"))
    lab = LabClient(source.url)
    for entry in corpus:
        lab.push_image(entry.repository, entry.tag, entry.image)
    source_proxy = fault_proxy_factory(source)
    destination_proxy = fault_proxy_factory(destination)
    src, dst = _pair(session, source_proxy.url, destination_proxy.url)
    copier = Copier()
    jobs = [
        CopyJob(src, entry.repository, entry.tag, dst, entry.repository)
        for entry in corpus
    ]

    # Every job twice: a repeated event must share the first one's transfers.
    results = await asyncio.gather(*(copier.copy(job) for job in jobs + jobs))

    assert {result.outcome for result in results} <= {
        ImageOutcome.COPIED,
        ImageOutcome.TAGGED,
        ImageOutcome.UP_TO_DATE,
    }
    unique = {blob.digest for entry in corpus for blob in entry.image.blobs}
    assert destination_proxy.blob_upload_puts() == len(unique)
    assert source_proxy.blob_gets() == len(unique)
    copied = sum(result.stats.blobs[BlobOutcome.COPIED] for result in results)
    assert copied == len(unique)
    for entry in corpus:
        assert_copied(destination, entry.repository, entry.tag, entry.image)


async def test_skips_a_tag_the_destination_keeps_immutable(
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    source, destination = registry_factory(), registry_factory()
    image = sample_image("immutable")
    LabClient(source.url).push_image("team/app", "1.0", image)
    proxy = fault_proxy_factory(destination)
    proxy.add_fault(
        Respond(
            400,
            {"Content-Type": "application/json"},
            oci_error_body("TAG_INVALID", "tag 1.0 is immutable"),
        ),
        method="PUT",
        path="/manifests/1.0$",
        times=None,
    )

    result = await copy(*_pair(session, source.url, proxy.url), "team/app", "1.0")

    assert result.outcome is ImageOutcome.SKIPPED
    assert result.digest == image.digest
    assert proxy.manifest_puts() == 1


async def test_places_again_a_blob_the_destination_lost_behind_the_ledger(
    registry_factory: RegistryFactory, session: aiohttp.ClientSession
) -> None:
    source, destination = registry_factory(), registry_factory()
    first, second = sample_image("first"), sample_image("second")
    LabClient(source.url).push_image("team/app", "1", first)
    LabClient(source.url).push_image("team/app", "2", second)
    src, dst = _pair(session, source.url, destination.url)
    copier = Copier()
    await copy(src, dst, "team/app", "1", copier=copier)
    shared = first.layers[0].digest
    assert shared == second.layers[0].digest
    deleted = LabClient(destination.url).request(
        "DELETE", f"/v2/team/app/blobs/{shared}"
    )
    assert deleted.status == 202

    result = await copy(src, dst, "team/app", "2", copier=copier)

    assert result.outcome is ImageOutcome.COPIED
    assert_copied(destination, "team/app", "2", second)


class CountingHook:
    """A repository hook that takes a moment and counts its calls."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def prepare(self, destination: RegistryClient, repository: str) -> None:
        self.calls[repository] += 1
        await asyncio.sleep(0.05)


async def test_prepares_each_repository_once_across_concurrent_jobs(
    registry_factory: RegistryFactory, session: aiohttp.ClientSession
) -> None:
    source, destination = registry_factory(), registry_factory()
    repositories = ("lab/alpha", "lab/beta", "lab/gamma")
    corpus = build_corpus(6, repositories=repositories)
    lab = LabClient(source.url)
    for entry in corpus:
        lab.push_image(entry.repository, entry.tag, entry.image)
    src, dst = _pair(session, source.url, destination.url)
    hook = CountingHook()
    copier = Copier(repository_hooks={dst.name: hook})
    jobs = [
        CopyJob(src, entry.repository, entry.tag, dst, entry.repository)
        for entry in corpus
    ]

    results = await asyncio.gather(*(copier.copy(job) for job in jobs))

    assert [result.outcome for result in results] == [ImageOutcome.COPIED] * 6
    assert hook.calls == Counter(dict.fromkeys(repositories, 1))


async def test_copies_between_registries_that_answer_relative_urls(
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    source = registry_factory(relative_urls=True)
    destination = registry_factory(relative_urls=True)
    index = sample_index("relative")
    LabClient(source.url).push_image("team/app", "1", index)
    proxy = fault_proxy_factory(destination)
    # A retried upload must also resolve the fresh session's relative Location.
    proxy.add_fault(service_unavailable(), method="PUT", path=BLOB_UPLOAD_PATH)

    result = await copy(*_pair(session, source.url, proxy.url), "team/app", "1")

    assert result.outcome is ImageOutcome.COPIED
    assert_copied(destination, "team/app", "1", index)


async def test_asks_for_each_token_once_while_copying_to_a_token_registry(
    registry: RegistryProcess,
    token_registry: AuthenticatedRegistry,
    session: aiohttp.ClientSession,
) -> None:
    lab = LabClient(registry.url)
    for repository in ("team/a", "team/b"):
        lab.push_image(repository, "1", sample_image(repository))
    src = client_for(session, registry.url)
    dst = client_for(session, token_registry.url, token_registry.credentials)
    copier = Copier()

    results = [
        await copy(src, dst, repository, "1", copier=copier)
        for repository in ("team/a", "team/b")
    ]

    assert [result.stats.blobs[BlobOutcome.MOUNTED] for result in results] == [0, 1]
    assert token_registry.token_server is not None
    requested = Counter(
        frozenset(request.scopes) for request in token_registry.token_server.requests
    )
    assert set(requested.values()) == {1}
    mount_scopes = frozenset({"repository:team/b:pull,push", "repository:team/a:pull"})
    assert mount_scopes in requested


def _secrets_of(registry: AuthenticatedRegistry) -> list[str]:
    credentials = registry.credentials
    pair = f"{credentials.username}:{credentials.password}".encode()
    # A bearer token is a JWT: its header always encodes to "eyJ".
    return [credentials.password, base64.b64encode(pair).decode(), "eyJ"]


async def test_no_secret_reaches_errors_or_debug_logs(
    basic_auth_registry: AuthenticatedRegistry,
    token_registry: AuthenticatedRegistry,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    image = sample_index("secret")
    credentials = basic_auth_registry.credentials
    LabClient(basic_auth_registry.url, credentials=credentials).push_image(
        "team/app", "1", image
    )
    source_proxy = fault_proxy_factory(basic_auth_registry.registry)
    source_proxy.redirect_blobs()
    destination_proxy = fault_proxy_factory(token_registry.registry)
    destination_proxy.add_fault(
        Respond(403, body=oci_error_body("DENIED", "no pushes today")),
        method="PUT",
        path="/manifests/1$",
        times=None,
    )
    src = client_for(session, source_proxy.url, credentials)
    dst = client_for(session, destination_proxy.url, token_registry.credentials)

    with structlog.testing.capture_logs() as logs:
        result = await copy(src, dst, "team/app", "1")

    assert result.outcome is ImageOutcome.FAILED
    assert result.error is not None
    assert "DENIED" in result.error
    assert any(entry["event"] == "http_request" for entry in logs)
    assert source_proxy.blob_host_requests
    text = repr(logs) + result.error
    for secret in (
        *_secrets_of(basic_auth_registry),
        *_secrets_of(token_registry),
        "X-Amz-Signature=secret",
    ):
        assert secret not in text


async def test_a_faulty_destination_does_not_disturb_the_copy_to_another(
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    source = registry_factory()
    healthy, broken = registry_factory(), registry_factory()
    image = sample_image("two-destinations")
    LabClient(source.url).push_image("team/app", "1", image)
    broken_proxy: FaultProxy = fault_proxy_factory(broken)
    broken_proxy.add_fault(Reset(), times=None)
    src = client_for(session, source.url)
    copier = Copier()

    results = await asyncio.gather(
        copy(src, client_for(session, healthy.url), "team/app", "1", copier=copier),
        copy(
            src, client_for(session, broken_proxy.url), "team/app", "1", copier=copier
        ),
    )

    assert [result.outcome for result in results] == [
        ImageOutcome.COPIED,
        ImageOutcome.FAILED,
    ]
    assert_copied(healthy, "team/app", "1", image)
