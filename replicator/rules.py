"""Match repositories and tags against the replication rules and name the targets.

Pure: no I/O. ``compile_rules`` turns a loaded ``Config`` into a ``RuleSet`` once; the
daemon, backfill and verify then ask the ``RuleSet`` where an image goes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from replicator.errors import ConfigError, InvalidInputError
from replicator.reference import (
    MAX_REPOSITORY_LENGTH,
    REPOSITORY_PATTERN,
    is_referrers_tag,
    validate_repository,
    validate_tag,
)

if TYPE_CHECKING:
    from replicator.config import Config, Destination, Filter, Rule

FilterType = Literal["PREFIX_MATCH", "EXACT_MATCH", "GLOB", "REGEX"]
FILTER_TYPES: tuple[FilterType, ...] = get_args(FilterType)

# Names and tags never contain '[', so a GLOB class can be kept this simple.
_GLOB_TOKEN = re.compile(
    r"(?P<any_dirs>\*\*/)|(?P<any_path>\*\*)|(?P<any_name>\*)|(?P<one>\?)"
    r"|\[(?P<negate>!?)(?P<members>(?:[A-Za-z0-9._]-[A-Za-z0-9._]|[A-Za-z0-9._])+)\]"
    r"|(?P<bad_class>\[)|(?P<literal>.)",
    re.DOTALL,
)
_GLOB_WILDCARDS = {
    "any_dirs": "(?:.*/)?",
    "any_path": ".*",
    "any_name": "[^/]*",
    "one": "[^/]",
}

_NAME_RULES = (
    "lowercase path components of [a-z0-9] joined by '.', '_', '__' or '-', "
    f"separated by '/', at most {MAX_REPOSITORY_LENGTH} characters"
)


def is_repository_name(name: str) -> bool:
    """Say whether name follows the OCI repository name grammar."""
    return (
        len(name) <= MAX_REPOSITORY_LENGTH
        and REPOSITORY_PATTERN.fullmatch(name) is not None
    )


def repository_prefix_problem(prefix: str) -> str | None:
    """Return why prefix cannot start a repository name, or None when it can."""
    # Every source name starts with [a-z0-9], so if prefix + "a" is a valid name,
    # prefix + any valid name is too (length aside, which is checked per image).
    if prefix == "" or is_repository_name(prefix + "a"):
        return None
    return f"cannot start a repository name; names are {_NAME_RULES}"


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """One repository or tag filter, compiled once."""

    filter_type: FilterType
    pattern: str
    matches: Callable[[str], bool]


def compile_filter(
    filter_type: FilterType, pattern: str, key_path: str = ""
) -> CompiledFilter:
    """Compile one filter; raise ConfigError at key_path if the pattern is invalid.

    PREFIX_MATCH is a plain string prefix, as in ECR ("prod" selects "production").
    EXACT_MATCH is equality. REGEX must match the whole name (``re.fullmatch``).
    GLOB follows fnmatch, except that a name is treated as a path: ``*`` and ``?``
    do not cross ``/``, ``**`` does, and ``**/`` also matches no directory at all
    (``**/app`` selects ``app``). ``[a-z0-9]`` and ``[!...]`` classes are allowed.
    Matching is case-sensitive.
    """
    if filter_type == "PREFIX_MATCH":
        return CompiledFilter(filter_type, pattern, _prefix_matcher(pattern))
    if filter_type == "EXACT_MATCH":
        return CompiledFilter(filter_type, pattern, _exact_matcher(pattern))
    if filter_type == "GLOB":
        regex = _compile_regex(glob_to_regex(pattern, key_path), key_path)
    else:
        regex = _compile_regex(pattern, key_path)

    return CompiledFilter(filter_type, pattern, _full_matcher(regex))


def glob_to_regex(pattern: str, key_path: str = "") -> str:
    """Translate a GLOB filter into a regular expression (see compile_filter)."""
    return "".join(
        _glob_token_to_regex(token, key_path) for token in _GLOB_TOKEN.finditer(pattern)
    )


def _glob_token_to_regex(token: re.Match[str], key_path: str) -> str:
    """Translate one token of a GLOB filter."""
    kind = token.lastgroup
    if kind == "bad_class":
        raise ConfigError(
            "GLOB character classes hold letters, digits, '.', '_' and ranges "
            "such as [a-z0-9], optionally negated as [!...]",
            key_path=key_path,
        )
    if kind == "members":
        negate = "^" if token["negate"] else ""
        return f"(?!/)[{negate}{token['members']}]"
    return _GLOB_WILDCARDS.get(kind or "", re.escape(token.group()))


def _compile_regex(pattern: str, key_path: str) -> re.Pattern[str]:
    """Compile a regular expression, reporting a bad one at key_path."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            f"invalid regular expression: {exc.msg} at position {exc.pos} "
            "(Python re syntax, matched against the whole name)",
            key_path=key_path,
        ) from None


