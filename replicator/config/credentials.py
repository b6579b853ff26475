"""Registry credentials: where the configuration says to read them from, and the
values read at load time (kept out of repr and str)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from pydantic import SecretStr, model_validator

from replicator.config.base import ConfigModel, EnvVarName, NonEmptyStr, count_given


class CredentialsConfig(ConfigModel):
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
    username = count_given(spec.username, spec.username_env)
    password = count_given(spec.password_env, spec.password_file)
    token = count_given(spec.token_env, spec.token_file)
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
