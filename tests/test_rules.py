"""Tests for matching repositories and tags against replication rules."""

from __future__ import annotations

import json

import pytest
import yaml

from replicator.config import parse_config
from replicator.errors import ConfigError, InvalidInputError
from replicator.rules import (
    FilterType,
    RuleSet,
    Target,
    compile_filter,
    compile_rules,
    is_repository_name,
    repository_prefix_problem,
)

REFERRERS_TAG = "sha256-" + "ab" * 32

REGISTRIES = """
version: 1
source: hub
registries:
  hub: {url: "https://hub.example.com"}
  eu: {url: "https://eu.example.com"}
  us: {url: "https://us.example.com"}
  ecr: {url: "https://111122223333.dkr.ecr.us-west-2.amazonaws.com"}
"""

RULES = """
rules:
  - name: prod
    destinations:
      - {registry: eu}
      - {registry: us, repositoryPrefix: mirror/}
    repositoryFilters:
      - {filter: prod/, filterType: PREFIX_MATCH}
      - {filter: "team-*/svc", filterType: GLOB}
    repositoryExclusions:
      - {filter: prod/scratch, filterType: EXACT_MATCH}
    tagFilters:
      - {filter: 'v\\d+(\\.\\d+)*', filterType: REGEX}
      - {filter: latest, filterType: EXACT_MATCH}
    tagExclusions:
      - {filter: "*-rc*", filterType: GLOB}
  - name: everything-to-eu
    destinations: [{registry: eu}]
    repositoryFilters:
      - {filter: base, filterType: EXACT_MATCH}
      - {filter: prod/api, filterType: EXACT_MATCH}
    replicateDeletes: true
  - name: self-mirror
    destinations: [{registry: hub, repositoryPrefix: backup/}]
    repositoryFilters: [{filter: "**/tools/**", filterType: GLOB}]
    tagFilters: [{filter: keep, filterType: EXACT_MATCH}]
"""


def rule_set(rules: str = RULES) -> RuleSet:
    """Compile the test registries with these rules."""
    data = yaml.safe_load(REGISTRIES + rules)
    return compile_rules(parse_config(data, "test.yaml", environ={}))


@pytest.mark.parametrize(
    ("filter_type", "pattern", "name", "expected"),
    [
        ("PREFIX_MATCH", "prod", "production", True),
        ("PREFIX_MATCH", "prod", "prod/api", True),
        ("PREFIX_MATCH", "prod/", "prod", False),
        ("PREFIX_MATCH", "prod", "my-prod", False),
        ("EXACT_MATCH", "prod/api", "prod/api", True),
        ("EXACT_MATCH", "prod/api", "prod/api2", False),
        ("GLOB", "prod/*", "prod/api", True),
        ("GLOB", "prod/*", "prod/api/v1", False),
        ("GLOB", "prod/**", "prod/api/v1", True),
        ("GLOB", "prod/**", "prod", False),
        ("GLOB", "**/api", "api", True),
        ("GLOB", "**/api", "a/b/api", True),
        ("GLOB", "**/api", "a/bapi", False),
        ("GLOB", "a/**/z", "a/z", True),
        ("GLOB", "a/**/z", "a/b/c/z", True),
        ("GLOB", "*", "api", True),
        ("GLOB", "*", "a/b", False),
        ("GLOB", "api?", "api2", True),
        ("GLOB", "a?b", "a/b", False),
        ("GLOB", "v[0-9].*", "v1.2", True),
        ("GLOB", "v[0-9].*", "vx.2", False),
        ("GLOB", "v[!0-9]*", "vx", True),
        ("GLOB", "v[!0-9]*", "v1", False),
        ("GLOB", "v1.0", "v1x0", False),
        ("GLOB", "Latest", "latest", False),
        ("REGEX", "prod/.*", "prod/api", True),
        ("REGEX", "prod", "prod/api", False),
        ("REGEX", r"v\d+", "v12", True),
        ("REGEX", r"v\d+", "xv12", False),
        ("REGEX", "a|b", "a", True),
    ],
)
def test_filter_matches(
    filter_type: FilterType, pattern: str, name: str, expected: bool
) -> None:
    assert compile_filter(filter_type, pattern).matches(name) is expected


@pytest.mark.parametrize(
    ("filter_type", "pattern", "phrase"),
    [
        ("REGEX", "(", "missing ), unterminated subpattern at position 0"),
        ("REGEX", "a{2,1}", "min repeat greater than max repeat"),
        ("GLOB", "v[", "GLOB character classes"),
        ("GLOB", "v[a/b]", "GLOB character classes"),
        ("GLOB", "v[z-a]", "bad character range"),
    ],
)
def test_compile_filter_rejects_bad_patterns_at_key_path(
    filter_type: FilterType, pattern: str, phrase: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_filter(filter_type, pattern, "rules[0].tagFilters[2].filter")

    assert caught.value.key_path == "rules[0].tagFilters[2].filter"
    assert phrase in caught.value.message


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("library/ubuntu", True),
        ("a", True),
        ("a.b_c__d-e---f/g0", True),
        ("Library/ubuntu", False),
        ("a_", False),
        ("a___b", False),
        ("a//b", False),
        ("/a", False),
        ("a/", False),
        ("", False),
        ("a" * 255, True),
        ("a" * 256, False),
    ],
)
def test_repository_name_grammar(name: str, expected: bool) -> None:
    assert is_repository_name(name) is expected