def _prefix_matcher(prefix: str) -> Callable[[str], bool]:
    """Return a predicate selecting names that start with prefix."""
    return lambda name: name.startswith(prefix)


def _exact_matcher(expected: str) -> Callable[[str], bool]:
    """Return a predicate selecting exactly one name."""
    return lambda name: name == expected


def _full_matcher(regex: re.Pattern[str]) -> Callable[[str], bool]:
    """Return a predicate selecting names the whole of which regex matches."""
    return lambda name: regex.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class FilterSet:
    """Filters of one kind in one rule: any match counts."""

    filters: tuple[CompiledFilter, ...]

    def matches_any(self, name: str) -> bool:
        """Say whether any filter matches name."""
        return any(compiled.matches(name) for compiled in self.filters)

    def selects(self, name: str) -> bool:
        """Say whether name passes: no filters select everything."""
        return not self.filters or self.matches_any(name)

    def describe(self) -> list[dict[str, str]]:
        """Return the filters in ECR's shape."""
        return [
            {"filter": compiled.pattern, "filterType": compiled.filter_type}
            for compiled in self.filters
        ]


@dataclass(frozen=True, slots=True)
class Target:
    """One place an image goes: a rule sent it to a repository of a registry."""

    rule_name: str
    registry: str
    repository: str


@dataclass(frozen=True, slots=True)
class CompiledDestination:
    """A destination with its registry resolved to a ``registries`` entry name."""

    registry: str
    repository_prefix: str


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One replication rule, ready to match."""

    name: str
    destinations: tuple[CompiledDestination, ...]
    repository_filters: FilterSet
    repository_exclusions: FilterSet
    tag_filters: FilterSet
    tag_exclusions: FilterSet
    replicate_deletes: bool

    def selects_repository(self, repository: str) -> bool:
        """Say whether the repository filters select repository."""
        selected = self.repository_filters.selects(repository)
        return selected and not self.repository_exclusions.matches_any(repository)

    def selects_tag(self, tag: str | None) -> bool:
        """Say whether the tag filters select tag.

        A digest-only event (tag None) and a referrers fallback tag
        (``sha256-<64 hex>``) are always selected: they belong to an image, not to
        a tag a user filters on, and signatures and SBOMs follow their subject.
        """
        if tag is None or is_referrers_tag(tag):
            return True
        selected = self.tag_filters.selects(tag)
        return selected and not self.tag_exclusions.matches_any(tag)

    def destinations_for(
        self, repository: str, source: str
    ) -> Iterator[CompiledDestination]:
        """Yield the destinations of repository, skipping copies of copies.

        A destination on the source registry itself skips repositories that already
        carry its prefix: they are its own copies, and copying them again would
        loop (``mirror/app`` to ``mirror/mirror/app`` and so on).
        """
        for destination in self.destinations:
            is_own_copy = destination.registry == source and repository.startswith(
                destination.repository_prefix
            )
            if not is_own_copy:
                yield destination

    def targets_for(self, repository: str, source: str) -> Iterator[Target]:
        """Yield where this rule sends repository (see destinations_for)."""
        for destination in self.destinations_for(repository, source):
            yield Target(
                rule_name=self.name,
                registry=destination.registry,
                repository=_destination_repository(
                    destination.repository_prefix + repository, self.name
                ),
            )

    def describe(self) -> dict[str, object]:
        """Return the effective rule as plain data in ECR's camelCase shape."""
        return {
            "name": self.name,
            "destinations": [
                {
                    "registry": destination.registry,
                    "repositoryPrefix": destination.repository_prefix,
                }
                for destination in self.destinations
            ],
            "repositoryFilters": self.repository_filters.describe(),
            "repositoryExclusions": self.repository_exclusions.describe(),
            "tagFilters": self.tag_filters.describe(),
            "tagExclusions": self.tag_exclusions.describe(),
            "replicateDeletes": self.replicate_deletes,
        }


