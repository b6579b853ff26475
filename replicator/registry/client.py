"""One registry's transport: authenticated requests, redirects and error translation.

``RegistryClient.open`` is the only place replicator talks HTTP to a registry. It
negotiates authentication from the registry's 401 challenge (sending the token for
exactly the scopes an operation needs), follows redirects itself so that
``Authorization`` never reaches another host (S3 behind ECR), and turns every
failure into a ``RegistryError`` whose URL is redacted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from replicator import metrics
from replicator.errors import (
    AuthenticationError,
    RegistryError,
    ReplicatorError,
    TransportError,
)
from replicator.registry.auth import (
    ANONYMOUS,
    Challenge,
    Credentials,
    CredentialSource,
    StaticCredentials,
    TokenCache,
    basic_header,
    bearer_header,
    parse_challenge,
    token_from_response,
)
from replicator.registry.responses import (
    MAX_ERROR_BODY_BYTES,
    RequestContext,
    error_for_response,
)
from replicator.registry.retry import RetryPolicy
from replicator.registry.tracing import trace_config
from replicator.registry.urls import redact_url, resolve_location, same_origin

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# What aiohttp raises when no usable answer arrives: translated to TransportError.
NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)
MAX_REDIRECTS = 5
READ_BUFFER_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RegistryEndpoint:
    """Where a registry is: a name for logs and metrics, its base URL, TLS policy."""

    name: str
    base_url: str
    verify_tls: bool = True

    @property
    def host(self) -> str:
        """Return ``host[:port]`` as written in image references."""
        return self.base_url.split("://", 1)[-1].rstrip("/")


def open_session(connections_per_host: int = 32) -> aiohttp.ClientSession:
    """Create the process's one HTTP session, tuned for large streamed bodies."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=connections_per_host)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        # Blobs are compressed tar streams served as-is; decoding would change them.
        auto_decompress=False,
        read_bufsize=READ_BUFFER_BYTES,
        trace_configs=[trace_config()],
    )


