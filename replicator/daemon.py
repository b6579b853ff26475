"""The long-running service: event sources in, scheduler, HTTP endpoints, shutdown.

Shutdown follows "stop taking work, wait a bounded time, then cancel": on SIGTERM
or SIGINT the daemon turns not-ready, stops its sources (the webhook answers 503,
SQS stops receiving), lets in-flight copies finish within the grace period, and
exits 0. Events not finished by then stay unacknowledged and come back (SQS
redelivers them to any replica; DESIGN.md, guarantee 7).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from replicator import __version__
from replicator.config import Config
from replicator.events import Delivery
from replicator.registry.client import open_session
from replicator.scheduler import Scheduler
from replicator.sources.sqs import SqsSource
from replicator.sources.webhook import webhook_routes
from replicator.wiring import build_engine

log = structlog.get_logger("replicator.daemon")


@dataclass(slots=True)
class ServiceState:
    """What the health endpoints report."""

    started_at: float = field(default_factory=time.monotonic)
    draining: bool = False
    readiness_checks: list[Callable[[], bool]] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        """Say whether the daemon takes events now."""
        return not self.draining and all(check() for check in self.readiness_checks)


def health_routes(state: ServiceState) -> list[web.RouteDef]:
    """Return ``/healthz``, ``/readyz`` and ``/metrics``."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "version": __version__})

    async def readyz(request: web.Request) -> web.Response:
        status = 200 if state.ready else 503
        body = {"ready": state.ready, "draining": state.draining}
        return web.json_response(body, status=status)

    async def metrics_endpoint(request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    return [
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/metrics", metrics_endpoint),
    ]


async def serve(config: Config) -> int:
    """Run the daemon until SIGTERM or SIGINT; return the exit status."""
    stop = _stop_on_signals()
    async with open_session() as session, AsyncExitStack() as stack:
        engine = await build_engine(config, session)
        scheduler = Scheduler(
            engine.copier(),
            engine.rules,
            engine.source,
            engine.clients,
            workers=config.concurrency.images,
            retry_delays_s=config.retry.job_retry_delays_s,
        )
        state = ServiceState()
        submit = _guarded_submit(scheduler.submit, state)
        sqs = await _enter_sqs_source(config, stack, state)
        runner = await _start_http(config, state, submit)
        try:
            await _run_until_stopped(config, scheduler, state, submit, sqs, stop)
        finally:
            await runner.cleanup()
    return 0


async def _run_until_stopped(
    config: Config,
    scheduler: Scheduler,
    state: ServiceState,
    submit: Callable[[Delivery], Awaitable[None]],
    sqs: SqsSource | None,
    stop: asyncio.Event,
) -> None:
    async with asyncio.TaskGroup() as group:
        workers = group.create_task(scheduler.run())
        receiver = group.create_task(sqs.run(submit)) if sqs is not None else None
        log.info("daemon_started", version=__version__, listen=config.server.listen)

        await stop.wait()
        state.draining = True
        if receiver is not None:
            receiver.cancel()
        log.info("daemon_draining", unacknowledged=scheduler.unacknowledged)
        drained = await scheduler.drain(config.server.shutdown_grace_s)
        workers.cancel()
    log.info(
        "daemon_stopped",
        drained=drained,
        unacknowledged=scheduler.unacknowledged,
        uptime_s=round(time.monotonic() - state.started_at, 1),
    )


def _guarded_submit(
    submit: Callable[[Delivery], Awaitable[None]], state: ServiceState
) -> Callable[[Delivery], Awaitable[None]]:
    async def guarded(delivery: Delivery) -> None:
        if state.draining:
            raise web.HTTPServiceUnavailable(text="replicator is shutting down")
        await submit(delivery)

    return guarded


async def _start_http(
    config: Config,
    state: ServiceState,
    submit: Callable[[Delivery], Awaitable[None]],
) -> web.AppRunner:
    app = web.Application(client_max_size=1024 * 1024)
    app.add_routes(health_routes(state))
    webhook = config.sources.webhook
    if webhook is not None and webhook.enabled:
        app.add_routes(webhook_routes(submit, webhook.token_value(), webhook.path))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.server.host, config.server.port).start()
    return runner


async def _enter_sqs_source(
    config: Config, stack: AsyncExitStack, state: ServiceState
) -> SqsSource | None:
    settings = config.sources.sqs
    if settings is None:
        return None
    # Entered for the daemon's whole life, so acknowledgements made while draining
    # still reach the queue after the receiver has stopped.
    sqs = await stack.enter_async_context(SqsSource(settings))
    state.readiness_checks.append(lambda: sqs.ready)
    return sqs


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    return stop
