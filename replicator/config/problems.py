"""What is wrong with a configuration and where: ``Problem``, pydantic's errors
translated to key paths and plain messages, and the ``ConfigError`` they join into."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import UnionType
from typing import get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from replicator.config.credentials import CredentialsConfig
from replicator.config.models import Config
from replicator.config.sources import WebhookSettings
from replicator.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a configuration, and where."""

    key_path: str
    message: str


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
