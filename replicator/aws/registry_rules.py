"""Replication rules read live from an ECR registry (DescribeRegistry).

With ``rules_from_ecr: true`` the source registry's own replication configuration
becomes rules named ``ecr-rule-<index>``, ahead of the rules in the file, and is
matched exactly as the same rules written in YAML. A configuration read from ECR is
held to ECR's limits (10 rules, 25 unique destinations across them, 100 filters
per rule; see "Private image replication" in the ECR user guide); rules in the
file may go further.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import structlog
from pydantic import ValidationError

from replicator.aws.session import AwsApi
from replicator.config import (
    Config,
    Problem,
    Rule,
    config_error,
    find_problems,
    problems_from_validation_error,
)

log = structlog.get_logger("replicator.aws")

MAX_RULES = 10
MAX_UNIQUE_DESTINATIONS = 25
MAX_FILTERS_PER_RULE = 100
RULE_NAME_PREFIX = "ecr-rule-"
DOCUMENT_KEY = "replicationConfiguration"


def registry_rules(document: object, origin: str) -> tuple[Rule, ...]:
    """Validate ECR's ``replicationConfiguration`` and return its rules.

    Raise one ConfigError, naming ``origin`` and every key path at fault, if the
    document breaks ECR's limits or does not have ECR's shape.
    """
    rules = _rules_of(document, origin)
    problems = list(limit_problems(rules))
    if problems:
        raise config_error(problems, origin)
    parsed: list[Rule] = []
    for index, rule in enumerate(rules):
        key_path = f"{DOCUMENT_KEY}.rules[{index}]"
        try:
            parsed.append(_parse_rule(rule, index))
        except ValidationError as exc:
            problems.extend(_prefixed(problems_from_validation_error(exc), key_path))
    if problems:
        raise config_error(problems, origin)

    return tuple(parsed)


def _rules_of(document: object, origin: str) -> Sequence[object]:
    """Return the rules list of a replicationConfiguration, or raise."""
    rules = document.get("rules", []) if isinstance(document, Mapping) else None
    if not isinstance(rules, list):
        raise config_error(
            [Problem(DOCUMENT_KEY, 'must be a mapping with a list of "rules"')],
            origin,
        )
    return rules


def limit_problems(rules: Sequence[object]) -> Iterator[Problem]:
    """Yield every way rules exceed ECR's replication configuration limits."""
    if len(rules) > MAX_RULES:
        yield Problem(
            f"{DOCUMENT_KEY}.rules",
            f"has {len(rules)} rules; ECR allows at most {MAX_RULES} (rules in the "
            "config file have no such limit)",
        )
    destinations = {
        _destination_key(destination)
        for rule in rules
        for destination in _list_at(rule, "destinations")
    }
    if len(destinations) > MAX_UNIQUE_DESTINATIONS:
        yield Problem(
            f"{DOCUMENT_KEY}.rules",
            f"name {len(destinations)} unique destinations; ECR allows at most "
            f"{MAX_UNIQUE_DESTINATIONS} across all rules",
        )
    for index, rule in enumerate(rules):
        filters = _list_at(rule, "repositoryFilters")
        if len(filters) > MAX_FILTERS_PER_RULE:
            yield Problem(
                f"{DOCUMENT_KEY}.rules[{index}].repositoryFilters",
                f"has {len(filters)} filters; ECR allows at most "
                f"{MAX_FILTERS_PER_RULE} per rule",
            )


def _list_at(rule: object, key: str) -> list[object]:
    """Return rule[key] if rule is a mapping holding a list there, else []."""
    value = rule.get(key) if isinstance(rule, Mapping) else None
    return value if isinstance(value, list) else []


def _destination_key(destination: object) -> str:
    """Return what makes a destination unique: its registry ID and region."""
    if not isinstance(destination, Mapping):
        return repr(destination)
    return f"{destination.get('registryId')}/{destination.get('region')}"


def _parse_rule(rule: object, index: int) -> Rule:
    """Validate one ECR rule with the config's own model, named by position."""
    if not isinstance(rule, Mapping):
        return Rule.model_validate(rule)
    return Rule.model_validate({"name": f"{RULE_NAME_PREFIX}{index}", **rule})


def _prefixed(problems: list[Problem], key_path: str) -> list[Problem]:
    """Return problems with their key paths under key_path."""
    return [
        Problem(f"{key_path}.{problem.key_path}".rstrip("."), problem.message)
        for problem in problems
    ]


def with_registry_rules(config: Config, rules: Sequence[Rule], origin: str) -> Config:
    """Return config with rules ahead of its own, checked as the file's rules are."""
    merged = config.model_copy(update={"rules": (*rules, *config.rules)})
    problems = find_problems(merged)
    if problems:
        raise config_error(problems, origin)

    return merged


async def load_registry_rules(config: Config, source_api: AwsApi) -> Config:
    """Return config with the source registry's ECR replication rules added."""
    response = await source_api.call("ecr", "describe_registry")
    document = response.get(DOCUMENT_KEY) or {"rules": []}
    origin = f"DescribeRegistry of registry {config.source}"
    rules = registry_rules(document, origin)
    log.info("registry_rules_loaded", registry=config.source, rules=len(rules))

    return with_registry_rules(config, rules, origin)
