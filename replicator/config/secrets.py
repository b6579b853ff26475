"""Read the secrets a configuration names, from environment variables and files,
into its registries' credentials and the webhook's token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from replicator.config.credentials import Credentials, CredentialsConfig
from replicator.config.models import Config
from replicator.config.problems import Problem
from replicator.config.sources import MIN_WEBHOOK_TOKEN_LENGTH, is_strong_token
from replicator.errors import ConfigError


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


def resolve_all_credentials(config: Config, sources: SecretSources) -> list[Problem]:
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


def resolve_webhook_token(config: Config, sources: SecretSources) -> list[Problem]:
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
    if token is None or not is_strong_token(token):
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
