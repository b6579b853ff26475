"""Consume EventBridge ``ECR Image Action`` events from an SQS queue.

The life of a message:

    received (invisible for visibility_timeout_s)
      -> held: a heartbeat extends its visibility every third of that timeout
      -> handed to the sink (awaited: a full daemon queue stops the receiving)
      -> ack.done(): deleted  |  ack.retry_later(): visible after retry_delay_s

Rejected messages never reach the sink. Those that will never mean work
(``ignored``, ``failed_result``, ``unsupported_action``) are deleted. Those that are
broken (``malformed``, ``invalid_name``) are left, visible again after
``retry_delay_s``, so the queue's redrive policy moves them to its dead-letter queue
after ``maxReceiveCount`` receives: nothing is lost without a trace.

Several replicas on one queue are competing consumers; visibility is the only
coordination. Duplicates (EventBridge and SQS deliver at least once) reach the
sink; the daemon's job coalescing and idempotent copies absorb them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import aiohttp
import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import BotoCoreError, ClientError

from replicator.config import SqsSettings
from replicator.errors import error_fields
from replicator.events import (
    Delivery,
    EventRejected,
    EventSink,
    RejectReason,
    parse_eventbridge_message,
)
from replicator.sources import record_received, record_rejected

SOURCE = "sqs"
# Rejections worth a look: left for the dead-letter queue rather than deleted.
KEPT_FOR_DEAD_LETTER = frozenset({RejectReason.MALFORMED, RejectReason.INVALID_NAME})
# SQS takes at most ten entries per batch call.
_BATCH_SIZE = 10
_MAX_RECEIVE_BACKOFF_S = 30.0
# Bound on releasing messages while being cancelled: shutdown must not hang.
_RELEASE_TIMEOUT_S = 5.0
# Failures reaching SQS: botocore's own, service errors, and aiohttp's below them.
_AWS_ERRORS = (BotoCoreError, ClientError, aiohttp.ClientError, OSError)

log = structlog.get_logger("replicator.sqs")


class _Leases:
    """The messages this consumer holds, and the calls that keep or let them go."""

    def __init__(self, client: Any, settings: SqsSettings) -> None:
        self.client = client
        self._settings = settings
        # Receipt handle -> message id, for every message not yet settled.
        self._held: dict[str, str] = {}
        # Serialises heartbeats with releases, so a heartbeat cannot undo the
        # shorter visibility a release just set.
        self._lock = asyncio.Lock()
        self.closed = False

    @property
    def held(self) -> int:
        """Return how many messages are held now."""
        return len(self._held)

    def hold(self, handle: str, message_id: str) -> None:
        """Keep a received message invisible until it is settled."""
        self._held[handle] = message_id

    async def extend_all(self) -> None:
        """Push every held message's visibility timeout out again."""
        async with self._lock:
            for batch in _batches(list(self._held), _BATCH_SIZE):
                await self._extend(batch)

    async def delete(self, handle: str) -> None:
        """Delete a message: its work is done or there never was any."""
        message_id = self._held.pop(handle, None)
        await self._call(
            "DeleteMessage",
            message_id,
            self.client.delete_message,
            ReceiptHandle=handle,
        )

    async def release(self, handle: str, delay_s: int) -> None:
        """Let a message be received again (by any consumer) after ``delay_s``."""
        async with self._lock:
            message_id = self._held.pop(handle, None)
            await self._call(
                "ChangeMessageVisibility",
                message_id,
                self.client.change_message_visibility,
                ReceiptHandle=handle,
                VisibilityTimeout=delay_s,
            )

    async def _extend(self, handles: Sequence[str]) -> None:
        entries = [
            {
                "Id": str(position),
                "ReceiptHandle": handle,
                "VisibilityTimeout": self._settings.visibility_timeout_s,
            }
            for position, handle in enumerate(handles)
        ]
        response = await self._call(
            "ChangeMessageVisibilityBatch",
            None,
            self.client.change_message_visibility_batch,
            Entries=entries,
        )
        # A message deleted while the batch was on its way fails here; harmless.
        for failure in (response or {}).get("Failed", []):
            log.debug(
                "sqs_visibility_not_extended",
                message_id=self._held.get(handles[int(failure["Id"])]),
                error=failure.get("Code"),
            )

    async def _call(
        self,
        operation: str,
        message_id: str | None,
        method: Callable[..., Awaitable[Mapping[str, Any]]],
        **parameters: Any,
    ) -> Mapping[str, Any] | None:
        """Call SQS; log a failure and return None (the message redelivers)."""
        if self.closed:
            log.warning(
                "sqs_request_failed",
                operation=operation,
                message_id=message_id,
                error="the SQS source is closed; the message will be delivered again",
            )
            return None
        try:
            response = await method(QueueUrl=self._settings.queue_url, **parameters)
        except _AWS_ERRORS as error:
            log.warning(
                "sqs_request_failed",
                operation=operation,
                message_id=message_id,
                **error_fields(error),
            )
            return None

        return response


