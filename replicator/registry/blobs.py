"""Blob endpoints: existence, streamed download, cross-repository mount and upload.

Uploads follow the OCI distribution spec, "Pushing blobs": a POST opens a session,
then one streamed ``PUT ?digest=`` sends the whole blob. Registries or proxies that
refuse a large single body (413 and friends) get the chunked flow instead: PATCHes
with ``Content-Range``, then an empty closing PUT. Nothing here buffers a whole blob.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import aiohttp

from replicator.errors import IntegrityError, NotFoundError, RegistryError
from replicator.reference import validate_digest, validate_repository
from replicator.registry.auth import pull_scope, push_scope
from replicator.registry.client import RegistryClient, translated_stream
from replicator.registry.responses import RequestContext
from replicator.registry.urls import redact_url, resolve_location, with_query

READ_CHUNK_BYTES = 1024 * 1024
PATCH_CHUNK_BYTES = 16 * 1024 * 1024
# Answers to a single-body PUT that mean "this registry wants chunks instead".
MONOLITHIC_REFUSED = frozenset({405, 411, 413, 415, 501})

ChunkSource = Callable[[], AbstractAsyncContextManager[AsyncIterator[bytes]]]


@dataclass(frozen=True, slots=True)
class MountResult:
    """A mount either placed the blob, or left an upload session to use instead."""

    mounted: bool
    upload_url: str | None = None


def _blob_path(repository: str, digest: str) -> str:
    return f"/v2/{validate_repository(repository)}/blobs/{validate_digest(digest)}"


def _uploads_path(repository: str) -> str:
    return f"/v2/{validate_repository(repository)}/blobs/uploads/"


async def exists(client: RegistryClient, repository: str, digest: str) -> bool:
    """Say whether a repository holds a blob (one HEAD request)."""

    async def attempt() -> bool:
        context = client.context("blob_head", repository, digest)
        try:
            async with client.open(
                "HEAD",
                client.url(_blob_path(repository, digest)),
                context=context,
                scopes=[pull_scope(repository)],
            ):
                return True
        except NotFoundError:
            return False

    return await client.retry.run(
        "blob_head", attempt, registry=client.name, repository=repository
    )


@asynccontextmanager
async def open_stream(
    client: RegistryClient, repository: str, digest: str
) -> AsyncIterator[AsyncIterator[bytes]]:
    """Open a blob for reading, following redirects without credentials."""
    context = client.context("blob_get", repository, digest)
    async with client.open(
        "GET",
        client.url(_blob_path(repository, digest)),
        context=context,
        scopes=[pull_scope(repository)],
    ) as response:
        chunks = response.content.iter_chunked(READ_CHUNK_BYTES)
        yield translated_stream(chunks, str(response.url), context)


async def mount(
    client: RegistryClient, repository: str, digest: str, from_repository: str
) -> MountResult:
    """Ask the registry to link a blob from another of its repositories."""
    url = with_query(
        client.url(_uploads_path(repository)),
        mount=validate_digest(digest),
        **{"from": validate_repository(from_repository)},
    )

    async def attempt() -> MountResult:
        context = client.context("blob_mount", repository, digest)
        try:
            async with client.open(
                "POST",
                url,
                context=context,
                scopes=[push_scope(repository), pull_scope(from_repository)],
                expected=(201, 202),
            ) as response:
                if response.status == 201:
                    return MountResult(mounted=True)
                location = _location(response, context)
                return MountResult(False, location)
        except RegistryError as error:
            # A refused mount (no pull right on the source, unknown blob, a
            # registry without mount support) is no failure: the blob is uploaded
            # instead. A passing failure is retried like any other request.
            if error.retryable:
                raise
            return MountResult(mounted=False)

    return await client.retry.run(
        "blob_mount", attempt, registry=client.name, repository=repository
    )


async def upload(
    client: RegistryClient,
    repository: str,
    digest: str,
    size_bytes: int,
    open_chunks: ChunkSource,
    session_url: str | None = None,
) -> None:
    """Upload a blob from a stream, in one PUT or, if refused, in chunks."""
    session_url = session_url or await start_upload(client, repository, digest)
    async with open_chunks() as chunks:
        status = await _put_whole(
            client, repository, digest, size_bytes, session_url, chunks
        )
    if status in MONOLITHIC_REFUSED:
        session_url = await start_upload(client, repository, digest)
        async with open_chunks() as chunks:
            await _upload_in_chunks(client, repository, digest, session_url, chunks)


async def start_upload(client: RegistryClient, repository: str, digest: str) -> str:
    """Open an upload session and return its URL."""
    context = client.context("blob_upload_start", repository, digest)
    async with client.open(
        "POST",
        client.url(_uploads_path(repository)),
        context=context,
        scopes=[push_scope(repository)],
        expected=(202,),
    ) as response:
        return _location(response, context)


async def _put_whole(
    client: RegistryClient,
    repository: str,
    digest: str,
    size_bytes: int,
    session_url: str,
    chunks: AsyncIterator[bytes],
) -> int:
    context = client.context("blob_upload", repository, digest)
    expected = (201, *MONOLITHIC_REFUSED)
    async with client.open(
        "PUT",
        with_query(session_url, digest=digest),
        context=context,
        scopes=[push_scope(repository)],
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size_bytes),
        },
        data=chunks if size_bytes else b"",
        expected=expected,
        replayable=False,
    ) as response:
        if response.status == 201:
            _check_stored_digest(response.headers.get("Docker-Content-Digest"), digest)
        return response.status


async def _upload_in_chunks(
    client: RegistryClient,
    repository: str,
    digest: str,
    session_url: str,
    chunks: AsyncIterator[bytes],
) -> None:
    offset = 0
    async for piece in _pieces(chunks, PATCH_CHUNK_BYTES):
        session_url = await _patch(
            client, repository, digest, session_url, offset, piece
        )
        offset += len(piece)
    context = client.context("blob_upload", repository, digest)
    async with client.open(
        "PUT",
        with_query(session_url, digest=digest),
        context=context,
        scopes=[push_scope(repository)],
        headers={"Content-Length": "0"},
        expected=(201,),
    ) as response:
        _check_stored_digest(response.headers.get("Docker-Content-Digest"), digest)


async def _patch(
    client: RegistryClient,
    repository: str,
    digest: str,
    session_url: str,
    offset: int,
    piece: bytes,
) -> str:
    context = client.context("blob_upload_chunk", repository, digest)
    async with client.open(
        "PATCH",
        session_url,
        context=context,
        scopes=[push_scope(repository)],
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(piece) - 1}",
        },
        data=piece,
        expected=(202,),
    ) as response:
        return _location(response, context)


async def _pieces(
    chunks: AsyncIterator[bytes], piece_bytes: int
) -> AsyncIterator[bytes]:
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) >= piece_bytes:
            yield bytes(buffer[:piece_bytes])
            del buffer[:piece_bytes]
    if buffer:
        yield bytes(buffer)


def _location(response: aiohttp.ClientResponse, context: RequestContext) -> str:
    location = response.headers.get("Location")
    if not location:
        raise RegistryError(
            "registry answered without a Location for the upload",
            retryable=True,
            url=redact_url(str(response.url)),
            **context.fields(),
        )
    return resolve_location(str(response.url), location)


def _check_stored_digest(stored: str | None, digest: str) -> None:
    if stored is not None and stored != digest:
        raise IntegrityError(
            "registry stored the blob under another digest",
            digest=digest,
            actual=stored[:80],
        )
