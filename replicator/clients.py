"""Build registry clients from configuration: one per configured registry.

Amazon ECR registries get their clients from ``replicator.aws.wiring`` (token
logins, paced manifest PUTs), loaded only when a configuration names one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp

from replicator.config import Config, Registry
from replicator.errors import ConfigError
from replicator.registry.auth import Credentials
from replicator.registry.client import RegistryClient, RegistryEndpoint
from replicator.registry.retry import RetryPolicy

if TYPE_CHECKING:
    from replicator.aws.session import AwsSession


def uses_aws(config: Config) -> bool:
    """Say whether a configuration needs the AWS APIs (an ECR registry or rules)."""
    ecr_registries = (r.ecr_settings is not None for r in config.registries.values())
    return config.rules_from_ecr or any(ecr_registries)


def retry_policy(config: Config) -> RetryPolicy:
    """Return the retry policy the configuration asks for."""
    return RetryPolicy(
        attempts=config.retry.attempts,
        initial_backoff_s=config.retry.initial_backoff_s,
        max_backoff_s=config.retry.max_backoff_s,
    )


def registry_clients(
    config: Config, session: aiohttp.ClientSession, aws: AwsSession | None = None
) -> dict[str, RegistryClient]:
    """Return a client for every configured registry, by its name.

    ``aws`` is needed when the configuration names an ECR registry.
    """
    policy = retry_policy(config)
    return {
        name: registry_client(name, registry, session, policy, aws)
        for name, registry in config.registries.items()
    }


def registry_client(
    name: str,
    registry: Registry,
    session: aiohttp.ClientSession,
    policy: RetryPolicy,
    aws: AwsSession | None,
) -> RegistryClient:
    """Return the client of one registry: plain OCI, or ECR's."""
    if registry.ecr_settings is None:
        return RegistryClient(
            session, endpoint(name, registry), credentials(registry), policy
        )
    if aws is None:
        raise ConfigError(
            "an ECR registry needs an AWS session", key_path=f"registries.{name}"
        )
    from replicator.aws.wiring import ecr_registry_client

    return ecr_registry_client(
        name, endpoint(name, registry), registry, session, policy, aws
    )


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
