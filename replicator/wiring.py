"""Assemble the engine from a configuration: clients, rules, hooks and the walk.

The one place where configuration becomes running parts, shared by every command
and the daemon, so that ECR rules, repository hooks and repository listing are
wired the same way everywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

from replicator.backfill import Selection
from replicator.clients import registry_clients, uses_aws
from replicator.config import Config
from replicator.copier.copier import Copier, RepositoryHook
from replicator.registry import tags
from replicator.registry.client import RegistryClient
from replicator.rules import RuleSet, compile_rules

if TYPE_CHECKING:
    from replicator.aws.session import AwsSession


@dataclass(frozen=True, slots=True)
class Engine:
    """Everything a command needs to replicate, built from one configuration."""

    config: Config
    rules: RuleSet
    clients: dict[str, RegistryClient]
    hooks: dict[str, RepositoryHook]
    aws: AwsSession | None

    @property
    def source(self) -> RegistryClient:
        """Return the client of the source registry."""
        return self.clients[self.config.source]

    def copier(self, dry_run: bool = False, remember_content: bool = False) -> Copier:
        """Return a copier sharing blob knowledge across all its jobs.

        ``remember_content`` suits one-shot runs; see ``Copier.remember_content``.
        """
        return Copier(
            self.config.concurrency.blobs_per_registry,
            dry_run=dry_run,
            repository_hooks=self.hooks,
            remember_content=remember_content,
        )

    def selection(self) -> Selection:
        """Return what the rules select at the source, for backfill and verify."""
        return Selection(self.source, self.rules, self.clients, self._repositories)

    def _repositories(self) -> AsyncIterator[str]:
        source = self.config.source_registry
        if self.aws is None or source.ecr_settings is None:
            return tags.list_repositories(self.source)
        from replicator.aws.wiring import list_source_repositories

        return list_source_repositories(self.config, self.aws)


async def build_engine(config: Config, session: aiohttp.ClientSession) -> Engine:
    """Build the engine; reads the source's ECR rules when the config asks to."""
    if not uses_aws(config):
        return Engine(
            config, compile_rules(config), registry_clients(config, session), {}, None
        )
    # botocore takes half a second to import: only configurations using ECR pay.
    from replicator.aws import wiring as ecr

    aws = ecr.new_session()
    config = await ecr.apply_rules_from_ecr(config, aws)
    return Engine(
        config=config,
        rules=compile_rules(config),
        clients=registry_clients(config, session, aws),
        hooks=ecr.repository_hooks(config, aws),
        aws=aws,
    )
