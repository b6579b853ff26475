"""Event sources: the webhook and SQS receivers that hand ``ImageEvent``s to a sink.

Shared here: how both count and log what they accept and reject, so the metric
labels and log event names (``event_received``, ``event_rejected``,
``event_duplicate``) are the same whichever source an event came from.
"""

from __future__ import annotations

from typing import Any

import structlog

from replicator.events import EventRejected, ImageEvent, RejectReason
from replicator.metrics import EVENTS_RECEIVED, EVENTS_REJECTED

log = structlog.get_logger("replicator.events")


def record_received(event: ImageEvent, **fields: Any) -> None:
    """Count and log an event handed to the sink."""
    EVENTS_RECEIVED.labels(source=event.origin, action=event.action).inc()
    log.info("event_received", **_event_fields(event), **fields)


def record_duplicate(event: ImageEvent) -> None:
    """Count and log an event that was delivered already and is not queued again."""
    EVENTS_REJECTED.labels(source=event.origin, reason=RejectReason.DUPLICATE).inc()
    log.info("event_duplicate", **_event_fields(event))


def record_rejected(rejection: EventRejected, source: str, **fields: Any) -> None:
    """Count and log an event that will not be replicated, with its reason.

    Ignored events (pulls, blob pushes, other EventBridge events) are routine and
    logged at DEBUG; the others point at a problem and are logged as warnings.
    """
    EVENTS_REJECTED.labels(source=source, reason=rejection.reason).inc()
    keys = {
        **rejection.context,
        **fields,
        "source": source,
        "reason": str(rejection.reason),
        "error": rejection.message,
    }
    if rejection.reason is RejectReason.IGNORED:
        log.debug("event_rejected", **keys)
    else:
        log.warning("event_rejected", **keys)


def record_unauthorized(source: str, **fields: Any) -> None:
    """Count and log a request that did not carry the shared secret."""
    EVENTS_REJECTED.labels(source=source, reason=RejectReason.UNAUTHORIZED).inc()
    log.warning(
        "event_rejected",
        source=source,
        reason=str(RejectReason.UNAUTHORIZED),
        error="missing or wrong bearer token",
        **fields,
    )


def _event_fields(event: ImageEvent) -> dict[str, Any]:
    return {
        "source": event.origin,
        "action": str(event.action),
        "repository": event.repository,
        "tag": event.tag,
        "digest": event.digest,
        "event_id": event.event_id,
    }
