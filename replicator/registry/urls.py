"""Registry URLs: building them from validated names, resolving and redacting them."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

# Query keys whose values are harmless and useful in logs; every other value (S3
# signatures, upload state tokens) is replaced, since a signed URL is a credential.
_SAFE_QUERY_KEYS = frozenset({"digest", "mount", "from", "n", "last", "service"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def redact_url(url: str) -> str:
    """Return ``url`` with credentials and secret-bearing query values removed."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = urlencode(
        [
            (key, value if key in _SAFE_QUERY_KEYS else "REDACTED")
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe=":/",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def resolve_location(request_url: str, location: str) -> str:
    """Resolve a ``Location`` header, which may be relative (RFC 9110, 10.2.2)."""
    return urljoin(request_url, location)


def with_query(url: str, **params: str) -> str:
    """Return ``url`` with ``params`` added to its query, keeping what is there."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query.extend(params.items())
    return urlunsplit(
        (parts.scheme, parts.netloc, parts.path, urlencode(query, safe=":/"), "")
    )


def same_origin(first: str, second: str) -> bool:
    """Say whether two URLs share scheme, host and port (RFC 6454, 4)."""
    return _origin(first) == _origin(second)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return (
        parts.scheme,
        parts.hostname,
        parts.port or _DEFAULT_PORTS.get(parts.scheme),
    )
