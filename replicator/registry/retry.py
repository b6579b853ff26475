"""The one retry policy: exponential backoff with jitter, honouring ``Retry-After``.

Whether to retry is decided by the error alone (``ReplicatorError.retryable``, set
where the failure was translated); how long to wait comes from the registry's
``Retry-After`` when it sent one (RFC 9110, 10.2.3: seconds or an HTTP-date).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from replicator import metrics
from replicator.errors import RegistryError, ReplicatorError, error_fields

T = TypeVar("T")

# A registry asking for a longer pause than this is treated as asking for this:
# a job should fail visibly rather than sleep for an hour.
MAX_RETRY_AFTER_S = 300.0
# Up to this much random delay is added to each backoff, so that clients refused
# together do not all come back at the same instant.
JITTER_S = 1.0

log = structlog.get_logger("replicator.retry")


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` value asks to wait, or None if invalid."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    current = time.time() if now_s is None else now_s
    return max(0.0, moment.timestamp() - current)


def is_retryable(error: BaseException) -> bool:
    """Say whether an error may go away if the operation is tried again."""
    return isinstance(error, ReplicatorError) and error.retryable


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failed registry operation is tried again."""

    attempts: int = 5
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    async def run(
        self, operation: str, action: Callable[[], Awaitable[T]], **log_context: Any
    ) -> T:
        """Run ``action`` until it succeeds, fails for good, or attempts run out."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            before_sleep=_log_retry(operation, log_context),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await action()
        raise AssertionError("tenacity stopped without an outcome")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RegistryError) and error.retry_after_s is not None:
            return min(error.retry_after_s, MAX_RETRY_AFTER_S)
        # wait_exponential_jitter's parameters changed name in tenacity 9; these two
        # strategies mean the same in every version pyproject.toml allows.
        backoff = wait_exponential(multiplier=self.initial_backoff_s) + wait_random(
            0, JITTER_S
        )
        return min(float(backoff(state)), self.max_backoff_s)


def _log_retry(
    operation: str, log_context: dict[str, Any]
) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        reason = retry_reason(error)
        metrics.RETRIES.labels(operation=operation, reason=reason).inc()
        log.warning(
            "request_retried",
            operation=operation,
            attempt=state.attempt_number,
            reason=reason,
            wait_s=round(state.upcoming_sleep, 3),
            **log_context,
            **(error_fields(error) if error else {}),
        )

    return before_sleep


def retry_reason(error: BaseException | None) -> str:
    """Return a bounded label saying why an operation is retried."""
    if isinstance(error, RegistryError):
        if error.status is None:
            return "connection"
        if error.status == 429 or "TOOMANYREQUESTS" in error.codes:
            return "throttled"
        if error.status == 401:
            return "unauthorized"
        return f"status_{error.status // 100}xx"
    return "other"
