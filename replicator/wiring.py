"""Assemble the engine from a configuration: clients, rules, hooks and the walk.

The one place where configuration becomes running parts, shared by every command
and the daemon, so that ECR rules, repository hooks and repository listing are
wired the same way everywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from replicator.aws.repositories import list_repositories as list_ecr_repositories
from replicator.aws.session import AwsSession
from replicator.backfill import Selection
from replicator.clients import (
    apply_rules_from_ecr,
    aws_api,
    registry_clients,
    repository_hooks,
)
from replicator.config import Config
from replicator.copier.copier import Copier, RepositoryHook
from replicator.registry import tags
from replicator.registry.client import RegistryClient
from replicator.rules import RuleSet, compile_rules


@dataclass(frozen=True, slots=True)
class Engine:
    """Everything a command needs to replicate, built from one configuration."""

    config: Config
    rules: RuleSet
    clients: dict[str, RegistryClient]
    hooks: dict[str, RepositoryHook]
    aws: AwsSession

    @property
    def source(self) -> RegistryClient:
        """Return the client of the source registry."""
        return self.clients[self.config.source]

    def copier(self, dry_run: bool = False) -> Copier:
        """Return a copier sharing blob knowledge across all its jobs."""
        return Copier(
            self.config.concurrency.blobs_per_registry,
            dry_run=dry_run,
            repository_hooks=self.hooks,
        )

    def selection(self) -> Selection:
        """Return what the rules select at the source, for backfill and verify."""
        return Selection(self.source, self.rules, self.clients, self._repositories)

    def _repositories(self) -> AsyncIterator[str]:
        source = self.config.source_registry
        identity = source.ecr_identity
        if source.ecr_settings is None or identity is None:
            return tags.list_repositories(self.source)
        # ECR serves no /v2/_catalog; DescribeRepositories lists the same names.
        api = aws_api(self.config.source, source, self.aws)
        return list_ecr_repositories(api, identity[0])


async def build_engine(config: Config, session: aiohttp.ClientSession) -> Engine:
    """Build the engine; reads the source's ECR rules when the config asks to."""
    aws = AwsSession()
    config = await apply_rules_from_ecr(config, aws)
    return Engine(
        config=config,
        rules=compile_rules(config),
        clients=registry_clients(config, session, aws),
        hooks=repository_hooks(config, aws),
        aws=aws,
    )
