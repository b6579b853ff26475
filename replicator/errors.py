"""The one error hierarchy of replicator: every failure a caller can see.

    ReplicatorError                 context (key/value pairs) and a retryable flag
    ├── ConfigError                 a configuration file or value is wrong (key path)
    ├── InvalidInputError           an untrusted name, reference or digest is malformed
    ├── ManifestError               a manifest cannot be understood or is out of bounds
    ├── IntegrityError              content does not hash to the digest that names it
    └── RegistryError               a registry request failed (status, OCI codes, URL)
        ├── TransportError          no HTTP answer: reset, refused, timeout (retryable)
        ├── AuthenticationError     credentials refused, or the token service failed
        └── NotFoundError           the registry says the object does not exist

Low-level errors (aiohttp, OSError, JSON) are translated once, where they are caught,
with ``raise ... from exc``. The retry policy in ``replicator.registry.retry`` reads
only ``retryable`` and ``retry_after_s``; no other code decides what to retry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class ReplicatorError(Exception):
    """Base of every error replicator raises on purpose."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = {
            key: value for key, value in context.items() if value is not None
        }
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        if not self.context:
            return self.message
        details = ", ".join(f"{key}={value}" for key, value in self.context.items())
        return f"{self.message} ({details})"


class ConfigError(ReplicatorError):
    """A configuration file or value is wrong; ``key_path`` says where."""

    def __init__(self, message: str, *, key_path: str = "", **context: Any) -> None:
        super().__init__(message, **context)
        self.key_path = key_path

    def __str__(self) -> str:
        where = f"{self.key_path}: " if self.key_path else ""
        return f"{where}{super().__str__()}"


class InvalidInputError(ReplicatorError):
    """An untrusted repository name, reference, tag or digest is malformed."""


class ManifestError(ReplicatorError):
    """A manifest is malformed, too large, too deep, or of an unusable shape."""


class IntegrityError(ReplicatorError):
    """Content did not hash to the digest (or size) that names it."""


class RegistryError(ReplicatorError):
    """A request to a registry failed.

    Context keys: ``operation``, ``registry``, ``repository``, ``digest``,
    ``status``, ``codes`` (the OCI error codes of the body) and ``url``, always
    redacted before it gets here.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        codes: Iterable[str] = (),
        retry_after_s: float | None = None,
        retryable: bool | None = None,
        **context: Any,
    ) -> None:
        code_list = tuple(codes)
        if retryable is None:
            retryable = is_retryable_status(status, code_list)
        super().__init__(
            message,
            retryable=retryable,
            status=status,
            codes=",".join(code_list) or None,
            **context,
        )
        self.status = status
        self.codes = code_list
        self.retry_after_s = retry_after_s


class TransportError(RegistryError, OSError):
    """No usable HTTP answer: connection refused or reset, timeout, cut body."""

    retryable = True

    def __init__(self, message: str, **context: Any) -> None:
        context.setdefault("retryable", True)
        RegistryError.__init__(self, message, **context)


class AuthenticationError(RegistryError):
    """Credentials were refused, or a token could not be obtained."""


class NotFoundError(RegistryError):
    """The registry says the manifest, blob, tag or repository does not exist."""


# Codes from the OCI distribution spec's error table, plus those registries send for
# throttling: see "Error Codes" in the distribution spec and ECR's TOOMANYREQUESTS.
RETRYABLE_CODES = frozenset({"TOOMANYREQUESTS", "UNAVAILABLE", "THROTTLED"})


def is_retryable_status(status: int | None, codes: Iterable[str] = ()) -> bool:
    """Say whether a response with this status and these OCI codes may succeed later."""
    if any(code in RETRYABLE_CODES for code in codes):
        return True
    if status is None:
        return False
    return status in (408, 429) or status >= 500


def error_fields(error: BaseException) -> Mapping[str, Any]:
    """Return the structured log keys describing an error, without secrets."""
    fields: dict[str, Any] = {"error": str(error), "error_type": type(error).__name__}
    if isinstance(error, ReplicatorError):
        fields["retryable"] = error.retryable
    return fields
