from __future__ import annotations

import pytest

from replicator.registry.tags import next_link
from replicator.registry.urls import redact_url, resolve_location, same_origin


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://bucket.s3.example/blob?X-Amz-Signature=abc&X-Amz-Credential=k",
            "https://bucket.s3.example/blob?X-Amz-Signature=REDACTED"
            "&X-Amz-Credential=REDACTED",
        ),
        (
            "https://user:pw@reg.example:5000/v2/app/blobs/uploads/1?_state=xyz&digest=sha256:ab",
            "https://reg.example:5000/v2/app/blobs/uploads/1?_state=REDACTED"
            "&digest=sha256:ab",
        ),
        ("http://127.0.0.1:5000/v2/", "http://127.0.0.1:5000/v2/"),
    ],
)
def test_redacts_secrets_from_urls(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/v2/app/blobs/uploads/u1", "http://reg:5000/v2/app/blobs/uploads/u1"),
        ("http://other:1/x", "http://other:1/x"),
    ],
)
def test_resolves_relative_locations(location: str, expected: str) -> None:
    request_url = "http://reg:5000/v2/app/blobs/uploads/"

    assert resolve_location(request_url, location) == expected


def test_compares_origins() -> None:
    assert same_origin("http://reg:5000/a", "http://reg:5000/b?x=1")
    assert not same_origin("http://reg:5000/a", "http://127.0.0.2:5000/a")
    assert not same_origin("http://reg:5000/a", "https://reg:5000/a")
    assert same_origin("https://reg.example/v2/", "https://REG.example:443/v2/a")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('</v2/_catalog?last=b&n=2>; rel="next"', "/v2/_catalog?last=b&n=2"),
        (
            "<http://r/v2/app/tags/list?n=1&last=a>; rel=next",
            "http://r/v2/app/tags/list?n=1&last=a",
        ),
        (None, None),
        ('</x>; rel="prev"', None),
    ],
)
def test_reads_next_links(header: str | None, expected: str | None) -> None:
    assert next_link(header) == expected
