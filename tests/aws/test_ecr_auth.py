"""ECR registry credentials: decoding GetAuthorizationToken, caching and renewal."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from replicator.aws.ecr_auth import (
    ECR_TOKEN_LIFETIME_S,
    EcrCredentialSource,
    EcrToken,
    decode_authorization_data,
)
from replicator.aws.session import MIN_REUSE_S, AwsSession, AwsTarget
from replicator.errors import TransportError
from replicator.registry.auth import Credentials
from tests.aws.conftest import PARTNER_ACCOUNT, PARTNER_ROLE, SOURCE_ACCOUNT, api
from tests.aws.test_session import FakeClock
from tests.lab.moto import MotoServer
from tests.lab.registry import find_free_port

EXPIRY = datetime(2030, 1, 1, tzinfo=UTC)


def encoded(text: str) -> str:
    """Return text base64-encoded, as authorizationToken carries it."""
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"authorizationToken": encoded("AWS:pass:word"), "expiresAt": EXPIRY},
            EcrToken("AWS", "pass:word", EXPIRY.timestamp()),
        ),
        (
            {"authorizationToken": encoded("AWS:p"), "expiresAt": 1_900_000_000},
            EcrToken("AWS", "p", 1_900_000_000.0),
        ),
        (
            {"authorizationToken": encoded("AWS:p")},
            EcrToken("AWS", "p", 1000.0 + ECR_TOKEN_LIFETIME_S),
        ),
    ],
)
def test_decodes_authorization_data(data: dict[str, Any], expected: EcrToken) -> None:
    assert decode_authorization_data(data, now_s=1000.0) == expected


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        ({}, "holds no authorizationToken"),
        ({"authorizationToken": "not base64!"}, "not base64"),
        ({"authorizationToken": encoded("no-separator")}, "user:password"),
        ({"authorizationToken": encoded("AWS:")}, "user:password"),
    ],
)
def test_rejects_unusable_tokens_without_echoing_them(
    data: dict[str, Any], phrase: str
) -> None:
    with pytest.raises(ValueError, match=phrase) as caught:
        decode_authorization_data(data, now_s=0.0)

    assert "no-separator" not in str(caught.value)


def test_never_shows_the_password() -> None:
    token = EcrToken("AWS", "s3cr3t-token", 0.0)

    assert "s3cr3t-token" not in repr(token)


def refreshes(result: str = "ok") -> float:
    """Return how many ECR tokens were fetched so far, by result."""
    labels = {"kind": "ecr_token", "result": result}
    return (
        REGISTRY.get_sample_value("replicator_credential_refreshes_total", labels)
        or 0.0
    )


async def test_logs_in_with_the_token_moto_issues(
    moto: MotoServer, aws: AwsSession
) -> None:
    source = EcrCredentialSource(api(aws, moto, "us-east-1"))

    credentials = await source.get()

    assert credentials == Credentials("AWS", f"{SOURCE_ACCOUNT}-auth-token")


async def test_logs_in_to_another_account_through_its_role(
    moto: MotoServer, aws: AwsSession
) -> None:
    source = EcrCredentialSource(api(aws, moto, "eu-west-1", role=PARTNER_ROLE))

    credentials = await source.get()

    assert credentials.password == f"{PARTNER_ACCOUNT}-auth-token"


async def test_reuses_the_token_until_renewal_is_due(
    moto: MotoServer, aws: AwsSession
) -> None:
    # moto's tokens say they expired in 2015, so each is kept MIN_REUSE_S.
    clock = FakeClock(time.time())
    source = EcrCredentialSource(api(aws, moto, "us-east-1"), clock=clock)
    before = refreshes()
    await source.get()
    clock.now_s += MIN_REUSE_S - 1
    await source.get()
    assert refreshes() - before == 1

    clock.now_s += 2
    await source.get()

    assert refreshes() - before == 2


async def test_fetches_a_new_token_after_invalidate(
    moto: MotoServer, aws: AwsSession
) -> None:
    source = EcrCredentialSource(api(aws, moto, "us-east-1"))
    before = refreshes()
    await source.get()

    source.invalidate()
    await source.get()

    assert refreshes() - before == 2


async def test_concurrent_requests_share_one_fetch(
    moto: MotoServer, aws: AwsSession
) -> None:
    source = EcrCredentialSource(api(aws, moto, "us-east-1"))
    before = refreshes()

    results = await asyncio.gather(*(source.get() for _ in range(10)))

    assert len(set(results)) == 1
    assert refreshes() - before == 1


async def test_counts_a_failed_fetch_and_raises_it(
    moto: MotoServer, aws: AwsSession
) -> None:
    closed = f"http://127.0.0.1:{find_free_port('127.0.0.1')}"
    source = EcrCredentialSource(aws.api(AwsTarget("us-east-1", closed), "gone"))
    before = refreshes("failed")

    with pytest.raises(TransportError):
        await source.get()

    assert refreshes("failed") - before == 1
