"""Put a corpus into a registry: each blob uploaded once, then the manifests.

The one routine behind seeding (content read from the corpus files) and the raw
floor (content streamed from a source registry). Each unique blob is uploaded once,
into the first repository that needs it, and mounted into the others, since a
registry accepts a manifest only when its repository holds every blob it names.
Manifests follow, children before parents, each put under its tags or, untagged,
its digest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp

from bench import transfer
from bench.corpus import Corpus

# Both take the repository that holds the content, then its digest.
BlobBody = Callable[[str, str], AbstractAsyncContextManager[object]]
ManifestBytes = Callable[[str, str], Awaitable[bytes]]


async def replay(
    corpus: Corpus,
    session: aiohttp.ClientSession,
    destination_url: str,
    blob_body: BlobBody,
    manifest_bytes: ManifestBytes,
    at_once: int = 8,
) -> None:
    """Upload every blob of the corpus once, then put every manifest and tag."""
    slots = asyncio.Semaphore(at_once)
    holders = corpus.blob_holders()

    async def place(digest: str) -> None:
        async with slots:
            first, *others = holders[digest]
            async with blob_body(first, digest) as body:
                await transfer.upload_blob(
                    session, destination_url, first, digest, corpus.blobs[digest], body
                )
            for repository in others:
                await transfer.mount_blob(
                    session, destination_url, repository, digest, first
                )

    await _all(place(digest) for digest in holders)
    contents = await _fetch_manifests(corpus, manifest_bytes, slots)

    async def put_repository(repository: str) -> None:
        async with slots:
            await _put_manifests(corpus, session, destination_url, repository, contents)

    await _all(put_repository(repository) for repository in corpus.repositories)


async def _fetch_manifests(
    corpus: Corpus, manifest_bytes: ManifestBytes, slots: asyncio.Semaphore
) -> dict[str, bytes]:
    contents: dict[str, bytes] = {}

    async def fetch(repository: str, digest: str) -> None:
        async with slots:
            contents[digest] = await manifest_bytes(repository, digest)

    holders = corpus.manifest_holders()
    await _all(fetch(holders[digest], digest) for digest in corpus.manifests)
    return contents


async def _put_manifests(
    corpus: Corpus,
    session: aiohttp.ClientSession,
    destination_url: str,
    repository: str,
    contents: dict[str, bytes],
) -> None:
    for digest in corpus.repository_manifests(repository):
        media_type = corpus.manifests[digest].media_type
        for reference in corpus.tags_of(repository, digest) or (digest,):
            await transfer.put_manifest(
                session,
                destination_url,
                repository,
                reference,
                contents[digest],
                media_type,
            )


async def _all(coroutines: Iterable[Coroutine[Any, Any, None]]) -> None:
    async with asyncio.TaskGroup() as group:
        for coroutine in coroutines:
            group.create_task(coroutine)
