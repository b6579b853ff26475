"""Tests for the SQS source against moto in server mode."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from replicator.config import SqsSettings
from replicator.events import Action, Delivery
from replicator.sources.sqs import SqsSource
from tests.lab.moto import (
    DIGEST,
    MAX_RECEIVE_COUNT,
    REGION,
    MotoServer,
    Queues,
    ecr_event,
)
from tests.lab.registry import find_free_port
from tests.sources import RecordingSink, eventually, received_count, rejected_count


def settings(queues: Queues, moto: MotoServer, **changes: Any) -> SqsSettings:
    """Return source settings for the lab queue, short timeouts for tests."""
    values: dict[str, Any] = {
        "queue_url": queues.url,
        "region": REGION,
        "endpoint_url": moto.url,
        "wait_time_s": 1,
        "visibility_timeout_s": 2,
        "max_messages": 10,
        "retry_delay_s": 0,
        **changes,
    }
    return SqsSettings(**values)


@contextlib.asynccontextmanager
async def running(
    source: SqsSource, sink: Callable[[Delivery], Awaitable[None]]
) -> AsyncIterator[asyncio.Task[None]]:
    """Run the source in a task for the block; cancel it after."""
    task = asyncio.create_task(source.run(sink))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def acknowledging(
    sink: RecordingSink, how: str
) -> Callable[[Delivery], Awaitable[None]]:
    """Return a sink that records, then calls ``done`` or ``retry_later`` at once."""

    async def acknowledge(delivery: Delivery) -> None:
        await sink(delivery)
        await getattr(delivery.ack, how)()

    return acknowledge


async def wait_until_empty(queues: Queues) -> None:
    """Wait until the work queue holds no message, visible or in flight."""

    async def empty() -> bool:
        return await queues.counts() == (0, 0)

    await eventually(empty)


async def test_hands_ecr_events_to_the_sink(moto: MotoServer, queues: Queues) -> None:
    source = SqsSource(settings(queues, moto))
    sink = RecordingSink()
    before = received_count("sqs", "push")
    for body in (ecr_event("v1"), ecr_event(None), ecr_event(action="DELETE")):
        await queues.send(body)

    async with running(source, sink):
        deliveries = await sink.wait_for(3)
        ready = source.ready

    assert sorted(
        (d.event.action, d.event.repository, d.event.digest, d.event.tag or "")
        for d in deliveries
    ) == [
        (Action.DELETE, "team/app", DIGEST, "latest"),
        (Action.PUSH, "team/app", DIGEST, ""),
        (Action.PUSH, "team/app", DIGEST, "v1"),
    ]
    assert {d.event.origin for d in deliveries} == {"sqs"}
    assert ready
    assert received_count("sqs", "push") == before + 2


async def test_done_deletes_the_message(moto: MotoServer, queues: Queues) -> None:
    source = SqsSource(settings(queues, moto))
    sink = RecordingSink()
    await queues.send(ecr_event())

    async with running(source, acknowledging(sink, "done")):
        await sink.wait_for(1)
        await wait_until_empty(queues)
        await asyncio.sleep(2.5)  # past the visibility timeout: nothing comes back

    assert len(sink.deliveries) == 1
    assert await queues.counts(queues.dead_letter_url) == (0, 0)


async def test_retry_later_redelivers_until_the_dead_letter_queue(
    moto: MotoServer, queues: Queues
) -> None:
    source = SqsSource(settings(queues, moto))
    sink = RecordingSink()
    body = ecr_event(event_id="retried")
    await queues.send(body)

    async with running(source, acknowledging(sink, "retry_later")):
        dead_letters = await queues.receive_dead_letters()

    assert [d.event.event_id for d in sink.deliveries] == ["retried"] * 2
    assert dead_letters == [body]


async def test_retry_later_waits_the_retry_delay(
    moto: MotoServer, queues: Queues
) -> None:
    source = SqsSource(settings(queues, moto, retry_delay_s=2))
    sink = RecordingSink()
    await queues.send(ecr_event())

    async with running(source, acknowledging(sink, "retry_later")):
        await sink.wait_for(1)
        await asyncio.sleep(1.0)
        early = len(sink.deliveries)
        await sink.wait_for(2)

    assert early == 1


async def test_malformed_message_is_counted_and_dead_lettered(
    moto: MotoServer, queues: Queues
) -> None:
    source = SqsSource(settings(queues, moto))
    sink = RecordingSink()
    before = rejected_count("sqs", "malformed")
    await queues.send("{not json")

    with capture_logs() as logs:
        async with running(source, sink):
            dead_letters = await queues.receive_dead_letters()

    assert (dead_letters, sink.deliveries) == (["{not json"], [])
    assert rejected_count("sqs", "malformed") == before + MAX_RECEIVE_COUNT
    assert [
        (log["reason"], log["attempt"])
        for log in logs
        if log["event"] == "event_rejected"
    ] == [("malformed", 1), ("malformed", 2)]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (ecr_event(result="FAILURE"), "failed_result"),
        (ecr_event(detail_type="ECR Image Scan"), "ignored"),
        (ecr_event(action="REPLICATE"), "unsupported_action"),
    ],
)
async def test_deletes_events_that_mean_no_work(
    moto: MotoServer, queues: Queues, body: str, reason: str
) -> None:
    source = SqsSource(settings(queues, moto))
    sink = RecordingSink()
    before = rejected_count("sqs", reason)
    await queues.send(body)

    async with running(source, sink):
        await wait_until_empty(queues)

    assert rejected_count("sqs", reason) == before + 1
    assert sink.deliveries == []
    assert await queues.counts(queues.dead_letter_url) == (0, 0)


async def test_extends_visibility_while_a_delivery_is_unacknowledged(
    moto: MotoServer, queues: Queues
) -> None:
    # A 3 s timeout: a heartbeat every second, with room for a slow machine.
    holder = SqsSource(settings(queues, moto, visibility_timeout_s=3))
    other = SqsSource(settings(queues, moto, visibility_timeout_s=3))
    held, stolen = RecordingSink(), RecordingSink()
    await queues.send(ecr_event())

    async with running(holder, held):
        [delivery] = await held.wait_for(1)
        async with running(other, stolen):
            await asyncio.sleep(7.0)  # more than two visibility timeouts
            await delivery.ack.done()
            await wait_until_empty(queues)

    assert (len(held.deliveries), stolen.deliveries) == (1, [])


async def test_two_consumers_deliver_each_message_once(
    moto: MotoServer, queues: Queues
) -> None:
    first, second = SqsSource(settings(queues, moto)), SqsSource(settings(queues, moto))
    sink = RecordingSink()
    event_ids = [f"event-{number}" for number in range(30)]
    for event_id in event_ids:
        await queues.send(ecr_event(event_id=event_id))

    async with (
        running(first, acknowledging(sink, "done")),
        running(second, acknowledging(sink, "done")),
    ):
        await sink.wait_for(len(event_ids))
        await wait_until_empty(queues)
        await asyncio.sleep(2.5)  # past the visibility timeout: nothing comes back

    assert sorted(d.event.event_id for d in sink.deliveries) == sorted(event_ids)


async def test_receives_no_more_than_the_sink_takes(
    moto: MotoServer, queues: Queues
) -> None:
    source = SqsSource(settings(queues, moto, max_messages=3))
    blocked, release = asyncio.Event(), asyncio.Event()

    async def full_queue(delivery: Delivery) -> None:
        blocked.set()
        await release.wait()

    for number in range(5):
        await queues.send(ecr_event(event_id=f"event-{number}"))

    async with running(source, full_queue):
        await blocked.wait()
        await asyncio.sleep(1.5)
        counts_while_blocked = await queues.counts()
        held_while_blocked = source.held
    # Cancelled with the sink blocked: what it held is visible again at once.
    counts_after_cancel = await queues.counts()

    assert (counts_while_blocked, held_while_blocked) == ((2, 3), 3)
    assert counts_after_cancel == (5, 0)


async def test_acknowledges_after_run_is_cancelled_inside_the_context(
    moto: MotoServer, queues: Queues
) -> None:
    sink = RecordingSink()
    await queues.send(ecr_event())

    async with SqsSource(settings(queues, moto)) as source:
        async with running(source, sink):
            [delivery] = await sink.wait_for(1)
        await asyncio.sleep(2.5)  # still invisible: the heartbeat runs on
        counts_after_cancel = await queues.counts()
        await delivery.ack.done()
        await delivery.ack.retry_later()  # settled already: does nothing

    assert counts_after_cancel == (0, 1)
    assert await queues.counts() == (0, 0)


async def test_is_not_ready_while_sqs_is_unreachable(
    moto: MotoServer, queues: Queues, unused_port: int
) -> None:
    unreachable = f"http://127.0.0.1:{unused_port}"
    source = SqsSource(settings(queues, moto, endpoint_url=unreachable))

    async def receive_failed() -> bool:
        return any(log["event"] == "sqs_receive_failed" for log in logs)

    with capture_logs() as logs:
        async with running(source, RecordingSink()):
            await eventually(receive_failed)
            ready = source.ready

    assert not ready


@pytest.fixture
def unused_port() -> int:
    """Return a loopback port nothing listens on."""
    return find_free_port("127.0.0.1")
