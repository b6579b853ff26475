"""Cross-checks of a configuration of valid shape: references between keys,
duplicates, URL schemes, filters that must compile."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic.alias_generators import to_camel

from replicator.config.models import Config
from replicator.config.problems import Problem
from replicator.config.registries import Registry
from replicator.config.rule_models import Destination, Rule
from replicator.config.sources import RESERVED_PATHS
from replicator.errors import ConfigError
from replicator.rules import compile_filter, repository_prefix_problem


def find_problems(config: Config) -> list[Problem]:
    """Return what is wrong across keys of a configuration of valid shape."""
    return [
        *_registry_problems(config),
        *_source_problems(config),
        *_rule_problems(config),
        *_rules_from_ecr_problems(config),
        *_retry_problems(config),
        *_webhook_problems(config),
        *_sqs_problems(config),
    ]


def _registry_problems(config: Config) -> Iterator[Problem]:
    """Check each registry's URL scheme and ECR identity."""
    seen: dict[tuple[str, str], str] = {}
    for name, registry in config.registries.items():
        key_path = f"registries.{name}"
        if registry.url is None and None in (registry.registry_id, registry.region):
            yield Problem(
                f"{key_path}.url",
                "required key is missing (an Amazon ECR registry may give "
                "registry_id and region instead)",
            )
            continue
        if registry.url is not None and _is_plain_http(registry.url, registry):
            yield Problem(
                f"{key_path}.url",
                "plain http:// needs insecure: true; use https:// otherwise",
            )
        yield from _ecr_identity_problems(registry, key_path)
        yield from _ecr_settings_problems(registry, f"{key_path}.ecr")
        identity = registry.ecr_identity
        if identity is not None and identity in seen:
            yield Problem(
                f"{key_path}.registry_id",
                f"registry {seen[identity]} has the same registry_id and region",
            )
        if identity is not None:
            seen.setdefault(identity, name)


def _ecr_identity_problems(registry: Registry, key_path: str) -> Iterator[Problem]:
    """Check that registry_id and region come together."""
    if (registry.registry_id is None) != (registry.region is None):
        missing = "region" if registry.region is None else "registry_id"
        yield Problem(
            f"{key_path}.{missing}", "registry_id and region go together; set both"
        )


def _is_plain_http(url: str, registry: Registry) -> bool:
    """Say whether url is plain http:// on a registry not marked insecure."""
    return url.startswith("http://") and not registry.insecure


def _ecr_settings_problems(registry: Registry, key_path: str) -> Iterator[Problem]:
    """Check that an ecr block names an ECR registry, and its URLs' schemes."""
    settings = registry.ecr
    if settings is None:
        return
    if registry.ecr_identity is None:
        yield Problem(
            key_path,
            "an ECR registry needs registry_id and region, or an ECR url such as "
            "https://111122223333.dkr.ecr.us-west-2.amazonaws.com",
        )
    if registry.credentials is not None:
        yield Problem(
            key_path.removesuffix(".ecr") + ".credentials",
            "ECR registries log in with GetAuthorizationToken; remove credentials "
            "or the ecr block",
        )
    urls = {
        "data_plane_url": settings.data_plane_url,
        "endpoint_url.ecr": settings.endpoint_url.ecr,
        "endpoint_url.sts": settings.endpoint_url.sts,
    }
    for key, url in urls.items():
        if url is not None and _is_plain_http(url, registry):
            yield Problem(
                f"{key_path}.{key}",
                "plain http:// needs insecure: true on the registry",
            )


def _rules_from_ecr_problems(config: Config) -> Iterator[Problem]:
    """Check that rules_from_ecr reads from an ECR source."""
    source = config.registries.get(config.source)
    if config.rules_from_ecr and source is not None and not source.ecr_settings:
        yield Problem(
            "rules_from_ecr",
            "needs an Amazon ECR source registry (an ecr block, or an ECR url)",
        )


def _source_problems(config: Config) -> Iterator[Problem]:
    """Check that source names a registry."""
    if config.source not in config.registries:
        yield Problem("source", _unknown_registry_message(config))


