"""Every Prometheus metric replicator exports, in one place.

Labels are bounded: destination registry names and rule names come from the config;
``result``, ``outcome``, ``reason``, ``operation``, ``source``, ``method`` and
``status_class`` come from fixed vocabularies. Repository, tag and digest never
become labels.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from replicator import __version__

BUILD_INFO = Info("replicator_build", "Version of the running replicator.")
BUILD_INFO.info({"version": __version__})

# Events in (DESIGN.md, "Event sources").
EVENTS_RECEIVED = Counter(
    "replicator_events_received_total",
    "Push and delete events accepted from a source (webhook, sqs).",
    ["source", "action"],
)
EVENTS_REJECTED = Counter(
    "replicator_events_rejected_total",
    "Events refused or ignored, by source and reason (malformed, unauthorized, "
    "unsupported_action, invalid_name, not_selected, duplicate, failed_result, "
    "ignored).",
    ["source", "reason"],
)
QUEUE_DEPTH = Gauge(
    "replicator_queue_depth",
    "Events accepted and waiting for a worker.",
)
OLDEST_EVENT_AGE = Gauge(
    "replicator_oldest_unacknowledged_event_age_seconds",
    "Age of the oldest event not yet acknowledged (0 when none).",
)

# Jobs: one image to one destination.
IMAGES = Counter(
    "replicator_images_total",
    "Image replications finished, by destination, rule and result "
    "(copied, tagged, up_to_date, planned, failed, skipped, deleted).",
    ["destination", "rule", "result"],
)
IN_FLIGHT = Gauge(
    "replicator_jobs_in_flight",
    "Image replications running now.",
    ["destination"],
)
REPLICATION_LAG = Histogram(
    "replicator_replication_lag_seconds",
    "Time from the push event to the destination tag being in place.",
    ["destination"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
COPY_DURATION = Histogram(
    "replicator_copy_duration_seconds",
    "Time to replicate one image to one destination.",
    ["destination"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)

# What moved.
BLOBS = Counter(
    "replicator_blobs_total",
    "Blobs needed at a destination, by how they got there "
    "(copied, existed, mounted, shared).",
    ["destination", "outcome"],
)
BYTES = Counter(
    "replicator_bytes_total",
    "Blob bytes uploaded to a destination.",
    ["destination"],
)

# Talking to registries.
RETRIES = Counter(
    "replicator_retries_total",
    "Registry operations tried again, by operation and reason.",
    ["operation", "reason"],
)
HTTP_REQUESTS = Counter(
    "replicator_http_requests_total",
    "HTTP requests to registries and token services, by method and status class "
    "(2xx, 3xx, 4xx, 5xx, error).",
    ["method", "status_class"],
)
HTTP_DURATION = Histogram(
    "replicator_http_request_duration_seconds",
    "Latency of HTTP requests to registries until the response headers arrive.",
    ["method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CREDENTIAL_REFRESHES = Counter(
    "replicator_credential_refreshes_total",
    "Credentials obtained (registry tokens, ECR tokens, assumed roles), by kind "
    "and result (ok, failed).",
    ["kind", "result"],
)


# Backfill runs: one-shot figures that ``replicator.pushgateway`` pushes to a
# Pushgateway with the counters above. They live in a registry of their own so the
# daemon's /metrics never shows a backfill timestamp of 0.
BACKFILL_REGISTRY = CollectorRegistry()
BACKFILL_LAST_RUN = Gauge(
    "replicator_backfill_last_run_timestamp_seconds",
    "Unix time the last backfill finished, whatever its outcome.",
    registry=BACKFILL_REGISTRY,
)
BACKFILL_LAST_SUCCESS = Gauge(
    "replicator_backfill_last_success_timestamp_seconds",
    "Unix time the last backfill finished with no failed image.",
    registry=BACKFILL_REGISTRY,
)
BACKFILL_DURATION = Gauge(
    "replicator_backfill_duration_seconds",
    "Wall-clock time of the last backfill run.",
    registry=BACKFILL_REGISTRY,
)


def status_class(status: int | None) -> str:
    """Return the bounded label for an HTTP status: ``2xx`` ... or ``error``."""
    if status is None:
        return "error"
    return f"{status // 100}xx"
