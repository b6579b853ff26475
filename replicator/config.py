"""Load and validate the configuration file: one versioned YAML document.

The pydantic models describe the file and do no I/O. ``parse_config`` validates a
parsed document, cross-checks it and reads the secrets it names (environment
variables, files); ``load_config`` also reads the file. Every failure is one
``ConfigError`` naming the key path, e.g. ``rules[0].destinations[1].registry``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Self, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from replicator.errors import ConfigError
from replicator.rules import FilterType, compile_filter, repository_prefix_problem

SUPPORTED_VERSION = 1

# ECR registry hosts: <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]
_ECR_HOST = re.compile(
    r"(?P<registry_id>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)"
    r"\.amazonaws\.com(?:\.cn)?"
)


def _full_match(pattern: str, message: str) -> AfterValidator:
    """Return a validator accepting strings that pattern matches whole."""
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if regex.fullmatch(value) is None:
            raise ValueError(message)
        return value

    return AfterValidator(check)


def _reject_unquoted_number(value: object) -> object:
    """Refuse a number where YAML would have needed quotes around digits."""
    if isinstance(value, int):
        raise ValueError(
            'quote the account ID, e.g. "012345678901": YAML reads unquoted digits '
            "as a number and drops leading zeros"
        )
    return value


def _check_version(value: int) -> int:
    """Accept only the file format version this code reads."""
    if value != SUPPORTED_VERSION:
        raise ValueError(f"only version {SUPPORTED_VERSION} is supported")
    return value


def _normalise_registry_url(value: str) -> str:
    """Return the URL as scheme://host[:port], or raise saying what is wrong."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must start with https:// (or http:// with insecure: true)")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold credentials; use the credentials key")
    if not parts.hostname:
        raise ValueError("must name a host: scheme://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be scheme://host[:port], without path or query")
    try:
        _ = parts.port  # urlsplit checks the port only when it is asked for
    except ValueError:
        raise ValueError("has an invalid port; expected 1-65535") from None

    return f"{parts.scheme}://{parts.netloc.lower()}"


# A registry or rule name is also a metrics label value: keep it short and plain.
Name = Annotated[
    StrictStr,
    _full_match(
        r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}",
        "names hold letters, digits, '.', '_' and '-', start with a letter or "
        "digit, and have at most 63 characters",
    ),
]
# Checking the shape also keeps a secret pasted here by mistake out of errors.
EnvVarName = Annotated[
    StrictStr,
    _full_match(
        r"[A-Za-z_][A-Za-z0-9_]*",
        "must be the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*)",
    ),
]
AccountId = Annotated[
    StrictStr,
    BeforeValidator(_reject_unquoted_number),
    _full_match(r"\d{12}", "must be a 12-digit AWS account ID"),
]
Region = Annotated[
    StrictStr,
    _full_match(
        r"[a-z]{2}(?:-[a-z]+)+-\d+", "must be an AWS region name such as us-west-2"
    ),
]
NonEmptyStr = Annotated[StrictStr, Field(min_length=1)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]
PositiveSeconds = Annotated[float, Strict(), Field(gt=0)]


class _Model(BaseModel):
    """A frozen model that rejects unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _EcrShapedModel(_Model):
    """A model whose keys are camelCase, as ECR's replication configuration is."""

    model_config = ConfigDict(alias_generator=to_camel)


class Filter(_EcrShapedModel):
    """A repository or tag filter in ECR's shape (``filter``, ``filterType``)."""

    filter: NonEmptyStr
    filter_type: FilterType


class Destination(_EcrShapedModel):
    """Where a rule copies to: a ``registries`` entry, or ECR's region+registryId."""

    registry: Name | None = None
    region: Region | None = None
    registry_id: AccountId | None = None
    repository_prefix: StrictStr = ""

    @model_validator(mode="after")
    def _check_one_registry(self) -> Self:
        """Require either registry or the pair region and registryId."""
        ecr_keys = (self.region, self.registry_id)
        if self.registry is not None and ecr_keys != (None, None):
            raise ValueError(
                "give either registry, or region and registryId (ECR's form), not both"
            )
        if self.registry is None and None in ecr_keys:
            raise ValueError(
                "name the destination with registry (a key of registries), or with "
                "both region and registryId as ECR does"
            )
        return self

    @property
    def ecr_identity(self) -> tuple[str, str] | None:
        """Return (registry_id, region) when written ECR's way, else None."""
        if self.registry_id is None or self.region is None:
            return None
        return (self.registry_id, self.region)


