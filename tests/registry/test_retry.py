from __future__ import annotations

import email.utils

import pytest

from replicator.errors import NotFoundError, RegistryError, TransportError
from replicator.registry.retry import RetryPolicy, parse_retry_after, retry_reason

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (email.utils.formatdate(NOW + 7, usegmt=True), 7.0),
        (email.utils.formatdate(NOW - 60, usegmt=True), 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parses_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now_s=NOW) == expected


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (TransportError("reset"), "connection"),
        (RegistryError("x", status=429), "throttled"),
        (RegistryError("x", status=400, codes=["TOOMANYREQUESTS"]), "throttled"),
        (RegistryError("x", status=503), "status_5xx"),
    ],
)
def test_names_bounded_retry_reasons(error: RegistryError, reason: str) -> None:
    assert retry_reason(error) == reason


@pytest.mark.parametrize(
    ("status", "codes", "retryable"),
    [
        (408, [], True),
        (429, [], True),
        (500, [], True),
        (503, [], True),
        (400, ["TOOMANYREQUESTS"], True),
        (400, ["MANIFEST_INVALID"], False),
        (403, ["DENIED"], False),
    ],
)
def test_classifies_statuses(status: int, codes: list[str], retryable: bool) -> None:
    assert RegistryError("x", status=status, codes=codes).retryable is retryable


async def test_retries_transient_failures_then_succeeds() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RegistryError("busy", status=503, retry_after_s=0.0)
        return "done"

    assert await RetryPolicy(attempts=5).run("op", flaky) == "done"
    assert len(calls) == 3


async def test_fails_at_once_on_permanent_errors() -> None:
    calls: list[int] = []

    async def missing() -> None:
        calls.append(1)
        raise NotFoundError("gone", status=404)

    with pytest.raises(NotFoundError):
        await RetryPolicy(attempts=5).run("op", missing)
    assert len(calls) == 1
