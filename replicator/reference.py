"""Image references, repository names, tags and digests: parsing and validation.

Everything here is pure. Untrusted names are validated before any URL is built from
them (the grammar is the OCI distribution spec's, section "Pulling manifests").
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from replicator.errors import InvalidInputError

# OCI distribution spec: <name> is path components of [a-z0-9]+ joined by
# separators, and a tag is [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY_PATTERN = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
# Only sha256 and sha512 are registered algorithms (OCI image spec, descriptor.md).
DIGEST_PATTERN = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")
REFERRERS_TAG_PATTERN = re.compile(r"sha256-[a-f0-9]{64}")
MAX_REPOSITORY_LENGTH = 255


def validate_repository(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise."""
    if len(name) > MAX_REPOSITORY_LENGTH or not REPOSITORY_PATTERN.fullmatch(name):
        raise InvalidInputError("invalid repository name", repository=name[:300])
    return name


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid tag, else raise."""
    if not TAG_PATTERN.fullmatch(tag):
        raise InvalidInputError("invalid tag", tag=tag[:200])
    return tag


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it is a valid sha256 or sha512 digest, else raise."""
    if not DIGEST_PATTERN.fullmatch(digest):
        raise InvalidInputError("invalid digest", digest=digest[:200])
    return digest


def is_digest(reference: str) -> bool:
    """Say whether a manifest reference is a digest rather than a tag."""
    return ":" in reference


def validate_manifest_reference(reference: str) -> str:
    """Return a tag or digest if valid, else raise."""
    if is_digest(reference):
        return validate_digest(reference)
    return validate_tag(reference)


def sha256_digest(data: bytes) -> str:
    """Return the ``sha256:<hex>`` digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def new_hasher(digest: str) -> hashlib._Hash:
    """Return a hash object for the algorithm a digest names."""
    algorithm = validate_digest(digest).split(":", 1)[0]
    return hashlib.new(algorithm)


def referrers_tag(digest: str) -> str:
    """Return the referrers fallback tag of a digest (``sha256-<hex>``).

    OCI distribution spec, "Referrers Tag Schema": registries without the referrers
    API list a subject's referrers in an index tagged ``<alg>-<ref>``.
    """
    algorithm, hex_part = validate_digest(digest).split(":", 1)
    return f"{algorithm}-{hex_part}"


def is_referrers_tag(tag: str) -> bool:
    """Say whether a tag is an OCI referrers fallback tag."""
    return REFERRERS_TAG_PATTERN.fullmatch(tag) is not None


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A parsed ``host[:port]/repository[:tag][@digest]`` image reference."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def manifest_reference(self) -> str:
        """Return what to ask the manifest endpoint for: digest first, then tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_image_reference(text: str) -> ImageReference:
    """Parse ``host[:port]/repository[:tag][@digest]``; the host is required."""
    remainder, _, digest = text.partition("@")
    registry, slash, path = remainder.partition("/")
    if not slash or not _looks_like_host(registry):
        raise InvalidInputError(
            "image reference must start with a registry host, as in "
            "'127.0.0.1:5000/team/app:1.0'",
            reference=text[:300],
        )
    repository, tag = _split_tag(path)
    return ImageReference(
        registry=registry,
        repository=validate_repository(repository),
        tag=validate_tag(tag) if tag else None,
        digest=validate_digest(digest) if digest else None,
    )


def _looks_like_host(candidate: str) -> bool:
    return "." in candidate or ":" in candidate or candidate == "localhost"


def _split_tag(path: str) -> tuple[str, str | None]:
    last_component = path.rsplit("/", 1)[-1]
    if ":" not in last_component:
        return path, None
    repository, _, tag = path.rpartition(":")
    return repository, tag
