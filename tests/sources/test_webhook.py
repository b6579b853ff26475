"""Tests for the webhook route, on a real aiohttp server and a real registry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from replicator.events import NO_ACKNOWLEDGEMENT, Action, Delivery
from replicator.sources.webhook import RecentIds, webhook_routes
from tests.lab.fixtures import RegistryFactory
from tests.lab.images import sample_index
from tests.lab.pusher import LabClient
from tests.lab.registry import NotificationEndpoint
from tests.sources import RecordingSink, eventually, received_count, rejected_count

TOKEN = "lab-webhook-token-0123456789"
DIGEST = "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf"
EVENTS_TYPE = "application/vnd.docker.distribution.events.v1+json"


@dataclass(frozen=True, slots=True)
class Webhook:
    """A webhook route served on loopback, and the sink it hands events to."""

    url: str
    sink: RecordingSink


WebhookFactory = Callable[..., Awaitable[Webhook]]


@pytest.fixture
async def webhook_factory() -> AsyncIterator[WebhookFactory]:
    """Serve webhook routes with any sink and options; stop them after the test."""
    runners: list[web.AppRunner] = []

    async def start(
        sink: Callable[[Delivery], Awaitable[None]] | None = None, **options: Any
    ) -> Webhook:
        recorder = RecordingSink()

        async def record_then_forward(delivery: Delivery) -> None:
            if sink is not None:
                await sink(delivery)
            await recorder(delivery)

        app = web.Application()
        app.add_routes(webhook_routes(record_then_forward, TOKEN, **options))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]

        return Webhook(f"http://127.0.0.1:{port}/webhook", recorder)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def webhook(webhook_factory: WebhookFactory) -> Webhook:
    """Serve the webhook with a recording sink."""
    return await webhook_factory()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """Yield an HTTP client for posting notifications."""
    async with aiohttp.ClientSession() as session:
        yield session


def notification(
    event_id: str = "evt-1", action: str = "push", **target: Any
) -> dict[str, Any]:
    """Return one event as distribution writes it."""
    fields = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": DIGEST,
        "repository": "team/app",
        "url": f"http://registry.local/v2/team/app/manifests/{DIGEST}",
        "tag": "v1",
        **target,
    }
    return {
        "id": event_id,
        "timestamp": "2024-01-18T14:37:42.194082639Z",
        "action": action,
        "target": {key: value for key, value in fields.items() if value is not None},
        "request": {"id": "r", "addr": "10.0.0.1:1234", "method": "PUT"},
        "actor": {"name": "ci"},
        "source": {"addr": "registry-0:5000"},
    }


async def post(
    client: aiohttp.ClientSession,
    url: str,
    body: bytes | dict[str, Any],
    token: str | None = TOKEN,
    *,
    authorization: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST a body; return the status and the JSON answer (or {})."""
    headers = {"Content-Type": EVENTS_TYPE}
    if authorization is not None:
        headers["Authorization"] = authorization
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with client.post(url, data=data, headers=headers) as response:
        answer = await response.json() if response.status == 200 else {}
        return response.status, answer


async def test_hands_events_to_the_sink_before_answering(
    webhook: Webhook, client: aiohttp.ClientSession
) -> None:
    before = received_count("webhook", "push")

    status, answer = await post(client, webhook.url, {"events": [notification()]})

    [delivery] = webhook.sink.deliveries
    assert (status, answer) == (200, {"accepted": 1, "duplicates": 0, "rejected": 0})
    assert (delivery.event.repository, delivery.event.digest, delivery.event.tag) == (
        "team/app",
        DIGEST,
        "v1",
    )
    assert (delivery.event.origin, delivery.ack) == ("webhook", NO_ACKNOWLEDGEMENT)
    assert received_count("webhook", "push") == before + 1


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer ",
        "Bearer \u00e9t\u00e9",
    ],
)
async def test_refuses_requests_without_the_token(
    webhook: Webhook, client: aiohttp.ClientSession, authorization: str | None
) -> None:
    before = rejected_count("webhook", "unauthorized")

    with capture_logs() as logs:
        status, _ = await post(
            client,
            webhook.url,
            {"events": [notification()]},
            token=None,
            authorization=authorization,
        )

    assert (status, webhook.sink.deliveries) == (401, [])
    assert rejected_count("webhook", "unauthorized") == before + 1
    assert [(log["event"], log["reason"]) for log in logs] == [
        ("event_rejected", "unauthorized")
    ]
    assert TOKEN[:10] not in repr(logs)


