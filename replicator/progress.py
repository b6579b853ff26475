"""What the one-shot commands show a person: a live progress line and a summary.

On a terminal, a rich progress display counts images by outcome as they finish;
elsewhere nothing is drawn, since the per-image log lines already tell the story.
Summaries go to stdout, logs to stderr.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from replicator.backfill import BackfillSummary
from replicator.copier.results import ImageResult
from replicator.verify import VerifyReport

console = Console(soft_wrap=True)


class ProgressDisplay:
    """Counts finished images by outcome, shown live on a terminal."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._counts: Counter[str] = Counter()
        self._task = progress.add_task("backfill", total=None) if progress else None

    def on_result(self, result: ImageResult) -> None:
        """Count one finished image and redraw."""
        self._counts[result.outcome.value] += 1
        if self._progress is None or self._task is None:
            return
        text = ", ".join(
            f"{count} {name}" for name, count in sorted(self._counts.items())
        )
        self._progress.update(self._task, description=text)


@contextmanager
def progress_display(enabled: bool) -> Iterator[ProgressDisplay]:
    """Show live progress while the block runs, if enabled and on a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield ProgressDisplay(None)
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        yield ProgressDisplay(progress)


def print_backfill_summary(summary: BackfillSummary, dry_run: bool) -> None:
    """Print what a backfill did, with every failure."""
    outcomes = ", ".join(
        f"{count} {name}" for name, count in sorted(summary.outcomes.items())
    )
    verb = "would copy" if dry_run else "replicated"
    console.print(
        f"backfill {verb}: {len(summary.results)} images ({outcomes or 'none'}), "
        f"{_size(summary.bytes_copied)} uploaded in {summary.duration_s:.1f} s"
    )
    failures = [result for result in summary.results if not result.outcome.succeeded]
    if failures:
        table = Table("repository", "reference", "destination", "error", title="failed")
        for result in failures:
            job = result.job
            table.add_row(
                job.source_repository, job.reference, job.destination.name, result.error
            )
        console.print(table)


def print_verify_report(report: VerifyReport) -> None:
    """Print the tag states and every tag that is not in sync."""
    states = ", ".join(
        f"{count} {name}" for name, count in sorted(report.states.items())
    )
    console.print(f"verify: {len(report.checks)} tags checked ({states or 'none'})")
    if not report.problems:
        return
    table = Table(
        "state",
        "repository",
        "tag",
        "destination",
        "source digest",
        "destination digest",
    )
    for check in report.problems:
        job = check.job
        table.add_row(
            check.state.value,
            job.source_repository,
            job.reference,
            f"{job.destination.name}/{job.destination_repository}",
            _short(check.source_digest),
            _short(check.destination_digest) if check.error is None else check.error,
        )
    console.print(table)


def _short(digest: str | None) -> str:
    return digest[:19] if digest else "-"


def _size(size_bytes: int) -> str:
    value = float(size_bytes)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