@pytest.mark.parametrize(
    ("prefix", "allowed"),
    [
        ("", True),
        ("mirror/", True),
        ("mirror-", True),
        ("a/b/", True),
        ("mirror", True),
        ("Mirror/", False),
        ("mirror//", False),
        ("/mirror", False),
        ("mirror_/", False),
        ("a" * 254, True),
        ("a" * 255, False),
    ],
)
def test_repository_prefix_must_start_a_valid_name(prefix: str, allowed: bool) -> None:
    assert (repository_prefix_problem(prefix) is None) is allowed


@pytest.mark.parametrize(
    ("repository", "tag", "expected"),
    [
        (
            "prod/api",
            "v1.2",
            [("prod", "eu", "prod/api"), ("prod", "us", "mirror/prod/api")],
        ),
        (
            "team-a/svc",
            "latest",
            [("prod", "eu", "team-a/svc"), ("prod", "us", "mirror/team-a/svc")],
        ),
        ("team-a/b/svc", "latest", []),
        ("prod/api", "v1.2-rc1", [("everything-to-eu", "eu", "prod/api")]),
        ("prod/web", "v1.2-rc1", []),
        ("prod/web", "nightly", []),
        ("prod/scratch", "v1", []),
        ("base", "anything", [("everything-to-eu", "eu", "base")]),
        (
            "prod/web",
            None,
            [("prod", "eu", "prod/web"), ("prod", "us", "mirror/prod/web")],
        ),
        (
            "prod/web",
            REFERRERS_TAG,
            [("prod", "eu", "prod/web"), ("prod", "us", "mirror/prod/web")],
        ),
        ("prod/scratch", REFERRERS_TAG, []),
        (
            "tools/x",
            REFERRERS_TAG,
            [("self-mirror", "hub", "backup/tools/x")],
        ),
        ("tools/x", "keep", [("self-mirror", "hub", "backup/tools/x")]),
        ("backup/tools/x", "keep", []),
        ("tools/x", None, [("self-mirror", "hub", "backup/tools/x")]),
    ],
)
def test_targets_follow_rules_in_order(
    repository: str, tag: str | None, expected: list[tuple[str, str, str]]
) -> None:
    targets = rule_set().targets(repository, tag)

    assert targets == tuple(Target(*fields) for fields in expected)


def test_targets_name_each_destination_once_for_the_first_rule() -> None:
    targets = rule_set().targets("prod/api", "v1")

    assert [target.rule_name for target in targets] == ["prod", "prod"]
    assert len({(t.registry, t.repository) for t in targets}) == len(targets)


@pytest.mark.parametrize(
    ("repository", "expected"),
    [
        ("prod/api", [("everything-to-eu", "eu", "prod/api")]),
        ("prod/web", []),
        ("base", [("everything-to-eu", "eu", "base")]),
    ],
)
def test_delete_targets_come_only_from_rules_replicating_deletes(
    repository: str, expected: list[tuple[str, str, str]]
) -> None:
    targets = rule_set().targets(repository, "v1", for_delete=True)

    assert targets == tuple(Target(*fields) for fields in expected)


@pytest.mark.parametrize(
    ("repository", "expected"),
    [
        ("prod/api", True),
        ("production", False),
        ("team-x/svc", True),
        ("prod/scratch", False),
        ("tools/x", True),
        ("backup/tools/x", False),
    ],
)
def test_selects_repositories_before_tags_are_known(
    repository: str, expected: bool
) -> None:
    assert rule_set().selects_repository(repository) is expected


def test_no_filters_select_every_repository_and_tag() -> None:
    rules = rule_set("rules: [{destinations: [{registry: eu}]}]")

    assert rules.targets("any/thing", "Any_Tag.1") == (
        Target("rule-0", "eu", "any/thing"),
    )


@pytest.mark.parametrize(
    ("repository", "tag"),
    [
        ("Prod/api", "v1"),
        ("prod//api", None),
        ("prod/api", "-v1"),
        ("prod/api", "v" * 129),
        ("prod/api", "v1/../x"),
    ],
)
def test_targets_reject_malformed_names(repository: str, tag: str | None) -> None:
    with pytest.raises(InvalidInputError):
        rule_set().targets(repository, tag)


def test_targets_reject_a_destination_name_made_too_long_by_the_prefix() -> None:
    repository = "prod/" + "a" * 249

    with pytest.raises(InvalidInputError, match="destination repository name"):
        rule_set().targets(repository, "v1")


def test_describe_gives_the_effective_rules_as_plain_data() -> None:
    rules = rule_set(
        "rules: {rules: [{destinations: [{region: us-west-2, "
        'registryId: "111122223333"}], repositoryFilters: [{filter: prod, '
        "filterType: PREFIX_MATCH}]}]}"
    )

    described = rules.describe()

    assert described == [
        {
            "name": "rule-0",
            "destinations": [{"registry": "ecr", "repositoryPrefix": ""}],
            "repositoryFilters": [{"filter": "prod", "filterType": "PREFIX_MATCH"}],
            "repositoryExclusions": [],
            "tagFilters": [],
            "tagExclusions": [],
            "replicateDeletes": False,
        }
    ]
    assert json.loads(json.dumps(described)) == described
