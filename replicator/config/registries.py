"""The ``registries`` entries: where a registry is, how to trust it, how to log in,
and whether it is Amazon ECR."""

from __future__ import annotations

from pydantic import PrivateAttr, StrictBool

from replicator.config.base import AccountId, ConfigModel, Region, RegistryUrl
from replicator.config.credentials import ANONYMOUS, Credentials, CredentialsConfig
from replicator.config.ecr import (
    DEFAULT_ECR_SETTINGS,
    EcrSettings,
    ecr_identity_from_host,
    ecr_registry_url,
)
from replicator.errors import ConfigError


class Registry(ConfigModel):
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