def _unknown_registry_message(config: Config) -> str:
    """Say that a registry name is unknown and list the known ones."""
    known = ", ".join(sorted(config.registries)) or "(none)"
    return f"names no entry of registries; known: {known}"


def _rule_problems(config: Config) -> Iterator[Problem]:
    """Check rule names, destinations and filters."""
    seen_names: set[str] = set()
    for index, rule in enumerate(config.rules):
        key_path = f"rules[{index}]"
        if rule.name in seen_names:
            yield Problem(f"{key_path}.name", "another rule has this name")
        seen_names.add(rule.name)
        if not rule.destinations:
            # Checked here, not by pydantic, which also reports a list as too
            # short when one of its entries is invalid.
            yield Problem(f"{key_path}.destinations", "needs at least one destination")
        for position, destination in enumerate(rule.destinations):
            yield from _destination_problems(
                config, destination, f"{key_path}.destinations[{position}]"
            )
        yield from _filter_problems(rule, key_path)


def _destination_problems(
    config: Config, destination: Destination, key_path: str
) -> Iterator[Problem]:
    """Check that a destination names a registry other than plain self-copy."""
    registry_key = f"{key_path}.registry" if destination.registry else key_path
    resolved = config.destination_registry(destination)
    prefix_problem = repository_prefix_problem(destination.repository_prefix)
    if prefix_problem is not None:
        yield Problem(f"{key_path}.repositoryPrefix", prefix_problem)
    if resolved is None and destination.registry is not None:
        yield Problem(registry_key, _unknown_registry_message(config))
    if resolved is None and destination.registry is None:
        yield Problem(f"{key_path}.registryId", _unknown_ecr_message(destination))
    if resolved == config.source and destination.repository_prefix == "":
        yield Problem(
            registry_key,
            "copies the source registry onto itself; set a repositoryPrefix or "
            "choose another registry",
        )


def _unknown_ecr_message(destination: Destination) -> str:
    """Say which registries entry an ECR-style destination needs."""
    return (
        "ECR destinations need a registries entry with registry_id: "
        f'"{destination.registry_id}" and region: {destination.region} '
        "(or an ECR url of that account and region)"
    )


_FILTER_FIELDS = (
    "repository_filters",
    "repository_exclusions",
    "tag_filters",
    "tag_exclusions",
)


def _filter_problems(rule: Rule, key_path: str) -> Iterator[Problem]:
    """Check that every GLOB and REGEX filter compiles."""
    for field in _FILTER_FIELDS:
        for index, item in enumerate(getattr(rule, field)):
            filter_key = f"{key_path}.{to_camel(field)}[{index}].filter"
            try:
                compile_filter(item.filter_type, item.filter, filter_key)
            except ConfigError as error:
                yield Problem(error.key_path, error.message)


def _retry_problems(config: Config) -> Iterator[Problem]:
    """Check that the backoff bounds are ordered."""
    if config.retry.max_backoff_s < config.retry.initial_backoff_s:
        yield Problem("retry.max_backoff_s", "must be at least retry.initial_backoff_s")


def _webhook_problems(config: Config) -> Iterator[Problem]:
    """Check that the webhook path is free."""
    webhook = config.sources.webhook
    if webhook is not None and webhook.path in RESERVED_PATHS:
        yield Problem(
            "sources.webhook.path",
            "is taken by the daemon's /healthz, /readyz or /metrics",
        )


def _sqs_problems(config: Config) -> Iterator[Problem]:
    """Check that the queue's region is known and its URL uses TLS."""
    sqs = config.sources.sqs
    if sqs is None:
        return
    if sqs.region_name is None:
        yield Problem("sources.sqs.region", "cannot be read from queue_url; set region")
    if sqs.queue_url.startswith("http://") and sqs.endpoint_url is None:
        yield Problem(
            "sources.sqs.queue_url",
            "must be https://; plain http:// only with endpoint_url (local tests)",
        )
