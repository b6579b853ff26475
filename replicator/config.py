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


class Registry(_Model):
    """One registry: where it is, how to trust it, how to log in."""

    url: Annotated[StrictStr, AfterValidator(_normalise_registry_url)]
    insecure: StrictBool = False
    credentials: CredentialsConfig | None = None
    registry_id: AccountId | None = None
    region: Region | None = None

    _resolved_credentials: Credentials | None = PrivateAttr(default=None)

    @property
    def base_url(self) -> str:
        """Return ``http(s)://host[:port]``, without a trailing slash."""
        return self.url

    @property
    def host(self) -> str:
        """Return ``host[:port]`` as it appears in image references."""
        return self.url.partition("://")[2]

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
        return ecr_identity_from_host(self.host)

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


class Log(_Model):
    """How logs are written."""

    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Config(_Model):
    """The whole configuration file."""

    version: Annotated[StrictInt, AfterValidator(_check_version)]
    source: Name
    registries: dict[Name, Registry]
    rules: tuple[Rule, ...] = ()
    concurrency: Concurrency = Concurrency()
    retry: Retry = Retry()
    log: Log = Log()

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
        *_retry_problems(config),
    ]


def _registry_problems(config: Config) -> Iterator[Problem]:
    """Check each registry's URL scheme and ECR identity."""
    seen: dict[tuple[str, str], str] = {}
    for name, registry in config.registries.items():
        key_path = f"registries.{name}"
        if registry.url.startswith("http://") and not registry.insecure:
            yield Problem(
                f"{key_path}.url",
                "plain http:// needs insecure: true; use https:// otherwise",
            )
        yield from _ecr_identity_problems(registry, key_path)
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
    if model is CredentialsConfig and key in _INLINE_SECRET_KEYS:
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
    problems = _resolve_all_credentials(config, sources)
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
