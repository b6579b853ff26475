"""The few registry requests the bench's own tools make, over aiohttp.

Used by seeding, the raw floor copier and the result checks. Kept apart from
replicator's client on purpose: the bench must not measure or check replicator
with replicator's own code.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
READ_CHUNK_BYTES = 1024 * 1024


class TransferError(RuntimeError):
    """A registry answered a bench request with an unexpected status."""


def open_session(connections: int = 64) -> aiohttp.ClientSession:
    """Return a session for loopback registries: no decompression, no timeout."""
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False
    )


async def upload_blob(
    session: aiohttp.ClientSession,
    base_url: str,
    repository: str,
    digest: str,
    size_bytes: int,
    body: object,
) -> None:
    """Upload a blob: POST a session, then one monolithic PUT of the body."""
    url = f"{base_url}/v2/{repository}/blobs/uploads/"
    async with session.post(url) as started:
        await _expect(started, 202)
        location = urllib.parse.urljoin(url, started.headers["Location"])
    separator = "&" if "?" in location else "?"
    target = f"{location}{separator}{urllib.parse.urlencode({'digest': digest})}"
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Length": str(size_bytes),
    }
    async with session.put(target, data=body, headers=headers) as finished:
        await _expect(finished, 201)


async def mount_blob(
    session: aiohttp.ClientSession,
    base_url: str,
    repository: str,
    digest: str,
    from_repository: str,
) -> None:
    """Link a blob from another repository of the same registry."""
    query = urllib.parse.urlencode({"mount": digest, "from": from_repository})
    url = f"{base_url}/v2/{repository}/blobs/uploads/?{query}"
    async with session.post(url) as response:
        await _expect(response, 201)


@asynccontextmanager
async def blob_stream(
    session: aiohttp.ClientSession, base_url: str, repository: str, digest: str
) -> AsyncIterator[AsyncIterator[bytes]]:
    """Open a blob for reading as a stream of chunks."""
    url = f"{base_url}/v2/{repository}/blobs/{digest}"
    async with session.get(url) as response:
        await _expect(response, 200)
        yield response.content.iter_chunked(READ_CHUNK_BYTES)


async def get_manifest(
    session: aiohttp.ClientSession, base_url: str, repository: str, digest: str
) -> bytes:
    """Return a manifest's bytes, fetched by digest."""
    url = f"{base_url}/v2/{repository}/manifests/{digest}"
    async with session.get(url, headers={"Accept": MANIFEST_ACCEPT}) as response:
        await _expect(response, 200)
        return await response.read()


async def put_manifest(
    session: aiohttp.ClientSession,
    base_url: str,
    repository: str,
    reference: str,
    data: bytes,
    media_type: str,
) -> None:
    """Store a manifest's bytes under a tag or digest."""
    url = f"{base_url}/v2/{repository}/manifests/{reference}"
    headers = {"Content-Type": media_type}
    async with session.put(url, data=data, headers=headers) as response:
        await _expect(response, 201)


async def manifest_digest(
    session: aiohttp.ClientSession, base_url: str, repository: str, reference: str
) -> str | None:
    """Return the digest a tag or digest resolves to, or None if absent."""
    url = f"{base_url}/v2/{repository}/manifests/{reference}"
    async with session.head(url, headers={"Accept": MANIFEST_ACCEPT}) as response:
        if response.status == 404:
            return None
        await _expect(response, 200)
        return response.headers.get("Docker-Content-Digest")


async def blob_exists(
    session: aiohttp.ClientSession, base_url: str, repository: str, digest: str
) -> bool:
    """Say whether a repository holds a blob."""
    url = f"{base_url}/v2/{repository}/blobs/{digest}"
    async with session.head(url) as response:
        if response.status == 404:
            return False
        await _expect(response, 200)
        return True


async def _expect(response: aiohttp.ClientResponse, status: int) -> None:
    if response.status != status:
        body = (await response.read())[:300].decode(errors="replace")
        raise TransferError(
            f"{response.method} {response.url.path} -> {response.status}: {body}"
        )
