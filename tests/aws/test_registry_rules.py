"""Rules read from DescribeRegistry: ECR's limits, and matching as YAML rules do."""

from __future__ import annotations

from typing import Any

import pytest

from replicator.aws.registry_rules import (
    MAX_FILTERS_PER_RULE,
    MAX_RULES,
    MAX_UNIQUE_DESTINATIONS,
    registry_rules,
)
from replicator.aws.session import AwsSession
from replicator.aws.wiring import apply_rules_from_ecr
from replicator.config import Config
from replicator.errors import ConfigError
from replicator.rules import compile_rules
from tests.aws.conftest import (
    PARTNER_ACCOUNT,
    SOURCE_ACCOUNT,
    api,
    build_config,
    ecr_entry,
)
from tests.lab.moto import MotoServer

ORIGIN = "DescribeRegistry of registry source"
PROD_RULE = {
    "destinations": [
        {"region": "eu-west-1", "registryId": SOURCE_ACCOUNT},
        {"region": "ap-southeast-2", "registryId": PARTNER_ACCOUNT},
    ],
    "repositoryFilters": [
        {"filter": "prod/", "filterType": "PREFIX_MATCH"},
        {"filter": "base", "filterType": "PREFIX_MATCH"},
    ],
}


def rule(destinations: int = 1, filters: int = 0, first: int = 0) -> dict[str, Any]:
    """Return an ECR rule with that many distinct destinations and filters."""
    return {
        "destinations": [
            {"region": "eu-west-1", "registryId": f"{first + number:012}"}
            for number in range(destinations)
        ],
        "repositoryFilters": [
            {"filter": f"team-{number}/", "filterType": "PREFIX_MATCH"}
            for number in range(filters)
        ],
    }


def test_turns_ecr_rules_into_named_config_rules() -> None:
    [parsed] = registry_rules({"rules": [PROD_RULE]}, ORIGIN)

    assert parsed.name == "ecr-rule-0"
    assert [d.ecr_identity for d in parsed.destinations] == [
        (SOURCE_ACCOUNT, "eu-west-1"),
        (PARTNER_ACCOUNT, "ap-southeast-2"),
    ]
    assert [f.filter for f in parsed.repository_filters] == ["prod/", "base"]


def test_accepts_ecr_at_its_limits() -> None:
    rules = [rule(destinations=5, filters=100, first=5 * n) for n in range(5)]
    rules += [rule(destinations=1) for _ in range(5)]

    assert len(registry_rules({"rules": rules}, ORIGIN)) == MAX_RULES


