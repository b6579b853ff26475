"""Receive the CNCF distribution registry's notifications on an aiohttp route.

What is queued (distribution 2.8 and 3.x, ``notifications/bridge.go``):

- a manifest push, by tag or by digest alone (index children and referrers are
  pushed by digest; a rule may select them, and the daemon decides);
- a delete by digest (distribution does not say whether a manifest or a blob
  went) or by tag (deleting a manifest also reports each tag it removed).

What is counted and not queued: blob pushes (2.x sends one per layer upload; the
manifest push that follows names the blobs), pulls and mounts (``ignored``),
repository deletions (3.x, ``ignored``), other actions (``unsupported_action``)
and invalid names (``invalid_name``). Such events still get a 2xx answer: the
registry's retrying sink sends a refused batch again forever, holding back every
later event.

The answer is 2xx only once every queued event was awaited into the sink. A
registry that times out and sends the same event id again within
``RECENT_IDS_TTL_S`` gets 2xx without the event being queued twice.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiohttp import web

from replicator.errors import ConfigError, error_fields
from replicator.events import (
    NO_ACKNOWLEDGEMENT,
    Delivery,
    EventRejected,
    EventSink,
    ImageEvent,
    RejectReason,
    parse_notification_envelope,
)
from replicator.sources import (
    record_duplicate,
    record_received,
    record_rejected,
    record_unauthorized,
)

SOURCE = "webhook"
DEFAULT_PATH = "/webhook"
# distribution 2.8 posts one event per request; 1 MiB leaves room for batches.
MAX_BODY_BYTES = 1024 * 1024
# distribution retries a failed delivery after `backoff` (1 s by default) for as
# long as it takes; fifteen minutes of ids covers any realistic outage of ours.
RECENT_IDS_TTL_S = 900.0
RECENT_IDS_MAX = 100_000
# Retry-After on 503: how soon the registry may try again.
_RETRY_AFTER_S = "1"

log = structlog.get_logger("replicator.webhook")


class RecentIds:
    """Event ids delivered recently: at most ``max_ids``, each for ``ttl_s``."""

    def __init__(
        self,
        *,
        max_ids: int = RECENT_IDS_MAX,
        ttl_s: float = RECENT_IDS_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_ids = max_ids
        self._ttl_s = ttl_s
        self._clock = clock
        # Insertion order is expiry order: every id lives for the same ttl_s.
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        self._forget_expired()
        return event_id in self._expiry

    def __len__(self) -> int:
        self._forget_expired()
        return len(self._expiry)

    def add(self, event_id: str) -> None:
        """Remember an id, forgetting the oldest beyond ``max_ids``."""
        self._forget_expired()
        self._expiry[event_id] = self._clock() + self._ttl_s
        self._expiry.move_to_end(event_id)
        while len(self._expiry) > self._max_ids:
            self._expiry.popitem(last=False)

    def _forget_expired(self) -> None:
        now = self._clock()
        while self._expiry:
            oldest, expiry = next(iter(self._expiry.items()))
            if expiry > now:
                return
            del self._expiry[oldest]


@dataclass(frozen=True, slots=True)
class DeliveryCounts:
    """What one request's events became."""

    accepted: int
    duplicates: int
    rejected: int

    def as_json(self) -> dict[str, int]:
        """Return the counts as the response body."""
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }


class WebhookReceiver:
    """The request handler: authenticate, read, parse, deduplicate, hand over."""

    def __init__(
        self,
        sink: EventSink,
        token: str,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        recent_ids: RecentIds | None = None,
    ) -> None:
        if not token:
            raise ConfigError("the webhook needs a token", key_path="sources.webhook")
        self._sink = sink
        self._token = token.encode()
        self._max_body_bytes = max_body_bytes
        self._recent_ids = RecentIds() if recent_ids is None else recent_ids
        # Ids being handed to the sink now, so a retry waits instead of doubling.
        self._in_flight: dict[str, asyncio.Event] = {}

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one notification request."""
        if not self._authorized(request):
            record_unauthorized(SOURCE, remote=request.remote)
            return _status(401, headers={"WWW-Authenticate": 'Bearer realm="webhook"'})
        body = await _read_body(request, self._max_body_bytes)
        if body is None:
            too_large = EventRejected(
                f"body larger than {self._max_body_bytes} bytes",
                reason=RejectReason.MALFORMED,
            )
            record_rejected(too_large, SOURCE, remote=request.remote)
            return _status(413)

        return await self._handle_envelope(body, request.remote)

    async def _handle_envelope(self, body: bytes, remote: str | None) -> web.Response:
        """Parse the envelope and hand its events over; answer with the counts."""
        try:
            events, rejections = parse_notification_envelope(body)
        except EventRejected as malformed:
            record_rejected(malformed, SOURCE, remote=remote)
            return _status(400)
        for rejection in rejections:
            record_rejected(rejection, SOURCE)
        try:
            counts = await self._deliver_all(events, len(rejections))
        except Exception as error:  # the sink's failure: the registry must retry
            log.warning("webhook_sink_failed", source=SOURCE, **error_fields(error))
            return _status(503, headers={"Retry-After": _RETRY_AFTER_S})

        return web.json_response(counts.as_json())

    def _authorized(self, request: web.Request) -> bool:
        """Check ``Authorization: Bearer <token>`` in constant time."""
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        # RFC 7235 section 2.1: the scheme is case-insensitive.
        presented = credentials.strip().encode("utf-8", errors="replace")
        matches = hmac.compare_digest(presented, self._token)

        return scheme.lower() == "bearer" and matches

    async def _deliver_all(
        self, events: list[ImageEvent], rejected: int
    ) -> DeliveryCounts:
        """Hand each event to the sink once; return what happened to them."""
        accepted = 0
        for event in events:
            accepted += await self._deliver_once(event)

        return DeliveryCounts(accepted, len(events) - accepted, rejected)

    async def _deliver_once(self, event: ImageEvent) -> bool:
        """Hand an event to the sink unless its id was delivered; say if it was."""
        while (pending := self._in_flight.get(event.event_id)) is not None:
            await pending.wait()
        if event.event_id in self._recent_ids:
            record_duplicate(event)
            return False
        finished = asyncio.Event()
        self._in_flight[event.event_id] = finished
        try:
            await self._sink(Delivery(event, NO_ACKNOWLEDGEMENT))
            self._recent_ids.add(event.event_id)
        finally:
            del self._in_flight[event.event_id]
            finished.set()
        record_received(event)

        return True


def webhook_routes(
    sink: EventSink,
    token: str,
    path: str = DEFAULT_PATH,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    recent_ids: RecentIds | None = None,
) -> list[web.RouteDef]:
    """Return the POST route receiving notifications at ``path``."""
    receiver = WebhookReceiver(
        sink, token, max_body_bytes=max_body_bytes, recent_ids=recent_ids
    )
    return [web.post(path, receiver.handle)]


async def _read_body(request: web.Request, max_bytes: int) -> bytes | None:
    """Return the request body, or None once it exceeds ``max_bytes``."""
    if request.content_length is not None and request.content_length > max_bytes:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)

    return b"".join(chunks)


def _status(status: int, *, headers: dict[str, str] | None = None) -> web.Response:
    """Return an empty response with a status."""
    return web.Response(status=status, headers=headers)