class RegistryClient:
    """Authenticated access to one registry over a shared session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: RegistryEndpoint,
        credentials: Credentials | CredentialSource = ANONYMOUS,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.session = session
        self.endpoint = endpoint
        self.retry = retry or RetryPolicy()
        self._credentials: CredentialSource = (
            StaticCredentials(credentials)
            if isinstance(credentials, Credentials)
            else credentials
        )
        self._challenge: Challenge | None = None
        self._tokens = TokenCache()
        self._token_lock = asyncio.Lock()
        # False turns verification off; only registries marked insecure get that.
        self._ssl = endpoint.verify_tls

    @property
    def name(self) -> str:
        """Return the registry's name for logs and metrics."""
        return self.endpoint.name

    def url(self, path: str) -> str:
        """Return the absolute URL of an API path such as ``/v2/_catalog``."""
        return self.endpoint.base_url.rstrip("/") + path

    def context(
        self, operation: str, repository: str | None = None, digest: str | None = None
    ) -> RequestContext:
        """Return the context that errors of one operation carry."""
        return RequestContext(operation, self.name, repository, digest)

    @asynccontextmanager
    async def open(
        self,
        method: str,
        url: str,
        *,
        context: RequestContext,
        scopes: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        expected: Iterable[int] = (200,),
        replayable: bool = True,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send a request and yield its response if the status is one expected.

        ``replayable`` is false for streamed bodies, which cannot be sent twice: a
        401 then fails retryably after discarding the token, instead of resending.
        """
        scope_set = frozenset(scopes)
        response = await self._send_authorized(
            method, url, context, scope_set, dict(headers or {}), data, replayable
        )
        response = await self._follow_redirects(response, method, context, scope_set)
        try:
            if response.status not in set(expected):
                raise await self._error(response, context)
            yield response
        except ReplicatorError:
            raise
        except NETWORK_ERRORS as exc:
            # The body was cut short or stalled while the caller read it.
            raise _transport_error(exc, str(response.url), context) from exc
        finally:
            response.release()

    async def _send_authorized(
        self,
        method: str,
        url: str,
        context: RequestContext,
        scopes: frozenset[str],
        headers: dict[str, str],
        data: Any,
        replayable: bool,
    ) -> aiohttp.ClientResponse:
        if not same_origin(url, self.endpoint.base_url):
            # A Location or Link may name another host; credentials are for the
            # registry alone (DESIGN.md, Security).
            return await self._send(method, url, context, headers, None, data)
        # At most three rounds: an anonymous probe that learns the challenge, the
        # credentials in hand, and credentials fetched anew after a refusal.
        refreshed = False
        while True:
            try:
                authorization = await self._authorization(scopes, context)
            except AuthenticationError as error:
                # The token service refused the credentials in hand.
                if refreshed or error.status != 401:
                    raise
                refreshed = True
                self._credentials.invalidate()
                continue
            response = await self._send(
                method, url, context, headers, authorization, data
            )
            if self._expired_credentials(
                response, authorization, refreshed, replayable
            ):
                # ECR answers an expired token with 403, not 401: refresh once.
                refreshed = True
                self._credentials.invalidate()
                response.release()
                continue
            if response.status != 401:
                return response

            self._learn_challenge(response, scopes, authorization)
            if not replayable:
                # The body is spent; the next attempt of the retry policy resends it
                # with credentials refreshed from the challenge just learned.
                raise await self._error(response, context, retryable=True)
            if refreshed or (
                authorization is None and not await self._can_authenticate()
            ):
                raise await self._error(response, context)
            if authorization is not None:
                # Refused credentials may have expired (an ECR token): fetch anew.
                refreshed = True
                self._credentials.invalidate()
            response.release()

    def _expired_credentials(
        self,
        response: aiohttp.ClientResponse,
        authorization: str | None,
        refreshed: bool,
        replayable: bool,
    ) -> bool:
        return (
            response.status == 403
            and authorization is not None
            and replayable
            and not refreshed
            and not isinstance(self._credentials, StaticCredentials)
        )

    async def _follow_redirects(
        self,
        response: aiohttp.ClientResponse,
        method: str,
        context: RequestContext,
        scopes: frozenset[str],
    ) -> aiohttp.ClientResponse:
        for _ in range(MAX_REDIRECTS):
            location = response.headers.get("Location")
            if response.status not in REDIRECT_STATUSES or location is None:
                return response
            target = resolve_location(str(response.url), location)
            response.release()
            # Credentials are for the registry alone; object storage gets a signed
            # URL and must never see them (DESIGN.md, Security).
            authorization = None
            if same_origin(target, self.endpoint.base_url):
                authorization = await self._authorization(scopes, context)
            response = await self._send(
                method, target, context, {}, authorization, None
            )
        return response

    async def _send(
        self,
        method: str,
        url: str,
        context: RequestContext,
        headers: dict[str, str],
        authorization: str | None,
        data: Any,
    ) -> aiohttp.ClientResponse:
        if authorization is not None:
            headers = {**headers, "Authorization": authorization}
        try:
            return await self.session.request(
                method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                ssl=self._ssl,
            )
        except NETWORK_ERRORS as exc:
            failure = exc.__cause__
            if isinstance(failure, ReplicatorError):
                # aiohttp wraps a failure of the body being sent (a source stream
                # cut short or corrupt): that failure is the news, not this request.
                raise failure from failure.__cause__
            raise _transport_error(exc, url, context) from exc

    async def _error(
        self,
        response: aiohttp.ClientResponse,
        context: RequestContext,
        retryable: bool | None = None,
    ) -> RegistryError:
        body = await _read_error_body(response)
        response.release()
        error = error_for_response(
            context,
            response.status,
            response.headers,
            body,
            redact_url(str(response.url)),
        )
        if retryable:
            error.retryable = True
        return error

    async def _can_authenticate(self) -> bool:
        challenge = self._challenge
        if challenge is None:
            return False
        if challenge.scheme == "bearer":
            return True
        if challenge.scheme == "basic":
            return (await self._credentials.get()).has_password
        return False

    def _learn_challenge(
        self,
        response: aiohttp.ClientResponse,
        scopes: frozenset[str],
        authorization: str | None,
    ) -> None:
        header = response.headers.get("WWW-Authenticate", "")
        self._challenge = parse_challenge(header) if header else None
        # Forget only the token refused: a concurrent request may have fetched a
        # good one since this request left, and an anonymous probe refuses none.
        cached = self._tokens.get(scopes)
        if cached is not None and bearer_header(cached) == authorization:
            self._tokens.discard(scopes)

    async def _authorization(
        self, scopes: frozenset[str], context: RequestContext
    ) -> str | None:
        challenge = self._challenge
        credentials = await self._credentials.get()
        if challenge is None:
            return _preemptive_authorization(credentials)
        if challenge.scheme == "basic":
            return basic_header(credentials) if credentials.has_password else None
        if challenge.scheme == "bearer":
            return bearer_header(await self._token(challenge, scopes, context))
        return None

    async def _token(
        self, challenge: Challenge, scopes: frozenset[str], context: RequestContext
    ) -> str:
        credentials = await self._credentials.get()
        if credentials.token is not None and challenge.realm is None:
            return credentials.token
        async with self._token_lock:
            token = self._tokens.get(scopes)
            if token is None:
                try:
                    token, lifetime_s = await self._fetch_token(
                        challenge, scopes, context
                    )
                except RegistryError:
                    metrics.CREDENTIAL_REFRESHES.labels(
                        kind="registry_token", result="failed"
                    ).inc()
                    raise
                metrics.CREDENTIAL_REFRESHES.labels(
                    kind="registry_token", result="ok"
                ).inc()
                self._tokens.put(scopes, token, lifetime_s)
            return token

    async def _fetch_token(
        self, challenge: Challenge, scopes: frozenset[str], context: RequestContext
    ) -> tuple[str, float]:
        if challenge.realm is None:
            raise AuthenticationError(
                "bearer challenge names no token realm", **context.fields()
            )
        params = [("service", challenge.service or "")]
        # The challenge's scope was for the request that drew it, perhaps another
        # repository; an operation that names its scopes asks for those alone.
        requested = scopes or _scope_of(challenge)
        params += [("scope", scope) for scope in sorted(requested)]
        headers = {}
        credentials = await self._credentials.get()
        if credentials.has_password:
            headers["Authorization"] = basic_header(credentials)
        token_context = RequestContext("token_fetch", self.name, context.repository)
        try:
            async with self.session.get(
                challenge.realm, params=params, headers=headers, ssl=self._ssl
            ) as response:
                if response.status != 200:
                    raise await self._error(response, token_context)
                return token_from_response(await response.json(content_type=None))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransportError(
                f"token_fetch failed: {type(exc).__name__}",
                url=redact_url(challenge.realm),
                **token_context.fields(),
            ) from exc
        except ValueError as exc:
            raise AuthenticationError(
                f"token service answer unusable: {exc}", **token_context.fields()
            ) from exc


async def read_body(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """Read a whole body, or its first ``max_bytes + 1`` bytes if it is longer.

    ``StreamReader.read(n)`` returns what has arrived so far, not ``n`` bytes; a
    body that comes in several pieces must be read until its end.
    """
    body = bytearray()
    while len(body) <= max_bytes:
        piece = await response.content.read(max_bytes + 1 - len(body))
        if not piece:
            break
        body += piece

    return bytes(body)


async def translated_stream(
    chunks: AsyncIterator[bytes], url: str, context: RequestContext
) -> AsyncIterator[bytes]:
    """Yield a body's chunks, turning a cut or stalled connection into TransportError.

    A blob stream is read inside another request (the upload it feeds), so its
    failure must say itself which registry and request it came from.
    """
    try:
        async for chunk in chunks:
            yield chunk
    except NETWORK_ERRORS as exc:
        raise _transport_error(exc, url, context) from exc


def _transport_error(
    exc: BaseException, url: str, context: RequestContext
) -> TransportError:
    if isinstance(exc, aiohttp.ClientSSLError):
        # A handshake fails the same way every time: a plain-HTTP registry, or a
        # certificate this host does not trust. Retrying only delays the answer.
        return TransportError(
            f"{context.operation} failed: TLS handshake failed ({type(exc).__name__});"
            " for a plain-HTTP registry set insecure: true (--src-insecure or"
            " --dest-insecure for copy)",
            retryable=False,
            url=redact_url(url),
            **context.fields(),
        )
    return TransportError(
        f"{context.operation} failed: {type(exc).__name__}",
        url=redact_url(url),
        **context.fields(),
    )


def _preemptive_authorization(credentials: Credentials) -> str | None:
    if credentials.token is not None:
        return bearer_header(credentials.token)
    return None


def _scope_of(challenge: Challenge) -> frozenset[str]:
    return frozenset(challenge.scope.split(" ")) if challenge.scope else frozenset()


async def _read_error_body(response: aiohttp.ClientResponse) -> bytes:
    try:
        return await read_body(response, MAX_ERROR_BODY_BYTES)
    except (aiohttp.ClientError, TimeoutError, OSError):
        return b""
