from __future__ import annotations

import pytest

from replicator.registry.auth import (
    Challenge,
    Credentials,
    TokenCache,
    basic_header,
    parse_challenge,
    token_from_response,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('Basic realm="Registry Realm"', Challenge("basic", "Registry Realm")),
        (
            'Bearer realm="http://127.0.0.1:9/token",service="registry",'
            'scope="repository:team/app:pull,push"',
            Challenge(
                "bearer",
                "http://127.0.0.1:9/token",
                "registry",
                "repository:team/app:pull,push",
            ),
        ),
        (
            "Bearer realm=http://t/token, service=reg",
            Challenge("bearer", "http://t/token", "reg"),
        ),
    ],
)
def test_parses_challenges(header: str, expected: Challenge) -> None:
    assert parse_challenge(header) == expected


def test_encodes_basic_credentials() -> None:
    header = basic_header(Credentials("alice", "s3cret"))

    assert header == "Basic YWxpY2U6czNjcmV0"


def test_never_shows_secrets_in_repr() -> None:
    text = repr(Credentials("alice", "s3cret", "t0ken"))

    assert "s3cret" not in text
    assert "t0ken" not in text


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"token": "abc", "expires_in": 300}, ("abc", 300.0)),
        ({"access_token": "abc"}, ("abc", 60.0)),
    ],
)
def test_reads_token_answers(document: object, expected: tuple[str, float]) -> None:
    assert token_from_response(document) == expected


@pytest.mark.parametrize("document", [[], {}, {"token": ""}])
def test_rejects_unusable_token_answers(document: object) -> None:
    with pytest.raises(ValueError, match="token"):
        token_from_response(document)


def test_expires_tokens_before_their_lifetime_ends() -> None:
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    scopes = frozenset({"repository:app:pull"})
    cache.put(scopes, "abc", 300.0)

    now[0] += 269.0
    assert cache.get(scopes) == "abc"
    now[0] += 2.0
    assert cache.get(scopes) is None


def test_keys_tokens_by_exact_scope_set() -> None:
    cache = TokenCache()
    cache.put(frozenset({"repository:app:pull"}), "pull-only", 300.0)

    assert cache.get(frozenset({"repository:app:pull,push"})) is None
