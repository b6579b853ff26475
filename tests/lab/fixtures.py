"""Pytest fixtures that start lab servers for a test and stop them after it.

Use them by name: ``registry``, ``registry_factory``, ``basic_auth_registry``,
``token_server``, ``token_registry`` and ``fault_proxy_factory``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab.proxy import FaultProxy
from tests.lab.pusher import Credentials
from tests.lab.registry import NotificationEndpoint, RegistryProcess, TokenAuthConfig
from tests.lab.token_server import TokenServer

LAB_USER = Credentials("lab-user", "lab-password")


@dataclass(frozen=True, slots=True)
class AuthenticatedRegistry:
    """A registry that requires credentials, with the ones that work."""

    registry: RegistryProcess
    credentials: Credentials
    token_server: TokenServer | None = None

    @property
    def url(self) -> str:
        """Return the registry's base URL."""
        return self.registry.url


class RegistryFactory:
    """Start registries with any options; stop them all at teardown."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._numbers = itertools.count(1)
        self._started: list[RegistryProcess] = []

    def __call__(
        self,
        *,
        host: str = "127.0.0.1",
        htpasswd: Mapping[str, str] | None = None,
        token_auth: TokenAuthConfig | None = None,
        relative_urls: bool = False,
        notifications: Sequence[NotificationEndpoint] = (),
    ) -> RegistryProcess:
        """Start one more registry in its own directory."""
        registry = RegistryProcess(
            self._root / f"registry-{next(self._numbers)}",
            host=host,
            htpasswd=htpasswd,
            token_auth=token_auth,
            relative_urls=relative_urls,
            notifications=notifications,
        )
        self._started.append(registry)

        return registry.start()

    def stop_all(self) -> None:
        """Stop every registry this factory started."""
        for registry in self._started:
            registry.stop()


class FaultProxyFactory:
    """Start fault proxies in front of registries; stop them all at teardown."""

    def __init__(self) -> None:
        self._started: list[FaultProxy] = []

    def __call__(
        self,
        upstream: RegistryProcess | str,
        *,
        host: str = "127.0.0.1",
        blob_host: str = "127.0.0.2",
    ) -> FaultProxy:
        """Start a proxy in front of ``upstream`` (a registry or a base URL)."""
        url = upstream.url if isinstance(upstream, RegistryProcess) else upstream
        proxy = FaultProxy(url, host=host, blob_host=blob_host)
        self._started.append(proxy)

        return proxy.start()

    def stop_all(self) -> None:
        """Stop every proxy this factory started."""
        for proxy in self._started:
            proxy.stop()


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[RegistryFactory]:
    """Start any number of registries with options."""
    factory = RegistryFactory(tmp_path / "registries")
    yield factory
    factory.stop_all()


@pytest.fixture
def registry(registry_factory: RegistryFactory) -> RegistryProcess:
    """Start a plain registry without auth."""
    return registry_factory()


@pytest.fixture
def basic_auth_registry(registry_factory: RegistryFactory) -> AuthenticatedRegistry:
    """Start a registry with htpasswd (Basic) auth for ``LAB_USER``."""
    htpasswd = {LAB_USER.username: LAB_USER.password}
    return AuthenticatedRegistry(registry_factory(htpasswd=htpasswd), LAB_USER)


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[TokenServer]:
    """Start a token service that knows ``LAB_USER`` and refuses anonymous users."""
    users = {LAB_USER.username: LAB_USER.password}
    server = TokenServer(tmp_path / "token-server", users=users).start()
    yield server
    server.stop()


@pytest.fixture
def token_registry(
    registry_factory: RegistryFactory, token_server: TokenServer
) -> AuthenticatedRegistry:
    """Start a registry with token auth backed by ``token_server``."""
    registry = registry_factory(token_auth=token_server.registry_auth())
    return AuthenticatedRegistry(registry, LAB_USER, token_server)


@pytest.fixture
def fault_proxy_factory() -> Iterator[FaultProxyFactory]:
    """Start fault proxies in front of registries."""
    factory = FaultProxyFactory()
    yield factory
    factory.stop_all()
