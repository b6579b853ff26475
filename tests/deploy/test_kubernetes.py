"""The Kubernetes kit in deploy/kubernetes/: schemas, wiring and the configuration.

Built-in kinds are validated with kubernetes-validate against the Kubernetes
OpenAPI schemas (strict: unknown fields fail); the custom resources (Prometheus
Operator, KEDA) against the required shape written here. The rest checks that the
pieces fit: selectors, ports, names, the configuration file and its secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from replicator.config import Config, parse_config
from tests.lab.monitoring import PROMETHEUS_DIR, REPO_ROOT

KUBERNETES_DIR = REPO_ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes release the kit supports, and the newest schemas known.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
DRAIN_MARGIN_S = 10
IAM_ROLE_ARN = re.compile(r"arn:aws(?:-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]+")

_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1}, "labels": _LABELS},
}
_SELECTOR = {
    "type": "object",
    "required": ["matchLabels"],
    "properties": {"matchLabels": {**_LABELS, "minProperties": 1}},
}


def _custom_resource(api_version: str, kind: str, spec: dict[str, Any]) -> Any:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
    }


# The fields each operator requires, with the values replicator relies on.
CUSTOM_RESOURCE_SCHEMAS = {
    "ServiceMonitor": _custom_resource(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": _SELECTOR,
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port", "path"],
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"const": "/metrics"},
                            "interval": {"type": "string", "pattern": r"^\d+[smh]$"},
                            "scrapeTimeout": {
                                "type": "string",
                                "pattern": r"^\d+[smh]$",
                            },
                        },
                    },
                },
            },
        },
    ),
    "PrometheusRule": _custom_resource(
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        {
            "type": "object",
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "properties": {
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["alert", "expr"],
                                },
                            }
                        },
                    },
                }
            },
        },
    ),
    "ScaledObject": _custom_resource(
        "keda.sh/v1alpha1",
        "ScaledObject",
        {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "kind": {"const": "Deployment"},
                        "name": {"type": "string"},
                    },
                },
                "minReplicaCount": {"type": "integer", "minimum": 1},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata", "authenticationRef"],
                        "properties": {
                            "type": {"const": "aws-sqs-queue"},
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                            },
                            "metadata": {
                                "type": "object",
                                "required": ["queueURL", "awsRegion", "queueLength"],
                                # KEDA reads every metadata value as a string.
                                "additionalProperties": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    ),
    "TriggerAuthentication": _custom_resource(
        "keda.sh/v1alpha1",
        "TriggerAuthentication",
        {
            "type": "object",
            "required": ["podIdentity"],
            "properties": {
                "podIdentity": {
                    "type": "object",
                    "required": ["provider"],
                    "properties": {
                        "provider": {"const": "aws"},
                        "identityOwner": {"enum": ["keda", "workload"]},
                    },
                    # KEDA refuses a roleArn together with identityOwner.
                    "not": {"required": ["roleArn", "identityOwner"]},
                }
            },
        },
    ),
}


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    """Return the parsed kustomization.yaml."""
    document: dict[str, Any] = yaml.safe_load(
        (KUBERNETES_DIR / "kustomization.yaml").read_text()
    )
    return document


@pytest.fixture(scope="module")
def resources(kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    """Return every document of every resource file the kustomization lists."""
    return [
        document
        for name in kustomization["resources"]
        for document in _documents(KUBERNETES_DIR / name)
    ]


@pytest.fixture(scope="module")
def cluster_config(kustomization: dict[str, Any]) -> Config:
    """Return the ConfigMap's configuration file, validated by replicator itself."""
    files = kustomization["configMapGenerator"][0]["files"]
    path = KUBERNETES_DIR / files[0]
    document = yaml.safe_load(path.read_text())
    environ = dict.fromkeys(_environment_variables(document), "secret-from-kubernetes")
    return parse_config(document, str(path), environ=environ)


