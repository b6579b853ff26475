"""Build registry clients from configuration: one per configured registry."""

from __future__ import annotations

import aiohttp

from replicator.config import Config, Registry
from replicator.registry.auth import Credentials
from replicator.registry.client import RegistryClient, RegistryEndpoint
from replicator.registry.retry import RetryPolicy


def retry_policy(config: Config) -> RetryPolicy:
    """Return the retry policy the configuration asks for."""
    return RetryPolicy(
        attempts=config.retry.attempts,
        initial_backoff_s=config.retry.initial_backoff_s,
        max_backoff_s=config.retry.max_backoff_s,
    )


def registry_clients(
    config: Config, session: aiohttp.ClientSession
) -> dict[str, RegistryClient]:
    """Return a client for every configured registry, by its name."""
    policy = retry_policy(config)
    return {
        name: RegistryClient(
            session, endpoint(name, registry), credentials(registry), policy
        )
        for name, registry in config.registries.items()
    }


def endpoint(name: str, registry: Registry) -> RegistryEndpoint:
    """Return where a configured registry is and how to trust it."""
    return RegistryEndpoint(name, registry.base_url, registry.verify_tls)


def credentials(registry: Registry) -> Credentials:
    """Return a configured registry's secrets in the form the client uses."""
    resolved = registry.resolved_credentials
    return Credentials(
        username=resolved.username,
        password=resolved.password.get_secret_value() if resolved.password else None,
        token=resolved.token.get_secret_value() if resolved.token else None,
    )
