"""Tests for loading and validating the configuration file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from replicator.config import (
    Config,
    Credentials,
    load_config,
    parse_config,
    parse_yaml,
)
from replicator.errors import ConfigError
from replicator.rules import compile_rules

REPO_ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-Value-42"
WEBHOOK_TOKEN = f"{SECRET}-webhook"
AWS_QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/111122223333/replicator-events"
DELETE = object()

BASE = """
version: 1
source: hub
registries:
  hub:
    url: https://hub.example.com
  eu:
    url: http://127.0.0.1:5001
    insecure: true
rules:
  - name: r
    destinations:
      - registry: eu
"""

ECR_REPLICATION_CONFIGURATION = (
    '{"rules":[{"destinations":[{"region":"us-west-2","registryId":"111122223333"}],'
    '"repositoryFilters":[{"filter":"prod","filterType":"PREFIX_MATCH"}]}]}'
)


def merged(base: Any, change: Any) -> Any:
    """Return base with change merged in: mappings recursively, DELETE removes."""
    if not (isinstance(base, dict) and isinstance(change, dict)):
        return change
    result = dict(base)
    for key, value in change.items():
        if value is DELETE:
            result.pop(key, None)
        else:
            result[key] = merged(result.get(key), value)
    return result


def document(change: Any = None, base: str = BASE) -> Any:
    """Return the base document with change merged in."""
    return merged(yaml.safe_load(base), change or {})


def parse(change: Any = None, environ: dict[str, str] | None = None) -> Config:
    """Parse the base document with change merged in."""
    return parse_config(document(change), "test.yaml", environ=environ or {})


def config_error(change: Any, environ: dict[str, str] | None = None) -> ConfigError:
    """Return the ConfigError parsing the changed base document raises."""
    with pytest.raises(ConfigError) as caught:
        parse(change, environ)
    return caught.value


def destination(**keys: Any) -> dict[str, Any]:
    """Return a change replacing the first rule's destinations with one."""
    return {"rules": [{"name": "r", "destinations": [keys]}]}


def rule(**keys: Any) -> dict[str, Any]:
    """Return a change replacing the rules with one rule to eu plus keys."""
    return {"rules": [{"name": "r", "destinations": [{"registry": "eu"}], **keys}]}


def credentials(**keys: Any) -> dict[str, Any]:
    """Return a change giving the hub registry these credentials keys."""
    return {"registries": {"hub": {"credentials": keys}}}


def one_filter(pattern: Any, filter_type: Any = "PREFIX_MATCH") -> list[Any]:
    """Return a filter list holding one filter."""
    return [{"filter": pattern, "filterType": filter_type}]


