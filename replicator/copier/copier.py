"""Replicate one image to one destination: blobs, then children, then the tag.

The order is what keeps a destination consistent at every instant (DESIGN.md,
guarantee 3): blobs first (concurrently, each once per registry through the
ledger), child manifests by digest before their parents, and the tag last, so a
reader never sees a tag whose content is incomplete. Referrers (signatures, SBOMs)
follow their subject.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from replicator import metrics
from replicator.copier.graph import ImageGraph, walk
from replicator.copier.ledger import BlobActions, BlobLedger, BlobOutcome
from replicator.copier.results import (
    CopyJob,
    CopyStats,
    ImageOutcome,
    ImageResult,
)
from replicator.errors import NotFoundError, RegistryError, ReplicatorError
from replicator.integrity import verified_chunks
from replicator.manifest import Descriptor, Manifest
from replicator.reference import referrers_tag
from replicator.registry import blobs, manifests, referrers
from replicator.registry.client import RegistryClient

log = structlog.get_logger("replicator.copier")

# Referrers of referrers (a signature on an SBOM) are followed this deep.
MAX_REFERRER_DEPTH = 4
_STALE_LEDGER_CODES = frozenset({"MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN"})
# ECR answers TAG_INVALID when a tag of an immutable repository would move; tag
# names are validated before any request, so here it means exactly that.
_IMMUTABLE_TAG_CODES = frozenset({"TAG_INVALID"})
# A tag pushed to continuously could supersede a copy forever; after this many
# rounds the copy fails and its event is retried later.
MAX_SUPERSEDED_ROUNDS = 3
# How long a copy waits, in steps, for a source tag to name an announced digest.
ANNOUNCED_TAG_PAUSES_S = (0.05, 0.1, 0.2, 0.4, 0.8)


class RepositoryHook(Protocol):
    """Prepares a destination repository before anything is pushed to it."""

    async def prepare(self, destination: RegistryClient, repository: str) -> None:
        """Make the repository ready (for ECR: create it if it does not exist)."""
        ...


class Superseded(ReplicatorError):
    """The source tag moved while a copy ran; the copy starts again."""


class TagSkipped(ReplicatorError):
    """The destination keeps its tag where it is (an immutable tag); not a failure."""

    def __init__(self, message: str, *, digest: str, **context: Any) -> None:
        super().__init__(message, digest=digest, **context)
        self.digest = digest


@dataclass(slots=True)
class Copier:
    """Copies images; shares blob knowledge among all the jobs it runs."""

    blobs_per_registry: int = 8
    dry_run: bool = False
    repository_hooks: Mapping[str, RepositoryHook] = field(default_factory=dict)
    """Hooks by destination registry name, run once per repository."""
    remember_content: bool = False
    """Place each image's content once per destination repository, and look up
    each manifest's referrers once, for the copier's life, so alias tags only add
    their tag. For a backfill; the daemon leaves it off, since registries change
    while it runs."""
    _content: dict[tuple[str, str, str], asyncio.Task[bool]] = field(
        default_factory=dict
    )
    _referrers_known: dict[tuple[str, str, str], list[str]] = field(
        default_factory=dict
    )
    _ledgers: dict[str, BlobLedger] = field(default_factory=dict)
    _prepared: dict[tuple[str, str], asyncio.Task[None]] = field(default_factory=dict)
    _referrers_api: dict[str, bool] = field(default_factory=dict)

    async def copy(self, job: CopyJob) -> ImageResult:
        """Replicate one image; failures become a failed result, never an exception."""
        started = time.monotonic()
        stats = CopyStats()
        try:
            outcome, digest = await self._copy_newest(job, stats)
            error = None
        except TagSkipped as exc:
            outcome, digest, error = ImageOutcome.SKIPPED, exc.digest, str(exc)
        except ReplicatorError as exc:
            outcome, digest, error = ImageOutcome.FAILED, None, str(exc)
        except Exception as exc:
            # A bug must not take the daemon down with it; the traceback is logged.
            log.exception("copy_crashed", **job.describe())
            outcome, digest, error = (
                ImageOutcome.FAILED,
                None,
                f"internal error: {exc!r}",
            )
        result = ImageResult(
            job, outcome, digest, stats, time.monotonic() - started, error
        )
        _record(result)

        return result

    async def _copy_newest(
        self, job: CopyJob, stats: CopyStats
    ) -> tuple[ImageOutcome, str]:
        # Guarantee 8 across replicas: a copy whose source tag moved while it ran
        # does not set the destination tag back; it copies again, newest first.
        for _ in range(MAX_SUPERSEDED_ROUNDS - 1):
            try:
                return await self._copy(job, stats, set(), depth=0)
            except Superseded:
                log.info("copy_superseded", **job.describe())
        return await self._copy(job, stats, set(), depth=0)

    async def _copy(
        self, job: CopyJob, stats: CopyStats, visited: set[str], depth: int
    ) -> tuple[ImageOutcome, str]:
        # Referrers are pushed before the tag, so a policy that checks signatures
        # at pull time never sees the tag without them.
        source = await self._resolve_source(job)
        if await self._destination_current(job, source):
            return ImageOutcome.UP_TO_DATE, source.digest
        if self.dry_run:
            return ImageOutcome.PLANNED, source.digest

        await self._prepare_repository(job)
        root = await manifests.get(job.source, job.source_repository, source.digest)
        placed = await self._place_content_once(job, root, stats, visited, depth)
        await self._push_tag(job, root, stats)

        return (ImageOutcome.COPIED if placed else ImageOutcome.TAGGED), root.digest

    async def _place_content_once(
        self,
        job: CopyJob,
        root: Manifest,
        stats: CopyStats,
        visited: set[str],
        depth: int,
    ) -> bool:
        """Place what ``root`` needs below its tag; say whether anything was pushed."""
        if not self.remember_content:
            return await self._place_content(job, root, stats, visited, depth)
        key = (job.destination.name, job.destination_repository, root.digest)
        task = self._content.get(key)
        if task is not None and not _failed(task):
            await asyncio.shield(task)
            return False
        task = asyncio.ensure_future(
            self._place_content(job, root, stats, visited, depth)
        )
        self._content[key] = task
        return await asyncio.shield(task)

    async def _place_content(
        self,
        job: CopyJob,
        root: Manifest,
        stats: CopyStats,
        visited: set[str],
        depth: int,
    ) -> bool:
        if await self._holds_manifest(job, root.digest):
            return False
        graph = await self._collect(job, root)
        await self._push_content(job, graph, stats)
        await self._copy_referrers(job, graph, stats, visited, depth)
        return True

    async def _prepare_repository(self, job: CopyJob) -> None:
        hook = self.repository_hooks.get(job.destination.name)
        if hook is None:
            return
        # One preparation per repository, shared by every job that needs it.
        key = (job.destination.name, job.destination_repository)
        task = self._prepared.get(key)
        if task is None or _failed(task):
            task = asyncio.ensure_future(
                hook.prepare(job.destination, job.destination_repository)
            )
            self._prepared[key] = task
        await asyncio.shield(task)

    async def _push_tag(self, job: CopyJob, root: Manifest, stats: CopyStats) -> None:
        if job.tag is not None and job.tag == job.reference:
            await self._check_source_tag(job, root.digest)
        try:
            await self._push_manifest(job, job.tag or root.digest, root, stats)
        except RegistryError as error:
            if job.tag is None or not _IMMUTABLE_TAG_CODES & set(error.codes):
                raise
            raise TagSkipped(
                "destination tag is immutable and names other content",
                destination=job.destination.name,
                repository=job.destination_repository,
                tag=job.tag,
                digest=root.digest,
            ) from error

    async def _check_source_tag(self, job: CopyJob, digest: str) -> None:
        current = await manifests.head(job.source, job.source_repository, job.reference)
        if current is not None and current.digest != digest:
            raise Superseded(
                "source tag moved during the copy",
                repository=job.source_repository,
                tag=job.reference,
            )

    async def _resolve_source(self, job: CopyJob) -> Descriptor:
        found = await manifests.head(job.source, job.source_repository, job.reference)
        if job.announced_digest is not None:
            found = await self._await_announced_tag(job, found, job.announced_digest)
        if found is None:
            raise NotFoundError(
                "source image not found",
                registry=job.source.name,
                repository=job.source_repository,
                reference=job.reference,
            )
        return found

    async def _await_announced_tag(
        self, job: CopyJob, found: Descriptor | None, announced: str
    ) -> Descriptor | None:
        """Give the source a moment to point the tag at the digest an event announced.

        distribution notifies a push before it writes the tag, so the tag may still
        be missing or name the previous digest. If it never catches up, the tag has
        moved on (a newer push, whose own event follows) or is gone.
        """
        for pause_s in ANNOUNCED_TAG_PAUSES_S:
            if found is not None and found.digest == announced:
                return found
            await asyncio.sleep(pause_s)
            found = await manifests.head(
                job.source, job.source_repository, job.reference
            )
        if found is None:
            return await manifests.head(job.source, job.source_repository, announced)
        return found

    async def _destination_current(self, job: CopyJob, source: Descriptor) -> bool:
        # Guarantee 6: an unchanged image costs one request per side and no push.
        reference = job.tag or source.digest
        found = await manifests.head(
            job.destination, job.destination_repository, reference
        )
        return found is not None and found.digest == source.digest

    async def _holds_manifest(self, job: CopyJob, digest: str) -> bool:
        found = await manifests.head(
            job.destination, job.destination_repository, digest
        )
        return found is not None

    async def _collect(self, job: CopyJob, root: Manifest) -> ImageGraph:
        async def fetch(digest: str) -> Manifest:
            return await manifests.get(job.source, job.source_repository, digest)

        async def is_present(digest: str) -> bool:
            return await self._holds_manifest(job, digest)

        return await walk(root, fetch, is_present)

    async def _push_content(
        self, job: CopyJob, graph: ImageGraph, stats: CopyStats
    ) -> None:
        await _run_all(self._ensure_blob(job, blob, stats) for blob in graph.blobs)
        for manifest in graph.manifests[:-1]:
            await self._push_manifest(job, manifest.digest, manifest, stats)

    async def _push_manifest(
        self, job: CopyJob, reference: str, manifest: Manifest, stats: CopyStats
    ) -> None:
        try:
            await manifests.put(
                job.destination, job.destination_repository, reference, manifest
            )
        except RegistryError as error:
            if not _STALE_LEDGER_CODES & set(error.codes):
                raise
            # The ledger said a blob was there and the registry disagrees (garbage
            # collection ran): forget the repository and place the blobs again.
            self._ledger(job.destination).forget(job.destination_repository)
            graph = await self._collect(job, manifest)
            await _run_all(self._ensure_blob(job, blob, stats) for blob in graph.blobs)
            await manifests.put(
                job.destination, job.destination_repository, reference, manifest
            )
        stats.manifests_pushed += 1

    async def _ensure_blob(
        self, job: CopyJob, blob: Descriptor, stats: CopyStats
    ) -> None:
        ledger = self._ledger(job.destination)
        if _same_registry(job.source, job.destination):
            ledger.record(blob.digest, job.source_repository)
        actions = BlobActions(
            exists=lambda: blobs.exists(
                job.destination, job.destination_repository, blob.digest
            ),
            mount_from=lambda origin: blobs.mount(
                job.destination, job.destination_repository, blob.digest, origin
            ),
            transfer=lambda session_url: self._transfer(job, blob, session_url),
        )
        outcome = await ledger.ensure(blob.digest, job.destination_repository, actions)
        stats.add_blob(outcome, blob.size)

    async def _transfer(
        self, job: CopyJob, blob: Descriptor, session_url: str | None
    ) -> None:
        sessions = [session_url]

        @asynccontextmanager
        async def open_chunks() -> AsyncIterator[AsyncIterator[bytes]]:
            async with blobs.open_stream(
                job.source, job.source_repository, blob.digest
            ) as chunks:
                yield verified_chunks(chunks, blob.digest, blob.size)

        async def attempt() -> None:
            # An upload session is good for one attempt; a retry opens a new one.
            session = sessions.pop() if sessions else None
            await blobs.upload(
                job.destination,
                job.destination_repository,
                blob.digest,
                blob.size,
                open_chunks,
                session,
            )

        await job.destination.retry.run(
            "blob_copy",
            attempt,
            destination=job.destination.name,
            repository=job.destination_repository,
            digest=blob.digest,
        )

    async def _copy_referrers(
        self,
        job: CopyJob,
        graph: ImageGraph,
        stats: CopyStats,
        visited: set[str],
        depth: int,
    ) -> None:
        if depth >= MAX_REFERRER_DEPTH:
            return
        for manifest in graph.manifests:
            if manifest.digest in visited:
                continue
            visited.add(manifest.digest)
            for reference in await self._referrer_references(job, manifest.digest):
                await self._copy(
                    _with_reference(job, reference), stats, visited, depth + 1
                )

    async def _referrer_references(self, job: CopyJob, digest: str) -> list[str]:
        """Return what to copy for a manifest's referrers: digests or fallback tag."""
        if not self.remember_content:
            return await self._look_up_referrers(job, digest)
        key = (job.source.name, job.source_repository, digest)
        known = self._referrers_known.get(key)
        if known is None:
            known = await self._look_up_referrers(job, digest)
            self._referrers_known[key] = known
        return known

    async def _look_up_referrers(self, job: CopyJob, digest: str) -> list[str]:
        if self._referrers_api.get(job.source.name, True):
            found = await referrers.list_referrers(
                job.source, job.source_repository, digest
            )
            if found is not None:
                return [descriptor.digest for descriptor in found]
            self._referrers_api[job.source.name] = False
        tag = referrers_tag(digest)
        exists = await manifests.head(job.source, job.source_repository, tag)
        return [tag] if exists is not None else []

    def _ledger(self, destination: RegistryClient) -> BlobLedger:
        ledger = self._ledgers.get(destination.name)
        if ledger is None:
            ledger = BlobLedger(asyncio.Semaphore(self.blobs_per_registry))
            self._ledgers[destination.name] = ledger
        return ledger