def test_kustomization_lists_every_manifest_and_each_exists(
    kustomization: dict[str, Any],
) -> None:
    listed = set(kustomization["resources"])
    generated = {
        file
        for generator in kustomization["configMapGenerator"]
        for file in generator["files"]
    }
    present = {path.name for path in KUBERNETES_DIR.glob("*.yaml")}

    assert all((KUBERNETES_DIR / name).is_file() for name in listed | generated)
    assert present - {"kustomization.yaml"} == listed | generated


def test_every_resource_parses_with_kind_and_name(
    resources: list[dict[str, Any]],
) -> None:
    identities = [
        (document["apiVersion"], document["kind"], document["metadata"]["name"])
        for document in resources
    ]

    assert len(identities) == len(set(identities))
    assert all("namespace" not in document["metadata"] for document in resources), (
        "the kustomization sets the namespace"
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_built_in_resources_validate_against_kubernetes_schemas(
    resources: list[dict[str, Any]], version: str
) -> None:
    built_in = [
        document
        for document in resources
        if document["kind"] not in CUSTOM_RESOURCE_SCHEMAS
    ]

    for document in built_in:
        kubernetes_validate.validate(document, version, strict=True)

    assert {document["kind"] for document in built_in} == {
        "Namespace",
        "ServiceAccount",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    }


def test_custom_resources_have_the_shape_their_operators_require(
    resources: list[dict[str, Any]],
) -> None:
    custom = [
        document
        for document in resources
        if document["kind"] in CUSTOM_RESOURCE_SCHEMAS
    ]

    for document in custom:
        jsonschema.validate(document, CUSTOM_RESOURCE_SCHEMAS[document["kind"]])

    assert sorted(document["kind"] for document in custom) == sorted(
        CUSTOM_RESOURCE_SCHEMAS
    )


def test_shape_check_catches_a_wrong_trigger() -> None:
    scaled_object = _by_kind(_documents(KUBERNETES_DIR / "scaledobject.yaml"))
    broken = yaml.safe_load(yaml.safe_dump(scaled_object["ScaledObject"]))
    broken["spec"]["triggers"][0]["metadata"]["queueLength"] = 16

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, CUSTOM_RESOURCE_SCHEMAS["ScaledObject"])


def test_cluster_config_is_valid_and_serves_on_the_container_port(
    cluster_config: Config, resources: list[dict[str, Any]]
) -> None:
    container = _container(resources)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}

    assert cluster_config.server.port == ports["http"]
    assert cluster_config.server.host == "0.0.0.0"
    assert cluster_config.log.format == "json"


def test_probes_use_the_health_endpoints(resources: list[dict[str, Any]]) -> None:
    container = _container(resources)
    probes = {
        kind: (container[kind]["httpGet"]["path"], container[kind]["httpGet"]["port"])
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }

    assert probes == {
        "startupProbe": ("/healthz", "http"),
        "livenessProbe": ("/healthz", "http"),
        "readinessProbe": ("/readyz", "http"),
    }


def test_pod_runs_non_root_read_only_without_capabilities(
    resources: list[dict[str, Any]],
) -> None:
    pod = _pod_spec(resources)
    container = _container(resources)
    security = container["securityContext"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"requests", "limits"} <= set(container["resources"])
    for section in ("requests", "limits"):
        assert set(container["resources"][section]) == {"cpu", "memory"}


def test_termination_grace_covers_the_configured_drain(
    cluster_config: Config, resources: list[dict[str, Any]]
) -> None:
    grace_s = _pod_spec(resources)["terminationGracePeriodSeconds"]

    assert grace_s >= cluster_config.server.shutdown_grace_s + DRAIN_MARGIN_S


def test_configuration_is_mounted_where_the_command_reads_it(
    kustomization: dict[str, Any], resources: list[dict[str, Any]]
) -> None:
    pod = _pod_spec(resources)
    container = _container(resources)
    generator = kustomization["configMapGenerator"][0]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    config_volume = next(
        name
        for name, volume in volumes.items()
        if volume.get("configMap", {}).get("name") == generator["name"]
    )

    assert container["args"] == [
        "run",
        "--config",
        f"{mounts[config_volume]}/{generator['files'][0]}",
    ]