class Rule(_EcrShapedModel):
    """One replication rule: ECR's shape plus our extensions."""

    name: Name
    destinations: tuple[Destination, ...]
    repository_filters: tuple[Filter, ...] = ()
    repository_exclusions: tuple[Filter, ...] = ()
    tag_filters: tuple[Filter, ...] = ()
    tag_exclusions: tuple[Filter, ...] = ()
    replicate_deletes: StrictBool = False


class CredentialsConfig(_Model):
    """Where a registry's credentials are read from; never the secrets themselves."""

    username: NonEmptyStr | None = None
    username_env: EnvVarName | None = None
    password_env: EnvVarName | None = None
    password_file: NonEmptyStr | None = None
    token_env: EnvVarName | None = None
    token_file: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _check_sources(self) -> Self:
        """Require a username and password, or a token; one source of each."""
        problem = _credential_sources_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self


def _credential_sources_problem(spec: CredentialsConfig) -> str | None:
    """Return what is wrong with the combination of credential keys, if anything."""
    username = _count_given(spec.username, spec.username_env)
    password = _count_given(spec.password_env, spec.password_file)
    token = _count_given(spec.token_env, spec.token_file)
    if username > 1 or password > 1 or token > 1:
        return "give one source of each value: username or username_env, " + (
            "password_env or password_file, token_env or token_file"
        )
    if token and (username or password):
        return "give a token (token_env or token_file) or a username and password"
    if token or (username and password):
        return None
    if username:
        return "a username needs a password: set password_env or password_file"
    if password:
        return "a password needs a username: set username or username_env"

    return (
        "give username (or username_env) with password_env or password_file, or "
        "token_env or token_file; omit credentials for anonymous access"
    )


def _count_given(*values: str | None) -> int:
    """Count the values that are set."""
    return sum(value is not None for value in values)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Credentials read at load time; the secrets never show in repr or str."""

    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None

    @property
    def is_anonymous(self) -> bool:
        """Say whether there is nothing to authenticate with."""
        return self.username is None and self.token is None


ANONYMOUS = Credentials()


RegistryUrl = Annotated[StrictStr, AfterValidator(_normalise_registry_url)]
# IAM and STS formats: see the AssumeRole API reference (RoleArn, RoleSessionName,
# ExternalId) and IAM's limits on role paths and names.
RoleArn = Annotated[
    StrictStr,
    _full_match(
        r"arn:aws(?:-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]{1,512}",
        "must be an IAM role ARN such as arn:aws:iam::111122223333:role/replicator",
    ),
]
SessionName = Annotated[
    StrictStr,
    _full_match(
        r"[\w+=,.@-]{2,64}",
        "must be 2 to 64 characters of letters, digits and + = , . @ _ -",
    ),
]
ExternalId = Annotated[
    StrictStr,
    _full_match(
        r"[\w+=,.@:/-]{2,1224}",
        "must be 2 to 1224 characters of letters, digits and + = , . @ : / _ -",
    ),
]
TagKey = Annotated[StrictStr, Field(min_length=1, max_length=128)]
TagValue = Annotated[StrictStr, Field(max_length=256)]
# AWS allows 50 tags per resource.
MAX_REPOSITORY_TAGS = 50
# ECR's default quota for PutImage is 10 requests per second per registry.
DEFAULT_PUT_IMAGE_RATE_PER_S = 10.0


class EcrEndpoints(_Model):
    """Overrides of AWS API endpoints (VPC endpoints, local tests); AWS's by default."""

    ecr: RegistryUrl | None = None
    sts: RegistryUrl | None = None


