"""Authentication logic without I/O: challenges, scopes, credentials and token caching.

A registry says how to authenticate in a ``WWW-Authenticate`` challenge on 401
(RFC 9110, 11.6.1): ``Basic realm=...`` or ``Bearer realm=...,service=...,scope=...``
(the Docker token authentication spec). ``client.py`` performs the requests.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

# Token lifetimes are cut short by this margin so a token never expires in flight.
REFRESH_MARGIN_S = 30.0
# The token spec says a missing expires_in means 60 seconds.
DEFAULT_TOKEN_LIFETIME_S = 60.0

_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@dataclass(frozen=True, slots=True)
class Credentials:
    """A username and password, or a static bearer token; secrets never printed."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @property
    def has_password(self) -> bool:
        """Say whether basic credentials are present."""
        return self.username is not None and self.password is not None


ANONYMOUS = Credentials()


class CredentialSource(Protocol):
    """Where a client gets credentials that may change (ECR tokens, assumed roles)."""

    async def get(self) -> Credentials:
        """Return credentials that are valid now, fetching them if needed."""
        ...

    def invalidate(self) -> None:
        """Forget the current credentials: the registry refused them."""
        ...


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    """Credentials that never change: from the config file or the command line."""

    credentials: Credentials = ANONYMOUS

    async def get(self) -> Credentials:
        """Return the fixed credentials."""
        return self.credentials

    def invalidate(self) -> None:
        """Do nothing: there is nothing else to fetch."""


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` challenge."""

    scheme: str
    realm: str | None = None
    service: str | None = None
    scope: str | None = None


def parse_challenge(header: str) -> Challenge:
    """Parse the first challenge of a ``WWW-Authenticate`` header."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        key.lower(): (quoted if quoted else plain).replace('\\"', '"')
        for key, quoted, plain in _PARAM.findall(rest)
    }
    return Challenge(
        scheme=scheme.lower(),
        realm=params.get("realm"),
        service=params.get("service"),
        scope=params.get("scope"),
    )


def pull_scope(repository: str) -> str:
    """Return the token scope that allows reading a repository."""
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    """Return the token scope that allows writing a repository."""
    return f"repository:{repository}:pull,push"


def delete_scope(repository: str) -> str:
    """Return the token scope that allows deleting in a repository."""
    return f"repository:{repository}:delete"


CATALOG_SCOPE = "registry:catalog:*"


def basic_header(credentials: Credentials) -> str:
    """Return an ``Authorization`` value for HTTP Basic (RFC 7617)."""
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def bearer_header(token: str) -> str:
    """Return an ``Authorization`` value for a bearer token (RFC 6750)."""
    return f"Bearer {token}"


def token_from_response(document: object) -> tuple[str, float]:
    """Return the token and its lifetime in seconds from a token service answer."""
    if not isinstance(document, dict):
        raise ValueError("token response is not a JSON object")
    token = document.get("token") or document.get("access_token")
    if not isinstance(token, str) or not token:
        raise ValueError("token response holds no token")
    lifetime = document.get("expires_in")
    if not isinstance(lifetime, int | float) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME_S
    return token, float(lifetime)


@dataclass(slots=True)
class TokenCache:
    """Bearer tokens by the set of scopes they were granted for, with expiry."""

    clock: Callable[[], float] = time.monotonic
    _tokens: dict[frozenset[str], tuple[str, float]] = field(default_factory=dict)

    def get(self, scopes: frozenset[str]) -> str | None:
        """Return a live token for exactly these scopes, if one is cached."""
        entry = self._tokens.get(scopes)
        if entry is None:
            return None
        token, expires_at = entry
        if self._now() >= expires_at:
            del self._tokens[scopes]
            return None
        return token

    def put(self, scopes: frozenset[str], token: str, lifetime_s: float) -> None:
        """Cache a token until shortly before it expires."""
        margin = min(REFRESH_MARGIN_S, lifetime_s / 2)
        self._tokens[scopes] = (token, self._now() + lifetime_s - margin)

    def discard(self, scopes: frozenset[str]) -> None:
        """Forget the token for these scopes (the registry refused it)."""
        self._tokens.pop(scopes, None)

    def _now(self) -> float:
        return self.clock()