@pytest.mark.parametrize(
    ("rules", "key_path", "message"),
    [
        (
            [rule() for _ in range(MAX_RULES + 1)],
            "replicationConfiguration.rules",
            "has 11 rules; ECR allows at most 10 (rules in the config file have no "
            "such limit)",
        ),
        (
            [rule(destinations=13), rule(destinations=13, first=13)],
            "replicationConfiguration.rules",
            f"name 26 unique destinations; ECR allows at most "
            f"{MAX_UNIQUE_DESTINATIONS} across all rules",
        ),
        (
            [rule(), rule(filters=MAX_FILTERS_PER_RULE + 1)],
            "replicationConfiguration.rules[1].repositoryFilters",
            "has 101 filters; ECR allows at most 100 per rule",
        ),
        (
            [{"destinations": [{"region": "eu-west-1"}]}],
            "replicationConfiguration.rules[0].destinations[0]",
            "both region and registryId",
        ),
        (
            [{**rule(), "repositoryFilters": [{"filter": "a", "filterType": "X"}]}],
            "replicationConfiguration.rules[0].repositoryFilters[0].filterType",
            "PREFIX_MATCH",
        ),
        (
            ["not a rule"],
            "replicationConfiguration.rules[0]",
            "must be a mapping of keys",
        ),
    ],
)
def test_reports_what_breaks_ecr_rules(
    rules: list[Any], key_path: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        registry_rules({"rules": rules}, ORIGIN)

    assert (caught.value.key_path, message in caught.value.message) == (
        key_path,
        True,
    ), caught.value.message
    assert caught.value.context["origin"] == ORIGIN


def test_counts_a_destination_named_by_several_rules_once() -> None:
    rules = [rule(destinations=25), rule(destinations=25)]

    assert len(registry_rules({"rules": rules}, ORIGIN)) == 2


def test_reports_every_limit_broken_at_once() -> None:
    rules = [rule(destinations=3, filters=101, first=3 * n) for n in range(11)]

    with pytest.raises(ConfigError) as caught:
        registry_rules({"rules": rules}, ORIGIN)

    assert caught.value.message.startswith("13 problems:")


def lab_document(moto: MotoServer) -> dict[str, Any]:
    """Return a config with an ECR source and its two ECR destinations."""
    return {
        "source": "source",
        "registries": {
            "source": ecr_entry(SOURCE_ACCOUNT, "us-east-1", moto.url),
            "west": ecr_entry(SOURCE_ACCOUNT, "eu-west-1", moto.url),
            "partner": ecr_entry(PARTNER_ACCOUNT, "ap-southeast-2", moto.url),
        },
    }


async def put_replication_configuration(
    moto: MotoServer, aws: AwsSession, rules: list[dict[str, Any]]
) -> None:
    """Store rules as the source registry's replication configuration in moto."""
    await api(aws, moto, "us-east-1").call(
        "ecr",
        "put_replication_configuration",
        replicationConfiguration={"rules": rules},
    )


REPOSITORIES = ["prod/api", "prod/web", "production", "base/python", "dev/tool"]


def targets(config: Config) -> dict[str, list[tuple[str, str]]]:
    """Return where each sample repository goes, ignoring rule names."""
    rules = compile_rules(config)
    return {
        repository: [
            (target.registry, target.repository)
            for target in rules.targets(repository, "1.0")
        ]
        for repository in REPOSITORIES
    }


async def test_rules_from_describe_registry_match_the_same_rules_in_yaml(
    moto: MotoServer, aws: AwsSession
) -> None:
    document = lab_document(moto)
    await put_replication_configuration(moto, aws, [PROD_RULE])
    in_yaml = build_config({**document, "rules": {"rules": [PROD_RULE]}})

    from_ecr = await apply_rules_from_ecr(
        build_config({**document, "rules_from_ecr": True}), aws
    )

    assert targets(from_ecr) == targets(in_yaml)
    assert targets(from_ecr)["prod/api"] == [
        ("west", "prod/api"),
        ("partner", "prod/api"),
    ]
    assert targets(from_ecr)["dev/tool"] == []
    described = compile_rules(from_ecr).describe()
    assert [{**rule, "name": "-"} for rule in described] == [
        {**rule, "name": "-"} for rule in compile_rules(in_yaml).describe()
    ]


async def test_puts_ecr_rules_ahead_of_the_file_rules(
    moto: MotoServer, aws: AwsSession
) -> None:
    document = lab_document(moto)
    await put_replication_configuration(moto, aws, [PROD_RULE])
    own_rule = {
        "name": "dev-to-west",
        "destinations": [{"registry": "west", "repositoryPrefix": "mirror/"}],
        "repositoryFilters": [{"filter": "dev/**", "filterType": "GLOB"}],
    }
    config = build_config({**document, "rules_from_ecr": True, "rules": [own_rule]})

    merged = await apply_rules_from_ecr(config, aws)

    assert [rule.name for rule in merged.rules] == ["ecr-rule-0", "dev-to-west"]
    assert targets(merged)["dev/tool"] == [("west", "mirror/dev/tool")]


async def test_reads_no_rules_from_a_registry_without_replication(
    moto: MotoServer, aws: AwsSession
) -> None:
    config = build_config({**lab_document(moto), "rules_from_ecr": True})

    assert (await apply_rules_from_ecr(config, aws)).rules == ()


async def test_names_the_registries_entry_an_ecr_destination_needs(
    moto: MotoServer, aws: AwsSession
) -> None:
    document = lab_document(moto)
    del document["registries"]["partner"]
    await put_replication_configuration(moto, aws, [PROD_RULE])
    config = build_config({**document, "rules_from_ecr": True})

    with pytest.raises(ConfigError) as caught:
        await apply_rules_from_ecr(config, aws)

    assert caught.value.key_path == "rules[0].destinations[1].registryId"
    assert 'registry_id: "222233334444" and region: ap-southeast-2' in str(caught.value)
    assert ORIGIN in str(caught.value)


def test_requires_an_ecr_source_for_rules_from_ecr() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(
            {
                "source": "hub",
                "registries": {"hub": {"url": "https://hub.example.com"}},
                "rules_from_ecr": True,
            }
        )

    assert (caught.value.key_path, caught.value.message) == (
        "rules_from_ecr",
        "needs an Amazon ECR source registry (an ecr block, or an ECR url)",
    )


async def test_leaves_the_rules_alone_without_rules_from_ecr(
    moto: MotoServer, aws: AwsSession
) -> None:
    config = build_config(lab_document(moto))

    assert await apply_rules_from_ecr(config, aws) is config
