"""Building blocks shared by the configuration models: constrained scalar types,
the frozen base models, and the validators behind them."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictInt,
    StrictStr,
)
from pydantic.alias_generators import to_camel


def full_match(pattern: str, message: str) -> AfterValidator:
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
    full_match(
        r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}",
        "names hold letters, digits, '.', '_' and '-', start with a letter or "
        "digit, and have at most 63 characters",
    ),
]
# Checking the shape also keeps a secret pasted here by mistake out of errors.
EnvVarName = Annotated[
    StrictStr,
    full_match(
        r"[A-Za-z_][A-Za-z0-9_]*",
        "must be the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*)",
    ),
]
AccountId = Annotated[
    StrictStr,
    BeforeValidator(_reject_unquoted_number),
    full_match(r"\d{12}", "must be a 12-digit AWS account ID"),
]
Region = Annotated[
    StrictStr,
    full_match(
        r"[a-z]{2}(?:-[a-z]+)+-\d+", "must be an AWS region name such as us-west-2"
    ),
]
NonEmptyStr = Annotated[StrictStr, Field(min_length=1)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]
PositiveSeconds = Annotated[float, Strict(), Field(gt=0)]

RegistryUrl = Annotated[StrictStr, AfterValidator(_normalise_registry_url)]


class ConfigModel(BaseModel):
    """A frozen model that rejects unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EcrShapedModel(ConfigModel):
    """A model whose keys are camelCase, as ECR's replication configuration is."""

    model_config = ConfigDict(alias_generator=to_camel)


def count_given(*values: str | None) -> int:
    """Count the values that are set."""
    return sum(value is not None for value in values)
