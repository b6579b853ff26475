"""The AWS deployment files: least-privilege IAM policies and the event queue stack."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "aws"
TEMPLATE = DEPLOY / "ecr-events-queue.yaml"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
# Actions whose only resource is "*" (the IAM service authorization reference).
UNSCOPED_ACTIONS = frozenset({"ecr:GetAuthorizationToken", "ecr:DescribeRegistry"})


def policy(name: str) -> dict[str, Any]:
    """Return a policy document of deploy/aws by file name."""
    document: dict[str, Any] = json.loads((DEPLOY / name).read_text())
    return document


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Return a policy's statements, each with Action as a list."""
    found = []
    for statement in document["Statement"]:
        action = statement["Action"]
        found.append(
            {**statement, "Action": [action] if isinstance(action, str) else action}
        )
    return found


def allowed_actions(document: dict[str, Any]) -> set[str]:
    """Return every action a policy allows."""
    return {
        action
        for statement in statements(document)
        if statement["Effect"] == "Allow"
        for action in statement["Action"]
    }


POLICIES = {
    "source-read-policy.json": {
        # Log in, read rules (rules_from_ecr), list (backfill, verify), pull.
        "ecr:GetAuthorizationToken",
        "ecr:DescribeRegistry",
        "ecr:DescribeRepositories",
        "ecr:ListImages",
        "ecr:BatchGetImage",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
    },
    "destination-write-policy.json": {
        "ecr:GetAuthorizationToken",
        "ecr:DescribeRepositories",
        "ecr:CreateRepository",
        "ecr:TagResource",
        "ecr:BatchGetImage",
        "ecr:BatchCheckLayerAvailability",
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
        "ecr:PutImage",
        "ecr:BatchDeleteImage",
        "kms:CreateGrant",
        "kms:DescribeKey",
    },
    "sqs-consume-policy.json": {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
    },
    "assume-destination-role-policy.json": {"sts:AssumeRole"},
    "destination-role-trust-policy.json": {"sts:AssumeRole"},
    "destination-registry-policy.json": {"ecr:CreateRepository", "ecr:ReplicateImage"},
}


@pytest.mark.parametrize(("name", "needed"), sorted(POLICIES.items()))
def test_policy_allows_what_replicator_calls(name: str, needed: set[str]) -> None:
    document = policy(name)

    assert document["Version"] == "2012-10-17"
    assert needed <= allowed_actions(document)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_grants_no_wildcard_actions(name: str) -> None:
    assert not [action for action in allowed_actions(policy(name)) if "*" in action]


@pytest.mark.parametrize(
    "name",
    [
        "source-read-policy.json",
        "destination-write-policy.json",
        "sqs-consume-policy.json",
        "assume-destination-role-policy.json",
    ],
)
def test_identity_policy_scopes_resources(name: str) -> None:
    for statement in statements(policy(name)):
        if statement["Resource"] == "*":
            assert set(statement["Action"]) <= UNSCOPED_ACTIONS, statement["Sid"]


def test_source_policy_cannot_write() -> None:
    writes = {"ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:CreateRepository"}

    assert not writes & allowed_actions(policy("source-read-policy.json"))


def test_kms_grants_only_through_ecr() -> None:
    [kms] = [
        s
        for s in statements(policy("destination-write-policy.json"))
        if s["Action"][0].startswith("kms:")
    ]

    assert kms["Condition"]["StringEquals"]["kms:ViaService"].startswith("ecr.")


def test_destination_role_requires_the_external_id() -> None:
    [trust] = statements(policy("destination-role-trust-policy.json"))

    assert trust["Principal"]["AWS"].endswith(":role/replicator")
    assert trust["Condition"]["StringEquals"]["sts:ExternalId"]


def template() -> dict[str, Any]:
    """Return the CloudFormation template, written with long-form functions."""
    document: dict[str, Any] = yaml.safe_load(TEMPLATE.read_text())
    return document


def test_template_passes_cfn_lint() -> None:
    if not CFN_LINT.exists() and shutil.which("cfn-lint") is None:
        pytest.fail("cfn-lint is not installed in the test environment")
    command = str(CFN_LINT) if CFN_LINT.exists() else "cfn-lint"

    result = subprocess.run(
        [command, str(TEMPLATE)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_sends_ecr_image_actions_to_the_queue() -> None:
    resources = template()["Resources"]
    rule = resources["EcrImageActionRule"]["Properties"]

    assert rule["EventPattern"] == {
        "source": ["aws.ecr"],
        "detail-type": ["ECR Image Action"],
        "detail": {"action-type": ["PUSH", "DELETE"], "result": ["SUCCESS"]},
    }
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["EventQueue", "Arn"]}


def test_queue_redrives_to_a_dead_letter_queue() -> None:
    queue = template()["Resources"]["EventQueue"]["Properties"]

    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["DeadLetterQueue", "Arn"]
    }
    assert queue["ReceiveMessageWaitTimeSeconds"] == 20


def test_queue_policy_lets_only_the_rule_send() -> None:
    document = template()["Resources"]["EventQueuePolicy"]["Properties"]
    [statement] = document["PolicyDocument"]["Statement"]

    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::GetAtt": ["EcrImageActionRule", "Arn"]
    }
