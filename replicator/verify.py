"""The drift report: does each selected tag at each destination match the source?

Read-only: two HEAD requests per tag and destination, nothing pushed.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from replicator.backfill import Selection, selected_jobs
from replicator.concurrency import for_each
from replicator.copier.results import CopyJob
from replicator.errors import ReplicatorError
from replicator.registry import manifests


class TagState(enum.StrEnum):
    """How a destination tag compares with its source."""

    IN_SYNC = "in_sync"
    DRIFTED = "drifted"
    MISSING = "missing"
    SOURCE_GONE = "source_gone"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class TagCheck:
    """One tag at one destination, compared with the source."""

    job: CopyJob
    state: TagState
    source_digest: str | None
    destination_digest: str | None
    error: str | None = None

    def to_report(self) -> dict[str, Any]:
        """Return the check as JSON-ready data."""
        return {
            **self.job.describe(),
            "state": self.state.value,
            "source_digest": self.source_digest,
            "destination_digest": self.destination_digest,
            "error": self.error,
        }


@dataclass(slots=True)
class VerifyReport:
    """Every tag checked, and whether any drifted."""

    checks: list[TagCheck] = field(default_factory=list)

    @property
    def states(self) -> Counter[str]:
        """Return how many tags are in each state."""
        return Counter(check.state.value for check in self.checks)

    @property
    def problems(self) -> list[TagCheck]:
        """Return the checks that are not in sync, in a stable order."""
        bad = [check for check in self.checks if check.state is not TagState.IN_SYNC]
        return sorted(bad, key=_sort_key)

    def to_report(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "states": dict(self.states),
            "tags": len(self.checks),
            "problems": [check.to_report() for check in self.problems],
        }


async def verify(selection: Selection, checks_at_once: int) -> VerifyReport:
    """Compare every selected tag at every destination with the source."""
    report = VerifyReport()

    async def run(job: CopyJob) -> None:
        report.checks.append(await check_tag(job))

    await for_each(selected_jobs(selection), run, checks_at_once)

    return report


async def check_tag(job: CopyJob) -> TagCheck:
    """Compare one tag at one destination with the source."""
    try:
        source = await manifests.head(job.source, job.source_repository, job.reference)
        target = await manifests.head(
            job.destination, job.destination_repository, job.reference
        )
    except ReplicatorError as error:
        return TagCheck(job, TagState.ERROR, None, None, str(error))
    source_digest = source.digest if source else None
    target_digest = target.digest if target else None

    return TagCheck(
        job, _state(source_digest, target_digest), source_digest, target_digest
    )


def _sort_key(check: TagCheck) -> tuple[str, str, str, str]:
    job = check.job
    return (
        job.source_repository,
        job.reference,
        job.destination.name,
        job.destination_repository,
    )


def _state(source_digest: str | None, destination_digest: str | None) -> TagState:
    if source_digest is None:
        return TagState.SOURCE_GONE
    if destination_digest is None:
        return TagState.MISSING
    if destination_digest != source_digest:
        return TagState.DRIFTED
    return TagState.IN_SYNC
