"""The ``ecr`` block of a registry and ``rules_from_ecr``: parsing and checks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from replicator.aws.wiring import aws_target
from replicator.config import DEFAULT_ECR_SETTINGS, RepositorySettings, parse_config
from replicator.errors import ConfigError
from tests.aws.conftest import build_config

ACCOUNT = "111122223333"
ECR_URL = f"https://{ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/replicator-writer"


def config_with(registry: dict[str, Any]) -> Any:
    """Return a config whose destination registry ``ecr`` is registry."""
    return build_config(
        {
            "source": "hub",
            "registries": {"hub": {"url": "https://hub.example.com"}, "ecr": registry},
        }
    )


def test_derives_the_registry_url_from_account_and_region() -> None:
    registry = config_with({"registry_id": ACCOUNT, "region": "us-west-2"}).registries[
        "ecr"
    ]

    assert registry.base_url == ECR_URL
    assert registry.host == f"{ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com"
    assert registry.ecr_identity == (ACCOUNT, "us-west-2")
    assert registry.ecr_settings == DEFAULT_ECR_SETTINGS


def test_derives_the_china_partition_url() -> None:
    registry = config_with({"registry_id": ACCOUNT, "region": "cn-north-1"}).registries[
        "ecr"
    ]

    assert registry.base_url == (
        f"https://{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn"
    )


@pytest.mark.parametrize(
    ("registry", "is_ecr"),
    [
        ({"url": ECR_URL}, True),
        ({"registry_id": ACCOUNT, "region": "us-west-2"}, True),
        ({"url": "https://mirror.example.com", "ecr": {}, "region": "us-west-2",
          "registry_id": ACCOUNT}, True),
        # ECR identity only to name ECR-shaped destinations: a plain registry.
        ({"url": "https://mirror.example.com", "registry_id": ACCOUNT,
          "region": "us-west-2"}, False),
        # Credentials given: the operator logs in the plain way.
        ({"url": ECR_URL, "credentials": {"token_env": "ECR_TOKEN"}}, False),
    ],
)  # fmt: skip
def test_knows_which_registries_are_ecr(registry: dict[str, Any], is_ecr: bool) -> None:
    document = {
        "source": "hub",
        "registries": {"hub": {"url": "https://hub.example.com"}, "ecr": registry},
    }
    config = build_config(document, environ={"ECR_TOKEN": "token"})

    assert (config.registries["ecr"].ecr_settings is not None) == is_ecr


def test_reads_the_whole_ecr_block() -> None:
    config = config_with(
        {
            "url": ECR_URL,
            "insecure": True,
            "ecr": {
                "endpoint_url": {
                    "ecr": "http://127.0.0.1:5000",
                    "sts": "http://127.0.0.1:5000/",
                },
                "data_plane_url": "http://127.0.0.1:5001",
                "assume_role_arn": ROLE,
                "external_id": "partner-7f3a",
                "session_name": "replicator-eu",
                "create_repositories": False,
                "repository_settings": {
                    "image_tag_mutability": "IMMUTABLE",
                    "encryption_type": "KMS",
                    "kms_key": "alias/ecr",
                    "scan_on_push": True,
                    "tags": {"team": "platform"},
                },
                "put_image_rate_per_s": 2.5,
            },
        }
    )
    registry = config.registries["ecr"]
    settings = registry.ecr_settings
    assert settings is not None

    assert registry.base_url == "http://127.0.0.1:5001"
    assert registry.ecr_identity == (ACCOUNT, "us-west-2")
    assert settings.create_repositories is False
    assert settings.put_image_rate_per_s == 2.5
    assert settings.repository_settings == RepositorySettings(
        image_tag_mutability="IMMUTABLE",
        encryption_type="KMS",
        kms_key="alias/ecr",
        scan_on_push=True,
        tags={"team": "platform"},
    )
    target = aws_target("ecr", registry)
    assert (target.region, target.ecr_endpoint_url, target.sts_endpoint_url) == (
        "us-west-2",
        "http://127.0.0.1:5000",
        "http://127.0.0.1:5000",
    )
    assert target.role is not None
    assert (target.role.role_arn, target.role.external_id) == (ROLE, "partner-7f3a")
    assert target.role.session_name == "replicator-eu"


def test_defaults_match_ecr() -> None:
    settings = DEFAULT_ECR_SETTINGS

    assert settings.create_repositories is True
    assert settings.put_image_rate_per_s == 10.0
    assert settings.session_name == "replicator"
    assert settings.repository_settings == RepositorySettings(
        image_tag_mutability="MUTABLE",
        encryption_type="AES256",
        kms_key=None,
        scan_on_push=False,
        tags={},
    )


@pytest.mark.parametrize(
    ("registry", "key_path", "phrase"),
    [
        ({}, "registries.ecr.url", "an Amazon ECR registry may give registry_id"),
        (
            {"url": "https://mirror.example.com", "ecr": {}},
            "registries.ecr.ecr",
            "an ECR registry needs registry_id and region",
        ),
        (
            {"url": ECR_URL, "ecr": {}, "credentials": {"token_env": "T"}},
            "registries.ecr.credentials",
            "ECR registries log in with GetAuthorizationToken",
        ),
        (
            {"url": ECR_URL, "ecr": {"data_plane_url": "http://127.0.0.1:5001"}},
            "registries.ecr.ecr.data_plane_url",
            "plain http:// needs insecure: true",
        ),
        (
            {"url": ECR_URL, "ecr": {"endpoint_url": {"sts": "http://127.0.0.1:1"}}},
            "registries.ecr.ecr.endpoint_url.sts",
            "plain http:// needs insecure: true",
        ),
        (
            {"url": ECR_URL, "ecr": {"assume_role_arn": "arn:aws:iam::1:role/x"}},
            "registries.ecr.ecr.assume_role_arn",
            "must be an IAM role ARN",
        ),
        (
            {"url": ECR_URL, "ecr": {"external_id": "abc"}},
            "registries.ecr.ecr",
            "external_id needs assume_role_arn",
        ),
        (
            {"url": ECR_URL, "ecr": {"assume_role_arn": ROLE, "session_name": "a b"}},
            "registries.ecr.ecr.session_name",
            "2 to 64 characters",
        ),
        (
            {"url": ECR_URL, "ecr": {"repository_settings": {"kms_key": "k"}}},
            "registries.ecr.ecr.repository_settings",
            "kms_key needs encryption_type: KMS",
        ),
        (
            {
                "url": ECR_URL,
                "ecr": {"repository_settings": {"image_tag_mutability": "FROZEN"}},
            },
            "registries.ecr.ecr.repository_settings.image_tag_mutability",
            "'MUTABLE' or 'IMMUTABLE'",
        ),
        (
            {
                "url": ECR_URL,
                "ecr": {
                    "repository_settings": {"tags": {f"k{n}": "v" for n in range(51)}}
                },
            },
            "registries.ecr.ecr.repository_settings",
            "at most 50 tags",
        ),
        (
            {"url": ECR_URL, "ecr": {"put_image_rate_per_s": 0}},
            "registries.ecr.ecr.put_image_rate_per_s",
            "greater than 0",
        ),
        (
            {"url": ECR_URL, "ecr": {"create_repository": True}},
            "registries.ecr.ecr.create_repository",
            "allowed keys: endpoint_url, data_plane_url, assume_role_arn",
        ),
    ],
)
def test_reports_bad_ecr_settings_at_key_path(
    registry: dict[str, Any], key_path: str, phrase: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_with(registry)

    assert (caught.value.key_path, phrase in caught.value.message) == (
        key_path,
        True,
    ), caught.value.message


def test_the_documented_configuration_is_valid() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Replicating Amazon ECR", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)

    config = parse_config(
        yaml.safe_load(block), "README.md", environ={"MIRROR_PASSWORD": "secret"}
    )

    assert [rule.name for rule in config.rules] == [
        "prod-everywhere",
        "releases-to-mirror",
    ]
    dr = config.registries["ecr-dr"]
    assert dr.base_url == "https://444455556666.dkr.ecr.eu-west-1.amazonaws.com"
    assert aws_target("ecr-dr", dr).role is not None
