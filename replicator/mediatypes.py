"""Manifest media types and the ``Accept`` header that keeps registries from converting.

A registry may convert a manifest to a type the client accepts (distribution does so
for old clients), which changes its digest; sending every type we know keeps the
stored bytes (DESIGN.md, guarantee 1).
"""

from __future__ import annotations

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
IMAGE_MANIFEST_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
MANIFEST_TYPES = INDEX_TYPES | IMAGE_MANIFEST_TYPES

ACCEPT_MANIFESTS = ", ".join(
    [
        OCI_INDEX,
        OCI_MANIFEST,
        DOCKER_MANIFEST_LIST,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_V1_SIGNED,
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/json;q=0.5",
    ]
)


def is_manifest_type(media_type: str) -> bool:
    """Say whether a descriptor of this media type points at a manifest, not a blob."""
    return media_type in MANIFEST_TYPES
