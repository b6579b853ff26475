"""Copy jobs and their results: plain values shared by the copier and its callers."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from replicator.copier.ledger import BlobOutcome
from replicator.reference import is_digest
from replicator.registry.client import RegistryClient


class ImageOutcome(enum.StrEnum):
    """What replicating one image to one destination came to."""

    COPIED = "copied"
    TAGGED = "tagged"
    UP_TO_DATE = "up_to_date"
    PLANNED = "planned"
    SKIPPED = "skipped"
    FAILED = "failed"

    @property
    def succeeded(self) -> bool:
        """Say whether the destination now holds (or would hold) the image."""
        return self is not ImageOutcome.FAILED


@dataclass(frozen=True, slots=True)
class CopyJob:
    """One image (a tag or a digest) to replicate to one destination repository."""

    source: RegistryClient
    source_repository: str
    reference: str
    destination: RegistryClient
    destination_repository: str
    rule: str = ""
    destination_tag: str | None = None
    """The tag to apply at the destination, when it differs from the reference."""
    announced_digest: str | None = None
    """The digest an event announced for the tag; copied if the tag is not there yet."""

    @property
    def tag(self) -> str | None:
        """Return the tag to apply at the destination, if there is one."""
        if self.destination_tag is not None:
            return self.destination_tag
        return None if is_digest(self.reference) else self.reference

    def describe(self) -> dict[str, Any]:
        """Return the job's identity as log keys."""
        return {
            "source": self.source.name,
            "repository": self.source_repository,
            "reference": self.reference,
            "tag": self.tag,
            "destination": self.destination.name,
            "destination_repository": self.destination_repository,
            "rule": self.rule or None,
        }


@dataclass(slots=True)
class CopyStats:
    """What a copy moved: blobs by outcome, bytes uploaded, manifests pushed."""

    blobs: Counter[BlobOutcome] = field(default_factory=Counter)
    bytes_copied: int = 0
    manifests_pushed: int = 0

    def add_blob(self, outcome: BlobOutcome, size_bytes: int) -> None:
        """Count one blob placed at the destination."""
        self.blobs[outcome] += 1
        if outcome is BlobOutcome.COPIED:
            self.bytes_copied += size_bytes


@dataclass(frozen=True, slots=True)
class ImageResult:
    """The outcome of one copy job, for logs, summaries and reports."""

    job: CopyJob
    outcome: ImageOutcome
    digest: str | None
    stats: CopyStats
    duration_s: float
    error: str | None = None

    def to_report(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        return {
            **self.job.describe(),
            "outcome": self.outcome.value,
            "digest": self.digest,
            "bytes_copied": self.stats.bytes_copied,
            "manifests_pushed": self.stats.manifests_pushed,
            "blobs": {
                outcome.value: count for outcome, count in self.stats.blobs.items()
            },
            "duration_s": round(self.duration_s, 3),
            "error": self.error,
        }
