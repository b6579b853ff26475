"""The scheduler against real registries: acknowledgement, coalescing, convergence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest

from replicator.config import parse_config
from replicator.copier.copier import Copier
from replicator.events import Action, Delivery, ImageEvent
from replicator.rules import compile_rules
from replicator.scheduler import Scheduler
from tests.lab.fixtures import FaultProxyFactory, RegistryFactory
from tests.lab.images import sample_image
from tests.lab.proxy import FaultProxy, Respond, oci_error_body
from tests.lab.pusher import LabClient
from tests.support import client_for


@dataclass
class RecordingAck:
    """An acknowledgement that remembers how the event ended."""

    outcome: list[str] = field(default_factory=list)

    async def done(self) -> None:
        self.outcome.append("done")

    async def retry_later(self) -> None:
        self.outcome.append("retry_later")


def push_event(
    repository: str, tag: str | None, digest: str, number: int = 0
) -> ImageEvent:
    return ImageEvent(
        action=Action.PUSH,
        repository=repository,
        digest=digest,
        tag=tag,
        media_type=None,
        occurred_at=time.time(),
        event_id=f"event-{number}",
        origin="webhook",
    )


@dataclass
class Setup:
    scheduler: Scheduler
    source: LabClient
    destinations: list[LabClient]
    proxy: FaultProxy
    """The fault proxy in front of the second destination."""


@pytest.fixture
async def setup(
    registry_factory: RegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
) -> AsyncIterator[Setup]:
    source = registry_factory()
    destinations = [registry_factory(), registry_factory()]
    proxy = fault_proxy_factory(destinations[1])
    config = parse_config(
        {
            "version": 1,
            "source": "src",
            "registries": {
                "src": {"url": source.url, "insecure": True},
                "one": {"url": destinations[0].url, "insecure": True},
                "two": {"url": proxy.url, "insecure": True},
            },
            "rules": [
                {
                    "destinations": [{"registry": "one"}, {"registry": "two"}],
                    "repositoryFilters": [
                        {"filter": "app", "filterType": "PREFIX_MATCH"}
                    ],
                    "replicateDeletes": True,
                }
            ],
        },
        "test",
    )
    clients = {
        "src": client_for(session, source.url, name="src"),
        "one": client_for(session, destinations[0].url, name="one"),
        "two": client_for(session, proxy.url, name="two"),
    }
    scheduler = Scheduler(
        Copier(),
        compile_rules(config),
        clients["src"],
        clients,
        workers=4,
        retry_delays_s=(0.05,),
    )
    workers = asyncio.create_task(scheduler.run())
    yield Setup(
        scheduler,
        LabClient(source.url),
        [LabClient(d.url) for d in destinations],
        proxy,
    )
    workers.cancel()
    with pytest.raises(asyncio.CancelledError):
        await workers


async def test_acknowledges_an_event_once_every_destination_has_the_image(
    setup: Setup,
) -> None:
    image = sample_image("ack")
    digest = setup.source.push_image("app", "1.0", image)
    ack = RecordingAck()

    await setup.scheduler.submit(Delivery(push_event("app", "1.0", digest), ack))
    assert await setup.scheduler.drain(30)

    assert ack.outcome == ["done"]
    for destination in setup.destinations:
        assert destination.get_manifest("app", "1.0")[2] == digest


async def test_acknowledges_events_no_rule_selects_without_copying(
    setup: Setup,
) -> None:
    digest = setup.source.push_image("other", "1.0", sample_image("other"))
    ack = RecordingAck()

    await setup.scheduler.submit(Delivery(push_event("other", "1.0", digest), ack))

    assert ack.outcome == ["done"]
    assert setup.destinations[0].list_repositories() == []


async def test_gives_a_failed_event_back_for_redelivery(setup: Setup) -> None:
    proxy = setup.proxy
    proxy.add_fault(
        Respond(403, body=oci_error_body("DENIED", "no")),
        method="PUT",
        path="/manifests/",
        times=None,
    )
    digest = setup.source.push_image("app", "1.0", sample_image("fail"))
    ack = RecordingAck()

    await setup.scheduler.submit(Delivery(push_event("app", "1.0", digest), ack))
    assert await setup.scheduler.drain(30)

    assert ack.outcome == ["retry_later"]
    # The destination that worked has it; the event still goes back as a whole.
    assert setup.destinations[0].get_manifest("app", "1.0")[2] == digest


async def test_a_burst_of_pushes_to_one_tag_ends_on_the_newest_digest(
    setup: Setup,
) -> None:
    acks = [RecordingAck() for _ in range(20)]

    for number, ack in enumerate(acks):
        digest = setup.source.push_image(
            "app", "latest", sample_image(f"burst-{number}")
        )
        event = push_event("app", "latest", digest, number)
        await setup.scheduler.submit(Delivery(event, ack))
        await asyncio.sleep(0.005 * (number % 3))
    assert await setup.scheduler.drain(60)

    newest = setup.source.get_manifest("app", "latest")[2]
    for destination in setup.destinations:
        assert destination.get_manifest("app", "latest")[2] == newest
    assert all(ack.outcome == ["done"] for ack in acks)


async def test_coalesces_events_for_a_tag_while_it_is_copied(setup: Setup) -> None:
    proxy = setup.proxy
    digest = setup.source.push_image("app", "1.0", sample_image("coalesce"))
    acks = [RecordingAck() for _ in range(10)]

    for number, ack in enumerate(acks):
        await setup.scheduler.submit(
            Delivery(push_event("app", "1.0", digest, number), ack)
        )
    assert await setup.scheduler.drain(30)

    assert all(ack.outcome == ["done"] for ack in acks)
    # Ten events, at most two runs per destination: one copy, one up-to-date check.
    assert proxy.manifest_puts() == 1


async def test_replicates_a_delete_once_the_source_no_longer_has_the_image(
    setup: Setup,
) -> None:
    digest = setup.source.push_image("app", "1.0", sample_image("doomed"))
    await setup.scheduler.submit(
        Delivery(push_event("app", "1.0", digest), RecordingAck())
    )
    assert await setup.scheduler.drain(30)
    setup.source.delete_manifest("app", digest)
    delete = ImageEvent(
        action=Action.DELETE,
        repository="app",
        digest=digest,
        tag=None,
        media_type=None,
        occurred_at=time.time(),
        event_id="delete-1",
        origin="webhook",
    )
    ack = RecordingAck()

    await setup.scheduler.submit(Delivery(delete, ack))
    assert await setup.scheduler.drain(30)

    assert ack.outcome == ["done"]
    for destination in setup.destinations:
        assert not destination.list_tags("app")


async def test_copies_the_announced_digest_when_the_tag_is_not_written_yet(
    setup: Setup,
) -> None:
    # distribution notifies a push before it writes the tag.
    image = sample_image("early")
    digest = setup.source.push_image("app", None, image)
    ack = RecordingAck()

    await setup.scheduler.submit(Delivery(push_event("app", "1.0", digest), ack))
    assert await setup.scheduler.drain(30)

    assert ack.outcome == ["done"]
    for destination in setup.destinations:
        assert destination.get_manifest("app", "1.0")[2] == digest


async def test_waits_for_a_re_pushed_tag_to_name_the_announced_digest(
    setup: Setup,
) -> None:
    setup.source.push_image("app", "latest", sample_image("old"))
    new = sample_image("new")
    new_digest = setup.source.push_image("app", None, new)
    ack = RecordingAck()

    await setup.scheduler.submit(Delivery(push_event("app", "latest", new_digest), ack))
    await asyncio.sleep(0.5)
    setup.source.push_image("app", "latest", new)
    assert await setup.scheduler.drain(30)

    assert ack.outcome == ["done"]
    for destination in setup.destinations:
        assert destination.get_manifest("app", "latest")[2] == new_digest
