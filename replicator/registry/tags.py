"""Listing endpoints: ``/v2/_catalog`` and ``/v2/<name>/tags/list``, paginated.

Pagination follows the ``Link: <url>; rel="next"`` header (RFC 8288), which the
distribution spec uses for both listings; the URL may be relative.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

from replicator.errors import ManifestError, NotFoundError
from replicator.reference import validate_repository
from replicator.registry.auth import CATALOG_SCOPE, pull_scope
from replicator.registry.client import RegistryClient, read_body
from replicator.registry.urls import resolve_location

PAGE_SIZE = 1000
MAX_LISTING_PAGE_BYTES = 16 * 1024 * 1024
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def next_link(header: str | None) -> str | None:
    """Return the target of a ``rel="next"`` link, if the header has one."""
    if not header:
        return None
    match = _NEXT_LINK.search(header)
    return match.group(1) if match else None


async def list_repositories(client: RegistryClient) -> AsyncIterator[str]:
    """Yield every repository name of the registry's catalog."""
    url: str | None = client.url(f"/v2/_catalog?n={PAGE_SIZE}")
    while url is not None:
        document, url = await _page(client, url, "catalog_list", None, CATALOG_SCOPE)
        for name in _strings(document, "repositories"):
            yield name


async def list_tags(client: RegistryClient, repository: str) -> AsyncIterator[str]:
    """Yield every tag of a repository; a repository that is gone has none."""
    path = f"/v2/{validate_repository(repository)}/tags/list?n={PAGE_SIZE}"
    url: str | None = client.url(path)
    while url is not None:
        try:
            document, url = await _page(
                client, url, "tags_list", repository, pull_scope(repository)
            )
        except NotFoundError:
            return
        for tag in _strings(document, "tags"):
            yield tag


async def _page(
    client: RegistryClient,
    url: str,
    operation: str,
    repository: str | None,
    scope: str,
) -> tuple[object, str | None]:
    async def attempt() -> tuple[object, str | None]:
        context = client.context(operation, repository)
        async with client.open("GET", url, context=context, scopes=[scope]) as response:
            body = await read_body(response, MAX_LISTING_PAGE_BYTES)
            link = next_link(response.headers.get("Link"))
            following = resolve_location(str(response.url), link) if link else None
        return _json(body, operation), following

    return await client.retry.run(
        operation, attempt, registry=client.name, repository=repository
    )


def _json(body: bytes, operation: str) -> object:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{operation} answer is not JSON") from exc


def _strings(document: object, key: str) -> list[str]:
    values = document.get(key) if isinstance(document, dict) else None
    if not isinstance(values, list):
        return []
    return [value for value in values if isinstance(value, str)]
