"""ECR data-plane credentials from GetAuthorizationToken, as a ``CredentialSource``.

ECR's registry API takes HTTP Basic with the user and password that
GetAuthorizationToken returns base64-encoded as ``AWS:<password>``. A token lives
12 hours, or less when the AWS credentials that asked for it expire sooner (an
assumed role's session). It is renewed well before that, and at once when the
registry refuses it (``invalidate``, called by the client on a 401).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from replicator import metrics
from replicator.aws.session import AwsApi, renewal_time
from replicator.errors import AuthenticationError, RegistryError
from replicator.registry.auth import Credentials

log = structlog.get_logger("replicator.aws")

# Renew a 12-hour token with an hour to spare; a shorter one at half its life.
ECR_TOKEN_REFRESH_MARGIN_S = 60 * 60.0
# GetAuthorizationToken's documented lifetime, assumed when expiresAt is missing.
ECR_TOKEN_LIFETIME_S = 12 * 60 * 60.0


@dataclass(frozen=True, slots=True)
class EcrToken:
    """A decoded ECR authorization token; the password never shows in repr."""

    username: str
    password: str = field(repr=False)
    expires_at: float

    def credentials(self) -> Credentials:
        """Return the token as the Basic credentials the registry client sends."""
        return Credentials(username=self.username, password=self.password)


def decode_authorization_data(data: Mapping[str, Any], now_s: float) -> EcrToken:
    """Decode one ``authorizationData`` entry of GetAuthorizationToken.

    Raise ValueError, without echoing the token, if it is not ``user:password``
    in base64.
    """
    encoded = data.get("authorizationToken")
    if not isinstance(encoded, str) or not encoded:
        raise ValueError("the answer holds no authorizationToken")
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("authorizationToken is not base64 of UTF-8 text") from None
    username, separator, password = decoded.partition(":")
    if not separator or not username or not password:
        raise ValueError("authorizationToken is not of the form user:password")

    return EcrToken(username, password, _expiry_s(data.get("expiresAt"), now_s))


def _expiry_s(value: object, now_s: float) -> float:
    """Return expiresAt as epoch seconds; botocore parses it into a datetime."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return now_s + ECR_TOKEN_LIFETIME_S


class EcrCredentialSource:
    """Registry credentials for one ECR registry, from GetAuthorizationToken."""

    def __init__(
        self,
        api: AwsApi,
        *,
        clock: Callable[[], float] = time.time,
        refresh_margin_s: float = ECR_TOKEN_REFRESH_MARGIN_S,
    ) -> None:
        self._api = api
        self._clock = clock
        self._refresh_margin_s = refresh_margin_s
        self._lock = asyncio.Lock()
        self._credentials: Credentials | None = None
        self._renew_at = 0.0

    async def get(self) -> Credentials:
        """Return credentials valid now, fetching a token when due."""
        credentials = self._current()
        if credentials is not None:
            return credentials
        async with self._lock:
            # Requests that waited here reuse the token the first one fetched.
            credentials = self._current()
            if credentials is None:
                credentials = await self._refresh()
            return credentials

    def invalidate(self) -> None:
        """Forget the token: the registry refused it, so the next get() fetches."""
        self._credentials = None

    def _current(self) -> Credentials | None:
        if self._credentials is None or self._clock() >= self._renew_at:
            return None
        return self._credentials

    async def _refresh(self) -> Credentials:
        try:
            token = await self._fetch()
        except RegistryError:
            metrics.CREDENTIAL_REFRESHES.labels(kind="ecr_token", result="failed").inc()
            raise
        metrics.CREDENTIAL_REFRESHES.labels(kind="ecr_token", result="ok").inc()
        now = self._clock()
        self._renew_at = renewal_time(now, token.expires_at, self._refresh_margin_s)
        self._credentials = token.credentials()
        log.info(
            "ecr_token_refreshed",
            registry=self._api.registry,
            expires_in_s=round(token.expires_at - now),
            renew_in_s=round(self._renew_at - now),
        )

        return self._credentials

    async def _fetch(self) -> EcrToken:
        # registryIds is deprecated: a token is good for every registry the
        # caller may access, so none is named.
        response = await self._api.call("ecr", "get_authorization_token")
        entries = response.get("authorizationData") or [{}]
        try:
            return decode_authorization_data(entries[0], self._clock())
        except ValueError as exc:
            raise AuthenticationError(
                f"get_authorization_token returned an unusable token: {exc}",
                operation="get_authorization_token",
                registry=self._api.registry,
            ) from None
