"""AWS access per registry: clients against moto, assumed roles, error translation."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from replicator.aws.session import (
    MIN_REUSE_S,
    ROLE_REFRESH_MARGIN_S,
    AssumeRole,
    AwsSession,
    AwsTarget,
    aws_error,
    renewal_time,
)
from replicator.errors import (
    AuthenticationError,
    NotFoundError,
    RegistryError,
    TransportError,
)
from tests.aws.conftest import PARTNER_ACCOUNT, PARTNER_ROLE, SOURCE_ACCOUNT, moto_state
from tests.lab.moto import MotoServer
from tests.lab.registry import find_free_port


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now_s: float) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


@pytest.mark.parametrize(
    ("now_s", "expires_at_s", "margin_s", "expected"),
    [
        (0.0, 12 * 3600.0, 3600.0, 11 * 3600.0),  # a fresh ECR token
        (0.0, 3600.0, 900.0, 2700.0),  # an hour-long role session
        (0.0, 1000.0, 3600.0, 500.0),  # shorter than twice the margin: halfway
        (100.0, 50.0, 3600.0, 100.0 + MIN_REUSE_S),  # already expired
    ],
)
def test_renews_before_expiry(
    now_s: float, expires_at_s: float, margin_s: float, expected: float
) -> None:
    assert renewal_time(now_s, expires_at_s, margin_s) == expected


async def test_calls_aws_as_the_default_chain_in_the_registry_region(
    moto: MotoServer, aws: AwsSession
) -> None:
    api = aws.api(AwsTarget("eu-west-1", moto.url, moto.url), "west")

    identity = await api.call("sts", "get_caller_identity")
    repository = await api.call("ecr", "create_repository", repositoryName="team/app")

    assert identity["Account"] == SOURCE_ACCOUNT
    assert repository["repository"]["repositoryArn"] == (
        f"arn:aws:ecr:eu-west-1:{SOURCE_ACCOUNT}:repository/team/app"
    )


async def test_assumes_a_role_with_external_id_and_session_name(
    moto: MotoServer, aws: AwsSession
) -> None:
    role = AssumeRole(PARTNER_ROLE, "replicator-lab", external_id="shared-secret-id")
    api = aws.api(AwsTarget("ap-southeast-2", moto.url, moto.url, role), "partner")

    identity = await api.call("sts", "get_caller_identity")

    assert identity["Account"] == PARTNER_ACCOUNT
    assert identity["Arn"].endswith(":assumed-role/replicator-writer/replicator-lab")
    [assumed] = moto_state(moto)["sts"]["AssumedRole"]
    assert (assumed["role_arn"], assumed["external_id"], assumed["session_name"]) == (
        PARTNER_ROLE,
        "shared-secret-id",
        "replicator-lab",
    )


async def test_assumes_the_role_again_only_when_renewal_is_due(
    moto: MotoServer,
) -> None:
    # moto's AssumeRole sessions last an hour from the real time of the call.
    started_s = time.time()
    clock = FakeClock(started_s)
    aws = AwsSession(clock=clock)
    role = AssumeRole(PARTNER_ROLE, "replicator-lab")
    api = aws.api(AwsTarget("eu-west-1", moto.url, moto.url, role), "partner")
    await api.call("sts", "get_caller_identity")
    clock.now_s = started_s + 3600 - ROLE_REFRESH_MARGIN_S - 60
    await api.call("sts", "get_caller_identity")
    assert len(moto_state(moto)["sts"]["AssumedRole"]) == 1

    clock.now_s += 120
    await api.call("sts", "get_caller_identity")

    assert len(moto_state(moto)["sts"]["AssumedRole"]) == 2


async def test_reports_a_missing_repository_as_not_found(
    moto: MotoServer, aws: AwsSession
) -> None:
    api = aws.api(AwsTarget("eu-west-1", moto.url, moto.url), "west")

    with pytest.raises(NotFoundError) as caught:
        await api.call("ecr", "describe_repositories", repositoryNames=["nope/app"])

    assert caught.value.codes == ("RepositoryNotFoundException",)
    assert "registry=west" in str(caught.value)


async def test_reports_an_unreachable_endpoint_as_retryable(
    moto: MotoServer, aws: AwsSession
) -> None:
    closed = f"http://127.0.0.1:{find_free_port('127.0.0.1')}"
    api = aws.api(AwsTarget("eu-west-1", closed, closed), "west")

    with pytest.raises(TransportError) as caught:
        await api.call("ecr", "describe_registry")

    assert caught.value.retryable


async def test_reports_missing_credentials_clearly(
    moto: MotoServer, aws: AwsSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    api = aws.api(AwsTarget("eu-west-1", moto.url, moto.url), "west")

    with pytest.raises(AuthenticationError) as caught:
        await api.call("ecr", "describe_registry")

    assert "no usable AWS credentials" in str(caught.value)
    assert not caught.value.retryable


def client_error(code: str, status: int, message: str = "") -> ClientError:
    """Return the error botocore raises for an AWS error answer."""
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "CreateRepository")


@pytest.mark.parametrize(
    ("error", "expected_type", "retryable"),
    [
        (client_error("AccessDeniedException", 400), AuthenticationError, False),
        (client_error("403", 403), AuthenticationError, False),  # moto's IAM denial
        (client_error("ExpiredTokenException", 400), AuthenticationError, False),
        (client_error("RepositoryNotFoundException", 400), NotFoundError, False),
        (client_error("ThrottlingException", 400), RegistryError, True),
        (client_error("ServerException", 500), RegistryError, True),
        (client_error("LimitExceededException", 400), RegistryError, False),
        (NoCredentialsError(), AuthenticationError, False),
        (EndpointConnectionError(endpoint_url="https://x"), TransportError, True),
    ],
)
def test_translates_aws_failures(
    error: Exception, expected_type: type[RegistryError], retryable: bool
) -> None:
    translated = aws_error(error, operation="create_repository", registry="west")

    assert (type(translated), translated.retryable) == (expected_type, retryable)
    assert translated.context["operation"] == "create_repository"


def test_keeps_the_aws_code_and_message_in_the_error() -> None:
    error = client_error("AccessDeniedException", 400, "not authorized to create")

    translated = aws_error(error, operation="create_repository", registry="west")

    assert translated.codes == ("AccessDeniedException",)
    assert str(translated).startswith(
        "create_repository failed: AccessDeniedException: not authorized to create"
    )