@pytest.mark.parametrize(
    ("change", "key_path", "phrase"),
    [
        ({"version": 2}, "version", "only version 1 is supported"),
        ({"version": DELETE}, "version", "required key is missing"),
        ({"version": "1"}, "version", "valid integer"),
        ({"source": "nope"}, "source", "names no entry of registries; known: eu, hub"),
        ({"registries": []}, "registries", "must be a mapping of names"),
        ({"registries": {"eu": "http://x"}}, "registries.eu", "must be a mapping"),
        ({"registries": {"e u": {"url": "https://x"}}}, "registries.e u", "names"),
        (
            {"registries": {"eu": {"url": "https://eu.example.com/v2/"}}},
            "registries.eu.url",
            "without path",
        ),
        (
            {"registries": {"eu": {"url": "registry.example.com"}}},
            "registries.eu.url",
            "must start with https://",
        ),
        (
            {"registries": {"eu": {"url": "https://u:p@eu.example.com"}}},
            "registries.eu.url",
            "use the credentials key",
        ),
        (
            {"registries": {"eu": {"url": "https://eu.example.com:99999"}}},
            "registries.eu.url",
            "invalid port",
        ),
        (
            {"registries": {"eu": {"insecure": DELETE}}},
            "registries.eu.url",
            "plain http:// needs insecure: true",
        ),
        (
            {"registries": {"eu": {"insecure": "yes"}}},
            "registries.eu.insecure",
            "valid boolean",
        ),
        (
            {"registries": {"eu": {"urll": "https://x"}}},
            "registries.eu.urll",
            "unknown key 'urll'; allowed keys: url, insecure, credentials",
        ),
        (
            {"registries": {"eu": {"registry_id": "111122223333"}}},
            "registries.eu.region",
            "registry_id and region go together",
        ),
        (
            {
                "registries": {
                    "a": {
                        "url": "https://111122223333.dkr.ecr.us-west-2.amazonaws.com"
                    },
                    "b": {
                        "url": "https://b.example.com",
                        "registry_id": "111122223333",
                        "region": "us-west-2",
                    },
                }
            },
            "registries.b.registry_id",
            "registry a has the same registry_id and region",
        ),
        (
            credentials(username="alice", password="x"),
            "registries.hub.credentials.password",
            "inline secrets are not allowed: use password_env",
        ),
        (
            credentials(token="x"),
            "registries.hub.credentials.token",
            "use token_env (an environment variable) or token_file",
        ),
        (
            credentials(username="alice"),
            "registries.hub.credentials",
            "a username needs a password: set password_env or password_file",
        ),
        (
            credentials(password_env="P"),
            "registries.hub.credentials",
            "a password needs a username",
        ),
        (
            credentials(username="alice", password_env="P", token_env="T"),
            "registries.hub.credentials",
            "a token (token_env or token_file) or a username and password",
        ),
        (
            credentials(username="a", password_env="P", password_file="/p"),
            "registries.hub.credentials",
            "one source of each value",
        ),
        (credentials(), "registries.hub.credentials", "omit credentials"),
        (
            credentials(username="a", password_env="not a name!"),
            "registries.hub.credentials.password_env",
            "name of an environment variable",
        ),
        (
            {"rules": [{"destinations": [{"registry": "eu"}, {"registry": "us"}]}]},
            "rules[0].destinations[1].registry",
            "names no entry of registries; known: eu, hub",
        ),
        (
            destination(registry="hub"),
            "rules[0].destinations[0].registry",
            "copies the source registry onto itself",
        ),
        (
            destination(registry="eu", region="us-west-2", registryId="111122223333"),
            "rules[0].destinations[0]",
            "give either registry, or region and registryId",
        ),
        (
            destination(region="us-west-2"),
            "rules[0].destinations[0]",
            "both region and registryId",
        ),
        (
            destination(region="us-west-2", registryId="111122223333"),
            "rules[0].destinations[0].registryId",
            'ECR destinations need a registries entry with registry_id: "111122223333"',
        ),
        (
            destination(region="us-west-2", registryId=111122223333),
            "rules[0].destinations[0].registryId",
            "quote the account ID",
        ),
        (
            destination(region="Oregon", registryId="111122223333"),
            "rules[0].destinations[0].region",
            "AWS region name",
        ),
        (
            destination(registry="eu", repositoryPrefix="Mirror/"),
            "rules[0].destinations[0].repositoryPrefix",
            "cannot start a repository name",
        ),
        (
            destination(registry="eu", repositoryPrefix="mirror//"),
            "rules[0].destinations[0].repositoryPrefix",
            "cannot start a repository name",
        ),
        (
            destination(registry="eu", repository_prefix="m/"),
            "rules[0].destinations[0].repository_prefix",
            "allowed keys: registry, region, registryId, repositoryPrefix",
        ),
        (rule(destinations=[]), "rules[0].destinations", "at least one destination"),
        (
            rule(destination=[{"registry": "eu"}]),
            "rules[0].destination",
            "allowed keys: name, destinations, repositoryFilters",
        ),
        (rule(name="prod to eu"), "rules[0].name", "names hold letters, digits"),
        (
            {"rules": [{"destinations": [{"registry": "eu"}], "name": "rule-1"}] * 2},
            "rules[1].name",
            "another rule has this name",
        ),
        (
            rule(repositoryFilters=one_filter("(", "REGEX")),
            "rules[0].repositoryFilters[0].filter",
            "invalid regular expression: missing ), unterminated subpattern",
        ),
        (
            rule(tagExclusions=one_filter("v[", "GLOB")),
            "rules[0].tagExclusions[0].filter",
            "GLOB character classes hold letters",
        ),
        (
            rule(tagFilters=one_filter("")),
            "rules[0].tagFilters[0].filter",
            "must not be empty",
        ),
        (
            rule(repositoryExclusions=one_filter("prod", "SUFFIX_MATCH")),
            "rules[0].repositoryExclusions[0].filterType",
            "'PREFIX_MATCH', 'EXACT_MATCH', 'GLOB' or 'REGEX'",
        ),
        (
            rule(repositoryFilters=[{"filter": "prod"}]),
            "rules[0].repositoryFilters[0].filterType",
            "required key is missing",
        ),
        (rule(replicateDeletes="no"), "rules[0].replicateDeletes", "valid boolean"),
        ({"rules": "all"}, "rules", "must be a list"),
        (
            {"concurrency": {"images": 0}},
            "concurrency.images",
            "greater than or equal to 1",
        ),
        ({"concurrency": {"images": True}}, "concurrency.images", "valid integer"),
        (
            {"retry": {"initial_backoff_s": 2, "max_backoff_s": 1}},
            "retry.max_backoff_s",
            "must be at least retry.initial_backoff_s",
        ),
        ({"retry": {"initial_backoff_s": 0}}, "retry.initial_backoff_s", "greater"),
        ({"log": {"format": "xml"}}, "log.format", "'auto', 'json' or 'console'"),
        ({"log": {"level": "trace"}}, "log.level", "'debug', 'info', 'warning'"),
        (
            {"destinations": []},
            "destinations",
            "allowed keys: version, source, registries, rules, concurrency",
        ),
    ],
)
def test_rejects_bad_config_at_key_path(
    change: Any, key_path: str, phrase: str
) -> None:
    error = config_error(change)

    assert (error.key_path, phrase in error.message) == (key_path, True), error.message


