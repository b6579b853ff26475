from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from replicator.errors import IntegrityError, TransportError
from replicator.integrity import verified_chunks
from replicator.reference import sha256_digest


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def collect(source: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in source]


async def test_passes_matching_content_through_unchanged() -> None:
    data = [b"abc", b"def", b"g"]
    digest = sha256_digest(b"".join(data))

    assert await collect(verified_chunks(chunks_of(*data), digest, 7)) == data


async def test_passes_a_zero_length_blob() -> None:
    assert await collect(verified_chunks(chunks_of(), sha256_digest(b""), 0)) == []


async def test_withholds_the_last_chunk_when_the_digest_is_wrong() -> None:
    received: list[bytes] = []
    stream = verified_chunks(chunks_of(b"abc", b"def"), sha256_digest(b"abcdeX"), 6)

    async def consume() -> None:
        async for chunk in stream:
            received.append(chunk)

    with pytest.raises(IntegrityError):
        await consume()

    assert received == [b"abc"]


async def test_reports_a_short_stream_as_retryable() -> None:
    stream = verified_chunks(chunks_of(b"abc"), sha256_digest(b"abcdef"), 6)

    with pytest.raises(TransportError) as caught:
        await collect(stream)

    assert caught.value.retryable


async def test_stops_a_stream_longer_than_its_descriptor() -> None:
    stream = verified_chunks(chunks_of(b"abc", b"def"), sha256_digest(b"abc"), 3)

    with pytest.raises(IntegrityError):
        await collect(stream)
