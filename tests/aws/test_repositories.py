"""Destination repositories: created on demand with the configured settings."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session

from replicator.aws.repositories import (
    EcrRepositoryHook,
    create_repository_params,
    list_repositories,
)
from replicator.aws.session import AwsApi, AwsSession, AwsTarget
from replicator.config import RepositorySettings
from replicator.errors import AuthenticationError, NotFoundError
from tests.aws.conftest import PARTNER_ACCOUNT, PARTNER_ROLE, SOURCE_ACCOUNT, api
from tests.lab.moto import MotoServer
from tests.support import client_for

KMS_KEY = f"arn:aws:kms:eu-west-1:{SOURCE_ACCOUNT}:key/1234abcd-12ab-34cd-56ef"
SETTINGS = RepositorySettings(
    image_tag_mutability="IMMUTABLE",
    encryption_type="KMS",
    kms_key=KMS_KEY,
    scan_on_push=True,
    tags={"team": "platform", "copied-by": "replicator"},
)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            RepositorySettings(),
            {
                "registryId": SOURCE_ACCOUNT,
                "repositoryName": "prod/app",
                "imageTagMutability": "MUTABLE",
                "imageScanningConfiguration": {"scanOnPush": False},
                "encryptionConfiguration": {"encryptionType": "AES256"},
            },
        ),
        (
            SETTINGS,
            {
                "registryId": SOURCE_ACCOUNT,
                "repositoryName": "prod/app",
                "imageTagMutability": "IMMUTABLE",
                "imageScanningConfiguration": {"scanOnPush": True},
                "encryptionConfiguration": {"encryptionType": "KMS", "kmsKey": KMS_KEY},
                "tags": [
                    {"Key": "copied-by", "Value": "replicator"},
                    {"Key": "team", "Value": "platform"},
                ],
            },
        ),
    ],
)
def test_builds_create_repository_parameters(
    settings: RepositorySettings, expected: dict[str, Any]
) -> None:
    assert create_repository_params(SOURCE_ACCOUNT, "prod/app", settings) == expected


async def describe(api: AwsApi, repository: str) -> dict[str, Any]:
    """Return DescribeRepositories' entry for repository, with its tags."""
    answer = await api.call(
        "ecr", "describe_repositories", repositoryNames=[repository]
    )
    [found] = answer["repositories"]
    tags = await api.call(
        "ecr", "list_tags_for_resource", resourceArn=found["repositoryArn"]
    )
    return {**found, "tags": tags["tags"]}


async def test_creates_the_repository_with_the_configured_settings(
    moto: MotoServer, aws: AwsSession, session: aiohttp.ClientSession
) -> None:
    west = api(aws, moto, "eu-west-1")
    hook = EcrRepositoryHook(west, SOURCE_ACCOUNT, SETTINGS)

    await hook.prepare(client_for(session, moto.url, name="west"), "prod/app")

    found = await describe(west, "prod/app")
    assert found["imageTagMutability"] == "IMMUTABLE"
    assert found["imageScanningConfiguration"] == {"scanOnPush": True}
    assert found["encryptionConfiguration"] == {
        "encryptionType": "KMS",
        "kmsKey": KMS_KEY,
    }
    assert sorted(found["tags"], key=lambda tag: tag["Key"]) == [
        {"Key": "copied-by", "Value": "replicator"},
        {"Key": "team", "Value": "platform"},
    ]


async def test_creates_in_another_account_through_its_role(
    moto: MotoServer, aws: AwsSession, session: aiohttp.ClientSession
) -> None:
    partner = api(aws, moto, "ap-southeast-2", role=PARTNER_ROLE)
    hook = EcrRepositoryHook(partner, PARTNER_ACCOUNT, RepositorySettings())

    await hook.prepare(client_for(session, moto.url, name="partner"), "prod/app")

    found = await describe(partner, "prod/app")
    assert found["registryId"] == PARTNER_ACCOUNT
    assert found["repositoryArn"].startswith(
        f"arn:aws:ecr:ap-southeast-2:{PARTNER_ACCOUNT}:"
    )


async def test_leaves_an_existing_repository_as_it_is(
    moto: MotoServer, aws: AwsSession, session: aiohttp.ClientSession
) -> None:
    west = api(aws, moto, "eu-west-1")
    await west.call("ecr", "create_repository", repositoryName="prod/app")
    hook = EcrRepositoryHook(west, SOURCE_ACCOUNT, SETTINGS)

    await hook.prepare(client_for(session, moto.url, name="west"), "prod/app")

    assert (await describe(west, "prod/app"))["imageTagMutability"] == "MUTABLE"


async def test_refuses_a_missing_repository_when_creation_is_disabled(
    moto: MotoServer, aws: AwsSession, session: aiohttp.ClientSession
) -> None:
    west = api(aws, moto, "eu-west-1")
    hook = EcrRepositoryHook(west, SOURCE_ACCOUNT, SETTINGS, create_repositories=False)

    with pytest.raises(NotFoundError) as caught:
        await hook.prepare(client_for(session, moto.url, name="west"), "prod/app")

    assert str(caught.value) == (
        "destination repository does not exist and ecr.create_repositories is "
        "false: create it, or set create_repositories: true "
        "(operation=repository_prepare, registry=west, repository=prod/app)"
    )
    assert not await hook.exists("prod/app")


async def test_uses_an_existing_repository_when_creation_is_disabled(
    moto: MotoServer, aws: AwsSession, session: aiohttp.ClientSession
) -> None:
    west = api(aws, moto, "eu-west-1")
    await west.call("ecr", "create_repository", repositoryName="prod/app")
    hook = EcrRepositoryHook(west, SOURCE_ACCOUNT, SETTINGS, create_repositories=False)

    await hook.prepare(client_for(session, moto.url, name="west"), "prod/app")


async def test_says_what_to_grant_when_creation_is_denied(
    iam_moto: MotoServer,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = await access_key_allowing(iam_moto, ["ecr:DescribeRepositories"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    west = AwsSession().api(AwsTarget("eu-west-1", iam_moto.url), "west")
    hook = EcrRepositoryHook(west, SOURCE_ACCOUNT, RepositorySettings())

    with pytest.raises(AuthenticationError) as caught:
        await hook.prepare(client_for(session, iam_moto.url, name="west"), "prod/app")

    message = str(caught.value)
    assert "CreateRepository was denied" in message
    assert "not authorized to perform: ecr:CreateRepository" in message
    assert "allow ecr:CreateRepository" in message


async def access_key_allowing(moto: MotoServer, actions: list[str]) -> dict[str, str]:
    """Create a user allowed only actions; return its access key (3 IAM calls)."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    }
    async with get_session().create_client(
        "iam", region_name="us-east-1", endpoint_url=moto.url
    ) as iam:
        await iam.create_user(UserName="pusher")
        await iam.put_user_policy(
            UserName="pusher", PolicyName="push", PolicyDocument=json.dumps(policy)
        )
        answer = await iam.create_access_key(UserName="pusher")
    key: dict[str, str] = answer["AccessKey"]
    return key


async def test_lists_every_repository(moto: MotoServer, aws: AwsSession) -> None:
    west = api(aws, moto, "eu-west-1")
    names = [f"team/app-{number:02}" for number in range(5)]
    for name in names:
        await west.call("ecr", "create_repository", repositoryName=name)

    listed = [name async for name in list_repositories(west, SOURCE_ACCOUNT)]

    assert sorted(listed) == names
