"""HTTP visibility through aiohttp's ``TraceConfig``: one DEBUG line per request.

Hooks observe every request the shared session sends, so the client code carries no
logging calls of its own. URLs are redacted before they are logged.
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import aiohttp
import structlog

from replicator import metrics
from replicator.registry.urls import redact_url

log = structlog.get_logger("replicator.http")


def trace_config() -> aiohttp.TraceConfig:
    """Return the trace hooks that log each registry request at DEBUG."""
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_on_request_start)
    config.on_request_end.append(_on_request_end)
    config.on_request_exception.append(_on_request_exception)
    return config


async def _on_request_start(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceRequestStartParams,
) -> None:
    context.started_at = time.monotonic()


async def _on_request_end(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceRequestEndParams,
) -> None:
    duration_s = time.monotonic() - context.started_at
    metrics.HTTP_REQUESTS.labels(
        method=params.method, status_class=metrics.status_class(params.response.status)
    ).inc()
    metrics.HTTP_DURATION.labels(method=params.method).observe(duration_s)
    if not _debug_enabled():
        return
    log.debug(
        "http_request",
        method=params.method,
        url=redact_url(str(params.url)),
        status=params.response.status,
        duration_s=round(duration_s, 4),
    )


async def _on_request_exception(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceRequestExceptionParams,
) -> None:
    metrics.HTTP_REQUESTS.labels(method=params.method, status_class="error").inc()
    if not _debug_enabled():
        return
    log.debug(
        "http_request_failed",
        method=params.method,
        url=redact_url(str(params.url)),
        error=type(params.exception).__name__,
        duration_s=round(time.monotonic() - context.started_at, 4),
    )


def _debug_enabled() -> bool:
    # Redacting a URL per request costs more than the request's own bookkeeping;
    # skip it unless the line will be written (-v).
    bound = log.bind()
    return not hasattr(bound, "is_enabled_for") or bool(
        bound.is_enabled_for(logging.DEBUG)
    )
