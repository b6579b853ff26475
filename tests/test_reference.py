from __future__ import annotations

import pytest

from replicator.errors import InvalidInputError
from replicator.reference import (
    ImageReference,
    is_referrers_tag,
    parse_image_reference,
    referrers_tag,
    validate_digest,
    validate_repository,
    validate_tag,
)

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5000/app", ImageReference("127.0.0.1:5000", "app")),
        ("127.0.0.1:5000/app:1.0", ImageReference("127.0.0.1:5000", "app", "1.0")),
        (
            "localhost/team/app/sidecar:v2",
            ImageReference("localhost", "team/app/sidecar", "v2"),
        ),
        (
            f"registry.example.com/app@{DIGEST}",
            ImageReference("registry.example.com", "app", None, DIGEST),
        ),
        (
            f"127.0.0.1:5000/app:1.0@{DIGEST}",
            ImageReference("127.0.0.1:5000", "app", "1.0", DIGEST),
        ),
    ],
)
def test_parses_image_references(text: str, expected: ImageReference) -> None:
    assert parse_image_reference(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "app:1.0",
        "team/app:1.0",
        "127.0.0.1:5000/App:1.0",
        "127.0.0.1:5000/app:-bad",
        "127.0.0.1:5000/app@sha256:short",
        "127.0.0.1:5000/../etc:1",
    ],
)
def test_rejects_malformed_references(text: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_image_reference(text)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("app", True),
        ("team/app-1/side_car", True),
        ("a" * 255, True),
        ("a" * 256, False),
        ("Team/app", False),
        ("team//app", False),
        ("team/app/", False),
        ("team/%2e%2e", False),
        ("", False),
    ],
)
def test_validates_repository_names(name: str, valid: bool) -> None:
    if valid:
        assert validate_repository(name) == name
    else:
        with pytest.raises(InvalidInputError):
            validate_repository(name)


@pytest.mark.parametrize(
    ("tag", "valid"),
    [("latest", True), ("v1.2.3_rc-1", True), ("x" * 128, True), ("x" * 129, False)],
)
def test_validates_tags(tag: str, valid: bool) -> None:
    if valid:
        assert validate_tag(tag) == tag
    else:
        with pytest.raises(InvalidInputError):
            validate_tag(tag)


@pytest.mark.parametrize(
    "digest", ["sha256:" + "A" * 64, "md5:abc", "sha256:" + "a" * 63, DIGEST + "\n"]
)
def test_rejects_malformed_digests(digest: str) -> None:
    with pytest.raises(InvalidInputError):
        validate_digest(digest)


def test_names_the_referrers_fallback_tag() -> None:
    tag = referrers_tag(DIGEST)

    assert tag == "sha256-" + "a" * 64
    assert is_referrers_tag(tag)
    assert not is_referrers_tag("sha256-abc")