async def test_accepts_the_scheme_in_any_case(
    webhook: Webhook, client: aiohttp.ClientSession
) -> None:
    body = {"events": [notification()]}

    status, _ = await post(client, webhook.url, body, authorization=f"bearer {TOKEN}")

    assert status == 200


@pytest.mark.parametrize(
    "body", [b"not json", b"{}", b'{"events": "push"}', json.dumps([]).encode()]
)
async def test_refuses_a_malformed_body(
    webhook: Webhook, client: aiohttp.ClientSession, body: bytes
) -> None:
    before = rejected_count("webhook", "malformed")

    status, _ = await post(client, webhook.url, body)

    assert (status, webhook.sink.deliveries) == (400, [])
    assert rejected_count("webhook", "malformed") == before + 1


async def test_refuses_a_body_over_the_limit(
    webhook_factory: WebhookFactory, client: aiohttp.ClientSession
) -> None:
    webhook = await webhook_factory(max_body_bytes=2048)
    body = {"events": [notification(f"evt-{n}") for n in range(20)]}

    declared, _ = await post(client, webhook.url, body)
    chunked, _ = await post_chunked(client, webhook.url, json.dumps(body).encode())
    small, _ = await post(client, webhook.url, {"events": [notification()]})

    assert (declared, chunked, small) == (413, 413, 200)
    assert len(webhook.sink.deliveries) == 1


async def post_chunked(
    client: aiohttp.ClientSession, url: str, data: bytes
) -> tuple[int, bytes]:
    """POST without a Content-Length, in chunks."""

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 512):
            yield data[start : start + 512]

    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with client.post(url, data=chunks(), headers=headers) as response:
        return response.status, await response.read()


async def test_answers_ok_for_events_it_does_not_queue(
    webhook: Webhook, client: aiohttp.ClientSession
) -> None:
    blob = "sha256:" + "b" * 64
    before = {
        reason: rejected_count("webhook", reason)
        for reason in ("ignored", "invalid_name", "unsupported_action")
    }
    events = [
        notification("a", "pull"),
        notification(
            "b",
            mediaType="application/octet-stream",
            digest=blob,
            url=f"http://registry.local/v2/team/app/blobs/{blob}",
            tag=None,
        ),
        notification("c", repository="Team/App"),
        notification("d", "replicate"),
        notification("e", "delete", mediaType=None, url=None, tag=None),
    ]

    status, answer = await post(client, webhook.url, {"events": events})

    assert (status, answer) == (200, {"accepted": 1, "duplicates": 0, "rejected": 4})
    assert [d.event.action for d in webhook.sink.deliveries] == [Action.DELETE]
    assert {
        reason: rejected_count("webhook", reason) - count
        for reason, count in before.items()
    } == {"ignored": 2, "invalid_name": 1, "unsupported_action": 1}


async def test_delivers_a_repeated_event_id_once(
    webhook: Webhook, client: aiohttp.ClientSession
) -> None:
    body = {"events": [notification("evt-7"), notification("evt-8")]}
    before = rejected_count("webhook", "duplicate")

    first = await post(client, webhook.url, body)
    with capture_logs() as logs:
        again = await post(client, webhook.url, body)

    assert first == (200, {"accepted": 2, "duplicates": 0, "rejected": 0})
    assert again == (200, {"accepted": 0, "duplicates": 2, "rejected": 0})
    assert [d.event.event_id for d in webhook.sink.deliveries] == ["evt-7", "evt-8"]
    assert rejected_count("webhook", "duplicate") == before + 2
    assert [(log["event"], log["event_id"]) for log in logs] == [
        ("event_duplicate", "evt-7"),
        ("event_duplicate", "evt-8"),
    ]


