"""Seed a registry with a corpus from its files on disk (not part of any timing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import BinaryIO

from bench import transfer
from bench.corpus import Corpus
from bench.replay import replay


async def seed(corpus: Corpus, registry_url: str) -> None:
    """Push every blob, manifest and tag of the corpus to a registry."""

    @asynccontextmanager
    async def blob_body(repository: str, digest: str) -> AsyncIterator[object]:
        # aiohttp streams an open file in chunks; a 1 GB layer never sits in memory.
        with _open(corpus, digest) as content:
            yield content

    async def manifest_bytes(repository: str, digest: str) -> bytes:
        return corpus.manifest_bytes(digest)

    async with transfer.open_session() as session:
        await replay(corpus, session, registry_url, blob_body, manifest_bytes)


def _open(corpus: Corpus, digest: str) -> BinaryIO:
    return corpus.blob_path(digest).open("rb")