@pytest.mark.parametrize(
    ("keys", "key_path", "phrase"),
    [
        (
            {"username": "alice", "password_env": "HUB_PASSWORD"},
            "registries.hub.credentials.password_env",
            "environment variable HUB_PASSWORD is not set or empty",
        ),
        (
            {"username_env": "HUB_USER", "password_env": "SET"},
            "registries.hub.credentials.username_env",
            "environment variable HUB_USER is not set",
        ),
        (
            {"username": "alice", "password_env": "EMPTY"},
            "registries.hub.credentials.password_env",
            "EMPTY is not set or empty",
        ),
        (
            {"token_env": "HUB_TOKEN"},
            "registries.hub.credentials.token_env",
            "HUB_TOKEN is not set",
        ),
        (
            {"username": "alice", "password_file": "missing-password"},
            "registries.hub.credentials.password_file",
            "missing-password: No such file or directory",
        ),
        (
            {"token_file": "empty-token"},
            "registries.hub.credentials.token_file",
            "empty-token is empty",
        ),
    ],
)
def test_reports_unreadable_secret_at_key_path(
    tmp_path: Path, keys: dict[str, str], key_path: str, phrase: str
) -> None:
    (tmp_path / "empty-token").write_text("\n")
    data = document(credentials(**keys))

    with pytest.raises(ConfigError) as caught:
        parse_config(data, "t", environ={"SET": "x", "EMPTY": ""}, base_dir=tmp_path)

    assert (caught.value.key_path, phrase in caught.value.message) == (key_path, True)