def _failed(task: asyncio.Task[Any]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)


def _with_reference(job: CopyJob, reference: str) -> CopyJob:
    return dataclasses.replace(job, reference=reference, destination_tag=None)


def _same_registry(first: RegistryClient, second: RegistryClient) -> bool:
    return first.endpoint.base_url == second.endpoint.base_url


async def _run_all(coroutines: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run coroutines concurrently; the first failure cancels the rest and is raised."""
    try:
        async with asyncio.TaskGroup() as group:
            for coroutine in coroutines:
                group.create_task(coroutine)
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None


def _record(result: ImageResult) -> None:
    destination = result.job.destination.name
    metrics.IMAGES.labels(
        destination=destination, rule=result.job.rule, result=result.outcome.value
    ).inc()
    metrics.COPY_DURATION.labels(destination=destination).observe(result.duration_s)
    metrics.BYTES.labels(destination=destination).inc(result.stats.bytes_copied)
    for outcome, count in result.stats.blobs.items():
        metrics.BLOBS.labels(destination=destination, outcome=outcome.value).inc(count)
    level = "warning" if result.outcome is ImageOutcome.FAILED else "info"
    getattr(log, level)(
        "image_replicated",
        **result.job.describe(),
        outcome=result.outcome.value,
        digest=result.digest,
        size_bytes=result.stats.bytes_copied,
        blobs_copied=result.stats.blobs[BlobOutcome.COPIED],
        duration_s=round(result.duration_s, 3),
        error=result.error,
    )
