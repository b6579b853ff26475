"""Every Prometheus metric replicator exports, in one place.

Labels are bounded: destination registry names and rule names come from the config,
``result``/``outcome``/``reason``/``operation`` from fixed vocabularies. Repository,
tag and digest never become labels.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram, Info

from replicator import __version__

BUILD_INFO = Info("replicator_build", "Version of the running replicator.")
BUILD_INFO.info({"version": __version__})

IMAGES = Counter(
    "replicator_images_total",
    "Image replications finished, by destination and result "
    "(copied, up_to_date, failed, skipped).",
    ["destination", "result"],
)
COPY_DURATION = Histogram(
    "replicator_copy_duration_seconds",
    "Time to replicate one image to one destination.",
    ["destination"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
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
RETRIES = Counter(
    "replicator_retries_total",
    "Registry operations tried again, by operation and reason.",
    ["operation", "reason"],
)
