"""The whole configuration document (``Config``) and its small sections:
concurrency, retry, log and server."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import AfterValidator, StrictBool, StrictInt, StrictStr, field_validator

from replicator.config.base import ConfigModel, Name, PositiveInt, PositiveSeconds
from replicator.config.registries import Registry
from replicator.config.rule_models import Destination, Rule
from replicator.config.sources import Sources

SUPPORTED_VERSION = 1


def _check_version(value: int) -> int:
    """Accept only the file format version this code reads."""
    if value != SUPPORTED_VERSION:
        raise ValueError(f"only version {SUPPORTED_VERSION} is supported")
    return value


class Concurrency(ConfigModel):
    """How much work runs at once."""

    images: PositiveInt = 16
    blobs_per_registry: PositiveInt = 8


class Retry(ConfigModel):
    """How transient failures are retried (exponential backoff with jitter)."""

    attempts: PositiveInt = 5
    initial_backoff_s: PositiveSeconds = 0.5
    max_backoff_s: PositiveSeconds = 30.0
    job_retry_delays_s: tuple[PositiveSeconds, ...] = (5.0, 30.0)
    """Pauses before a failed daemon job runs again, before its event goes back."""


class Log(ConfigModel):
    """How logs are written."""

    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


_LISTEN = re.compile(
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<port>[0-9]{1,5})"
)


def _check_listen(value: str) -> str:
    """Accept ``host:port`` or ``[v6-address]:port``; port 0 picks a free one."""
    match = _LISTEN.fullmatch(value)
    if match is None or int(match["port"]) > 65535:
        raise ValueError("must be host:port, such as 0.0.0.0:8080 or [::]:8080")
    return value


class Server(ConfigModel):
    """The daemon's HTTP listener: /healthz, /readyz, /metrics and the webhook."""

    listen: Annotated[StrictStr, AfterValidator(_check_listen)] = "0.0.0.0:8080"
    # SIGTERM: how long in-flight copies may finish before they are cancelled.
    shutdown_grace_s: PositiveSeconds = 30.0

    @property
    def host(self) -> str:
        """Return the address to bind, without IPv6 brackets."""
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        """Return the port to bind (0: any free port)."""
        return int(self.listen.rpartition(":")[2])


class Config(ConfigModel):
    """The whole configuration file."""

    version: Annotated[StrictInt, AfterValidator(_check_version)]
    source: Name
    registries: dict[Name, Registry]
    rules: tuple[Rule, ...] = ()
    concurrency: Concurrency = Concurrency()
    retry: Retry = Retry()
    log: Log = Log()
    server: Server = Server()
    sources: Sources = Sources()
    # Read rules from the source's ECR replication configuration (DescribeRegistry)
    # at start, ahead of the rules above.
    rules_from_ecr: StrictBool = False

    @field_validator("rules", mode="before")
    @classmethod
    def _accept_ecr_rules(cls, value: object) -> object:
        """Accept ECR's ``{"rules": [...]}`` document and name unnamed rules."""
        return _name_rules(_unwrap_ecr_document(value))

    @property
    def source_registry(self) -> Registry:
        """Return the registry events come from and backfill walks."""
        return self.registries[self.source]

    def destination_registry(self, destination: Destination) -> str | None:
        """Return the name of the registries entry a destination means, or None."""
        if destination.registry is not None:
            return (
                destination.registry
                if destination.registry in self.registries
                else None
            )
        # ECR names a destination by account and region; map it to our entry. The
        # entry is required, not invented: it carries the role to assume and the
        # settings of repositories created there (README, ECR section).
        names = [
            name
            for name, registry in self.registries.items()
            if registry.ecr_identity == destination.ecr_identity
        ]
        return names[0] if len(names) == 1 else None


def _unwrap_ecr_document(value: object) -> object:
    """Return the rules list of ECR's ReplicationConfiguration, pasted whole."""
    if isinstance(value, Mapping) and list(value) == ["rules"]:
        return value["rules"]
    return value


def _name_rules(value: object) -> object:
    """Give each unnamed rule the default name ``rule-<index>``."""
    if not isinstance(value, list | tuple):
        return value
    return [
        {"name": f"rule-{index}", **rule}
        if isinstance(rule, Mapping) and "name" not in rule
        else rule
        for index, rule in enumerate(value)
    ]
