"""ECR repositories: create a destination repository on demand, list a registry's.

ECR refuses a push to a repository that does not exist (``NAME_UNKNOWN``), so the
copier asks ``EcrRepositoryHook.prepare`` first, once per repository. It creates
the repository with the configured settings, or, when creation is disabled or
denied, fails the copy with an error that says so and what to do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import structlog

from replicator.aws.session import AwsApi
from replicator.config import RepositorySettings
from replicator.errors import AuthenticationError, NotFoundError, RegistryError
from replicator.registry.client import RegistryClient

log = structlog.get_logger("replicator.aws")

_ALREADY_EXISTS = "RepositoryAlreadyExistsException"


def create_repository_params(
    registry_id: str, repository: str, settings: RepositorySettings
) -> dict[str, Any]:
    """Return the CreateRepository parameters for a repository with settings."""
    encryption: dict[str, str] = {"encryptionType": settings.encryption_type}
    if settings.kms_key is not None:
        encryption["kmsKey"] = settings.kms_key
    params: dict[str, Any] = {
        "registryId": registry_id,
        "repositoryName": repository,
        "imageTagMutability": settings.image_tag_mutability,
        "imageScanningConfiguration": {"scanOnPush": settings.scan_on_push},
        "encryptionConfiguration": encryption,
    }
    if settings.tags:
        params["tags"] = [
            {"Key": key, "Value": value} for key, value in sorted(settings.tags.items())
        ]

    return params


class EcrRepositoryHook:
    """Makes sure a destination ECR repository exists before anything is pushed."""

    def __init__(
        self,
        api: AwsApi,
        registry_id: str,
        settings: RepositorySettings,
        *,
        create_repositories: bool = True,
    ) -> None:
        self._api = api
        self._registry_id = registry_id
        self._settings = settings
        self._create_repositories = create_repositories

    async def prepare(self, destination: RegistryClient, repository: str) -> None:
        """Create repository unless it exists; raise if it cannot be made to."""
        if await self.exists(repository):
            return
        if not self._create_repositories:
            raise NotFoundError(
                "destination repository does not exist and ecr.create_repositories "
                "is false: create it, or set create_repositories: true",
                operation="repository_prepare",
                registry=destination.name,
                repository=repository,
            )
        await self._create(destination.name, repository)

    async def exists(self, repository: str) -> bool:
        """Say whether the registry holds repository (DescribeRepositories)."""
        try:
            await self._api.call(
                "ecr",
                "describe_repositories",
                registryId=self._registry_id,
                repositoryNames=[repository],
            )
        except NotFoundError:
            return False
        return True

    async def _create(self, destination: str, repository: str) -> None:
        params = create_repository_params(self._registry_id, repository, self._settings)
        try:
            await self._api.call("ecr", "create_repository", **params)
        except AuthenticationError as error:
            raise AuthenticationError(
                "cannot create the destination repository, CreateRepository was "
                f"denied ({error.message}): allow ecr:CreateRepository (and "
                "ecr:TagResource when tags are set), or create it beforehand",
                status=error.status,
                codes=error.codes,
                operation="create_repository",
                registry=destination,
                repository=repository,
            ) from error
        except RegistryError as error:
            # Another replica, or a person, created it first: that is the goal.
            if _ALREADY_EXISTS not in error.codes:
                raise
            return
        log.info(
            "repository_created",
            destination=destination,
            repository=repository,
            image_tag_mutability=self._settings.image_tag_mutability,
            encryption_type=self._settings.encryption_type,
            scan_on_push=self._settings.scan_on_push,
        )


async def list_repositories(api: AwsApi, registry_id: str) -> AsyncIterator[str]:
    """Yield the name of every repository of an ECR registry.

    ECR does not serve ``/v2/_catalog``; a backfill of an ECR source lists its
    repositories with DescribeRepositories instead.
    """
    async for page in api.pages("ecr", "describe_repositories", registryId=registry_id):
        for repository in page.get("repositories", []):
            yield repository["repositoryName"]
