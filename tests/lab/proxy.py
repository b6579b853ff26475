"""A fault-injecting reverse proxy in front of a real registry.

The proxy streams bodies both ways, rewrites upstream ``Location`` headers to point
at itself, records every request, and applies fault rules added at runtime: canned
responses (429, 503), connection resets, delays, slow or truncated bodies, and blob
redirects to a second loopback host that stands for object storage.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import socket
import struct
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from tests.lab.servers import ThreadedServer

BLOB_PATH = r"^/v2/(?P<name>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$"
BLOB_UPLOAD_PATH = r"^/v2/.+/blobs/uploads/"
MANIFEST_PATH = r"^/v2/.+/manifests/"

_CHUNK_BYTES = 64 * 1024
# RFC 9110 section 7.6.1: connection-specific fields are not forwarded.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
_UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60)
_SESSION = web.AppKey("session", aiohttp.ClientSession)

Server = Literal["proxy", "blob_host"]


@dataclass(frozen=True, slots=True)
class Respond:
    """Answer with this status, headers and body instead of forwarding."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Reset:
    """Reset the client connection (TCP RST) without any response."""


@dataclass(frozen=True, slots=True)
class Delay:
    """Wait before forwarding."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Truncate:
    """Forward the response but close the connection after this many body bytes."""

    after_bytes: int


@dataclass(frozen=True, slots=True)
class SlowBody:
    """Forward the response body in small chunks with a pause after each."""

    chunk_bytes: int = 16 * 1024
    pause_s: float = 0.05


@dataclass(frozen=True, slots=True)
class RedirectBlob:
    """Answer a blob GET with 307 to the blob host and a signed-looking URL."""


FaultAction = Respond | Reset | Delay | Truncate | SlowBody | RedirectBlob


@dataclass(frozen=True, slots=True)
class ProxiedRequest:
    """One request seen by the proxy or its blob host; status None means reset."""

    server: Server
    method: str
    path: str
    query: str
    authorized: bool
    status: int | None
    fault: str | None = None


@dataclass(slots=True)
class _FaultRule:
    action: FaultAction
    method: str | None
    path: re.Pattern[str]
    remaining: int | None

    def take(self, method: str, path: str) -> bool:
        if self.remaining == 0:
            return False
        if self.method is not None and self.method != method:
            return False
        if self.path.search(path) is None:
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True


@dataclass(frozen=True, slots=True)
class _BlobGrant:
    repository: str
    digest: str
    authorization: str | None


def oci_error_body(code: str, message: str) -> bytes:
    """Return an OCI distribution error body with one error."""
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


def too_many_requests(retry_after_s: int = 1) -> Respond:
    """Return a 429 with ``Retry-After`` and a TOOMANYREQUESTS error body."""
    return Respond(
        429,
        {"Retry-After": str(retry_after_s), "Content-Type": "application/json"},
        oci_error_body("TOOMANYREQUESTS", "rate limit exceeded (lab fault)"),
    )


def service_unavailable(retry_after_s: int | None = None) -> Respond:
    """Return a 503, optionally with ``Retry-After``."""
    headers = {"Content-Type": "application/json"}
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
    body = oci_error_body("UNAVAILABLE", "service unavailable (lab fault)")

    return Respond(503, headers, body)


class FaultProxy:
    """A reverse proxy for one upstream registry, with faults and a request log."""

    def __init__(
        self,
        upstream_url: str,
        *,
        host: str = "127.0.0.1",
        blob_host: str = "127.0.0.2",
    ) -> None:
        self.upstream_url = upstream_url.rstrip("/")
        self._faults: list[_FaultRule] = []
        self._records: list[ProxiedRequest] = []
        self._grants: dict[str, _BlobGrant] = {}
        self._lock = threading.Lock()
        self._server = ThreadedServer(self._build_proxy_app(), host=host)
        self._blob_server = ThreadedServer(self._build_blob_app(), host=blob_host)

    @property
    def url(self) -> str:
        """Return the proxy's base URL, to use in place of the registry's."""
        return self._server.url

    @property
    def host_port(self) -> str:
        """Return ``host:port`` of the proxy, as it appears in image references."""
        return f"{self._server.host}:{self._server.port}"

    @property
    def blob_host_url(self) -> str:
        """Return the base URL of the object-storage stand-in."""
        return self._blob_server.url

    @property
    def requests(self) -> list[ProxiedRequest]:
        """Return a snapshot of the requests the proxy received."""
        return self._snapshot("proxy")

    @property
    def blob_host_requests(self) -> list[ProxiedRequest]:
        """Return a snapshot of the requests the blob host received."""
        return self._snapshot("blob_host")

    def start(self) -> FaultProxy:
        """Start the proxy and its blob host."""
        self._blob_server.start()
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop both servers; stopping twice is harmless."""
        self._server.stop()
        self._blob_server.stop()

    def add_fault(
        self,
        action: FaultAction,
        *,
        method: str | None = None,
        path: str = "",
        times: int | None = 1,
    ) -> None:
        """Apply ``action`` to the next ``times`` matching requests (None: always).

        ``path`` is a regular expression searched in the request path. Rules are
        tried in the order they were added; the first one that matches applies.
        """
        rule = _FaultRule(action, method, re.compile(path), times)
        with self._lock:
            self._faults.append(rule)

    def redirect_blobs(self, *, times: int | None = None) -> None:
        """Redirect blob GETs to the blob host."""
        self.add_fault(RedirectBlob(), method="GET", path=BLOB_PATH, times=times)

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        with self._lock:
            self._faults.clear()

    def clear_requests(self) -> None:
        """Forget the recorded requests of both servers."""
        with self._lock:
            self._records.clear()

    def count(
        self, method: str | None = None, path: str = "", server: Server = "proxy"
    ) -> int:
        """Count recorded requests by method and a path regular expression."""
        pattern = re.compile(path)
        return sum(
            1
            for record in self._snapshot(server)
            if (method is None or record.method == method)
            and pattern.search(record.path) is not None
        )

    def blob_upload_puts(self) -> int:
        """Count PUTs that complete blob uploads."""
        return self.count("PUT", BLOB_UPLOAD_PATH)

    def blob_gets(self) -> int:
        """Count blob GETs the proxy received."""
        return self.count("GET", BLOB_PATH)

    def manifest_puts(self) -> int:
        """Count manifest PUTs."""
        return self.count("PUT", MANIFEST_PATH)

    def _snapshot(self, server: Server) -> list[ProxiedRequest]:
        with self._lock:
            return [record for record in self._records if record.server == server]

    def _record(
        self,
        server: Server,
        request: web.Request,
        status: int | None,
        fault: FaultAction | None = None,
    ) -> None:
        entry = ProxiedRequest(
            server=server,
            method=request.method,
            path=request.path,
            query=request.query_string,
            authorized="Authorization" in request.headers,
            status=status,
            fault=None if fault is None else type(fault).__name__,
        )
        with self._lock:
            self._records.append(entry)

    def _take_fault(self, method: str, path: str) -> FaultAction | None:
        with self._lock:
            for rule in self._faults:
                if rule.take(method, path):
                    return rule.action
        return None

    def _build_proxy_app(self) -> web.Application:
        app = web.Application()
        app.cleanup_ctx.append(_client_session)
        app.router.add_route("*", "/{tail:.*}", self._handle_proxy)
        return app

    def _build_blob_app(self) -> web.Application:
        app = web.Application()
        app.cleanup_ctx.append(_client_session)
        app.router.add_route("*", "/{tail:.*}", self._handle_blob_host)
        return app

    async def _handle_proxy(self, request: web.Request) -> web.StreamResponse:
        action = self._take_fault(request.method, request.path)
        if isinstance(action, Respond):
            self._record("proxy", request, action.status, action)
            return web.Response(
                status=action.status, headers=action.headers, body=action.body
            )
        if isinstance(action, Reset):
            self._record("proxy", request, None, action)
            return _reset_connection(request)
        if isinstance(action, RedirectBlob):
            return await self._redirect_blob(request, action)
        if isinstance(action, Delay):
            await asyncio.sleep(action.seconds)

        return await self._forward(request, action)

    async def _forward(
        self, request: web.Request, action: FaultAction | None
    ) -> web.StreamResponse:
        session = request.app[_SESSION]
        url = self.upstream_url + request.raw_path
        body = (
            request.content.iter_chunked(_CHUNK_BYTES) if request.body_exists else None
        )
        try:
            upstream = await session.request(
                request.method,
                url,
                headers=_request_headers(request.headers),
                data=body,
                allow_redirects=False,
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            )
        except aiohttp.ClientError:
            self._record("proxy", request, 502, action)
            return web.Response(status=502, text="upstream unreachable (lab proxy)")
        async with upstream:
            self._record("proxy", request, upstream.status, action)
            headers = self._response_headers(upstream.headers)
            return await _relay(request, upstream, headers, action)

    def _response_headers(self, headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
        relayed = _drop_hop_by_hop(headers)
        location = relayed.get("Location")
        if location is not None and location.startswith(self.upstream_url):
            relayed["Location"] = self.url + location[len(self.upstream_url) :]

        return relayed

    async def _redirect_blob(
        self, request: web.Request, action: RedirectBlob
    ) -> web.StreamResponse:
        match = re.match(BLOB_PATH, request.path)
        if match is None:
            return await self._forward(request, None)
        # The registry still decides who may read: ask it first, with the
        # client's own credentials, as a registry backed by S3 would.
        if await self._upstream_status(request, "HEAD") != 200:
            return await self._forward(request, None)
        signature = secrets.token_hex(16)
        authorization = request.headers.get("Authorization")
        grant = _BlobGrant(match["name"], match["digest"], authorization)
        with self._lock:
            self._grants[signature] = grant
        self._record("proxy", request, 307, action)
        location = self._signed_blob_url(grant.digest, signature)

        return web.Response(status=307, headers={"Location": location})

    async def _upstream_status(self, request: web.Request, method: str) -> int:
        session = request.app[_SESSION]
        url = self.upstream_url + request.raw_path
        headers = _request_headers(request.headers)
        async with session.request(method, url, headers=headers) as response:
            return response.status

    def _signed_blob_url(self, digest: str, signature: str) -> str:
        hex_digest = digest.removeprefix("sha256:")
        path = f"/lab-bucket/docker/registry/v2/blobs/sha256/{hex_digest[:2]}/"
        query = (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=LABKEY%2Flab%2Fs3"
            f"&X-Amz-Expires=1200&X-Amz-Signature=secret{signature}"
        )
        return f"{self.blob_host_url}{path}{hex_digest}/data?{query}"

    async def _handle_blob_host(self, request: web.Request) -> web.StreamResponse:
        # S3 refuses a request that carries both a presigned query and an
        # Authorization header; clients must drop credentials on redirect.
        if "Authorization" in request.headers:
            self._record("blob_host", request, 403)
            return _s3_error(403, "InvalidArgument", "Only one auth mechanism allowed")
        signature = request.query.get("X-Amz-Signature", "").removeprefix("secret")
        with self._lock:
            grant = self._grants.get(signature)
        if grant is None:
            self._record("blob_host", request, 403)
            return _s3_error(403, "AccessDenied", "Signature does not match")

        return await self._serve_granted_blob(request, grant)

    async def _serve_granted_blob(
        self, request: web.Request, grant: _BlobGrant
    ) -> web.StreamResponse:
        session = request.app[_SESSION]
        url = f"{self.upstream_url}/v2/{grant.repository}/blobs/{grant.digest}"
        headers = {}
        if grant.authorization is not None:
            headers["Authorization"] = grant.authorization
        if "Range" in request.headers:
            headers["Range"] = request.headers["Range"]
        async with session.request(request.method, url, headers=headers) as upstream:
            self._record("blob_host", request, upstream.status)
            relayed = _object_store_headers(upstream.headers)
            return await _relay(request, upstream, relayed, None)


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    """Own one upstream session per application, on the server's own loop."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, auto_decompress=False, timeout=_UPSTREAM_TIMEOUT
    ) as session:
        app[_SESSION] = session
        yield


async def _relay(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    headers: CIMultiDict[str],
    action: FaultAction | None,
) -> web.StreamResponse:
    """Stream the upstream response to the client, applying a body fault."""
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    response.headers.extend(headers)
    try:
        await response.prepare(request)
        await _copy_body(request, upstream, response, action)
    except ConnectionError:
        # The client went away mid-body; nothing is left to answer.
        pass

    return response


async def _copy_body(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    response: web.StreamResponse,
    action: FaultAction | None,
) -> None:
    chunk_bytes = action.chunk_bytes if isinstance(action, SlowBody) else _CHUNK_BYTES
    budget = action.after_bytes if isinstance(action, Truncate) else None
    async for chunk in upstream.content.iter_chunked(chunk_bytes):
        if budget is not None and len(chunk) >= budget:
            await response.write(chunk[:budget])
            _abort(request)
            return
        await response.write(chunk)
        if budget is not None:
            budget -= len(chunk)
        if isinstance(action, SlowBody):
            await asyncio.sleep(action.pause_s)
    if budget is not None:
        _abort(request)
        return
    await response.write_eof()


def _reset_connection(request: web.Request) -> web.Response:
    """Reset the connection; the returned response is never sent."""
    transport = request.transport
    sock = None if transport is None else transport.get_extra_info("socket")
    if sock is not None:
        # SO_LINGER with a zero timeout makes close() send RST, not FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _abort(request)

    return web.Response(status=500)


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


def _request_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    return _drop_hop_by_hop(headers)


def _drop_hop_by_hop(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    return CIMultiDict(
        (name, value)
        for name, value in headers.items()
        if name.lower() not in _HOP_BY_HOP
    )


def _object_store_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    kept = ("Content-Length", "Content-Range", "Accept-Ranges", "ETag")
    relayed = CIMultiDict((name, headers[name]) for name in kept if name in headers)
    relayed["Content-Type"] = "application/octet-stream"

    return relayed


def _s3_error(status: int, code: str, message: str) -> web.Response:
    body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return web.Response(status=status, text=body, content_type="application/xml")
