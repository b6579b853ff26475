"""AWS API access for one registry: aiobotocore clients, endpoints and assumed roles.

Credentials come from aiobotocore's default chain (environment, shared profile, web
identity for Kubernetes service accounts, container or instance role). A registry
in another account is reached through STS AssumeRole, with an external ID and a
session name, and the role's credentials are renewed before they expire. Every AWS
failure is translated here, once, into the error hierarchy of ``replicator.errors``:

    botocore ClientError      -> AuthenticationError (access denied, bad token)
                                 NotFoundError       (...NotFoundException)
                                 RegistryError       (the rest; throttling and 5xx
                                                      retryable)
    botocore BotoCoreError    -> AuthenticationError (no credentials found)
                                 TransportError      (connection failures)
                                 RegistryError       (the rest)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from replicator import __version__, metrics
from replicator.errors import (
    AuthenticationError,
    NotFoundError,
    RegistryError,
    TransportError,
)

log = structlog.get_logger("replicator.aws")

# Renew role credentials this long before they expire, or at half their lifetime
# when that is shorter; botocore's own refreshable credentials use 15 minutes.
ROLE_REFRESH_MARGIN_S = 15 * 60.0
# A credential whose expiry is already past (a skewed clock, or a test double) is
# still used this long rather than fetched again for every request.
MIN_REUSE_S = 60.0
MAX_ERROR_MESSAGE_CHARS = 300

_AUTHENTICATION_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "InternalFailure",
        "InternalServerError",
        "RequestLimitExceeded",
        "ServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
    }
)
# botocore retries throttling and 5xx itself ("standard" mode) before we see them.
_CLIENT_CONFIG = AioConfig(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=10,
    read_timeout=30,
    user_agent_extra=f"replicator/{__version__}",
)


@dataclass(frozen=True, slots=True)
class AssumeRole:
    """A role to assume before calling AWS for a registry (STS AssumeRole)."""

    role_arn: str
    session_name: str = "replicator"
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class AwsTarget:
    """Where and as whom to call AWS for one registry."""

    region: str
    ecr_endpoint_url: str | None = None
    sts_endpoint_url: str | None = None
    role: AssumeRole | None = None

    def endpoint_url(self, service: str) -> str | None:
        """Return the endpoint override for an AWS service, if one is set."""
        return {"ecr": self.ecr_endpoint_url, "sts": self.sts_endpoint_url}.get(service)


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """Temporary AWS credentials; the secret parts never show in repr."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expires_at: float

    def client_arguments(self) -> dict[str, str]:
        """Return the keyword arguments that make a client use these credentials."""
        return {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
        }


def renewal_time(now_s: float, expires_at_s: float, margin_s: float) -> float:
    """Return when to renew a credential expiring at expires_at_s, fetched now_s.

    Renew ``margin_s`` before expiry, or halfway through a lifetime shorter than
    twice the margin; a credential already expired is kept ``MIN_REUSE_S``.
    """
    lifetime_s = expires_at_s - now_s
    if lifetime_s <= 0:
        return now_s + MIN_REUSE_S

    return expires_at_s - min(margin_s, lifetime_s / 2)


def aws_error(exc: Exception, *, operation: str, registry: str) -> RegistryError:
    """Translate a botocore failure into the error hierarchy."""
    if isinstance(exc, ClientError):
        return _client_error(exc, operation, registry)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return AuthenticationError(
            f"{operation} failed: no usable AWS credentials in the environment, "
            "shared profile, web identity or instance role",
            operation=operation,
            registry=registry,
        )
    if isinstance(exc, ParamValidationError):
        # botocore checks parameters before sending: ECR repository names need
        # at least 2 characters, for one. The report names parameters, no secrets.
        return RegistryError(
            f"{operation} failed: {str(exc)[:MAX_ERROR_MESSAGE_CHARS]}",
            operation=operation,
            registry=registry,
        )
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return TransportError(
            f"{operation} failed: {type(exc).__name__}",
            operation=operation,
            registry=registry,
        )
    return RegistryError(
        f"{operation} failed: {type(exc).__name__}",
        operation=operation,
        registry=registry,
    )


def _client_error(exc: ClientError, operation: str, registry: str) -> RegistryError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    message = str(error.get("Message", ""))[:MAX_ERROR_MESSAGE_CHARS]
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    error_type: type[RegistryError] = RegistryError
    if code in _AUTHENTICATION_CODES or status in (401, 403):
        error_type = AuthenticationError
    elif code.endswith("NotFoundException"):
        error_type = NotFoundError
    retryable = code in _TRANSIENT_CODES or (isinstance(status, int) and status >= 500)

    return error_type(
        f"{operation} failed: {code}" + (f": {message}" if message else ""),
        status=status if isinstance(status, int) else None,
        codes=(code,),
        retryable=retryable,
        operation=operation,
        registry=registry,
    )


