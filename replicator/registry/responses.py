"""Turn unsuccessful registry answers into ``RegistryError`` values.

The OCI distribution spec ("Error Codes") says an error body is
``{"errors": [{"code": ..., "message": ..., "detail": ...}]}``; registries add
their own codes (ECR's TOOMANYREQUESTS). Only codes reach the error message, since
a message or detail may echo request data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from replicator.errors import AuthenticationError, NotFoundError, RegistryError
from replicator.registry.retry import parse_retry_after

MAX_ERROR_BODY_BYTES = 64 * 1024
# HEAD answers carry no body, so no code: say what the status means instead.
_STATUS_SUMMARIES = {
    401: "unauthorized (credentials missing or refused)",
    403: "denied (credentials lack permission)",
    404: "not found",
    429: "too many requests",
}


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a request was for, carried into any error it raises."""

    operation: str
    registry: str
    repository: str | None = None
    digest: str | None = None

    def fields(self) -> dict[str, Any]:
        """Return the context as error keyword arguments."""
        return {
            "operation": self.operation,
            "registry": self.registry,
            "repository": self.repository,
            "digest": self.digest,
        }


def error_codes(body: bytes) -> tuple[str, ...]:
    """Return the OCI error codes in a response body, if it has any."""
    try:
        document = json.loads(body[:MAX_ERROR_BODY_BYTES])
    except (ValueError, UnicodeDecodeError):
        return ()
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return ()
    codes = (item.get("code") for item in errors if isinstance(item, dict))
    return tuple(code[:64] for code in codes if isinstance(code, str))


def error_for_response(
    context: RequestContext,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    redacted_url: str,
) -> RegistryError:
    """Build the error describing an unexpected response."""
    codes = error_codes(body)
    error_type = _error_type(status, codes)
    summary = (
        ", ".join(codes) if codes else _STATUS_SUMMARIES.get(status, f"HTTP {status}")
    )
    return error_type(
        f"{context.operation} failed: {summary}",
        status=status,
        codes=codes,
        retry_after_s=parse_retry_after(headers.get("Retry-After")),
        url=redacted_url,
        **context.fields(),
    )


def _error_type(status: int, codes: tuple[str, ...]) -> type[RegistryError]:
    if status == 401:
        return AuthenticationError
    if status == 404:
        return NotFoundError
    return RegistryError
