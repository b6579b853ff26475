"""A bearer token service for registries configured with ``auth.token``.

It follows the Docker token authentication spec: ``GET realm?service=S&scope=...``
with optional Basic credentials, answered with an RS256 JWT that names the granted
``access``. The registry trusts the token through the ``x5c`` certificate in the JWT
header, checked against the ``rootcertbundle`` this server writes.
See https://distribution.github.io/distribution/spec/auth/token/
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.lab.registry import TokenAuthConfig
from tests.lab.servers import ThreadedServer

ALL_ACTIONS = ("pull", "push", "delete", "*")


@dataclass(frozen=True, slots=True)
class ResourceAccess:
    """One entry of the JWT ``access`` claim."""

    type: str
    name: str
    actions: tuple[str, ...]

    def as_claim(self) -> dict[str, object]:
        """Return the claim entry as distribution reads it."""
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One request the token service answered, recorded for assertions."""

    user: str | None
    service: str
    scopes: tuple[str, ...]
    granted: tuple[ResourceAccess, ...]
    status: int


@dataclass(frozen=True, slots=True)
class SigningIdentity:
    """An RSA key and the self-signed certificate that vouches for it."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @classmethod
    def generate(cls, common_name: str = "lab token issuer") -> SigningIdentity:
        """Generate a 2048-bit key and a one-day self-signed certificate."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .add_extension(_signing_key_usage(), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, certificate=certificate)

    def certificate_pem(self) -> bytes:
        """Return the certificate in PEM, as ``rootcertbundle`` expects."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def sign_jwt(self, claims: Mapping[str, object]) -> str:
        """Return a compact RS256 JWT whose header carries the certificate."""
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        # x5c holds standard base64 DER, not base64url (RFC 7515 section 4.1.6).
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        signing_input = f"{_b64url_json(header)}.{_b64url_json(claims)}"
        signature = self.key.sign(
            signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
        )

        return f"{signing_input}.{_b64url(signature)}"


class TokenServer:
    """A token service on loopback with users, grants and a request log."""

    def __init__(
        self,
        workdir: Path,
        *,
        users: Mapping[str, str] | None = None,
        actions_by_user: Mapping[str, Sequence[str]] | None = None,
        anonymous_actions: Sequence[str] = (),
        service: str = "lab-registry",
        issuer: str = "lab-token-issuer",
        expires_in_s: int = 300,
        host: str = "127.0.0.1",
    ) -> None:
        self.workdir = workdir
        self.users = dict(users or {})
        self.actions_by_user = {u: tuple(a) for u, a in (actions_by_user or {}).items()}
        self.anonymous_actions = tuple(anonymous_actions)
        self.service = service
        self.issuer = issuer
        self.expires_in_s = expires_in_s
        self.identity = SigningIdentity.generate()
        self._requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        self._server = ThreadedServer(self._build_app(), host=host)

    @property
    def url(self) -> str:
        """Return the base URL of the token service."""
        return self._server.url

    @property
    def realm(self) -> str:
        """Return the token endpoint that registries name in their challenge."""
        return f"{self._server.url}/token"

    @property
    def cert_path(self) -> Path:
        """Return the PEM file to use as the registry's ``rootcertbundle``."""
        return self.workdir / "token-cert.pem"

    @property
    def requests(self) -> list[TokenRequest]:
        """Return a snapshot of the token requests answered so far."""
        with self._lock:
            return list(self._requests)

    def start(self) -> TokenServer:
        """Write the certificate and start serving."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cert_path.write_bytes(self.identity.certificate_pem())
        self._server.start()

        return self

    def stop(self) -> None:
        """Stop serving; stopping twice is harmless."""
        self._server.stop()

    def registry_auth(self) -> TokenAuthConfig:
        """Return the ``auth.token`` settings for a registry trusting this service."""
        return TokenAuthConfig(
            realm=self.realm,
            service=self.service,
            issuer=self.issuer,
            root_cert_bundle=self.cert_path,
        )

    def issue_token(
        self, subject: str, access: Sequence[ResourceAccess], *, expires_in_s: int
    ) -> str:
        """Sign a token for ``subject`` granting ``access``."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + expires_in_s,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": [entry.as_claim() for entry in access],
        }
        return self.identity.sign_jwt(claims)

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/token", self._handle_token)
        return app

    async def _handle_token(self, request: web.Request) -> web.Response:
        service = request.query.get("service", "")
        scopes = tuple(request.query.getall("scope", []))
        user = _basic_user(request.headers.get("Authorization"))
        if user is not None and self.users.get(user[0]) != user[1]:
            self._record(TokenRequest(user[0], service, scopes, (), 401))
            return _unauthorized()
        username = None if user is None else user[0]
        granted = tuple(self._grant(username, scopes))
        self._record(TokenRequest(username, service, scopes, granted, 200))

        return web.json_response(self._token_body(username, granted))

    def _grant(
        self, username: str | None, scopes: Sequence[str]
    ) -> list[ResourceAccess]:
        allowed = self._allowed_actions(username)
        granted = []
        for scope in scopes:
            requested = parse_scope(scope)
            actions = tuple(a for a in requested.actions if a in allowed)
            if actions:
                granted.append(ResourceAccess(requested.type, requested.name, actions))

        return granted

    def _allowed_actions(self, username: str | None) -> tuple[str, ...]:
        if username is None:
            return self.anonymous_actions
        return self.actions_by_user.get(username, ALL_ACTIONS)

    def _token_body(
        self, username: str | None, granted: Sequence[ResourceAccess]
    ) -> dict[str, object]:
        expires_in_s = self.expires_in_s
        token = self.issue_token(username or "", granted, expires_in_s=expires_in_s)
        issued_at = datetime.datetime.now(datetime.UTC).isoformat()
        # Clients read either field: "token" per the Docker spec, "access_token"
        # per OAuth 2.
        return {
            "token": token,
            "access_token": token,
            "expires_in": expires_in_s,
            "issued_at": issued_at,
        }

    def _record(self, entry: TokenRequest) -> None:
        with self._lock:
            self._requests.append(entry)


def parse_scope(scope: str) -> ResourceAccess:
    """Parse ``type:name:actions``; the name may itself hold colons (a port)."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return ResourceAccess(kind, name, tuple(a for a in actions.split(",") if a))


def _basic_user(header: str | None) -> tuple[str, str] | None:
    """Return (user, password) from a Basic Authorization header."""
    if header is None or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    user, _, password = decoded.partition(":")

    return (user, password)


def _unauthorized() -> web.Response:
    body = {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}
    return web.json_response(
        body, status=401, headers={"WWW-Authenticate": 'Basic realm="lab-token"'}
    )


def _signing_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_json(value: Mapping[str, object]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())
