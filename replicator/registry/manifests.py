"""Manifest endpoints: HEAD, GET, PUT and DELETE ``/v2/<name>/manifests/<reference>``.

Manifests travel as the exact bytes received. Every GET sends all manifest media
types in ``Accept`` so no registry converts (DESIGN.md, guarantee 1), and the bytes
are checked against the digest asked for or announced in ``Docker-Content-Digest``.
"""

from __future__ import annotations

from replicator import mediatypes
from replicator.errors import IntegrityError, NotFoundError
from replicator.manifest import MAX_MANIFEST_BYTES, Descriptor, Manifest, make_manifest
from replicator.reference import (
    is_digest,
    validate_digest,
    validate_manifest_reference,
    validate_repository,
)
from replicator.registry.auth import delete_scope, pull_scope, push_scope
from replicator.registry.client import RegistryClient, read_body


def _path(repository: str, reference: str) -> str:
    name = validate_repository(repository)
    return f"/v2/{name}/manifests/{validate_manifest_reference(reference)}"


async def head(
    client: RegistryClient, repository: str, reference: str
) -> Descriptor | None:
    """Return the descriptor a tag or digest resolves to, or None if absent."""

    async def attempt() -> Descriptor | None:
        context = client.context(
            "manifest_head", repository, _digest_or_none(reference)
        )
        try:
            async with client.open(
                "HEAD",
                client.url(_path(repository, reference)),
                context=context,
                scopes=[pull_scope(repository)],
                headers={"Accept": mediatypes.ACCEPT_MANIFESTS},
            ) as response:
                digest = response.headers.get("Docker-Content-Digest")
                media_type = response.headers.get("Content-Type", "")
                size = response.content_length or 0
        except NotFoundError:
            return None
        if digest is None:
            # The header is optional (distribution spec, "Pulling manifests"); the
            # bytes are the only other source of truth.
            return (await _get_once(client, repository, reference)).descriptor()
        return Descriptor(media_type, validate_digest(digest), size)

    return await client.retry.run(
        "manifest_head", attempt, registry=client.name, repository=repository
    )


async def get(client: RegistryClient, repository: str, reference: str) -> Manifest:
    """Fetch a manifest's exact bytes, verified against its digest."""
    return await client.retry.run(
        "manifest_get",
        lambda: _get_once(client, repository, reference),
        registry=client.name,
        repository=repository,
    )


async def _get_once(
    client: RegistryClient, repository: str, reference: str
) -> Manifest:
    context = client.context("manifest_get", repository, _digest_or_none(reference))
    async with client.open(
        "GET",
        client.url(_path(repository, reference)),
        context=context,
        scopes=[pull_scope(repository)],
        headers={"Accept": mediatypes.ACCEPT_MANIFESTS},
    ) as response:
        data = await read_body(response, MAX_MANIFEST_BYTES)
        announced = response.headers.get("Docker-Content-Digest")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    expected = reference if is_digest(reference) else announced
    return make_manifest(data, media_type or None, expected)


async def put(
    client: RegistryClient, repository: str, reference: str, manifest: Manifest
) -> None:
    """Store a manifest's exact bytes under a tag or its digest."""

    async def attempt() -> None:
        context = client.context("manifest_put", repository, manifest.digest)
        async with client.open(
            "PUT",
            client.url(_path(repository, reference)),
            context=context,
            scopes=[push_scope(repository)],
            headers={"Content-Type": manifest.media_type},
            data=manifest.data,
            expected=(200, 201, 202),
        ) as response:
            stored = response.headers.get("Docker-Content-Digest")
        if stored is not None and stored != manifest.digest:
            raise IntegrityError(
                "registry stored the manifest under another digest",
                registry=client.name,
                repository=repository,
                digest=manifest.digest,
                actual=stored[:80],
            )

    await client.retry.run(
        "manifest_put", attempt, registry=client.name, repository=repository
    )


async def delete(client: RegistryClient, repository: str, digest: str) -> bool:
    """Delete a manifest by digest; return False if it was not there."""

    async def attempt() -> bool:
        context = client.context("manifest_delete", repository, digest)
        try:
            async with client.open(
                "DELETE",
                client.url(_path(repository, validate_digest(digest))),
                context=context,
                scopes=[delete_scope(repository)],
                expected=(200, 202),
            ):
                return True
        except NotFoundError:
            return False

    return await client.retry.run(
        "manifest_delete", attempt, registry=client.name, repository=repository
    )


def _digest_or_none(reference: str) -> str | None:
    return reference if is_digest(reference) else None
