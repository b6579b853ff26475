"""Check streamed content against its digest and size while it passes through.

The last chunk is held back until the whole stream has hashed correctly, so an
upload fed from ``verified_chunks`` never completes with wrong content: the consumer
sees an ``IntegrityError`` instead of the final bytes (DESIGN.md, guarantee 2).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from replicator.errors import IntegrityError, TransportError
from replicator.reference import new_hasher


async def verified_chunks(
    chunks: AsyncIterator[bytes], digest: str, size_bytes: int
) -> AsyncIterator[bytes]:
    """Yield ``chunks`` unchanged, failing before the end if they do not match."""
    hasher = new_hasher(digest)
    received = 0
    pending = b""
    async for chunk in chunks:
        if not chunk:
            continue
        received += len(chunk)
        if received > size_bytes:
            raise IntegrityError(
                "blob is longer than its descriptor says",
                digest=digest,
                size_bytes=size_bytes,
            )
        hasher.update(chunk)
        if pending:
            yield pending
        pending = chunk
    _check_complete(digest, size_bytes, received, hasher.hexdigest())
    if pending:
        yield pending


def _check_complete(
    digest: str, size_bytes: int, received: int, hex_digest: str
) -> None:
    if received < size_bytes:
        # A short body is a cut connection, not corrupt content: worth retrying.
        raise TransportError(
            "blob stream ended early",
            digest=digest,
            size_bytes=size_bytes,
            received_bytes=received,
        )
    actual = f"{digest.split(':', 1)[0]}:{hex_digest}"
    if actual != digest:
        raise IntegrityError(
            "blob content does not match its digest", digest=digest, actual=actual
        )