class SqsAcknowledgement:
    """Settles one SQS message: delete it, or let it come back later."""

    __slots__ = ("_handle", "_leases", "_retry_delay_s", "_settled")

    def __init__(self, leases: _Leases, handle: str, retry_delay_s: int) -> None:
        self._leases = leases
        self._handle = handle
        self._retry_delay_s = retry_delay_s
        self._settled = False

    async def done(self) -> None:
        """Delete the message: every destination succeeded."""
        if self._settle():
            await self._leases.delete(self._handle)

    async def retry_later(self) -> None:
        """Make the message visible again after the configured retry delay."""
        if self._settle():
            await self._leases.release(self._handle, self._retry_delay_s)

    def _settle(self) -> bool:
        """Mark settled; say whether this is the first settlement."""
        first = not self._settled
        self._settled = True
        return first


class SqsSource:
    """Long-poll one queue and hand each ECR event to a sink.

    ``run`` opens its own client when the source is not entered. Enter it
    (``async with SqsSource(...)``) around ``run`` and the draining of the daemon
    so that acknowledgements made after ``run`` is cancelled still reach SQS and
    held messages stay invisible until then.
    """

    def __init__(
        self, settings: SqsSettings, *, session: AioSession | None = None
    ) -> None:
        self._settings = settings
        self._session = session if session is not None else get_session()
        self._ready = False
        self._leases: _Leases | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    @property
    def ready(self) -> bool:
        """Say whether a ReceiveMessage call has succeeded."""
        return self._ready

    @property
    def held(self) -> int:
        """Return how many received messages are not yet settled."""
        return 0 if self._leases is None else self._leases.held

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise RuntimeError("the SQS source is open already")
        stack = contextlib.AsyncExitStack()
        async with stack:
            client = await stack.enter_async_context(self._create_client())
            leases = _Leases(client, self._settings)
            heartbeat = asyncio.create_task(self._keep_visible(leases))
            stack.push_async_callback(_stop, heartbeat)
            stack.callback(setattr, leases, "closed", True)
            self._leases, self._stack = leases, stack.pop_all()

        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stack, self._stack, self._leases = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def run(self, sink: EventSink) -> None:
        """Receive and hand over events until cancelled (or the sink raises)."""
        async with contextlib.AsyncExitStack() as stack:
            if self._leases is None:
                await stack.enter_async_context(self)
            await self._poll(self._require_leases(), sink)

    def _require_leases(self) -> _Leases:
        if self._leases is None:
            raise RuntimeError("the SQS source is not open")
        return self._leases

    def _create_client(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """Return the SQS client context; credentials come from the AWS chain."""
        config = AioConfig(
            connect_timeout=10,
            # A long poll holds the response back for up to wait_time_s.
            read_timeout=self._settings.wait_time_s + 20,
            retries={"mode": "standard"},
        )
        client: contextlib.AbstractAsyncContextManager[Any] = (
            self._session.create_client(
                "sqs",
                region_name=self._settings.region_name,
                endpoint_url=self._settings.endpoint_url,
                config=config,
            )
        )
        return client

    async def _keep_visible(self, leases: _Leases) -> None:
        """Extend held messages' visibility every third of the timeout."""
        interval_s = self._settings.visibility_timeout_s / 3
        while True:
            await asyncio.sleep(interval_s)
            await leases.extend_all()

    async def _poll(self, leases: _Leases, sink: EventSink) -> None:
        """Receive batches and hand them over; back off while SQS fails."""
        failures = 0
        while True:
            messages = await self._receive(leases)
            if messages is None:
                failures += 1
                await asyncio.sleep(_receive_backoff_s(failures))
                continue
            failures = 0
            self._ready = True
            await self._hand_over(leases, messages, sink)

    async def _receive(self, leases: _Leases) -> list[Mapping[str, Any]] | None:
        """Long-poll for messages and hold them; None when SQS failed."""
        try:
            response = await leases.client.receive_message(
                QueueUrl=self._settings.queue_url,
                MaxNumberOfMessages=self._settings.max_messages,
                WaitTimeSeconds=self._settings.wait_time_s,
                VisibilityTimeout=self._settings.visibility_timeout_s,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        except _AWS_ERRORS as error:
            log.error("sqs_receive_failed", source=SOURCE, **error_fields(error))
            return None
        messages: list[Mapping[str, Any]] = response.get("Messages", [])
        for message in messages:
            leases.hold(message["ReceiptHandle"], message["MessageId"])

        return messages

    async def _hand_over(
        self,
        leases: _Leases,
        messages: Sequence[Mapping[str, Any]],
        sink: EventSink,
    ) -> None:
        """Hand messages to the sink in order; release those never handed over."""
        handed = 0
        try:
            for message in messages:
                await self._hand_one(leases, message, sink)
                handed += 1
        finally:
            # Cancelled (or the sink failed) mid-batch: let other consumers have
            # the rest now rather than after the visibility timeout.
            await _release_all(leases, messages[handed:])

    async def _hand_one(
        self, leases: _Leases, message: Mapping[str, Any], sink: EventSink
    ) -> None:
        """Parse one message and hand its event over, or settle the rejection."""
        handle = message["ReceiptHandle"]
        fields = _message_fields(message)
        try:
            event = parse_eventbridge_message(message.get("Body", ""))
        except EventRejected as rejection:
            record_rejected(rejection, SOURCE, **fields)
            await self._settle_rejected(leases, handle, rejection.reason)
            return
        record_received(event, **fields)
        ack = SqsAcknowledgement(leases, handle, self._settings.retry_delay_s)
        await sink(Delivery(event, ack))

    async def _settle_rejected(
        self, leases: _Leases, handle: str, reason: RejectReason
    ) -> None:
        """Delete a message without work; leave a broken one for the DLQ."""
        if reason in KEPT_FOR_DEAD_LETTER:
            await leases.release(handle, self._settings.retry_delay_s)
        else:
            await leases.delete(handle)


async def _release_all(leases: _Leases, messages: Sequence[Mapping[str, Any]]) -> None:
    """Make messages visible at once, within a bounded time."""
    if not messages:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_RELEASE_TIMEOUT_S):
            for message in messages:
                await leases.release(message["ReceiptHandle"], 0)


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel a task and wait for it to finish."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _message_fields(message: Mapping[str, Any]) -> dict[str, Any]:
    """Return the log keys naming an SQS message and its delivery attempt."""
    attributes = message.get("Attributes", {})
    attempt = attributes.get("ApproximateReceiveCount")
    return {
        "message_id": message.get("MessageId"),
        "attempt": int(attempt) if attempt is not None else None,
    }


def _receive_backoff_s(failures: int) -> float:
    """Return the wait after consecutive receive failures, with jitter."""
    ceiling = min(_MAX_RECEIVE_BACKOFF_S, 2.0 ** (failures - 1))
    return ceiling * random.uniform(0.5, 1.0)


def _batches(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
