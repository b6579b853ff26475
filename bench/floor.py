"""The raw floor: the least work any copier must do, as its own process.

It fetches each unique blob from the source once and uploads it once per
destination (eight at a time, one monolithic PUT each, mounting it into the other
repositories that need it), then fetches each manifest once and puts it. No
existence checks, no verification, no retries. It knows the corpus in advance, so
it lists nothing either: ``python -m bench.floor CORPUS_DIR SOURCE_URL DEST_URL...``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bench import transfer
from bench.corpus import Corpus, load_corpus
from bench.replay import replay

BLOBS_AT_ONCE = 8


async def copy_corpus(corpus: Corpus, source_url: str, destination_url: str) -> None:
    """Copy the corpus from a source registry to one destination."""
    async with transfer.open_session() as session:

        @asynccontextmanager
        async def blob_body(repository: str, digest: str) -> AsyncIterator[object]:
            async with transfer.blob_stream(
                session, source_url, repository, digest
            ) as chunks:
                yield chunks

        async def manifest_bytes(repository: str, digest: str) -> bytes:
            return await transfer.get_manifest(session, source_url, repository, digest)

        await replay(
            corpus, session, destination_url, blob_body, manifest_bytes, BLOBS_AT_ONCE
        )


async def copy_everywhere(
    corpus: Corpus, source_url: str, destination_urls: list[str]
) -> None:
    """Copy the corpus to every destination at once."""
    async with asyncio.TaskGroup() as group:
        for destination_url in destination_urls:
            group.create_task(copy_corpus(corpus, source_url, destination_url))


def main(arguments: list[str]) -> int:
    """Run the floor copy; the exit status is 0 on success."""
    if len(arguments) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    corpus_dir, source_url, *destination_urls = arguments
    corpus = load_corpus(Path(corpus_dir))
    asyncio.run(copy_everywhere(corpus, source_url, destination_urls))

    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
