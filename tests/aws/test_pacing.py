"""Pacing manifest PUTs below a destination's PutImage rate."""

from __future__ import annotations

import time

import aiohttp
import pytest

from replicator.aws.pacing import PacedRegistryClient, RateLimiter
from replicator.copier.results import ImageOutcome
from replicator.registry.client import RegistryEndpoint
from tests.aws.test_session import FakeClock
from tests.lab.fixtures import RegistryFactory
from tests.lab.images import sample_index
from tests.lab.pusher import LabClient
from tests.support import FAST_RETRY, client_for, copy


def waits(limiter: RateLimiter, clock: FakeClock, times_s: list[float]) -> list[float]:
    """Reserve a slot at each time and return the waits the limiter asks for."""
    result = []
    for at_s in times_s:
        clock.now_s = at_s
        result.append(round(limiter.reserve(), 6))
    return result


@pytest.mark.parametrize(
    ("rate_per_s", "burst", "times_s", "expected"),
    [
        # A burst of five at 10/s leaves 0.1 s between PUTs.
        (10.0, 1, [0, 0, 0, 0, 0], [0, 0.1, 0.2, 0.3, 0.4]),
        # Spaced requests never wait.
        (10.0, 1, [0, 0.1, 0.25, 1.0], [0, 0, 0, 0]),
        # Idle time is not saved up beyond the burst.
        (2.0, 1, [0, 10, 10], [0, 0, 0.5]),
        # A burst allowance lets that many through at once.
        (10.0, 3, [0, 0, 0, 0, 0], [0, 0, 0, 0.1, 0.2]),
        # Late arrivals in a queue wait only for what is left.
        (1.0, 1, [0, 0, 0.5], [0, 1.0, 1.5]),
    ],
)
def test_spaces_requests_at_the_rate(
    rate_per_s: float, burst: int, times_s: list[float], expected: list[float]
) -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter(rate_per_s, burst, clock=clock)

    assert waits(limiter, clock, times_s) == expected


@pytest.mark.parametrize(("rate_per_s", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_refuses_a_useless_rate(rate_per_s: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate_per_s must be positive"):
        RateLimiter(rate_per_s, burst)


async def test_paces_only_manifest_puts(
    registry_factory: RegistryFactory, session: aiohttp.ClientSession
) -> None:
    source, destination = registry_factory(), registry_factory()
    index = sample_index("paced")
    LabClient(source.url).push_image("team/app", "1.0", index)
    rate_per_s = 5.0
    paced = PacedRegistryClient(
        session,
        RegistryEndpoint("paced", destination.url, verify_tls=False),
        retry=FAST_RETRY,
        put_rate_limiter=RateLimiter(rate_per_s),
    )
    started = time.monotonic()

    result = await copy(client_for(session, source.url), paced, "team/app", "1.0")

    elapsed_s = time.monotonic() - started
    puts = 1 + len(index.children)
    assert result.outcome is ImageOutcome.COPIED
    assert result.stats.manifests_pushed == puts
    # Three PUTs at 5/s: the second waits 0.2 s and the third 0.4 s.
    assert (puts - 1) / rate_per_s <= elapsed_s < (puts - 1) / rate_per_s + 2
