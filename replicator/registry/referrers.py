"""The referrers API: ``GET /v2/<name>/referrers/<digest>`` (OCI distribution 1.1).

A registry without the API answers 404; callers then use the referrers fallback tag
(``sha256-<hex>``), which the copier copies as an ordinary tagged index.
"""

from __future__ import annotations

from replicator import mediatypes
from replicator.errors import NotFoundError, RegistryError
from replicator.manifest import (
    MAX_MANIFEST_BYTES,
    Descriptor,
    make_manifest,
    parse_references,
)
from replicator.reference import validate_digest, validate_repository
from replicator.registry.auth import pull_scope
from replicator.registry.client import RegistryClient, read_body


async def list_referrers(
    client: RegistryClient, repository: str, digest: str
) -> tuple[Descriptor, ...] | None:
    """Return the manifests that name ``digest`` as subject, or None without the API."""

    async def attempt() -> tuple[Descriptor, ...] | None:
        path = (
            f"/v2/{validate_repository(repository)}/referrers/{validate_digest(digest)}"
        )
        context = client.context("referrers_list", repository, digest)
        try:
            async with client.open(
                "GET",
                client.url(path),
                context=context,
                scopes=[pull_scope(repository)],
                headers={"Accept": mediatypes.OCI_INDEX},
            ) as response:
                data = await read_body(response, MAX_MANIFEST_BYTES)
        except NotFoundError:
            return None
        except RegistryError as error:
            # Some registries answer 400 or 405 for a route they do not know.
            if error.status in (400, 405):
                return None
            raise
        index = make_manifest(data, mediatypes.OCI_INDEX, None)
        return parse_references(index).manifests

    return await client.retry.run(
        "referrers_list", attempt, registry=client.name, repository=repository
    )
