from __future__ import annotations

import json

from tests.lab.fixtures import AuthenticatedRegistry
from tests.lab.images import (
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    Platform,
    build_artifact,
    build_corpus,
    build_image,
    empty_layer,
    sample_image,
    sample_index,
)
from tests.lab.pusher import LabClient, push_corpus, push_image
from tests.lab.registry import RegistryProcess


def test_pretty_manifest_keeps_its_digest(registry: RegistryProcess) -> None:
    image = sample_image(pretty=True)
    client = LabClient(registry.url)

    pushed = client.push_image("lab/app", "pretty", image)
    manifest, media_type, digest = client.get_manifest("lab/app", "pretty")

    assert (manifest, media_type) == (image.manifest, image.media_type)
    assert pushed == digest == image.digest


def test_pushes_oci_index_with_children(registry: RegistryProcess) -> None:
    index = sample_index(compression="zstd")
    client = LabClient(registry.url)

    push_image(registry.url, "lab/multi", "v1", index)

    assert client.get_manifest("lab/multi", "v1")[1] == OCI_INDEX
    for child in index.children:
        assert client.get_manifest("lab/multi", child.digest)[0] == child.manifest


def test_pushes_docker_manifest_list(registry: RegistryProcess) -> None:
    index = sample_index(docker=True, platforms=[Platform(), Platform("windows")])

    push_image(registry.url, "lab/docker", "v1", index)

    got = LabClient(registry.url).get_manifest("lab/docker", "v1")
    assert got == (index.manifest, DOCKER_MANIFEST_LIST, index.digest)


def test_pushes_a_zero_length_blob(registry: RegistryProcess) -> None:
    image = build_image([empty_layer()])
    client = LabClient(registry.url)

    client.push_image("lab/empty", "v1", image)

    assert client.blob_exists("lab/empty", image.layers[0].digest)
    assert client.get_blob("lab/empty", image.layers[0].digest) == b""


def test_referrer_fallback_tag_lists_each_artifact_once(
    registry: RegistryProcess,
) -> None:
    subject = sample_image()
    client = LabClient(registry.url)
    client.push_image("lab/app", "v1", subject)
    sbom = build_artifact(subject, payload=b'{"sbom":1}')
    signature = build_artifact(subject, artifact_type="application/vnd.example.sig")

    for artifact in (sbom, signature, sbom):
        client.push_referrer_with_fallback_tag("lab/app", artifact, subject.digest)

    tag = "sha256-" + subject.digest.removeprefix("sha256:")
    manifest, media_type, _ = client.get_manifest("lab/app", tag)
    entries = json.loads(manifest)["manifests"]
    assert media_type == OCI_INDEX
    assert [e["digest"] for e in entries] == [sbom.digest, signature.digest]
    assert entries[1]["artifactType"] == "application/vnd.example.sig"


def test_corpus_lands_in_its_repositories(registry: RegistryProcess) -> None:
    corpus = build_corpus(4, repositories=("lab/a", "lab/b"))
    client = LabClient(registry.url)

    push_corpus(registry.url, corpus)

    assert client.list_repositories() == ["lab/a", "lab/b"]
    assert sorted(client.list_tags("lab/a")) == ["v0", "v2"]


def test_deletes_a_manifest(registry: RegistryProcess) -> None:
    image = sample_image()
    client = LabClient(registry.url)
    client.push_image("lab/app", "v1", image)

    client.delete_manifest("lab/app", image.digest)

    assert client.list_tags("lab/app") == []


def test_pushes_to_a_token_registry(token_registry: AuthenticatedRegistry) -> None:
    index = sample_index()
    client = LabClient(token_registry.url, credentials=token_registry.credentials)

    client.push_image("lab/app", "v1", index)

    assert client.get_manifest("lab/app", "v1")[2] == index.digest