def test_secrets_reach_the_configuration_through_the_environment(
    kustomization: dict[str, Any], resources: list[dict[str, Any]]
) -> None:
    files = kustomization["configMapGenerator"][0]["files"]
    document = yaml.safe_load((KUBERNETES_DIR / files[0]).read_text())
    env = _container(resources)["env"]
    from_secrets = {
        entry["name"]: entry["valueFrom"]["secretKeyRef"]
        for entry in env
        if "secretKeyRef" in entry.get("valueFrom", {})
    }

    assert set(from_secrets) == set(_environment_variables(document))
    assert {ref["name"] for ref in from_secrets.values()} == {"replicator-secrets"}


def test_service_account_carries_an_iam_role(resources: list[dict[str, Any]]) -> None:
    account = _by_kind(resources)["ServiceAccount"]
    annotations = account["metadata"]["annotations"]

    assert _pod_spec(resources)["serviceAccountName"] == account["metadata"]["name"]
    assert IAM_ROLE_ARN.fullmatch(annotations["eks.amazonaws.com/role-arn"])


def test_selectors_and_ports_connect_the_pieces(
    resources: list[dict[str, Any]],
) -> None:
    kinds = _by_kind(resources)
    pod_labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    service = kinds["Service"]
    container_ports = {port["name"] for port in _container(resources)["ports"]}
    service_ports = {
        port["name"]: port["targetPort"] for port in service["spec"]["ports"]
    }
    monitor = kinds["ServiceMonitor"]["spec"]

    assert _selects(kinds["Deployment"]["spec"]["selector"]["matchLabels"], pod_labels)
    assert _selects(service["spec"]["selector"], pod_labels)
    assert _selects(
        kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"], pod_labels
    )
    assert set(service_ports.values()) <= container_ports
    assert _selects(monitor["selector"]["matchLabels"], service["metadata"]["labels"])
    assert {endpoint["port"] for endpoint in monitor["endpoints"]} <= set(service_ports)


def test_autoscaler_reads_the_configured_queue_for_the_deployment(
    cluster_config: Config, resources: list[dict[str, Any]]
) -> None:
    kinds = _by_kind(resources)
    scaled = kinds["ScaledObject"]["spec"]
    trigger = scaled["triggers"][0]
    sqs = cluster_config.sources.sqs
    assert sqs is not None

    assert scaled["scaleTargetRef"]["name"] == kinds["Deployment"]["metadata"]["name"]
    assert (
        trigger["authenticationRef"]["name"]
        == (kinds["TriggerAuthentication"]["metadata"]["name"])
    )
    assert (trigger["metadata"]["queueURL"], trigger["metadata"]["awsRegion"]) == (
        sqs.queue_url,
        sqs.region_name,
    )
    # The autoscaler owns the replica count; a fixed one would fight it.
    assert "replicas" not in kinds["Deployment"]["spec"]
    assert scaled["minReplicaCount"] >= 2


def test_prometheus_rule_holds_the_alert_rules_file(
    resources: list[dict[str, Any]],
) -> None:
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yaml").read_text())

    assert _by_kind(resources)["PrometheusRule"]["spec"]["groups"] == rules["groups"]


def _documents(path: Path) -> list[dict[str, Any]]:
    documents = list(yaml.safe_load_all(path.read_text()))
    assert documents, f"{path} holds no document"
    assert all(isinstance(document, dict) for document in documents), path
    return documents


def _by_kind(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {document["kind"]: document for document in resources}


def _pod_spec(resources: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = _by_kind(resources)["Deployment"]["spec"]["template"]["spec"]
    return spec


def _container(resources: list[dict[str, Any]]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = _pod_spec(resources)["containers"]
    assert len(containers) == 1
    return containers[0]


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(
        labels.get(key) == value for key, value in selector.items()
    )


def _environment_variables(document: object) -> Iterator[str]:
    """Yield the environment variables a configuration names (``*_env`` keys)."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key.endswith("_env") and isinstance(value, str):
                yield value
            else:
                yield from _environment_variables(value)
    elif isinstance(document, list):
        for item in document:
            yield from _environment_variables(item)
