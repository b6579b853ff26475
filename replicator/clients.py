"""Build registry clients from configuration: one per configured registry.

Amazon ECR registries get credentials from GetAuthorizationToken (through an
assumed role when configured), manifest PUTs paced below ECR's PutImage quota, and
a repository hook that creates destination repositories on demand. Pass the same
``AwsSession`` to every builder here so they share assumed-role credentials.
"""

from __future__ import annotations

import aiohttp

from replicator.aws.ecr_auth import EcrCredentialSource
from replicator.aws.pacing import PacedRegistryClient, RateLimiter
from replicator.aws.registry_rules import load_registry_rules
from replicator.aws.repositories import EcrRepositoryHook
from replicator.aws.session import AssumeRole, AwsApi, AwsSession, AwsTarget
from replicator.config import Config, EcrSettings, Registry
from replicator.copier.copier import RepositoryHook
from replicator.errors import ConfigError
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
    config: Config, session: aiohttp.ClientSession, aws: AwsSession | None = None
) -> dict[str, RegistryClient]:
    """Return a client for every configured registry, by its name."""
    policy = retry_policy(config)
    aws = aws or AwsSession()
    return {
        name: registry_client(name, registry, session, policy, aws)
        for name, registry in config.registries.items()
    }


def registry_client(
    name: str,
    registry: Registry,
    session: aiohttp.ClientSession,
    policy: RetryPolicy,
    aws: AwsSession,
) -> RegistryClient:
    """Return the client of one registry: plain OCI, or ECR's."""
    settings = registry.ecr_settings
    if settings is None:
        return RegistryClient(
            session, endpoint(name, registry), credentials(registry), policy
        )
    return PacedRegistryClient(
        session,
        endpoint(name, registry),
        EcrCredentialSource(aws_api(name, registry, aws)),
        policy,
        put_rate_limiter=RateLimiter(settings.put_image_rate_per_s),
    )


def repository_hooks(config: Config, aws: AwsSession) -> dict[str, RepositoryHook]:
    """Return the hooks that prepare destination repositories, by registry name."""
    hooks: dict[str, RepositoryHook] = {}
    for name, registry in config.registries.items():
        settings = registry.ecr_settings
        identity = registry.ecr_identity
        if settings is None or identity is None:
            continue
        hooks[name] = EcrRepositoryHook(
            aws_api(name, registry, aws),
            identity[0],
            settings.repository_settings,
            create_repositories=settings.create_repositories,
        )

    return hooks


async def apply_rules_from_ecr(config: Config, aws: AwsSession) -> Config:
    """Return config with the source's ECR rules when ``rules_from_ecr`` is set."""
    if not config.rules_from_ecr:
        return config
    source_api = aws_api(config.source, config.source_registry, aws)

    return await load_registry_rules(config, source_api)


def aws_api(name: str, registry: Registry, aws: AwsSession) -> AwsApi:
    """Return the AWS access of an ECR registry."""
    return aws.api(aws_target(name, registry), name)


def aws_target(name: str, registry: Registry) -> AwsTarget:
    """Return where and as whom to call AWS for an ECR registry."""
    settings = registry.ecr_settings
    identity = registry.ecr_identity
    if settings is None or identity is None:
        raise ConfigError(
            "is not an Amazon ECR registry", key_path=f"registries.{name}"
        )

    return AwsTarget(
        region=identity[1],
        ecr_endpoint_url=settings.endpoint_url.ecr,
        sts_endpoint_url=settings.endpoint_url.sts,
        role=_role(settings),
    )


def _role(settings: EcrSettings) -> AssumeRole | None:
    if settings.assume_role_arn is None:
        return None
    return AssumeRole(
        settings.assume_role_arn, settings.session_name, settings.external_id
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
