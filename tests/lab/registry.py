"""Start and stop a real CNCF distribution registry (``docker-registry``) on loopback.

Each process gets its own directory holding the generated config, the filesystem
storage and the log file, so several registries can stand for regions and accounts.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import bcrypt
import yaml

REGISTRY_BINARY = "docker-registry"

_READY_STATUSES = frozenset({200, 401})
_POLL_INTERVAL_S = 0.02
_STOP_TIMEOUT_S = 5.0
_START_ATTEMPTS = 3
# Cost 4 is bcrypt's minimum: the lab needs valid hashes, not slow ones.
_BCRYPT_ROUNDS = 4
# Registries still running when the interpreter exits (a test run interrupted
# between start and teardown) are stopped rather than left orphaned.
_LIVE: weakref.WeakSet[RegistryProcess] = weakref.WeakSet()


class RegistryStartError(RuntimeError):
    """The registry process exited or never answered ``GET /v2/``."""


@dataclass(frozen=True, slots=True)
class TokenAuthConfig:
    """The ``auth.token`` section that points a registry at a token service."""

    realm: str
    service: str
    issuer: str
    root_cert_bundle: Path


@dataclass(frozen=True, slots=True)
class NotificationEndpoint:
    """One ``notifications.endpoints`` entry: where the registry posts events."""

    name: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 1.0
    threshold: int = 3
    backoff_s: float = 1.0
    ignored_media_types: tuple[str, ...] = ()


class RegistryProcess:
    """A ``docker-registry serve`` child process with its config, storage and log."""

    def __init__(
        self,
        workdir: Path,
        *,
        host: str = "127.0.0.1",
        htpasswd: Mapping[str, str] | None = None,
        token_auth: TokenAuthConfig | None = None,
        relative_urls: bool = False,
        notifications: Sequence[NotificationEndpoint] = (),
        ready_timeout_s: float = 10.0,
    ) -> None:
        if htpasswd is not None and token_auth is not None:
            raise ValueError("choose htpasswd or token auth, not both")
        self.workdir = workdir
        self.host = host
        self.htpasswd = dict(htpasswd) if htpasswd is not None else None
        self.token_auth = token_auth
        self.relative_urls = relative_urls
        self.notifications = tuple(notifications)
        self.ready_timeout_s = ready_timeout_s
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return the base URL, such as ``http://127.0.0.1:5000``."""
        return f"http://{self.host_port}"

    @property
    def host_port(self) -> str:
        """Return ``host:port`` as it appears in image references."""
        if not self.port:
            raise RuntimeError("registry has not been started")
        return f"{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        """Return the path of the generated configuration file."""
        return self.workdir / "config.yml"

    @property
    def log_path(self) -> Path:
        """Return the path of the registry's log file."""
        return self.workdir / "registry.log"

    @property
    def storage_path(self) -> Path:
        """Return the filesystem storage root."""
        return self.workdir / "storage"

    @property
    def running(self) -> bool:
        """Tell whether the child process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> RegistryProcess:
        """Start the registry and wait until it answers; keep the port on restart."""
        if self.running:
            raise RuntimeError(f"registry {self.host_port} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._start_with_retries()
        _LIVE.add(self)

        return self

    def stop(self) -> None:
        """Stop the registry (TERM, then KILL); stopping twice is harmless."""
        process, self._process = self._process, None
        _LIVE.discard(self)
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=_STOP_TIMEOUT_S)

    def restart(self) -> RegistryProcess:
        """Stop and start again on the same port with the same storage."""
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 40) -> str:
        """Return the last lines of the registry log, for failure messages."""
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace")

        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> RegistryProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _start_with_retries(self) -> None:
        # Another process may grab the free port between our probe and the
        # registry's bind; a fresh port on the next attempt resolves that race.
        keep_port = self.port != 0
        for attempt in range(1, _START_ATTEMPTS + 1):
            if not keep_port or attempt > 1:
                self.port = find_free_port(self.host)
            self._write_config()
            self._spawn()
            try:
                self._wait_until_ready()
                return
            except RegistryStartError:
                self.stop()
                if "address already in use" not in self.log_tail():
                    raise
        raise RegistryStartError(f"registry could not bind:\n{self.log_tail()}")

    def _write_config(self) -> None:
        config = build_config(
            host_port=f"{self.host}:{self.port}",
            storage_path=self.storage_path,
            htpasswd_path=self._write_htpasswd(),
            token_auth=self.token_auth,
            relative_urls=self.relative_urls,
            notifications=self.notifications,
        )
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _write_htpasswd(self) -> Path | None:
        if self.htpasswd is None:
            return None
        path = self.workdir / "htpasswd"
        path.write_text(render_htpasswd(self.htpasswd))

        return path

    def _spawn(self) -> None:
        binary = shutil.which(REGISTRY_BINARY)
        if binary is None:
            raise RegistryStartError(f"{REGISTRY_BINARY} is not installed")
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [binary, "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                raise RegistryStartError(
                    f"registry {self.host_port} exited:\n{self.log_tail()}"
                )
            if probe_status(f"{self.url}/v2/") in _READY_STATUSES:
                return
            time.sleep(_POLL_INTERVAL_S)
        raise RegistryStartError(
            f"registry {self.host_port} not ready after {self.ready_timeout_s} s:\n"
            f"{self.log_tail()}"
        )


@atexit.register
def _stop_live_registries() -> None:
    for registry in list(_LIVE):
        registry.stop()


def build_config(
    *,
    host_port: str,
    storage_path: Path,
    htpasswd_path: Path | None = None,
    token_auth: TokenAuthConfig | None = None,
    relative_urls: bool = False,
    notifications: Sequence[NotificationEndpoint] = (),
) -> dict[str, Any]:
    """Build a distribution 2.8 configuration as a dictionary."""
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage_path)},
            "delete": {"enabled": True},
            # The purger runs in the background and would touch storage mid-test.
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        # A fixed secret avoids the "generated random secret" warning on start.
        "http": {
            "addr": host_port,
            "secret": "lab-secret",
            "relativeurls": relative_urls,
        },
    }
    auth = _auth_section(htpasswd_path, token_auth)
    if auth:
        config["auth"] = auth
    if notifications:
        endpoints = [_endpoint_section(endpoint) for endpoint in notifications]
        config["notifications"] = {"endpoints": endpoints}

    return config


def render_htpasswd(users: Mapping[str, str]) -> str:
    """Render an htpasswd file with bcrypt hashes, the only kind distribution reads."""
    lines = []
    for user, password in sorted(users.items()):
        salt = bcrypt.gensalt(rounds=_BCRYPT_ROUNDS)
        hashed = bcrypt.hashpw(password.encode(), salt).decode()
        lines.append(f"{user}:{hashed}\n")

    return "".join(lines)


def find_free_port(host: str) -> int:
    """Return a port that is free on ``host`` at the time of asking."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def probe_status(url: str, timeout_s: float = 0.5) -> int | None:
    """Return the HTTP status of ``GET url``, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.close()
        return int(error.code)
    except OSError:
        return None


def _auth_section(
    htpasswd_path: Path | None, token_auth: TokenAuthConfig | None
) -> dict[str, Any]:
    if htpasswd_path is not None:
        return {"htpasswd": {"realm": "lab-registry", "path": str(htpasswd_path)}}
    if token_auth is not None:
        token = {
            "realm": token_auth.realm,
            "service": token_auth.service,
            "issuer": token_auth.issuer,
            "rootcertbundle": str(token_auth.root_cert_bundle),
        }
        return {"token": token}
    return {}


def _endpoint_section(endpoint: NotificationEndpoint) -> dict[str, Any]:
    section: dict[str, Any] = {
        "name": endpoint.name,
        "url": endpoint.url,
        # distribution reads each header as a list of values.
        "headers": {name: [value] for name, value in endpoint.headers.items()},
        "timeout": _duration(endpoint.timeout_s),
        "threshold": endpoint.threshold,
        "backoff": _duration(endpoint.backoff_s),
    }
    if endpoint.ignored_media_types:
        section["ignoredmediatypes"] = list(endpoint.ignored_media_types)

    return section


def _duration(seconds: float) -> str:
    """Format seconds as a Go duration string."""
    return f"{round(seconds * 1000)}ms"
