from __future__ import annotations

import json

import pytest

from replicator import mediatypes
from replicator.errors import IntegrityError, ManifestError
from replicator.manifest import (
    MAX_MANIFEST_BYTES,
    Descriptor,
    make_manifest,
    parse_references,
)
from replicator.reference import sha256_digest

CONFIG = Descriptor(mediatypes.OCI_EMPTY, sha256_digest(b"{}"), 2)
LAYER = Descriptor(
    "application/vnd.oci.image.layer.v1.tar+gzip", sha256_digest(b"layer"), 5
)


def descriptor_json(descriptor: Descriptor, **extra: object) -> dict[str, object]:
    return {
        "mediaType": descriptor.media_type,
        "digest": descriptor.digest,
        "size": descriptor.size,
        **extra,
    }


def test_keeps_exact_bytes_of_pretty_printed_manifests() -> None:
    document = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": descriptor_json(CONFIG),
        "layers": [descriptor_json(LAYER)],
    }
    data = (json.dumps(document, indent=3) + "\n").encode()

    manifest = make_manifest(data, None, sha256_digest(data))

    assert manifest.data == data
    assert manifest.media_type == mediatypes.OCI_MANIFEST
    assert parse_references(manifest).blobs == (CONFIG, LAYER)


def test_rejects_bytes_that_do_not_match_the_digest() -> None:
    with pytest.raises(IntegrityError):
        make_manifest(b"{}", mediatypes.OCI_MANIFEST, sha256_digest(b"other"))


def test_rejects_manifests_over_the_size_bound() -> None:
    with pytest.raises(ManifestError):
        make_manifest(b" " * (MAX_MANIFEST_BYTES + 1), mediatypes.OCI_MANIFEST, None)


def test_reads_children_platforms_and_subject_of_an_index() -> None:
    child = Descriptor(mediatypes.OCI_MANIFEST, sha256_digest(b"child"), 10)
    document = {
        "schemaVersion": 2,
        "manifests": [
            descriptor_json(child, platform={"os": "linux", "architecture": "arm64"})
        ],
        "subject": descriptor_json(child),
    }
    manifest = make_manifest(json.dumps(document).encode(), None, None)

    references = parse_references(manifest)

    assert manifest.media_type == mediatypes.OCI_INDEX
    assert references.manifests[0].platform == "linux/arm64"
    assert references.subject == child
    assert references.blobs == ()


def test_lists_a_blob_named_twice_once() -> None:
    document = {
        "mediaType": mediatypes.DOCKER_MANIFEST,
        "config": descriptor_json(CONFIG),
        "layers": [descriptor_json(LAYER), descriptor_json(LAYER)],
    }
    manifest = make_manifest(json.dumps(document).encode(), None, None)

    assert parse_references(manifest).blobs == (CONFIG, LAYER)


def test_treats_unknown_media_types_as_opaque() -> None:
    manifest = make_manifest(b"\x00binary", "application/x-custom", None)

    assert parse_references(manifest).blobs == ()


@pytest.mark.parametrize(
    "layers",
    [
        [{"mediaType": "x", "digest": "sha256:bad", "size": 1}],
        [{"mediaType": "x", "digest": LAYER.digest, "size": -1}],
        [{"mediaType": "x", "digest": LAYER.digest, "size": True}],
        [{"digest": LAYER.digest, "size": 1}],
        "not a list",
    ],
)
def test_rejects_malformed_descriptors(layers: object) -> None:
    document = {"mediaType": mediatypes.OCI_MANIFEST, "layers": layers}
    manifest = make_manifest(json.dumps(document).encode(), None, None)

    with pytest.raises(ManifestError):
        parse_references(manifest)