def _destination_repository(name: str, rule_name: str) -> str:
    """Return the destination repository name, or raise if the prefix made it bad."""
    if not is_repository_name(name):
        raise InvalidInputError(
            f"destination repository name is invalid: expected {_NAME_RULES}",
            rule=rule_name,
            repository=repr(name[:MAX_REPOSITORY_LENGTH]),
        )
    return name


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The compiled rules of one configuration, in file order."""

    source: str
    rules: tuple[CompiledRule, ...]

    def selects_repository(self, repository: str) -> bool:
        """Say whether any rule would copy some tag of repository somewhere.

        Backfill asks this before listing a repository's tags.
        """
        return any(
            rule.selects_repository(repository)
            and any(True for _ in rule.destinations_for(repository, self.source))
            for rule in self.rules
        )

    def targets(
        self, repository: str, tag: str | None, *, for_delete: bool = False
    ) -> tuple[Target, ...]:
        """Return where an image of repository (and tag, if any) must be copied.

        Targets come in rule order, then destination order; a (registry,
        repository) pair named by several rules appears once, with the first rule's
        name. With ``for_delete``, only rules with ``replicateDeletes`` count.
        Raise InvalidInputError if repository or tag is malformed, or if a prefix
        makes the destination name too long.
        """
        validate_repository(repository)
        if tag is not None:
            validate_tag(tag)
        found: dict[tuple[str, str], Target] = {}
        for rule in self._matching_rules(repository, tag, for_delete):
            for target in rule.targets_for(repository, self.source):
                found.setdefault((target.registry, target.repository), target)

        return tuple(found.values())

    def describe(self) -> list[dict[str, object]]:
        """Return the effective rules as plain data, for ``check-config`` to print."""
        return [rule.describe() for rule in self.rules]

    def _matching_rules(
        self, repository: str, tag: str | None, for_delete: bool
    ) -> Iterator[CompiledRule]:
        """Yield the rules that select repository and tag, in file order."""
        for rule in self.rules:
            if for_delete and not rule.replicate_deletes:
                continue
            if rule.selects_repository(repository) and rule.selects_tag(tag):
                yield rule


def compile_rules(config: Config) -> RuleSet:
    """Compile the rules of a loaded configuration once, for matching many events."""
    rules = tuple(
        _compile_rule(rule, f"rules[{index}]", config)
        for index, rule in enumerate(config.rules)
    )

    return RuleSet(source=config.source, rules=rules)


def _compile_rule(rule: Rule, key_path: str, config: Config) -> CompiledRule:
    """Compile one rule; key_path names it in errors."""
    return CompiledRule(
        name=rule.name,
        destinations=tuple(
            _compile_destination(
                destination, f"{key_path}.destinations[{index}]", config
            )
            for index, destination in enumerate(rule.destinations)
        ),
        repository_filters=_compile_filters(
            rule.repository_filters, f"{key_path}.repositoryFilters"
        ),
        repository_exclusions=_compile_filters(
            rule.repository_exclusions, f"{key_path}.repositoryExclusions"
        ),
        tag_filters=_compile_filters(rule.tag_filters, f"{key_path}.tagFilters"),
        tag_exclusions=_compile_filters(
            rule.tag_exclusions, f"{key_path}.tagExclusions"
        ),
        replicate_deletes=rule.replicate_deletes,
    )


def _compile_destination(
    destination: Destination, key_path: str, config: Config
) -> CompiledDestination:
    """Resolve a destination to the name of its ``registries`` entry."""
    registry = config.destination_registry(destination)
    if registry is None:
        raise ConfigError("names no entry of registries", key_path=key_path)

    return CompiledDestination(registry, destination.repository_prefix)


def _compile_filters(filters: tuple[Filter, ...], key_path: str) -> FilterSet:
    """Compile the filters of one kind of one rule."""
    return FilterSet(
        tuple(
            compile_filter(item.filter_type, item.filter, f"{key_path}[{index}].filter")
            for index, item in enumerate(filters)
        )
    )
