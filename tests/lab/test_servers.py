from __future__ import annotations

import urllib.request

from aiohttp import web

from tests.lab.servers import ThreadedServer


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text=f"hello from {request.host}")


def _hello_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", _hello)
    return app


def test_serves_on_the_chosen_loopback_host() -> None:
    with (
        ThreadedServer(_hello_app(), host="127.0.0.3") as server,
        urllib.request.urlopen(server.url + "/", timeout=5) as response,
    ):
        body = response.read()

    assert server.url.startswith("http://127.0.0.3:")
    assert body == f"hello from 127.0.0.3:{server.port}".encode()


def test_stops_and_reports_not_running() -> None:
    server = ThreadedServer(_hello_app()).start()

    server.stop()
    server.stop()

    assert not server.running


async def test_serves_while_the_test_runs_its_own_loop() -> None:
    with ThreadedServer(_hello_app()) as server:
        reply = server.call(_answer())

    assert reply == 42


async def _answer() -> int:
    return 42
