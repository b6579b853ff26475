"""Check a destination after a run: every tag names the source's digest.

A fast but wrong run must not win, so every run is checked before its time counts:
each tag resolves to the digest it has at the source, and every manifest and blob
the tags reach is present in the repository. Checks are not part of any timing.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

import aiohttp

from bench import transfer
from bench.corpus import Corpus, is_referrers_tag

CHECKS_AT_ONCE = 16


class CheckKind(enum.Enum):
    """What one check asks of the destination."""

    TAG = "tag"
    MANIFEST = "manifest"
    BLOB = "blob"


@dataclass(frozen=True, slots=True)
class Check:
    """One question: does ``reference`` in ``repository`` hold ``digest``?"""

    kind: CheckKind
    repository: str
    reference: str
    digest: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What a check looked at and what it found wrong."""

    checked: int
    problems: tuple[str, ...]
    excused_tags: int = 0

    @property
    def ok(self) -> bool:
        """Say whether the destination matched the source everywhere checked."""
        return not self.problems


async def check_destination(
    corpus: Corpus, destination_url: str, *, excuse_referrers_tags: bool = False
) -> CheckResult:
    """Check every tag, manifest and blob of the corpus at a destination.

    ``excuse_referrers_tags`` leaves out the referrers fallback tags and what only
    they reach, for a peer that cannot copy them unchanged.
    """
    checks = planned_checks(corpus, excuse_referrers_tags)
    slots = asyncio.Semaphore(CHECKS_AT_ONCE)
    problems: list[str] = []
    async with transfer.open_session() as session:

        async def run(check: Check) -> None:
            async with slots:
                problem = await _problem(session, destination_url, check)
            if problem is not None:
                problems.append(problem)

        async with asyncio.TaskGroup() as group:
            for check in checks:
                group.create_task(run(check))
    excused = _referrers_tag_count(corpus) if excuse_referrers_tags else 0

    return CheckResult(len(checks), tuple(sorted(problems)), excused)


def planned_checks(corpus: Corpus, excuse_referrers_tags: bool) -> list[Check]:
    """Return the checks of every tag and of what the tags reach."""
    checks: list[Check] = []
    for repository, tags in sorted(corpus.repositories.items()):
        kept = {
            tag: digest
            for tag, digest in tags.items()
            if not (excuse_referrers_tags and is_referrers_tag(tag))
        }
        checks += [
            Check(CheckKind.TAG, repository, tag, digest)
            for tag, digest in sorted(kept.items())
        ]
        manifests, blobs = _reachable(corpus, set(kept.values()))
        checks += [
            Check(CheckKind.MANIFEST, repository, digest, digest)
            for digest in sorted(manifests)
        ]
        checks += [
            Check(CheckKind.BLOB, repository, digest, digest)
            for digest in sorted(blobs)
        ]

    return checks


async def _problem(
    session: aiohttp.ClientSession, url: str, check: Check
) -> str | None:
    where = f"{check.repository}:{check.reference}"
    if check.kind is CheckKind.BLOB:
        found = await transfer.blob_exists(session, url, check.repository, check.digest)
        return None if found else f"blob missing: {where}"
    digest = await transfer.manifest_digest(
        session, url, check.repository, check.reference
    )
    if digest == check.digest:
        return None
    return f"{check.kind.value} {where} is {digest}, expected {check.digest}"


def _reachable(corpus: Corpus, roots: set[str]) -> tuple[set[str], set[str]]:
    manifests: set[str] = set()
    blobs: set[str] = set()
    pending = list(roots)
    while pending:
        digest = pending.pop()
        if digest in manifests:
            continue
        manifests.add(digest)
        entry = corpus.manifests[digest]
        blobs.update(entry.blobs)
        pending.extend(entry.children)
    return manifests, blobs


def _referrers_tag_count(corpus: Corpus) -> int:
    return sum(
        1
        for tags in corpus.repositories.values()
        for tag in tags
        if is_referrers_tag(tag)
    )
