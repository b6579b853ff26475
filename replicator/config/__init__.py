"""Load and validate the configuration file: one versioned YAML document.

The pydantic models describe the file and do no I/O. ``parse_config`` validates a
parsed document, cross-checks it and reads the secrets it names (environment
variables, files); ``load_config`` also reads the file. Every failure is one
``ConfigError`` naming the key path, e.g. ``rules[0].destinations[1].registry``.

Modules: ``base`` (shared types), ``rule_models``, ``credentials``, ``ecr``,
``registries``, ``sources``, ``models`` (``Config``), ``problems`` (key paths and
messages), ``checks`` (cross-checks), ``secrets`` (reading them), ``loading``.
"""

from __future__ import annotations

from replicator.config.base import (
    AccountId,
    EnvVarName,
    Name,
    NonEmptyStr,
    PositiveInt,
    PositiveSeconds,
    Region,
    RegistryUrl,
)
from replicator.config.checks import find_problems
from replicator.config.credentials import ANONYMOUS, Credentials, CredentialsConfig
from replicator.config.ecr import (
    DEFAULT_ECR_SETTINGS,
    DEFAULT_PUT_IMAGE_RATE_PER_S,
    MAX_REPOSITORY_TAGS,
    EcrEndpoints,
    EcrSettings,
    ExternalId,
    RepositorySettings,
    RoleArn,
    SessionName,
    TagKey,
    TagValue,
    ecr_identity_from_host,
    ecr_registry_url,
)
from replicator.config.loading import (
    load_config,
    parse_config,
    parse_yaml,
    read_config_text,
)
from replicator.config.models import (
    SUPPORTED_VERSION,
    Concurrency,
    Config,
    Log,
    Retry,
    Server,
)
from replicator.config.problems import (
    Problem,
    config_error,
    format_key_path,
    problems_from_validation_error,
)
from replicator.config.registries import Registry
from replicator.config.rule_models import Destination, Filter, Rule
from replicator.config.secrets import SecretSources, resolve_credentials
from replicator.config.sources import (
    MIN_WEBHOOK_TOKEN_LENGTH,
    RESERVED_PATHS,
    HttpUrl,
    Sources,
    SqsSettings,
    WebhookPath,
    WebhookSettings,
)

__all__ = [
    "ANONYMOUS",
    "DEFAULT_ECR_SETTINGS",
    "DEFAULT_PUT_IMAGE_RATE_PER_S",
    "MAX_REPOSITORY_TAGS",
    "MIN_WEBHOOK_TOKEN_LENGTH",
    "RESERVED_PATHS",
    "SUPPORTED_VERSION",
    "AccountId",
    "Concurrency",
    "Config",
    "Credentials",
    "CredentialsConfig",
    "Destination",
    "EcrEndpoints",
    "EcrSettings",
    "EnvVarName",
    "ExternalId",
    "Filter",
    "HttpUrl",
    "Log",
    "Name",
    "NonEmptyStr",
    "PositiveInt",
    "PositiveSeconds",
    "Problem",
    "Region",
    "Registry",
    "RegistryUrl",
    "RepositorySettings",
    "Retry",
    "RoleArn",
    "Rule",
    "SecretSources",
    "Server",
    "SessionName",
    "Sources",
    "SqsSettings",
    "TagKey",
    "TagValue",
    "WebhookPath",
    "WebhookSettings",
    "config_error",
    "ecr_identity_from_host",
    "ecr_registry_url",
    "find_problems",
    "format_key_path",
    "load_config",
    "parse_config",
    "parse_yaml",
    "problems_from_validation_error",
    "read_config_text",
    "resolve_credentials",
]