class AwsSession:
    """The process's one aiobotocore session, handing out per-registry access."""

    def __init__(
        self,
        session: AioSession | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session or get_session()
        self._clock = clock
        self._apis: dict[tuple[AwsTarget, str], AwsApi] = {}

    def api(self, target: AwsTarget, registry: str) -> AwsApi:
        """Return the AWS access of one registry, shared by everything using it."""
        key = (target, registry)
        if key not in self._apis:
            self._apis[key] = AwsApi(self._session, target, registry, self._clock)
        return self._apis[key]


class AwsApi:
    """Calls to the AWS APIs of one registry, as its account and in its region."""

    def __init__(
        self,
        session: AioSession,
        target: AwsTarget,
        registry: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self.registry = registry
        self._session = session
        self._role = (
            None
            if target.role is None
            else RoleCredentials(session, target, registry, clock)
        )

    async def call(self, service: str, operation: str, **params: Any) -> Any:
        """Call one AWS operation (snake_case name) and return its response."""
        try:
            async with self.client(service) as client:
                return await getattr(client, operation)(**params)
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(exc, operation=operation, registry=self.registry) from exc

    async def pages(
        self, service: str, operation: str, **params: Any
    ) -> AsyncIterator[Any]:
        """Yield every page of a paginated AWS operation."""
        try:
            async with self.client(service) as client:
                paginator = client.get_paginator(operation)
                async for page in paginator.paginate(**params):
                    yield page
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(exc, operation=operation, registry=self.registry) from exc

    @asynccontextmanager
    async def client(self, service: str) -> AsyncIterator[Any]:
        """Open a client of an AWS service for this registry's account and region."""
        credentials = {} if self._role is None else await self._role.arguments()
        async with self._session.create_client(
            service,
            region_name=self.target.region,
            endpoint_url=self.target.endpoint_url(service),
            config=_CLIENT_CONFIG,
            **credentials,
        ) as client:
            yield client


class RoleCredentials:
    """Credentials of an assumed role, renewed before they expire."""

    def __init__(
        self,
        session: AioSession,
        target: AwsTarget,
        registry: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if target.role is None:
            raise ValueError("RoleCredentials needs a target with a role")
        self._session = session
        self._target = target
        self._role = target.role
        self._registry = registry
        self._clock = clock
        self._lock = asyncio.Lock()
        self._current: AwsCredentials | None = None
        self._renew_at = 0.0

    async def arguments(self) -> dict[str, str]:
        """Return client keyword arguments for credentials valid now."""
        return (await self.get()).client_arguments()

    async def get(self) -> AwsCredentials:
        """Return the role's credentials, assuming the role again when due."""
        async with self._lock:
            if self._current is None or self._clock() >= self._renew_at:
                self._current = await self._assume()
                self._renew_at = renewal_time(
                    self._clock(), self._current.expires_at, ROLE_REFRESH_MARGIN_S
                )
            return self._current

    async def _assume(self) -> AwsCredentials:
        try:
            response = await self._call_assume_role()
        except RegistryError:
            metrics.CREDENTIAL_REFRESHES.labels(
                kind="assume_role", result="failed"
            ).inc()
            raise
        metrics.CREDENTIAL_REFRESHES.labels(kind="assume_role", result="ok").inc()
        credentials = response["Credentials"]
        assumed = AwsCredentials(
            access_key_id=credentials["AccessKeyId"],
            secret_access_key=credentials["SecretAccessKey"],
            session_token=credentials["SessionToken"],
            expires_at=credentials["Expiration"].timestamp(),
        )
        log.info(
            "role_assumed",
            registry=self._registry,
            role_arn=self._role.role_arn,
            session_name=self._role.session_name,
            expires_in_s=round(assumed.expires_at - self._clock()),
        )

        return assumed

    async def _call_assume_role(self) -> Any:
        params: dict[str, str] = {
            "RoleArn": self._role.role_arn,
            "RoleSessionName": self._role.session_name,
        }
        if self._role.external_id is not None:
            params["ExternalId"] = self._role.external_id
        try:
            # The caller's own credentials from the default chain, never the role's.
            async with self._session.create_client(
                "sts",
                region_name=self._target.region,
                endpoint_url=self._target.sts_endpoint_url,
                config=_CLIENT_CONFIG,
            ) as sts:
                return await sts.assume_role(**params)
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(
                exc, operation="assume_role", registry=self._registry
            ) from exc
