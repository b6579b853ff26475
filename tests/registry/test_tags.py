"""Catalog and tag listings, following ``Link`` pagination across pages."""

from __future__ import annotations

import json

import aiohttp
import pytest

from replicator.registry import tags
from tests.lab.fixtures import AuthenticatedRegistry, FaultProxyFactory
from tests.lab.images import sample_image
from tests.lab.proxy import Respond
from tests.lab.pusher import LabClient
from tests.lab.registry import RegistryProcess
from tests.support import client_for

REPOSITORIES = ["team/a", "team/b", "team/c", "team/d", "team/e"]


def _tags_page(names: list[str], link: str | None) -> Respond:
    headers = {"Content-Type": "application/json"}
    if link is not None:
        headers["Link"] = f'<{link}>; rel="next"'
    body = json.dumps({"name": "team/app", "tags": names}).encode()
    return Respond(200, headers, body)


async def test_lists_a_catalog_longer_than_one_page(
    registry: RegistryProcess,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tags, "PAGE_SIZE", 2)
    lab = LabClient(registry.url)
    for repository in REPOSITORIES:
        lab.push_image(repository, "1", sample_image(repository))
    proxy = fault_proxy_factory(registry)
    client = client_for(session, proxy.url)

    listed = [name async for name in tags.list_repositories(client)]

    assert listed == REPOSITORIES
    assert [record.query for record in proxy.requests] == [
        "n=2",
        "last=team/b&n=2",
        "last=team/d&n=2",
    ]


async def test_lists_the_catalog_of_a_token_registry(
    token_registry: AuthenticatedRegistry,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tags, "PAGE_SIZE", 2)
    lab = LabClient(token_registry.url, credentials=token_registry.credentials)
    for repository in REPOSITORIES:
        lab.push_image(repository, "1", sample_image(repository))
    client = client_for(session, token_registry.url, token_registry.credentials)

    listed = [name async for name in tags.list_repositories(client)]

    assert listed == REPOSITORIES
    assert token_registry.token_server is not None
    catalog_requests = [
        request
        for request in token_registry.token_server.requests
        if "registry:catalog:*" in request.scopes
    ]
    assert len(catalog_requests) == 1


async def test_follows_relative_and_absolute_tag_page_links(
    registry: RegistryProcess,
    fault_proxy_factory: FaultProxyFactory,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # distribution 2.8 answers tags/list in one page whatever ``n`` says, so the
    # proxy serves the pages a paginating registry (ECR, Harbor) would.
    monkeypatch.setattr(tags, "PAGE_SIZE", 2)
    proxy = fault_proxy_factory(registry)
    pages = [
        _tags_page(["1.0", "1.1"], "/v2/team/app/tags/list?n=2&last=1.1"),
        _tags_page(["2.0", "2.1"], f"{proxy.url}/v2/team/app/tags/list?n=2&last=2.1"),
        _tags_page(["3.0"], None),
    ]
    for page in pages:
        proxy.add_fault(page, method="GET", path="/tags/list$")
    client = client_for(session, proxy.url)

    listed = [tag async for tag in tags.list_tags(client, "team/app")]

    assert listed == ["1.0", "1.1", "2.0", "2.1", "3.0"]
    assert [record.query for record in proxy.requests] == [
        "n=2",
        "n=2&last=1.1",
        "n=2&last=2.1",
    ]


async def test_lists_every_tag_of_a_real_registry(
    registry: RegistryProcess, session: aiohttp.ClientSession
) -> None:
    lab = LabClient(registry.url)
    image = sample_image("tagged")
    expected = [f"v{number}" for number in range(7)]
    for tag in expected:
        lab.push_image("team/app", tag, image)
    client = client_for(session, registry.url)

    listed = [tag async for tag in tags.list_tags(client, "team/app")]

    assert sorted(listed) == expected


async def test_a_missing_repository_has_no_tags(
    registry: RegistryProcess, session: aiohttp.ClientSession
) -> None:
    client = client_for(session, registry.url)

    listed = [tag async for tag in tags.list_tags(client, "team/gone")]

    assert listed == []
