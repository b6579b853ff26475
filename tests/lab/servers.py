"""Run an aiohttp application on its own event loop in a daemon thread.

Lab servers live in threads so that synchronous tests, asyncio tests and tests that
run the replicator CLI as a subprocess can all reach them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")

_START_TIMEOUT_S = 10.0
_SHUTDOWN_TIMEOUT_S = 1.0


class ThreadedServer:
    """An aiohttp application served on a loopback host and an ephemeral port."""

    def __init__(self, app: web.Application, *, host: str = "127.0.0.1") -> None:
        self._app = app
        self._host = host
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._startup_error: BaseException | None = None

    @property
    def host(self) -> str:
        """Return the address the server listens on."""
        return self._host

    @property
    def port(self) -> int:
        """Return the port the server listens (or last listened) on."""
        if not self._port:
            raise RuntimeError(f"server on {self._host} has not been started")
        return self._port

    @property
    def url(self) -> str:
        """Return the base URL, such as ``http://127.0.0.1:8080``."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Tell whether the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> ThreadedServer:
        """Start serving and return once the port is bound."""
        if self.running:
            raise RuntimeError(f"server on {self._host} is already running")
        ready = threading.Event()
        self._startup_error = None
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name=f"lab-{self._host}", daemon=True
        )
        self._thread.start()
        self._wait_until_ready(ready)

        return self

    def stop(self) -> None:
        """Stop serving and join the thread; stopping twice is harmless."""
        if self._loop is None or self._thread is None:
            return
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=_START_TIMEOUT_S)
        self._thread = None
        self._loop = None

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop and return its result."""
        self._require_running()
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=_START_TIMEOUT_S)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _require_running(self) -> None:
        if not self.running:
            raise RuntimeError(f"server on {self._host} is not running")

    def _wait_until_ready(self, ready: threading.Event) -> None:
        if not ready.wait(timeout=_START_TIMEOUT_S):
            raise RuntimeError(f"server on {self._host} did not start in time")
        if self._startup_error is not None:
            self.stop()
            raise RuntimeError(
                f"server on {self._host} failed to start"
            ) from self._startup_error

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        runner = web.AppRunner(
            self._app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S
        )
        try:
            self._port = loop.run_until_complete(self._bind(runner))
        except BaseException as exc:  # reported to the starting thread
            self._startup_error = exc
            ready.set()
            _close_loop(loop)
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        _close_loop(loop)

    async def _bind(self, runner: web.AppRunner) -> int:
        await runner.setup()
        site = web.TCPSite(runner, self._host, 0)
        await site.start()
        address = runner.addresses[0]

        return int(address[1])


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on the loop, then close it."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        gather = asyncio.gather(*pending, return_exceptions=True)
        loop.run_until_complete(gather)
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
