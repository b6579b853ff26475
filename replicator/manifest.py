"""Manifests as received: exact bytes, their digest, and what they reference.

Pure. A manifest is never re-serialised; parsing only reads the descriptors it names
so the copier knows which blobs and child manifests must exist first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from replicator import mediatypes
from replicator.errors import IntegrityError, InvalidInputError, ManifestError
from replicator.reference import sha256_digest, validate_digest

# Bounds on untrusted input. distribution refuses manifests over 4 MiB by default
# (see "Pushing Manifests" in the OCI distribution spec: registries SHOULD accept
# at least 4 MiB), so anything larger cannot be copied anyway.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_INDEX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A reference to content: media type, digest, size, and platform if any."""

    media_type: str
    digest: str
    size: int
    platform: str | None = None
    artifact_type: str | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    """The exact bytes of a manifest, their media type and their digest."""

    data: bytes
    media_type: str
    digest: str

    @property
    def size(self) -> int:
        """Return the size in bytes."""
        return len(self.data)

    def descriptor(self) -> Descriptor:
        """Return a descriptor pointing at this manifest."""
        return Descriptor(self.media_type, self.digest, self.size)


@dataclass(frozen=True, slots=True)
class References:
    """What a manifest points at: child manifests, blobs and its subject."""

    manifests: tuple[Descriptor, ...]
    blobs: tuple[Descriptor, ...]
    subject: Descriptor | None


def make_manifest(
    data: bytes, media_type: str | None, expected_digest: str | None
) -> Manifest:
    """Check a received manifest's size and digest, and settle its media type."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            "manifest is larger than the 4 MiB bound",
            size_bytes=len(data),
            digest=expected_digest,
        )
    digest = sha256_digest(data)
    if expected_digest is not None and digest != expected_digest:
        _raise_digest_mismatch(expected_digest, digest)
    return Manifest(data, media_type or _embedded_media_type(data), digest)


def parse_references(manifest: Manifest) -> References:
    """Return the descriptors a manifest names; opaque types name nothing."""
    if manifest.media_type not in mediatypes.MANIFEST_TYPES:
        document = _try_load(manifest.data)
        if document is None:
            return References((), (), None)
    else:
        document = _load(manifest)
    subject = _optional_descriptor(document.get("subject"), "subject")
    if "manifests" in document:
        children = _descriptor_list(document, "manifests")
        return References(children, (), subject)
    blobs = _image_blobs(document)
    return References((), blobs, subject)


def _image_blobs(document: dict[str, Any]) -> tuple[Descriptor, ...]:
    config = _optional_descriptor(document.get("config"), "config")
    layers = _descriptor_list(document, "layers")
    blobs = (config, *layers) if config is not None else layers
    return tuple(_unique(blobs))


def _unique(descriptors: tuple[Descriptor, ...]) -> list[Descriptor]:
    seen: dict[str, Descriptor] = {}
    for descriptor in descriptors:
        seen.setdefault(descriptor.digest, descriptor)
    return list(seen.values())


def _descriptor_list(document: dict[str, Any], key: str) -> tuple[Descriptor, ...]:
    raw = document.get(key, [])
    if not isinstance(raw, list):
        raise ManifestError(f"manifest field '{key}' is not a list")
    return tuple(_descriptor(item, f"{key}[{index}]") for index, item in enumerate(raw))


def _optional_descriptor(raw: object, where: str) -> Descriptor | None:
    if raw is None:
        return None
    return _descriptor(raw, where)


def _descriptor(raw: object, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise ManifestError(f"manifest descriptor {where} is not an object")
    media_type = raw.get("mediaType")
    digest = raw.get("digest")
    size = raw.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str):
        raise ManifestError(f"manifest descriptor {where} lacks mediaType or digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"manifest descriptor {where} has an invalid size")
    return Descriptor(
        media_type=media_type,
        digest=_valid_digest(digest, where),
        size=size,
        platform=_platform_text(raw.get("platform")),
        artifact_type=_optional_text(raw.get("artifactType")),
    )


def _valid_digest(digest: str, where: str) -> str:
    try:
        return validate_digest(digest)
    except InvalidInputError as exc:
        raise ManifestError(
            f"manifest descriptor {where} has an invalid digest", digest=digest[:100]
        ) from exc


def _optional_text(raw: object) -> str | None:
    return raw if isinstance(raw, str) else None


def _platform_text(raw: object) -> str | None:
    if not isinstance(raw, dict):
        return None
    parts = [raw.get("os"), raw.get("architecture"), raw.get("variant")]
    return "/".join(part for part in parts if isinstance(part, str) and part) or None


def _load(manifest: Manifest) -> dict[str, Any]:
    document = _try_load(manifest.data)
    if document is None:
        raise ManifestError(
            "manifest is not a JSON object",
            digest=manifest.digest,
            media_type=manifest.media_type,
        )
    return document


def _try_load(data: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None


def _embedded_media_type(data: bytes) -> str:
    document = _try_load(data) or {}
    media_type = document.get("mediaType")
    if isinstance(media_type, str):
        return media_type
    # An OCI index or manifest may omit mediaType (image-spec, image-index.md).
    return mediatypes.OCI_INDEX if "manifests" in document else mediatypes.OCI_MANIFEST


def _raise_digest_mismatch(expected: str, actual: str) -> None:
    raise IntegrityError(
        "manifest bytes do not match their digest", digest=expected, actual=actual
    )
