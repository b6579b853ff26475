"""Amazon ECR parts of the engine: clients, repository hooks, rules from ECR.

Imported only when a configuration names an ECR registry or reads its rules from
ECR, so that other commands never load botocore (half a second of start-up).
Pass the same ``AwsSession`` to every builder here so they share assumed-role
credentials.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

from replicator.aws.ecr_auth import EcrCredentialSource
from replicator.aws.pacing import PacedRegistryClient, RateLimiter
from replicator.aws.registry_rules import load_registry_rules
from replicator.aws.repositories import EcrRepositoryHook, list_repositories
from replicator.aws.session import AssumeRole, AwsApi, AwsSession, AwsTarget
from replicator.config import Config, EcrSettings, Registry
from replicator.copier.copier import RepositoryHook
from replicator.errors import ConfigError
from replicator.registry.client import RegistryClient, RegistryEndpoint
from replicator.registry.retry import RetryPolicy


def new_session() -> AwsSession:
    """Return the AWS session the process shares: default credential chain."""
    return AwsSession()


def ecr_registry_client(
    name: str,
    endpoint: RegistryEndpoint,
    registry: Registry,
    session: aiohttp.ClientSession,
    policy: RetryPolicy,
    aws: AwsSession,
) -> RegistryClient:
    """Return an ECR registry's client: token logins and paced manifest PUTs."""
    settings = registry.ecr_settings
    assert settings is not None
    return PacedRegistryClient(
        session,
        endpoint,
        EcrCredentialSource(aws_api(name, registry, aws)),
        policy,
        put_rate_limiter=RateLimiter(settings.put_image_rate_per_s),
    )


def list_source_repositories(config: Config, aws: AwsSession) -> AsyncIterator[str]:
    """Yield the ECR source's repositories; ECR serves no ``/v2/_catalog``."""
    source = config.source_registry
    identity = source.ecr_identity
    assert identity is not None
    return list_repositories(aws_api(config.source, source, aws), identity[0])


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
