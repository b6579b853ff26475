from __future__ import annotations

import json

import pytest

from replicator import mediatypes
from replicator.copier.graph import walk
from replicator.errors import ManifestError
from replicator.manifest import MAX_INDEX_DEPTH, Manifest, make_manifest
from replicator.reference import sha256_digest

LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


def blob_descriptor(content: bytes) -> dict[str, object]:
    return {
        "mediaType": LAYER_MEDIA_TYPE,
        "digest": sha256_digest(content),
        "size": len(content),
    }


def image(*layers: bytes) -> Manifest:
    document = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": blob_descriptor(b"{}"),
        "layers": [blob_descriptor(layer) for layer in layers],
    }
    return make_manifest(json.dumps(document).encode(), None, None)


def index(*children: Manifest, subject: Manifest | None = None) -> Manifest:
    document: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": [_ref(child) for child in children],
    }
    if subject is not None:
        document["subject"] = _ref(subject)
    return make_manifest(json.dumps(document).encode(), None, None)


def _ref(manifest: Manifest) -> dict[str, object]:
    return {
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": manifest.size,
    }


class Store:
    """Manifests by digest, standing for a source; records what was fetched."""

    def __init__(self, *manifests: Manifest, present: tuple[str, ...] = ()) -> None:
        self.manifests = {manifest.digest: manifest for manifest in manifests}
        self.present = set(present)
        self.fetched: list[str] = []

    async def fetch(self, digest: str) -> Manifest:
        self.fetched.append(digest)
        return self.manifests[digest]

    async def is_present(self, digest: str) -> bool:
        return digest in self.present


async def test_orders_children_before_their_index() -> None:
    amd64, arm64 = image(b"base", b"amd64"), image(b"base", b"arm64")
    root = index(amd64, arm64)
    store = Store(amd64, arm64)

    graph = await walk(root, store.fetch, store.is_present)

    assert [m.digest for m in graph.manifests] == [
        amd64.digest,
        arm64.digest,
        root.digest,
    ]


async def test_lists_shared_blobs_once_largest_first() -> None:
    amd64, arm64 = image(b"base" * 100, b"a"), image(b"base" * 100, b"bb")
    store = Store(amd64, arm64)

    graph = await walk(index(amd64, arm64), store.fetch, store.is_present)

    sizes = [blob.size for blob in graph.blobs]
    assert sizes == [400, 2, 2, 1]


async def test_skips_children_the_destination_holds() -> None:
    amd64, arm64 = image(b"amd64"), image(b"arm64")
    store = Store(amd64, arm64, present=(amd64.digest,))

    graph = await walk(index(amd64, arm64), store.fetch, store.is_present)

    assert store.fetched == [arm64.digest]
    assert sha256_digest(b"amd64") not in {blob.digest for blob in graph.blobs}


async def test_terminates_on_an_index_whose_child_is_its_subject() -> None:
    child = image(b"layer")
    root = index(child, child, subject=child)
    store = Store(child)

    graph = await walk(root, store.fetch, store.is_present)

    assert [m.digest for m in graph.manifests] == [child.digest, root.digest]
    assert store.fetched == [child.digest]


async def test_refuses_nesting_deeper_than_the_bound() -> None:
    manifests = [image(b"leaf")]
    for _ in range(MAX_INDEX_DEPTH + 1):
        manifests.append(index(manifests[-1]))
    store = Store(*manifests)

    with pytest.raises(ManifestError, match="deeper"):
        await walk(manifests[-1], store.fetch, store.is_present)