async def test_a_retry_during_a_slow_handover_waits_and_is_not_queued_twice(
    webhook_factory: WebhookFactory, client: aiohttp.ClientSession
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def full_queue(delivery: Delivery) -> None:
        entered.set()
        await release.wait()

    webhook = await webhook_factory(full_queue)
    body = {"events": [notification("slow")]}
    first = asyncio.create_task(post(client, webhook.url, body))
    await entered.wait()
    retry = asyncio.create_task(post(client, webhook.url, body))
    await asyncio.sleep(0.2)
    answered_while_blocked = first.done() or retry.done()
    release.set()

    assert not answered_while_blocked
    assert await first == (200, {"accepted": 1, "duplicates": 0, "rejected": 0})
    assert await retry == (200, {"accepted": 0, "duplicates": 1, "rejected": 0})
    assert len(webhook.sink.deliveries) == 1


async def test_answers_503_when_the_sink_fails_and_accepts_the_retry(
    webhook_factory: WebhookFactory, client: aiohttp.ClientSession
) -> None:
    failures = [RuntimeError("daemon is stopping")]

    async def failing_once(delivery: Delivery) -> None:
        if failures:
            raise failures.pop()

    webhook = await webhook_factory(failing_once)
    body = {"events": [notification("evt-9")]}

    with capture_logs() as logs:
        failed, _ = await post(client, webhook.url, body)
    retried = await post(client, webhook.url, body)

    assert failed == 503
    assert retried == (200, {"accepted": 1, "duplicates": 0, "rejected": 0})
    assert [log["event"] for log in logs] == ["webhook_sink_failed"]


def test_recent_ids_forget_after_their_time_and_beyond_their_count() -> None:
    now = [0.0]
    recent = RecentIds(max_ids=2, ttl_s=10.0, clock=lambda: now[0])

    recent.add("a")
    now[0] = 5.0
    recent.add("b")
    recent.add("c")
    after_overflow = ("a" in recent, "b" in recent, "c" in recent)
    now[0] = 15.5
    after_expiry = ("b" in recent, "c" in recent, len(recent))

    assert after_overflow == (False, True, True)
    assert after_expiry == (False, False, 0)


async def test_receives_a_real_registrys_push_and_delete(
    webhook: Webhook, registry_factory: RegistryFactory
) -> None:
    endpoint = NotificationEndpoint(
        name="replicator",
        url=webhook.url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        backoff_s=0.1,
    )
    registry = registry_factory(notifications=[endpoint])
    lab = LabClient(registry.url)
    index = sample_index("webhook")
    ignored_before = rejected_count("webhook", "ignored")

    digest = await asyncio.to_thread(lab.push_image, "team/app", "v1", index)
    await webhook.sink.wait_for(3)
    await asyncio.to_thread(lab.delete_manifest, "team/app", digest)
    deliveries = await webhook.sink.wait_for(5)

    assert [
        (d.event.action, d.event.repository, d.event.digest, d.event.tag)
        for d in deliveries
    ] == [
        *[(Action.PUSH, "team/app", child.digest, None) for child in index.children],
        (Action.PUSH, "team/app", digest, "v1"),
        (Action.DELETE, "team/app", digest, None),
        # distribution also reports each tag the deleted manifest took with it.
        (Action.DELETE, "team/app", None, "v1"),
    ]
    assert deliveries[2].event.media_type == index.media_type
    # distribution 2.8 also reports each blob upload; those are counted, not queued.
    assert rejected_count("webhook", "ignored") > ignored_before


async def test_a_real_registry_with_the_wrong_token_is_refused(
    webhook: Webhook, registry_factory: RegistryFactory
) -> None:
    endpoint = NotificationEndpoint(
        name="replicator",
        url=webhook.url,
        headers={"Authorization": "Bearer not-the-token-at-all"},
        backoff_s=0.1,
    )
    registry = registry_factory(notifications=[endpoint])
    before = rejected_count("webhook", "unauthorized")

    await asyncio.to_thread(
        LabClient(registry.url).push_image, "team/app", "v1", sample_index("denied")
    )

    async def refused() -> bool:
        return rejected_count("webhook", "unauthorized") > before

    await eventually(refused)

    assert webhook.sink.deliveries == []
