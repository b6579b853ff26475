"""The backfill: replicate everything the rules select that a destination lacks.

The walk lists repositories (catalog), keeps those a rule selects, lists their tags
and turns each (tag, target) pair into a copy job; jobs run as the listing
proceeds, a bounded number at once. ``verify`` uses the same walk, read-only.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from replicator.concurrency import for_each
from replicator.copier.copier import Copier
from replicator.copier.results import CopyJob, ImageOutcome, ImageResult
from replicator.registry import tags
from replicator.registry.client import RegistryClient
from replicator.rules import RuleSet


@dataclass(frozen=True, slots=True)
class Selection:
    """What the rules select at a source, and the clients of every destination."""

    source: RegistryClient
    rules: RuleSet
    destinations: Mapping[str, RegistryClient]
    list_repositories: Callable[[], AsyncIterator[str]] | None = None
    """Lists the source's repositories; the registry catalog when None."""

    def repositories(self) -> AsyncIterator[str]:
        """Yield the source's repository names."""
        if self.list_repositories is not None:
            return self.list_repositories()
        return tags.list_repositories(self.source)


@dataclass(slots=True)
class BackfillSummary:
    """Totals of one backfill run."""

    results: list[ImageResult] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def outcomes(self) -> Counter[str]:
        """Return how many images ended in each outcome."""
        return Counter(result.outcome.value for result in self.results)

    @property
    def failed(self) -> int:
        """Return how many images failed."""
        return self.outcomes[ImageOutcome.FAILED.value]

    @property
    def bytes_copied(self) -> int:
        """Return the blob bytes uploaded in all."""
        return sum(result.stats.bytes_copied for result in self.results)

    def to_report(self) -> dict[str, Any]:
        """Return the summary and every result as JSON-ready data."""
        return {
            "outcomes": dict(self.outcomes),
            "images": len(self.results),
            "failed": self.failed,
            "bytes_copied": self.bytes_copied,
            "duration_s": round(self.duration_s, 3),
            "results": [result.to_report() for result in self.results],
        }


async def selected_jobs(selection: Selection) -> AsyncIterator[CopyJob]:
    """Yield one copy job per selected source tag and destination target."""
    source = selection.source
    async for repository in selection.repositories():
        if not selection.rules.selects_repository(repository):
            continue
        async for tag in tags.list_tags(source, repository):
            for target in selection.rules.targets(repository, tag):
                yield CopyJob(
                    source=source,
                    source_repository=repository,
                    reference=tag,
                    destination=selection.destinations[target.registry],
                    destination_repository=target.repository,
                    rule=target.rule_name,
                )


async def backfill(
    selection: Selection,
    copier: Copier,
    images_at_once: int,
    on_result: Callable[[ImageResult], None] = lambda result: None,
) -> BackfillSummary:
    """Replicate everything selected; return the results of every job."""
    started = time.monotonic()
    summary = BackfillSummary()

    async def run(job: CopyJob) -> None:
        result = await copier.copy(job)
        summary.results.append(result)
        on_result(result)

    await for_each(selected_jobs(selection), run, images_at_once)
    summary.duration_s = time.monotonic() - started

    return summary
