"""Helpers shared by tests: replicator clients pointed at lab servers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from replicator.copier.copier import Copier
from replicator.copier.results import CopyJob, ImageResult
from replicator.registry.auth import ANONYMOUS, Credentials
from replicator.registry.client import RegistryClient, RegistryEndpoint, open_session
from replicator.registry.retry import RetryPolicy
from tests.lab import pusher

# Short waits keep retry tests quick; the policy's logic is the same.
FAST_RETRY = RetryPolicy(attempts=4, initial_backoff_s=0.01, max_backoff_s=0.1)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """Yield the one HTTP session a test's clients share."""
    async with open_session() as shared:
        yield shared


def client_for(
    session: aiohttp.ClientSession,
    url: str,
    credentials: pusher.Credentials | None = None,
    name: str | None = None,
) -> RegistryClient:
    """Return a replicator client for a lab registry or proxy URL."""
    creds = (
        Credentials(credentials.username, credentials.password)
        if credentials
        else ANONYMOUS
    )
    endpoint = RegistryEndpoint(name or url.split("://")[1], url, verify_tls=False)
    return RegistryClient(session, endpoint, creds, FAST_RETRY)


async def copy(
    source: RegistryClient,
    destination: RegistryClient,
    repository: str,
    reference: str,
    destination_repository: str | None = None,
    copier: Copier | None = None,
) -> ImageResult:
    """Copy one image with a fresh copier unless one is given."""
    job = CopyJob(
        source, repository, reference, destination, destination_repository or repository
    )
    return await (copier or Copier()).copy(job)