class RepositorySettings(_Model):
    """How a destination repository is created (ECR CreateRepository)."""

    image_tag_mutability: Literal["MUTABLE", "IMMUTABLE"] = "MUTABLE"
    encryption_type: Literal["AES256", "KMS", "KMS_DSSE"] = "AES256"
    kms_key: NonEmptyStr | None = None
    scan_on_push: StrictBool = False
    tags: dict[TagKey, TagValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_encryption(self) -> Self:
        """Allow a KMS key only with KMS encryption, and at most 50 tags."""
        if self.kms_key is not None and self.encryption_type == "AES256":
            raise ValueError(
                "kms_key needs encryption_type: KMS (or KMS_DSSE); AES256 uses "
                "keys that Amazon ECR manages"
            )
        if len(self.tags) > MAX_REPOSITORY_TAGS:
            raise ValueError(f"tags: AWS allows at most {MAX_REPOSITORY_TAGS} tags")
        return self


class EcrSettings(_Model):
    """How replicator reaches an Amazon ECR registry: AWS credentials and endpoints.

    AWS credentials come from the standard chain (environment, profile, web
    identity for Kubernetes service accounts, instance role); ``assume_role_arn``
    then switches to a role, typically in the registry's own account.
    """

    endpoint_url: EcrEndpoints = EcrEndpoints()
    data_plane_url: RegistryUrl | None = None
    assume_role_arn: RoleArn | None = None
    external_id: ExternalId | None = None
    session_name: SessionName = "replicator"
    create_repositories: StrictBool = True
    repository_settings: RepositorySettings = RepositorySettings()
    put_image_rate_per_s: Annotated[float, Strict(), Field(gt=0, le=10000)] = (
        DEFAULT_PUT_IMAGE_RATE_PER_S
    )

    @model_validator(mode="after")
    def _check_role(self) -> Self:
        """Allow an external ID or a session name only with a role to assume."""
        if self.external_id is not None and self.assume_role_arn is None:
            raise ValueError("external_id needs assume_role_arn")
        return self


DEFAULT_ECR_SETTINGS = EcrSettings()


def ecr_registry_url(registry_id: str, region: str) -> str:
    """Return the URL AWS gives a private registry: ``https://<id>.dkr.ecr...``."""
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{registry_id}.dkr.ecr.{region}.{domain}"


class Registry(_Model):
    """One registry: where it is, how to trust it, how to log in."""

    url: RegistryUrl | None = None
    insecure: StrictBool = False
    credentials: CredentialsConfig | None = None
    registry_id: AccountId | None = None
    region: Region | None = None
    ecr: EcrSettings | None = None

    _resolved_credentials: Credentials | None = PrivateAttr(default=None)

    @property
    def registry_url(self) -> str:
        """Return the registry's own URL: url, or for ECR the one AWS derives."""
        if self.url is not None:
            return self.url
        if self.registry_id is None or self.region is None:
            raise ConfigError(
                "give url, or registry_id and region for Amazon ECR", key_path="url"
            )
        return ecr_registry_url(self.registry_id, self.region)

    @property
    def base_url(self) -> str:
        """Return where requests go, ``http(s)://host[:port]``, no trailing slash.

        That is the registry URL, unless an ECR ``data_plane_url`` overrides it.
        """
        if self.ecr is not None and self.ecr.data_plane_url is not None:
            return self.ecr.data_plane_url
        return self.registry_url

    @property
    def host(self) -> str:
        """Return ``host[:port]`` of base_url, as it appears in image references."""
        return self.base_url.partition("://")[2]

    @property
    def ecr_settings(self) -> EcrSettings | None:
        """Return how to reach this registry as Amazon ECR, or None if it is not.

        An ``ecr`` block says so; without one, a registry given by ECR identity
        (an ECR host name, or registry_id and region without url) and without
        credentials is ECR with default settings.
        """
        if self.ecr is not None:
            return self.ecr
        if self.credentials is not None or self.ecr_identity is None:
            return None
        if self.url is None or ecr_identity_from_host(_host_of(self.url)):
            return DEFAULT_ECR_SETTINGS
        return None

    @property
    def verify_tls(self) -> bool:
        """Say whether TLS certificates must be verified (not when insecure)."""
        return not self.insecure

    @property
    def ecr_identity(self) -> tuple[str, str] | None:
        """Return (registry_id, region) if this is an ECR registry, else None.

        Explicit ``registry_id`` and ``region`` win; otherwise an ECR host name
        (``<account>.dkr.ecr.<region>.amazonaws.com``) says it.
        """
        if self.registry_id is not None and self.region is not None:
            return (self.registry_id, self.region)
        if self.url is None:
            return None
        return ecr_identity_from_host(_host_of(self.url))

    @property
    def resolved_credentials(self) -> Credentials:
        """Return the credentials read when the configuration was loaded."""
        if self.credentials is None:
            return ANONYMOUS
        if self._resolved_credentials is None:
            raise ConfigError(
                "credentials were not read: build the Config with parse_config",
                key_path="credentials",
            )
        return self._resolved_credentials


def _host_of(url: str) -> str:
    """Return ``host[:port]`` of a normalised ``scheme://host[:port]`` URL."""
    return url.partition("://")[2]


def ecr_identity_from_host(host: str) -> tuple[str, str] | None:
    """Return (registry_id, region) from an ECR registry host name, else None."""
    match = _ECR_HOST.fullmatch(host)
    if match is None:
        return None
    return (match["registry_id"], match["region"])


class Concurrency(_Model):
    """How much work runs at once."""

    images: PositiveInt = 4
    blobs_per_registry: PositiveInt = 8


class Retry(_Model):
    """How transient failures are retried (exponential backoff with jitter)."""

    attempts: PositiveInt = 5
    initial_backoff_s: PositiveSeconds = 0.5
    max_backoff_s: PositiveSeconds = 30.0
    job_retry_delays_s: tuple[PositiveSeconds, ...] = (5.0, 30.0)
    """Pauses before a failed daemon job runs again, before its event goes back."""


class Log(_Model):
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


class Server(_Model):
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


# Paths the daemon serves itself; the webhook cannot take them.
RESERVED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MIN_WEBHOOK_TOKEN_LENGTH = 16
# RFC 6750 section 2.1 allows these in a bearer token; all survive YAML and headers.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")

WebhookPath = Annotated[
    StrictStr,
    _full_match(
        r"(?:/[A-Za-z0-9._~-]+)+",
        "must be a URL path such as /webhook: '/'-separated segments of letters, "
        "digits, '.', '_', '~' and '-'",
    ),
]


class WebhookSettings(_Model):
    """The endpoint registries POST notifications to, behind a bearer token."""

    enabled: StrictBool = True
    path: WebhookPath = "/webhook"
    token_env: EnvVarName | None = None
    token_file: NonEmptyStr | None = None

    _resolved_token: SecretStr | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_token_source(self) -> Self:
        """Require exactly one token source when the webhook is enabled."""
        given = _count_given(self.token_env, self.token_file)
        if given > 1:
            raise ValueError("give one of token_env or token_file, not both")
        if given == 0 and self.enabled:
            raise ValueError("the webhook needs a token: set token_env or token_file")
        return self

    @property
    def token(self) -> SecretStr:
        """Return the token read when the configuration was loaded."""
        if self._resolved_token is None:
            raise ConfigError(
                "the webhook token was not read: build the Config with parse_config",
                key_path="sources.webhook",
            )
        return self._resolved_token

    def token_value(self) -> str:
        """Return the token itself, for the webhook route; never log it."""
        return self.token.get_secret_value()


# SQS endpoints: sqs[-fips].<region>.amazonaws.com[.cn]
_SQS_HOST = re.compile(
    r"sqs(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
)


def _check_http_url(value: str) -> str:
    """Accept an http:// or https:// URL with a host and without credentials."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold credentials")
    try:
        _ = parts.port  # urlsplit checks the port only when it is asked for
    except ValueError:
        raise ValueError("has an invalid port; expected 1-65535") from None
    return value


def _check_queue_url(value: str) -> str:
    """Accept a queue URL as SQS gives it: ``https://host/<account>/<queue>``."""
    _check_http_url(value)
    if re.fullmatch(r"/[0-9]{12}/[A-Za-z0-9_-]{1,80}(?:\.fifo)?", urlsplit(value).path):
        return value
    raise ValueError(
        "must be a queue URL such as "
        "https://sqs.us-east-1.amazonaws.com/111122223333/replicator-events"
    )


HttpUrl = Annotated[StrictStr, AfterValidator(_check_http_url)]


class SqsSettings(_Model):
    """The SQS queue EventBridge delivers ECR ``ECR Image Action`` events to."""

    queue_url: Annotated[StrictStr, AfterValidator(_check_queue_url)]
    region: Region | None = None
    endpoint_url: HttpUrl | None = None
    # SQS's own bounds (ReceiveMessage, ChangeMessageVisibility).
    wait_time_s: Annotated[StrictInt, Field(ge=1, le=20)] = 20
    visibility_timeout_s: Annotated[StrictInt, Field(ge=1, le=43200)] = 60
    max_messages: Annotated[StrictInt, Field(ge=1, le=10)] = 10
    retry_delay_s: Annotated[StrictInt, Field(ge=0, le=43200)] = 30

    @property
    def region_name(self) -> str | None:
        """Return region, or the one an AWS queue URL names."""
        if self.region is not None:
            return self.region
        match = _SQS_HOST.fullmatch(urlsplit(self.queue_url).hostname or "")
        return None if match is None else match["region"]


class Sources(_Model):
    """Where push and delete events come from; each source is optional."""

    webhook: WebhookSettings | None = None
    sqs: SqsSettings | None = None


class Config(_Model):
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
        # ECR names a destination by account and region; map it to our entry.
        # TODO(ECR support lands): create an ECR entry when none is configured.
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


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a configuration, and where."""

    key_path: str
    message: str


def find_problems(config: Config) -> list[Problem]:
    """Return what is wrong across keys of a configuration of valid shape."""
    return [
        *_registry_problems(config),
        *_source_problems(config),
        *_rule_problems(config),
        *_rules_from_ecr_problems(config),
        *_retry_problems(config),
        *_webhook_problems(config),
        *_sqs_problems(config),
    ]


def _registry_problems(config: Config) -> Iterator[Problem]:
    """Check each registry's URL scheme and ECR identity."""
    seen: dict[tuple[str, str], str] = {}
    for name, registry in config.registries.items():
        key_path = f"registries.{name}"
        if registry.url is None and None in (registry.registry_id, registry.region):
            yield Problem(
                f"{key_path}.url",
                "required key is missing (an Amazon ECR registry may give "
                "registry_id and region instead)",
            )
            continue
        if registry.url is not None and _is_plain_http(registry.url, registry):
            yield Problem(
                f"{key_path}.url",
                "plain http:// needs insecure: true; use https:// otherwise",
            )
        yield from _ecr_identity_problems(registry, key_path)
        yield from _ecr_settings_problems(registry, f"{key_path}.ecr")
        identity = registry.ecr_identity
        if identity is not None and identity in seen:
            yield Problem(
                f"{key_path}.registry_id",
                f"registry {seen[identity]} has the same registry_id and region",
            )
        if identity is not None:
            seen.setdefault(identity, name)


def _ecr_identity_problems(registry: Registry, key_path: str) -> Iterator[Problem]:
    """Check that registry_id and region come together."""
    if (registry.registry_id is None) != (registry.region is None):
        missing = "region" if registry.region is None else "registry_id"
        yield Problem(
            f"{key_path}.{missing}", "registry_id and region go together; set both"
        )


def _is_plain_http(url: str, registry: Registry) -> bool:
    """Say whether url is plain http:// on a registry not marked insecure."""
    return url.startswith("http://") and not registry.insecure


def _ecr_settings_problems(registry: Registry, key_path: str) -> Iterator[Problem]:
    """Check that an ecr block names an ECR registry, and its URLs' schemes."""
    settings = registry.ecr
    if settings is None:
        return
    if registry.ecr_identity is None:
        yield Problem(
            key_path,
            "an ECR registry needs registry_id and region, or an ECR url such as "
            "https://111122223333.dkr.ecr.us-west-2.amazonaws.com",
        )
    if registry.credentials is not None:
        yield Problem(
            key_path.removesuffix(".ecr") + ".credentials",
            "ECR registries log in with GetAuthorizationToken; remove credentials "
            "or the ecr block",
        )
    urls = {
        "data_plane_url": settings.data_plane_url,
        "endpoint_url.ecr": settings.endpoint_url.ecr,
        "endpoint_url.sts": settings.endpoint_url.sts,
    }
    for key, url in urls.items():
        if url is not None and _is_plain_http(url, registry):
            yield Problem(
                f"{key_path}.{key}",
                "plain http:// needs insecure: true on the registry",
            )


def _rules_from_ecr_problems(config: Config) -> Iterator[Problem]:
    """Check that rules_from_ecr reads from an ECR source."""
    source = config.registries.get(config.source)
    if config.rules_from_ecr and source is not None and not source.ecr_settings:
        yield Problem(
            "rules_from_ecr",
            "needs an Amazon ECR source registry (an ecr block, or an ECR url)",
        )


def _source_problems(config: Config) -> Iterator[Problem]:
    """Check that source names a registry."""
    if config.source not in config.registries:
        yield Problem("source", _unknown_registry_message(config))


def _unknown_registry_message(config: Config) -> str:
    """Say that a registry name is unknown and list the known ones."""
    known = ", ".join(sorted(config.registries)) or "(none)"
    return f"names no entry of registries; known: {known}"


def _rule_problems(config: Config) -> Iterator[Problem]:
    """Check rule names, destinations and filters."""
    seen_names: set[str] = set()
    for index, rule in enumerate(config.rules):
        key_path = f"rules[{index}]"
        if rule.name in seen_names:
            yield Problem(f"{key_path}.name", "another rule has this name")
        seen_names.add(rule.name)
        if not rule.destinations:
            # Checked here, not by pydantic, which also reports a list as too
            # short when one of its entries is invalid.
            yield Problem(f"{key_path}.destinations", "needs at least one destination")
        for position, destination in enumerate(rule.destinations):
            yield from _destination_problems(
                config, destination, f"{key_path}.destinations[{position}]"
            )
        yield from _filter_problems(rule, key_path)


def _destination_problems(
    config: Config, destination: Destination, key_path: str
) -> Iterator[Problem]:
    """Check that a destination names a registry other than plain self-copy."""
    registry_key = f"{key_path}.registry" if destination.registry else key_path
    resolved = config.destination_registry(destination)
    prefix_problem = repository_prefix_problem(destination.repository_prefix)
    if prefix_problem is not None:
        yield Problem(f"{key_path}.repositoryPrefix", prefix_problem)
    if resolved is None and destination.registry is not None:
        yield Problem(registry_key, _unknown_registry_message(config))
    if resolved is None and destination.registry is None:
        yield Problem(f"{key_path}.registryId", _unknown_ecr_message(destination))
    if resolved == config.source and destination.repository_prefix == "":
        yield Problem(
            registry_key,
            "copies the source registry onto itself; set a repositoryPrefix or "
            "choose another registry",
        )


def _unknown_ecr_message(destination: Destination) -> str:
    """Say which registries entry an ECR-style destination needs."""
    return (
        "ECR destinations need a registries entry with registry_id: "
        f'"{destination.registry_id}" and region: {destination.region} '
        "(or an ECR url of that account and region)"
    )


_FILTER_FIELDS = (
    "repository_filters",
    "repository_exclusions",
    "tag_filters",
    "tag_exclusions",
)


def _filter_problems(rule: Rule, key_path: str) -> Iterator[Problem]:
    """Check that every GLOB and REGEX filter compiles."""
    for field in _FILTER_FIELDS:
        for index, item in enumerate(getattr(rule, field)):
            filter_key = f"{key_path}.{to_camel(field)}[{index}].filter"
            try:
                compile_filter(item.filter_type, item.filter, filter_key)
            except ConfigError as error:
                yield Problem(error.key_path, error.message)


def _retry_problems(config: Config) -> Iterator[Problem]:
    """Check that the backoff bounds are ordered."""
    if config.retry.max_backoff_s < config.retry.initial_backoff_s:
        yield Problem("retry.max_backoff_s", "must be at least retry.initial_backoff_s")


def _webhook_problems(config: Config) -> Iterator[Problem]:
    """Check that the webhook path is free."""
    webhook = config.sources.webhook
    if webhook is not None and webhook.path in RESERVED_PATHS:
        yield Problem(
            "sources.webhook.path",
            "is taken by the daemon's /healthz, /readyz or /metrics",
        )


def _sqs_problems(config: Config) -> Iterator[Problem]:
    """Check that the queue's region is known and its URL uses TLS."""
    sqs = config.sources.sqs
    if sqs is None:
        return
    if sqs.region_name is None:
        yield Problem("sources.sqs.region", "cannot be read from queue_url; set region")
    if sqs.queue_url.startswith("http://") and sqs.endpoint_url is None:
        yield Problem(
            "sources.sqs.queue_url",
            "must be https://; plain http:// only with endpoint_url (local tests)",
        )


def problems_from_validation_error(error: ValidationError) -> list[Problem]:
    """Translate pydantic's errors into key paths and plain messages."""
    return [_problem_from(detail) for detail in error.errors(include_url=False)]


def _problem_from(detail: ErrorDetails) -> Problem:
    """Translate one pydantic error."""
    location = [part for part in detail["loc"] if part != "[key]"]
    return Problem(format_key_path(location), _explain(detail, location))


def format_key_path(location: Sequence[str | int]) -> str:
    """Write a location as ``rules[0].destinations[1].registry``."""
    key_path = ""
    for part in location:
        if isinstance(part, int):
            key_path += f"[{part}]"
        else:
            key_path += f".{part}" if key_path else part
    return key_path


_MESSAGES = {
    "missing": "required key is missing",
    "model_type": "must be a mapping of keys",
    "dict_type": "must be a mapping of names",
    "tuple_type": "must be a list",
    "string_too_short": "must not be empty",
}

_INLINE_SECRET_KEYS = ("password", "token")


def _explain(detail: ErrorDetails, location: Sequence[str | int]) -> str:
    """Say what is wrong and what is allowed, without echoing the value."""
    kind = detail["type"]
    if kind == "extra_forbidden":
        return _unknown_key_message(location)
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    return detail["msg"].removeprefix("Value error, ")


def _unknown_key_message(location: Sequence[str | int]) -> str:
    """Say that a key is unknown, and which keys the mapping allows."""
    key = str(location[-1])
    model = _model_at(location[:-1])
    if model in (CredentialsConfig, WebhookSettings) and key in _INLINE_SECRET_KEYS:
        return (
            f"inline secrets are not allowed: use {key}_env (an environment "
            f"variable) or {key}_file (a file path)"
        )
    if model is None:
        return f"unknown key {key!r}"
    allowed = ", ".join(
        field.alias or name for name, field in model.model_fields.items()
    )
    return f"unknown key {key!r}; allowed keys: {allowed}"


def _model_at(location: Sequence[str | int]) -> type[BaseModel] | None:
    """Return the model that validates the mapping at location, if any."""
    annotation: object = Config
    for part in location:
        model = _as_model(annotation)
        if model is None:
            annotation = _element_type(annotation)
            continue
        fields = {
            field.alias or name: field for name, field in model.model_fields.items()
        }
        if part not in fields:
            return None
        annotation = fields[str(part)].annotation

    return _as_model(annotation)


def _as_model(annotation: object) -> type[BaseModel] | None:
    """Return the model class in an annotation such as ``Model | None``."""
    candidates = get_args(annotation) if get_origin(annotation) is UnionType else ()
    for candidate in (annotation, *candidates):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _element_type(annotation: object) -> object:
    """Return the element type of ``tuple[X, ...]`` or the value type of a dict."""
    arguments = get_args(annotation)
    if not arguments:
        return None
    return arguments[-1] if get_origin(annotation) is dict else arguments[0]


def config_error(problems: Sequence[Problem], origin: str) -> ConfigError:
    """Join problems into one ConfigError keyed by the first problem's path."""
    first = problems[0]
    if len(problems) == 1:
        return ConfigError(first.message, key_path=first.key_path, origin=origin)
    lines = "\n".join(
        f"  {problem.key_path}: {problem.message}" for problem in problems
    )
    return ConfigError(
        f"{len(problems)} problems:\n{lines}", key_path=first.key_path, origin=origin
    )


@dataclass(frozen=True, slots=True)
class SecretSources:
    """Where the secrets a configuration names are read: environment and files."""

    environ: Mapping[str, str]
    base_dir: Path

    def read_env(self, name: str, key_path: str) -> str:
        """Return a non-empty environment variable, or raise naming it."""
        value = self.environ.get(name, "")
        if not value:
            raise ConfigError(
                f"environment variable {name} is not set or empty", key_path=key_path
            )
        return value

    def read_file(self, file_name: str, key_path: str) -> str:
        """Return a secret file's text without its final newline, or raise."""
        path = self.base_dir / Path(file_name).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConfigError(
                f"cannot read secret file {path}: {reason}", key_path=key_path
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(
                f"secret file {path} is not UTF-8 text", key_path=key_path
            ) from None
        # Files written by `echo` or mounted from Kubernetes secrets often end in
        # a newline that is not part of the secret.
        value = text.rstrip("\r\n")
        if not value:
            raise ConfigError(f"secret file {path} is empty", key_path=key_path)

        return value


def resolve_credentials(
    spec: CredentialsConfig, key_path: str, sources: SecretSources
) -> Credentials:
    """Read the credentials spec names; raise ConfigError at the failing key."""
    username = spec.username or _read_one(
        sources, key_path, "username", env=spec.username_env, file=None
    )
    password = _read_one(
        sources, key_path, "password", env=spec.password_env, file=spec.password_file
    )
    token = _read_one(
        sources, key_path, "token", env=spec.token_env, file=spec.token_file
    )

    return Credentials(
        username=username,
        password=None if password is None else SecretStr(password),
        token=None if token is None else SecretStr(token),
    )


def _read_one(
    sources: SecretSources,
    key_path: str,
    key: str,
    *,
    env: str | None,
    file: str | None,
) -> str | None:
    """Read a value from its ``<key>_env`` or ``<key>_file`` source, if any."""
    if env is not None:
        return sources.read_env(env, f"{key_path}.{key}_env")
    if file is not None:
        return sources.read_file(file, f"{key_path}.{key}_file")
    return None


def _resolve_all_credentials(config: Config, sources: SecretSources) -> list[Problem]:
    """Read every registry's credentials into it; return what failed."""
    problems: list[Problem] = []
    for name, registry in config.registries.items():
        if registry.credentials is None:
            continue
        key_path = f"registries.{name}.credentials"
        try:
            credentials = resolve_credentials(registry.credentials, key_path, sources)
        except ConfigError as error:
            problems.append(Problem(error.key_path, error.message))
            continue
        # Set once, before the Config escapes parse_config; it is frozen after.
        registry._resolved_credentials = credentials

    return problems


def _resolve_webhook_token(config: Config, sources: SecretSources) -> list[Problem]:
    """Read the webhook's token into it; return what failed."""
    webhook = config.sources.webhook
    if webhook is None or not webhook.enabled:
        return []
    key_path = "sources.webhook"
    try:
        token = _read_one(
            sources, key_path, "token", env=webhook.token_env, file=webhook.token_file
        )
    except ConfigError as error:
        return [Problem(error.key_path, error.message)]
    source_key = f"{key_path}.token_{'env' if webhook.token_env else 'file'}"
    if token is None or not _is_strong_token(token):
        return [
            Problem(
                source_key,
                f"the token must be at least {MIN_WEBHOOK_TOKEN_LENGTH} characters "
                "of A-Z a-z 0-9 . _ ~ + / - (a bearer token, RFC 6750)",
            )
        ]
    # Set once, before the Config escapes parse_config; it is frozen after.
    webhook._resolved_token = SecretStr(token)

    return []


def _is_strong_token(token: str) -> bool:
    """Say whether a token is long enough and fits in a bearer header."""
    return (
        len(token) >= MIN_WEBHOOK_TOKEN_LENGTH
        and _BEARER_TOKEN.fullmatch(token) is not None
    )


def parse_config(
    data: object,
    origin: str,
    *,
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Config:
    """Validate a parsed configuration document and read the secrets it names.

    Secrets come from ``environ`` (default ``os.environ``) and from files relative
    to ``base_dir`` (default the working directory). ``origin`` names the document
    in errors.
    """
    config = _validate(data, origin)
    sources = SecretSources(
        environ=os.environ if environ is None else environ,
        base_dir=Path.cwd() if base_dir is None else base_dir,
    )
    problems = [
        *_resolve_all_credentials(config, sources),
        *_resolve_webhook_token(config, sources),
    ]
    if problems:
        raise config_error(problems, origin)

    return config


def _validate(data: object, origin: str) -> Config:
    """Check the document's shape, then its cross-references."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"must be a mapping starting with version: {SUPPORTED_VERSION}",
            origin=origin,
        )
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        # `from None`: pydantic's own text echoes input values, secrets included.
        raise config_error(problems_from_validation_error(exc), origin) from None
    problems = find_problems(config)
    if problems:
        raise config_error(problems, origin)

    return config


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Config:
    """Read, validate and resolve the configuration file at path.

    Secret files named by relative paths are read relative to the file's directory.
    """
    config_path = Path(path)
    origin = str(config_path)
    data = parse_yaml(read_config_text(config_path), origin)

    return parse_config(data, origin, environ=environ, base_dir=config_path.parent)


def read_config_text(path: Path) -> str:
    """Return the text of the configuration file, or raise ConfigError."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"cannot read the configuration file: {reason}", origin=str(path)
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            "the configuration file is not UTF-8 text", origin=str(path)
        ) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping.

    Plain safe_load keeps the last of duplicate keys, which silently drops, say,
    one of two registries entries of the same name.
    """

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Hashable, Any]:
        """Build a mapping, raising at the line of a repeated key."""
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the base class reports unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)

        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, origin: str) -> object:
    """Parse YAML text safely; raise ConfigError naming the line of a syntax error."""
    try:
        # A SafeLoader subclass: safe_load's constructors plus the duplicate check.
        data: object = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = (
            ""
            if mark is None
            else f" at line {mark.line + 1}, column {mark.column + 1}"
        )
        raise ConfigError(
            f"invalid YAML{where}: {exc.problem}", origin=origin
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", origin=origin) from None
    if data is None:
        raise ConfigError(
            f"the file is empty; expected a mapping starting with version: "
            f"{SUPPORTED_VERSION}",
            origin=origin,
        )

    return data
