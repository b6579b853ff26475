"""Registry URLs: building them from validated names, resolving and redacting them."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

# Query keys whose values are harmless and useful in logs; every other value (S3
# signatures, upload state tokens) is replaced, since a signed URL is a credential.
_SAFE_QUERY_KEYS = frozenset({"digest", "mount", "from", "n", "last", "service"})


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
    """Say whether two URLs share scheme, host and port."""
    a, b = urlsplit(first), urlsplit(second)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