def test_joins_several_problems_one_per_line() -> None:
    error = config_error({"version": 3, "log": {"level": "loud"}, "source": 7})

    assert str(error).splitlines()[1:] == [
        "  version: only version 1 is supported",
        "  source: Input should be a valid string",
        "  log.level: Input should be 'debug', 'info', 'warning' or 'error' "
        "(origin=test.yaml)",
    ]
    assert error.key_path == "version"


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("version: 1\nsource: [hub\n", "invalid YAML at line 3, column 1"),
        ("version: 1\n\tsource: hub\n", "invalid YAML at line 2, column 1"),
        ("version: 1\nsource: a\nsource: b\n", "line 3, column 1: found duplicate key"),
        ("", "the file is empty"),
    ],
)
def test_reports_yaml_problems_with_their_line(text: str, phrase: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml(text, "c.yaml")

    assert phrase in caught.value.message


def test_yaml_merge_keys_are_not_duplicates() -> None:
    data = parse_yaml("a: &x {k: 1, j: 2}\nb:\n  <<: *x\n  k: 3\n", "c.yaml")

    assert data == {"a": {"k": 1, "j": 2}, "b": {"k": 3, "j": 2}}


@pytest.mark.parametrize("data", [["version", 1], "version: 1", 1])
def test_rejects_a_document_that_is_not_a_mapping(data: object) -> None:
    with pytest.raises(ConfigError, match="must be a mapping starting with version"):
        parse_config(data, "c.yaml")


def test_reads_secrets_from_environment_and_files(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text(f"{SECRET}-token\n")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        BASE.replace(
            "  eu:\n",
            "    credentials: {username_env: U, password_env: P}\n"
            "  eu:\n"
            "    credentials: {token_file: secrets/token}\n",
        )
    )

    config = load_config(config_file, environ={"U": "alice", "P": SECRET})
    hub = config.registries["hub"].resolved_credentials
    eu = config.registries["eu"].resolved_credentials

    assert hub.username == "alice"
    assert hub.password is not None
    assert hub.password.get_secret_value() == SECRET
    assert eu.token is not None
    assert eu.token.get_secret_value() == f"{SECRET}-token"


def test_never_shows_a_secret() -> None:
    environ = {"P": SECRET}
    config = parse(credentials(username="alice", password_env="P"), environ)
    inline_error = config_error(credentials(username="alice", password=SECRET))
    misplaced_error = config_error(credentials(username="alice", password_env=SECRET))
    described = json.dumps(compile_rules(config).describe())

    shown = [
        repr(config),
        str(config),
        repr(config.registries["hub"].resolved_credentials),
        str(config.registries["hub"].resolved_credentials),
        str(inline_error),
        repr(inline_error),
        str(misplaced_error),
        described,
    ]
    assert [text for text in shown if SECRET in text] == []


def test_anonymous_registry_has_no_credentials() -> None:
    config = parse()

    assert config.registries["eu"].resolved_credentials == Credentials()
    assert config.registries["eu"].resolved_credentials.is_anonymous


@pytest.mark.parametrize(
    ("url", "insecure", "expected"),
    [
        ("https://Registry.Example.com", False, ("https://registry.example.com", True)),
        (
            "https://registry.example.com/",
            False,
            ("https://registry.example.com", True),
        ),
        ("https://localhost:5000", True, ("https://localhost:5000", False)),
        ("http://127.0.0.1:5001", True, ("http://127.0.0.1:5001", False)),
        ("http://[::1]:5001", True, ("http://[::1]:5001", False)),
    ],
)
def test_registry_gives_base_url_host_and_tls(
    url: str, insecure: bool, expected: tuple[str, bool]
) -> None:
    config = parse({"registries": {"eu": {"url": url, "insecure": insecure}}})
    registry = config.registries["eu"]

    assert (registry.base_url, registry.verify_tls) == expected
    assert registry.host == expected[0].partition("://")[2]


def test_fills_defaults() -> None:
    config = parse({"rules": [{"destinations": [{"registry": "eu"}]}]})

    assert config.model_dump(include={"concurrency", "retry", "log"}) == {
        "concurrency": {"images": 16, "blobs_per_registry": 8},
        "retry": {
            "attempts": 5,
            "initial_backoff_s": 0.5,
            "max_backoff_s": 30.0,
            "job_retry_delays_s": (5.0, 30.0),
        },
        "log": {"format": "auto", "level": "info"},
    }
    assert config.rules[0].model_dump() == {
        "name": "rule-0",
        "destinations": (
            {
                "registry": "eu",
                "region": None,
                "registry_id": None,
                "repository_prefix": "",
            },
        ),
        "repository_filters": (),
        "repository_exclusions": (),
        "tag_filters": (),
        "tag_exclusions": (),
        "replicate_deletes": False,
    }


def test_names_unnamed_rules_by_position() -> None:
    to_eu = {"destinations": [{"registry": "eu"}]}
    config = parse({"rules": [to_eu, {**to_eu, "name": "mine"}, to_eu]})

    assert [rule.name for rule in config.rules] == ["rule-0", "mine", "rule-2"]


@pytest.mark.parametrize(
    "ecr_registry",
    [
        {"url": "https://111122223333.dkr.ecr.us-west-2.amazonaws.com"},
        {
            "url": "http://127.0.0.1:5002",
            "insecure": True,
            "registry_id": "111122223333",
            "region": "us-west-2",
        },
    ],
)
@pytest.mark.parametrize("as_list", [False, True])
def test_accepts_ecr_replication_configuration_as_rules(
    ecr_registry: dict[str, Any], as_list: bool
) -> None:
    ecr_rules = yaml.safe_load(ECR_REPLICATION_CONFIGURATION)
    config = parse(
        {
            "registries": {"ecr": ecr_registry},
            "rules": ecr_rules["rules"] if as_list else ecr_rules,
        }
    )

    assert [
        config.destination_registry(item) for item in config.rules[0].destinations
    ] == ["ecr"]
    assert config.rules[0].repository_filters[0].filter_type == "PREFIX_MATCH"


def test_example_config_loads() -> None:
    config = load_config(
        REPO_ROOT / "config.example.yaml",
        environ={"HUB_PASSWORD": SECRET, "WEBHOOK_TOKEN": WEBHOOK_TOKEN},
    )

    assert [rule.name for rule in config.rules] == ["prod-to-eu", "rule-1"]
    assert config.registries["hub"].resolved_credentials.username == "alice"


def test_reports_a_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")

    assert "No such file or directory" in str(caught.value)
    assert "nope.yaml" in str(caught.value)


def webhook(**keys: Any) -> dict[str, Any]:
    """Return a change giving the config a webhook source with these keys."""
    return {"sources": {"webhook": keys}}


def sqs(**keys: Any) -> dict[str, Any]:
    """Return a change giving the config an SQS source: the AWS queue plus keys."""
    return {"sources": {"sqs": {"queue_url": AWS_QUEUE_URL, **keys}}}


@pytest.mark.parametrize(
    ("change", "key_path", "phrase"),
    [
        ({"server": {"listen": "8080"}}, "server.listen", "must be host:port"),
        ({"server": {"listen": "0.0.0.0:70000"}}, "server.listen", "host:port"),
        ({"server": {"listen": "::1:8080"}}, "server.listen", "[::]:8080"),
        ({"server": {"listen": 8080}}, "server.listen", "valid string"),
        ({"server": {"port": 1}}, "server.port", "allowed keys: listen"),
        ({"server": {"shutdown_grace_s": 0}}, "server.shutdown_grace_s", "greater"),
        (
            {"sources": {"kafka": {}}},
            "sources.kafka",
            "unknown key 'kafka'; allowed keys: webhook, sqs",
        ),
        (webhook(), "sources.webhook", "needs a token: set token_env or token_file"),
        (
            webhook(token="x"),
            "sources.webhook.token",
            "inline secrets are not allowed: use token_env",
        ),
        (
            webhook(token_env="T", token_file="t"),
            "sources.webhook",
            "one of token_env or token_file, not both",
        ),
        (webhook(token_env="not a name"), "sources.webhook.token_env", "name of an"),
        (webhook(token_env="T", path="webhook"), "sources.webhook.path", "URL path"),
        (webhook(token_env="T", path="/a//b"), "sources.webhook.path", "URL path"),
        (webhook(token_env="T", path="/hook?x=1"), "sources.webhook.path", "URL path"),
        (webhook(token_env="T", path="/metrics"), "sources.webhook.path", "is taken"),
        (webhook(token_env="T", enabled="yes"), "sources.webhook.enabled", "boolean"),
        (
            {"sources": {"sqs": {}}},
            "sources.sqs.queue_url",
            "required key is missing",
        ),
        (
            sqs(queue_url="sqs.eu-west-1.amazonaws.com/111122223333/q"),
            "sources.sqs.queue_url",
            "must be an http:// or https:// URL",
        ),
        (
            sqs(queue_url="https://sqs.eu-west-1.amazonaws.com/q"),
            "sources.sqs.queue_url",
            "must be a queue URL such as https://sqs.us-east-1.amazonaws.com/",
        ),
        (
            sqs(queue_url=AWS_QUEUE_URL.replace("https", "http")),
            "sources.sqs.queue_url",
            "plain http:// only with endpoint_url",
        ),
        (
            sqs(queue_url="https://queue.example.com/111122223333/events"),
            "sources.sqs.region",
            "cannot be read from queue_url; set region",
        ),
        (sqs(region="Ireland"), "sources.sqs.region", "AWS region name"),
        (sqs(endpoint_url="localhost:4566"), "sources.sqs.endpoint_url", "http://"),
        (sqs(wait_time_s=0), "sources.sqs.wait_time_s", "greater than or equal to 1"),
        (sqs(wait_time_s=21), "sources.sqs.wait_time_s", "less than or equal to 20"),
        (sqs(wait_time_s=1.5), "sources.sqs.wait_time_s", "valid integer"),
        (sqs(max_messages=11), "sources.sqs.max_messages", "less than or equal to 10"),
        (
            sqs(visibility_timeout_s=0),
            "sources.sqs.visibility_timeout_s",
            "greater than or equal to 1",
        ),
        (
            sqs(visibility_timeout_s=43201),
            "sources.sqs.visibility_timeout_s",
            "less than or equal to 43200",
        ),
        (sqs(retry_delay_s=-1), "sources.sqs.retry_delay_s", "greater than or equal"),
        (sqs(queue="x"), "sources.sqs.queue", "allowed keys: queue_url, region"),
    ],
)
def test_rejects_bad_server_and_sources_at_key_path(
    change: Any, key_path: str, phrase: str
) -> None:
    error = config_error(change, environ={"T": WEBHOOK_TOKEN})

    assert (error.key_path, phrase in error.message) == (key_path, True), error.message


@pytest.mark.parametrize(
    ("keys", "environ", "key_path", "phrase"),
    [
        (
            {"token_env": "WEBHOOK_TOKEN"},
            {},
            "sources.webhook.token_env",
            "environment variable WEBHOOK_TOKEN is not set or empty",
        ),
        (
            {"token_env": "WEBHOOK_TOKEN"},
            {"WEBHOOK_TOKEN": "short-token"},
            "sources.webhook.token_env",
            "at least 16 characters",
        ),
        (
            {"token_env": "WEBHOOK_TOKEN"},
            {"WEBHOOK_TOKEN": "a token with spaces in it"},
            "sources.webhook.token_env",
            "(a bearer token, RFC 6750)",
        ),
        (
            {"token_file": "missing-token"},
            {},
            "sources.webhook.token_file",
            "missing-token: No such file or directory",
        ),
    ],
)
def test_reports_an_unusable_webhook_token_at_key_path(
    tmp_path: Path,
    keys: dict[str, str],
    environ: dict[str, str],
    key_path: str,
    phrase: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(document(webhook(**keys)), "t", environ=environ, base_dir=tmp_path)

    assert (caught.value.key_path, phrase in caught.value.message) == (key_path, True)
    assert "short-token" not in str(caught.value)


def test_server_and_sources_default_to_listening_on_8080_without_sources() -> None:
    config = parse()

    assert config.server.model_dump() == {
        "listen": "0.0.0.0:8080",
        "shutdown_grace_s": 30.0,
    }
    assert (config.server.host, config.server.port) == ("0.0.0.0", 8080)
    assert (config.sources.webhook, config.sources.sqs) == (None, None)


def test_reads_sources_and_fills_their_defaults(tmp_path: Path) -> None:
    (tmp_path / "webhook-token").write_text(f"{WEBHOOK_TOKEN}\n")
    change = {
        "server": {"listen": "[::1]:9090"},
        "sources": {"webhook": {"token_file": "webhook-token"}, **sqs()["sources"]},
    }

    config = parse_config(document(change), "t", environ={}, base_dir=tmp_path)
    webhook_settings, sqs_settings = config.sources.webhook, config.sources.sqs

    assert (config.server.host, config.server.port) == ("::1", 9090)
    assert webhook_settings is not None
    assert (webhook_settings.enabled, webhook_settings.path) == (True, "/webhook")
    assert webhook_settings.token_value() == WEBHOOK_TOKEN
    assert sqs_settings is not None
    assert sqs_settings.model_dump() == {
        "queue_url": AWS_QUEUE_URL,
        "region": None,
        "endpoint_url": None,
        "wait_time_s": 20,
        "visibility_timeout_s": 60,
        "max_messages": 10,
        "retry_delay_s": 30,
    }
    assert sqs_settings.region_name == "eu-west-1"


def test_local_sqs_needs_region_and_may_use_http() -> None:
    local = "http://127.0.0.1:4566/000000000000/events"
    config = parse(
        sqs(queue_url=local, endpoint_url="http://127.0.0.1:4566", region="us-east-1")
    )

    assert config.sources.sqs is not None
    assert config.sources.sqs.region_name == "us-east-1"


def test_a_disabled_webhook_needs_no_token() -> None:
    config = parse(webhook(enabled=False))

    assert config.sources.webhook is not None
    assert not config.sources.webhook.enabled


def test_never_shows_the_webhook_token() -> None:
    config = parse(webhook(token_env="T"), environ={"T": WEBHOOK_TOKEN})
    settings = config.sources.webhook
    assert settings is not None

    shown = [repr(config), str(config), repr(settings), str(settings.token)]

    assert [text for text in shown if SECRET in text] == []
