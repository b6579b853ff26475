"""Push a backfill run's figures to a Prometheus Pushgateway.

A backfill is a one-shot process that Prometheus cannot scrape, so when it ends its
counters (``replicator_*`` of ``replicator.metrics``: images, blobs, bytes, retries,
HTTP requests...) and the run's timestamps and duration go to a Pushgateway, which
Prometheus scrapes with ``honor_labels: true``.

The push is a POST (``pushadd``): it replaces the metrics it carries within its
group and keeps the others, so a failed run leaves the last success timestamp of
an earlier run in place for a staleness alert to read.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from urllib.parse import urlsplit

from prometheus_client import REGISTRY, CollectorRegistry, pushadd_to_gateway
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from replicator import metrics
from replicator.backfill import BackfillSummary
from replicator.errors import InvalidInputError, ReplicatorError
from replicator.registry.urls import redact_url

DEFAULT_JOB = "replicator_backfill"
METRIC_PREFIX = "replicator_"
DEFAULT_TIMEOUT_S = 10.0


class _ReplicatorFamilies(Collector):
    """Collect the ``replicator_*`` families of some registries, minus some names.

    Process and Python runtime metrics of the default registry stay out: on a
    Pushgateway they would describe a process that has exited.
    """

    def __init__(
        self, registries: Sequence[CollectorRegistry], excluded: frozenset[str]
    ) -> None:
        self._registries = registries
        self._excluded = excluded

    def collect(self) -> Iterator[Metric]:
        """Yield every replicator family that is not excluded."""
        for registry in self._registries:
            for family in registry.collect():
                if family.name.startswith(METRIC_PREFIX) and (
                    family.name not in self._excluded
                ):
                    yield family


def push_backfill_figures(
    gateway_url: str,
    summary: BackfillSummary,
    *,
    job: str = DEFAULT_JOB,
    grouping_key: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    registry: CollectorRegistry = REGISTRY,
) -> None:
    """Push the figures of a finished backfill run to the Pushgateway.

    ``grouping_key`` adds labels that tell runs apart (for example the source
    registry's name); runs with the same job and grouping key replace each
    other's figures. Raises ``InvalidInputError`` for a URL that is not
    ``http(s)://host[:port]`` and ``ReplicatorError`` when the push fails.
    """
    _check_gateway_url(gateway_url)
    succeeded = summary.failed == 0
    _record_run(summary, time.time(), succeeded)
    payload = _payload(registry, succeeded)

    try:
        pushadd_to_gateway(
            gateway_url,
            job=job,
            registry=payload,
            grouping_key=dict(grouping_key or {}),
            timeout=timeout_s,
        )
    except OSError as error:  # urllib's errors, and non-2xx answers
        raise ReplicatorError(
            "cannot push backfill metrics to the Pushgateway",
            url=redact_url(gateway_url),
            error=_reason(error),
            retryable=True,
        ) from error


def _check_gateway_url(url: str) -> None:
    """Accept ``http(s)://host[:port]`` with an optional path prefix."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(
            "the Pushgateway URL must be http(s)://host[:port], "
            "such as http://pushgateway:9091",
            url=redact_url(url),
        )


def _record_run(summary: BackfillSummary, finished_at_s: float, ok: bool) -> None:
    """Set the run's gauges; the success timestamp only when no image failed."""
    metrics.BACKFILL_LAST_RUN.set(finished_at_s)
    metrics.BACKFILL_DURATION.set(summary.duration_s)
    if ok:
        metrics.BACKFILL_LAST_SUCCESS.set(finished_at_s)


def _payload(registry: CollectorRegistry, succeeded: bool) -> CollectorRegistry:
    """Return a registry of what to push: replicator's families and the run's."""
    # A failed run must not overwrite the last success time with this process's.
    excluded = (
        frozenset()
        if succeeded
        else frozenset({"replicator_backfill_last_success_timestamp_seconds"})
    )
    payload = CollectorRegistry()
    payload.register(
        _ReplicatorFamilies((registry, metrics.BACKFILL_REGISTRY), excluded)
    )

    return payload


def _reason(error: BaseException) -> str:
    """Return a short reason for a failed push, without the URL."""
    reason = getattr(error, "reason", None)
    code = getattr(error, "code", None)
    if code is not None:
        return f"HTTP {code}"
    return str(reason or error)
