"""Pace manifest PUTs to a destination below its PutImage rate quota.

ECR counts every manifest PUT of its registry API as a PutImage call, limited per
account and region (10 per second by default; see "Amazon ECR service quotas").
Bursts beyond it answer 429 and cost retries, so PUTs are spaced out beforehand: a
generic cell rate algorithm that lets ``burst`` requests through at once and then
one every ``1 / rate_per_s`` seconds, in the order they asked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from replicator.registry.client import RegistryClient
from replicator.registry.responses import RequestContext

PACED_OPERATION = "manifest_put"


@dataclass(slots=True)
class RateLimiter:
    """Spaces calls ``1 / rate_per_s`` apart, allowing ``burst`` at once."""

    rate_per_s: float
    burst: int = 1
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _theoretical_arrival: float = field(default=float("-inf"), init=False)

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.burst < 1:
            raise ValueError("rate_per_s must be positive and burst at least 1")

    def reserve(self) -> float:
        """Take the next slot and return how many seconds to wait for it."""
        now = self.clock()
        interval_s = 1.0 / self.rate_per_s
        arrival = max(self._theoretical_arrival, now)
        self._theoretical_arrival = arrival + interval_s
        tolerance_s = (self.burst - 1) * interval_s

        return max(0.0, arrival - tolerance_s - now)

    async def acquire(self) -> None:
        """Wait until this caller's slot comes."""
        delay_s = self.reserve()
        if delay_s > 0:
            await self.sleep(delay_s)


class PacedRegistryClient(RegistryClient):
    """A registry client whose manifest PUTs (ECR's PutImage) pass a rate limiter."""

    def __init__(
        self, *args: Any, put_rate_limiter: RateLimiter, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.put_rate_limiter = put_rate_limiter

    @asynccontextmanager
    async def open(
        self, method: str, url: str, *, context: RequestContext, **options: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send a request as the base client does, pacing manifest PUTs first.

        Every attempt is paced, retries included: a 429 is a reason to slow down.
        """
        if context.operation == PACED_OPERATION:
            await self.put_rate_limiter.acquire()
        async with super().open(method, url, context=context, **options) as response:
            yield response
