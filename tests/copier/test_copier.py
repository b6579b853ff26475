"""The copier against real registries: byte-exact copies of every image shape."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from replicator.copier.copier import Copier
from replicator.copier.ledger import BlobOutcome
from replicator.copier.results import ImageOutcome
from replicator.reference import referrers_tag
from tests.lab.fixtures import FaultProxyFactory, RegistryFactory
from tests.lab.images import (
    Blob,
    Compression,
    Image,
    Index,
    Layer,
    build_artifact,
    build_image,
    make_layer,
    sample_image,
    sample_index,
    stdlib_tar,
)
from tests.lab.pusher import LabClient
from tests.lab.registry import RegistryProcess
from tests.support import client_for, copy


def assert_same_image(
    source: RegistryProcess,
    destination: RegistryProcess,
    repository: str,
    reference: str,
    image: Image | Index,
) -> None:
    """Check manifest bytes and every blob at the destination, byte for byte."""
    target = LabClient(destination.url)
    data, _, digest = target.get_manifest(repository, reference)
    assert digest == image.digest
    assert data == LabClient(source.url).get_manifest(repository, reference)[0]
    children = image.children if isinstance(image, Index) else (image,)
    for child in children:
        assert target.get_manifest(repository, child.digest)[0] == child.manifest
        for blob in child.blobs:
            assert target.get_blob(repository, blob.digest) == blob.data


@pytest.mark.parametrize(
    ("docker", "compression"),
    [(False, "gzip"), (False, "zstd"), (False, "none"), (True, "gzip")],
)
async def test_copies_images_byte_exact(
    registry_factory: RegistryFactory,
    session: aiohttp.ClientSession,
    docker: bool,
    compression: Compression,
) -> None:
    source, destination = registry_factory(), registry_factory()
    image = sample_image("app", compression=compression, docker=docker)
    LabClient(source.url).push_image("team/app", "1.0", image)

    result = await copy(
        client_for(session, source.url),
        client_for(session, destination.url),
        "team/app",
        "1.0",
    )

    assert result.outcome is ImageOutcome.COPIED
    assert result.digest == image.digest
    assert result.stats.blobs[BlobOutcome.COPIED] == len(image.blobs)
    assert_same_image(source, destination, "team/app", "1.0", image)


@pytest.mark.parametrize("docker", [False, True])
async def test_copies_a_multi_platform_index_with_children_only_by_digest(
    registry_factory: RegistryFactory, session: aiohttp.ClientSession, docker: bool
) -> None:
    source, destination = registry_factory(), registry_factory()
    index = sample_index("multi", docker=docker)
    LabClient(source.url).push_image("team/multi", "latest", index)

    result = await copy(
        client_for(session, source.url),
        client_for(session, destination.url),
        "team/multi",
        "latest",
    )

    assert result.outcome is ImageOutcome.COPIED
    assert result.stats.manifests_pushed == 1 + len(index.children)
    assert_same_image(source, destination, "team/multi", "latest", index)


async def test_keeps_the_digest_of_a_pretty_printed_manifest(
    registry_factory: RegistryFactory, session: aiohttp.ClientSession
) -> None:
    source, destination = registry_factory(), registry_factory()
    image = sample_image("pretty", pretty=True)
    assert b"\n  " in image.manifest
    LabClient(source.url).push_image("pretty", "1", image)

    await copy(
        client_for(session, source.url),
        client_for(session, destination.url),
        "pretty",
        "1",
    )

    assert_same_image(source, destination, "pretty", "1", image)


async def test_copies_a_zero_length_blob(
    registry_factory: RegistryFactory, session: aiohttp.ClientSession
) -> None:
    source, destination = registry_factory(), registry_factory()
    empty = Layer(
        Blob("application/vnd.oci.image.layer.v1.tar", b""), "sha256:" + "0" * 64
    )
    image = build_image([make_layer(stdlib_tar("json"), "gzip"), empty])
    LabClient(source.url).push_image("empty", "1", image)

    result = await copy(
        client_for(session, source.url),
        client_for(session, destination.url),
        "empty",
        "1",
    )

    assert result.outcome is ImageOutcome.COPIED
    assert_same_image(source, destination, "empty", "1", image)


async def test_copies_an_artifact_and_its_referrers_fallback_tag(
    registry_factory: RegistryFactory, session: aiohttp.ClientSession
) -> None:
    source, destination = registry_factory(), registry_factory()
    lab = LabClient(source.url)
    image = sample_image("signed")
    lab.push_image("signed", "1.0", image)
    artifact = build_artifact(image)
    fallback_digest = lab.push_referrer_with_fallback_tag(
        "signed", artifact, image.digest
    )

    result = await copy(
        client_for(session, source.url),
        client_for(session, destination.url),
        "signed",
        "1.0",
    )

    assert result.outcome is ImageOutcome.COPIED
    target = LabClient(destination.url)
    assert target.get_manifest("signed", artifact.digest)[0] == artifact.manifest
    assert (
        target.get_manifest("signed", referrers_tag(image.digest))[2] == fallback_digest
    )
    for blob in artifact.blobs:
        assert target.get_blob("signed", blob.digest) == blob.data


async def test_tags_content_already_present_without_moving_blobs(
    registry_factory: RegistryFactory, session: aiohttp.ClientSession
) -> None:
    source, destination = registry_factory(), registry_factory()
    image = sample_image("retag")
    LabClient(source.url).push_image("app", "1.0", image)
    LabClient(source.url).push_image("app", "stable", image)
    src, dst = client_for(session, source.url), client_for(session, destination.url)
    await copy(src, dst, "app", "1.0")

    result = await copy(src, dst, "app", "stable")

    assert result.outcome is ImageOutcome.TAGGED
    assert result.stats.bytes_copied == 0
    assert LabClient(destination.url).get_manifest("app", "stable")[2] == image.digest


async def test_a_second_copy_is_up_to_date_and_pushes_nothing(
    registry_factory: RegistryFactory, session: aiohttp.ClientSession
) -> None:
    source, destination = registry_factory(), registry_factory()
    LabClient(source.url).push_image("app", "1.0", sample_index("idem"))
    src, dst = client_for(session, source.url), client_for(session, destination.url)
    await copy(src, dst, "app", "1.0")

    result = await copy(src, dst, "app", "1.0")

    assert result.outcome is ImageOutcome.UP_TO_DATE
    assert result.stats.manifests_pushed == 0


async def test_copies_to_a_renamed_repository_and_by_digest(
    registry_factory: RegistryFactory, session: aiohttp.ClientSession
) -> None:
    source, destination = registry_factory(), registry_factory()
    image = sample_image("digest-only")
    LabClient(source.url).push_image("app", None, image)

    result = await copy(
        client_for(session, source.url),
        client_for(session, destination.url),
        "app",
        image.digest,
        destination_repository="mirror/app",
    )

    assert result.outcome is ImageOutcome.COPIED
    assert (
        LabClient(destination.url).get_manifest("mirror/app", image.digest)[2]
        == image.digest
    )
    assert LabClient(destination.url).list_tags("mirror/app") == []


async def test_reports_a_missing_source_image_as_failed(
    registry_factory: RegistryFactory, session: aiohttp.ClientSession
) -> None:
    source, destination = registry_factory(), registry_factory()

    result = await copy(
        client_for(session, source.url),
        client_for(session, destination.url),
        "nope",
        "1",
    )

    assert result.outcome is ImageOutcome.FAILED
    assert result.error is not None
    assert "source image not found" in result.error


async def test_shares_one_ledger_across_repositories(
    registry_factory: RegistryFactory, session: aiohttp.ClientSession
) -> None:
    source, destination = registry_factory(), registry_factory()
    for repository in ("a", "b", "c"):
        LabClient(source.url).push_image(repository, "1", sample_image(repository))
    src, dst = client_for(session, source.url), client_for(session, destination.url)
    copier = Copier()

    results = [await copy(src, dst, repo, "1", copier=copier) for repo in "abc"]

    # The base layer is shared: uploaded once, then mounted into b and c.
    assert [r.stats.blobs[BlobOutcome.MOUNTED] for r in results] == [0, 1, 1]


async def test_places_content_once_for_alias_tags_copied_together(
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    source, destination = registry_factory(), registry_factory()
    proxy = fault_proxy_factory(destination)
    index = sample_index("alias")
    for tag in ("1.2.0", "1.2", "latest"):
        LabClient(source.url).push_image("app", tag, index)
    src, dst = client_for(session, source.url), client_for(session, proxy.url)
    copier = Copier(remember_content=True)

    results = await asyncio.gather(
        *(
            copy(src, dst, "app", tag, copier=copier)
            for tag in ("1.2.0", "1.2", "latest")
        )
    )

    assert sorted(r.outcome.value for r in results) == ["copied", "tagged", "tagged"]
    # Two children once each, then one PUT per tag.
    assert proxy.manifest_puts() == len(index.children) + 3
