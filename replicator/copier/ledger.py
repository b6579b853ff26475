"""What one destination registry holds, and the single flight of each blob to it.

DESIGN.md, guarantee 4: a blob crosses the wire at most once per destination
registry. The ledger remembers which repositories hold which blobs (so a repeat
needs no request, and another repository can mount instead of upload), and lets
concurrent jobs that need the same blob wait for one transfer instead of starting
their own.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from replicator.registry.blobs import MountResult

# Mounting is cheap but each refusal costs a request; two candidates are enough.
MAX_MOUNT_ATTEMPTS = 2


class BlobOutcome(enum.StrEnum):
    """How a blob came to be in a destination repository."""

    COPIED = "copied"
    EXISTED = "existed"
    MOUNTED = "mounted"
    SHARED = "shared"


@dataclass(frozen=True, slots=True)
class BlobActions:
    """The requests the ledger may make for one blob in one repository."""

    exists: Callable[[], Awaitable[bool]]
    mount_from: Callable[[str], Awaitable[MountResult]]
    transfer: Callable[[str | None], Awaitable[None]]


@dataclass(slots=True)
class BlobLedger:
    """Blob holdings and in-flight transfers for one destination registry."""

    transfers: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(8))
    _holders: dict[str, set[str]] = field(default_factory=dict)
    _in_flight: dict[str, asyncio.Event] = field(default_factory=dict)

    def holders(self, digest: str) -> frozenset[str]:
        """Return the repositories known to hold a blob."""
        return frozenset(self._holders.get(digest, ()))

    def record(self, digest: str, repository: str) -> None:
        """Note that a repository holds a blob."""
        self._holders.setdefault(digest, set()).add(repository)

    def forget(self, repository: str) -> None:
        """Drop what is known of one repository (its blobs may have been removed)."""
        for repositories in self._holders.values():
            repositories.discard(repository)

    async def ensure(
        self, digest: str, repository: str, actions: BlobActions
    ) -> BlobOutcome:
        """Make sure ``repository`` holds the blob, moving it at most once."""
        waited = False
        while True:
            if repository in self._holders.get(digest, ()):
                return BlobOutcome.SHARED if waited else BlobOutcome.EXISTED
            in_flight = self._in_flight.get(digest)
            if in_flight is None:
                break
            await in_flight.wait()
            waited = True

        done = asyncio.Event()
        self._in_flight[digest] = done
        try:
            outcome = await self._place(digest, repository, actions)
        finally:
            del self._in_flight[digest]
            done.set()
        self.record(digest, repository)

        return outcome

    async def _place(
        self, digest: str, repository: str, actions: BlobActions
    ) -> BlobOutcome:
        async with self.transfers:
            # A mount succeeds whether or not the repository has the blob already,
            # so with a candidate known it replaces the HEAD that would come first.
            session_url = None
            for source_repository in self._mount_candidates(digest, repository):
                mount = await actions.mount_from(source_repository)
                if mount.mounted:
                    return BlobOutcome.MOUNTED
                session_url = mount.upload_url or session_url
            if await actions.exists():
                return BlobOutcome.EXISTED
            # A refused mount may leave an upload session open: use it, saving a POST.
            await actions.transfer(session_url)
            return BlobOutcome.COPIED

    def _mount_candidates(self, digest: str, repository: str) -> list[str]:
        return sorted(self.holders(digest) - {repository})[:MAX_MOUNT_ATTEMPTS]
