"""The ``sources`` section: the webhook endpoint and the SQS queue events come from."""

from __future__ import annotations

import re
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    SecretStr,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

from replicator.config.base import (
    ConfigModel,
    EnvVarName,
    NonEmptyStr,
    Region,
    count_given,
    full_match,
)
from replicator.errors import ConfigError

# Paths the daemon serves itself; the webhook cannot take them.
RESERVED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MIN_WEBHOOK_TOKEN_LENGTH = 16
# RFC 6750 section 2.1 allows these in a bearer token; all survive YAML and headers.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")

WebhookPath = Annotated[
    StrictStr,
    full_match(
        r"(?:/[A-Za-z0-9._~-]+)+",
        "must be a URL path such as /webhook: '/'-separated segments of letters, "
        "digits, '.', '_', '~' and '-'",
    ),
]


class WebhookSettings(ConfigModel):
    """The endpoint registries POST notifications to, behind a bearer token."""

    enabled: StrictBool = True
    path: WebhookPath = "/webhook"
    token_env: EnvVarName | None = None
    token_file: NonEmptyStr | None = None

    _resolved_token: SecretStr | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_token_source(self) -> Self:
        """Require exactly one token source when the webhook is enabled."""
        given = count_given(self.token_env, self.token_file)
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


def is_strong_token(token: str) -> bool:
    """Say whether a token is long enough and fits in a bearer header."""
    return (
        len(token) >= MIN_WEBHOOK_TOKEN_LENGTH
        and _BEARER_TOKEN.fullmatch(token) is not None
    )


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


class SqsSettings(ConfigModel):
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


class Sources(ConfigModel):
    """Where push and delete events come from; each source is optional."""

    webhook: WebhookSettings | None = None
    sqs: SqsSettings | None = None
