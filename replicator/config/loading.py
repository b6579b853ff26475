"""Load a configuration: read the file, parse its YAML, validate and cross-check
the document, then read the secrets it names."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from replicator.config.checks import find_problems
from replicator.config.models import SUPPORTED_VERSION, Config
from replicator.config.problems import config_error, problems_from_validation_error
from replicator.config.secrets import (
    SecretSources,
    resolve_all_credentials,
    resolve_webhook_token,
)
from replicator.errors import ConfigError


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
        *resolve_all_credentials(config, sources),
        *resolve_webhook_token(config, sources),
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
