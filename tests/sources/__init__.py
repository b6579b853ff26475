"""Tests of the event sources, and a sink that records what they hand over."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client import REGISTRY

from replicator.events import Delivery


class RecordingSink:
    """An EventSink that keeps every delivery and can wait for a count of them."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._arrived = asyncio.Condition()

    async def __call__(self, delivery: Delivery) -> None:
        async with self._arrived:
            self.deliveries.append(delivery)
            self._arrived.notify_all()

    async def wait_for(self, count: int, timeout_s: float = 15.0) -> list[Delivery]:
        """Return the deliveries once there are at least ``count``."""
        async with asyncio.timeout(timeout_s), self._arrived:
            await self._arrived.wait_for(lambda: len(self.deliveries) >= count)
        return self.deliveries


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0
) -> None:
    """Wait until ``check()`` is true, asking every 50 ms."""
    async with asyncio.timeout(timeout_s):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


def rejected_count(source: str, reason: str) -> float:
    """Return the current value of the rejected-events counter."""
    labels = {"source": source, "reason": reason}
    return REGISTRY.get_sample_value("replicator_events_rejected_total", labels) or 0.0


def received_count(source: str, action: str) -> float:
    """Return the current value of the received-events counter."""
    labels = {"source": source, "action": action}
    return REGISTRY.get_sample_value("replicator_events_received_total", labels) or 0.0
