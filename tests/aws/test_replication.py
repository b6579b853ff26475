"""ECR end to end: two accounts, three regions, moto control planes, real registries.

The source (the default account, us-east-1) replicates ``prod/`` repositories to
another region of its account (eu-west-1) and to another account (ap-southeast-2)
reached through an assumed role. Each registry's data plane is a docker-registry
that accepts moto's GetAuthorizationToken password; the source's sits behind the
lab proxy, which redirects blob downloads to an object-storage stand-in as ECR
redirects them to S3.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from replicator.aws.ecr_auth import EcrCredentialSource
from replicator.aws.session import AwsSession
from replicator.aws.wiring import apply_rules_from_ecr, aws_api, repository_hooks
from replicator.backfill import BackfillSummary, Selection, backfill
from replicator.clients import registry_clients
from replicator.config import Config
from replicator.copier.copier import Copier
from replicator.copier.results import CopyJob, ImageOutcome
from replicator.registry.client import RegistryClient
from replicator.rules import compile_rules
from tests.aws.conftest import (
    PARTNER_ACCOUNT,
    PARTNER_ROLE,
    SOURCE_ACCOUNT,
    EcrRegistry,
    EcrRegistryFactory,
    api,
    build_config,
    moto_state,
)
from tests.lab.fixtures import FaultProxyFactory
from tests.lab.images import Image, Index, sample_image, sample_index
from tests.lab.moto import MotoServer
from tests.lab.proxy import Respond, oci_error_body

KMS_KEY = f"arn:aws:kms:ap-southeast-2:{PARTNER_ACCOUNT}:key/5678efgh-90ab-cdef"
EXTERNAL_ID = "replicator-partner-7f3a"
PROD_RULE = {
    "destinations": [
        {"region": "eu-west-1", "registryId": SOURCE_ACCOUNT},
        {"region": "ap-southeast-2", "registryId": PARTNER_ACCOUNT},
    ],
    "repositoryFilters": [{"filter": "prod/", "filterType": "PREFIX_MATCH"}],
}
WEST_SETTINGS = {
    "image_tag_mutability": "IMMUTABLE",
    "scan_on_push": True,
    "tags": {"replicated-from": "us-east-1"},
}
PARTNER_SETTINGS = {
    "encryption_type": "KMS",
    "kms_key": KMS_KEY,
    "tags": {"owner": "partner", "replicated-from": "us-east-1"},
}


class EcrLab:
    """Three ECR registries and the configuration that replicates between them."""

    def __init__(self, factory: EcrRegistryFactory, proxies: FaultProxyFactory) -> None:
        self.source = factory(SOURCE_ACCOUNT, "us-east-1")
        self.west = factory(SOURCE_ACCOUNT, "eu-west-1")
        self.partner = factory(PARTNER_ACCOUNT, "ap-southeast-2")
        self.source_proxy = proxies(self.source.data_plane)
        self.source_proxy.redirect_blobs()
        self.west_proxy = proxies(self.west.data_plane)

    def document(self, *, rules_from_ecr: bool = False) -> dict[str, Any]:
        """Return the configuration, with the rule in YAML or read from ECR."""
        rules: dict[str, Any] = (
            {"rules_from_ecr": True}
            if rules_from_ecr
            else {"rules": [{"name": "prod", **PROD_RULE}]}
        )
        return {
            "source": "source",
            "registries": {
                "source": self.source.entry(data_plane_url=self.source_proxy.url),
                "west": self.west.entry(
                    data_plane_url=self.west_proxy.url,
                    repository_settings=WEST_SETTINGS,
                ),
                "partner": self.partner.entry(
                    assume_role_arn=PARTNER_ROLE,
                    external_id=EXTERNAL_ID,
                    session_name="replicator-lab",
                    repository_settings=PARTNER_SETTINGS,
                ),
            },
            **rules,
        }

    def push(self, repository: str, tag: str, image: Image | Index) -> None:
        """Push an image to the source, as a developer would."""
        self.source.lab_client().push_image(repository, tag, image)


@pytest.fixture
def lab(
    moto: MotoServer,
    ecr_registry_factory: EcrRegistryFactory,
    fault_proxy_factory: FaultProxyFactory,
) -> EcrLab:
    """Start the three registries of the ECR lab."""
    return EcrLab(ecr_registry_factory, fault_proxy_factory)


async def replicate(
    config: Config, session: aiohttp.ClientSession, aws: AwsSession
) -> BackfillSummary:
    """Backfill everything the rules select, as ``replicator backfill`` does."""
    config = await apply_rules_from_ecr(config, aws)
    clients = registry_clients(config, session, aws)
    copier = Copier(
        config.concurrency.blobs_per_registry,
        repository_hooks=repository_hooks(config, aws),
    )
    selection = Selection(clients[config.source], compile_rules(config), clients)

    return await backfill(selection, copier, config.concurrency.images)


def outcomes(summary: BackfillSummary) -> dict[tuple[str, str, str], ImageOutcome]:
    """Return each result's outcome by destination, repository and tag."""
    return {
        (
            result.job.destination.name,
            result.job.destination_repository,
            result.job.reference,
        ): result.outcome
        for result in summary.results
    }


def assert_same_image(
    destination: EcrRegistry, repository: str, tag: str, image: Image | Index
) -> None:
    """Check the manifest and every blob at the destination, byte for byte."""
    client = destination.lab_client()
    data, _, digest = client.get_manifest(repository, tag)
    assert (data, digest) == (image.manifest, image.digest)
    children = image.children if isinstance(image, Index) else (image,)
    for child in children:
        assert client.get_manifest(repository, child.digest)[0] == child.manifest
        for blob in child.blobs:
            assert client.get_blob(repository, blob.digest) == blob.data


async def describe_repository(
    aws: AwsSession, moto: MotoServer, region: str, repository: str, role: str | None
) -> dict[str, Any]:
    """Return DescribeRepositories' entry for a repository, with its tags."""
    access = api(aws, moto, region, role=role)
    answer = await access.call(
        "ecr", "describe_repositories", repositoryNames=[repository]
    )
    [found] = answer["repositories"]
    tags = await access.call(
        "ecr", "list_tags_for_resource", resourceArn=found["repositoryArn"]
    )
    return {**found, "tags": {tag["Key"]: tag["Value"] for tag in tags["tags"]}}


@pytest.mark.parametrize("rules_from_ecr", [False, True], ids=["yaml", "ecr"])
async def test_replicates_prod_across_regions_and_accounts(
    lab: EcrLab,
    moto: MotoServer,
    aws: AwsSession,
    session: aiohttp.ClientSession,
    rules_from_ecr: bool,
) -> None:
    api_image, web_index = sample_image("api"), sample_index("web")
    lab.push("prod/api", "1.0", api_image)
    lab.push("prod/web", "2.0", web_index)
    lab.push("dev/tool", "0.1", sample_image("tool"))
    if rules_from_ecr:
        await api(aws, moto, "us-east-1").call(
            "ecr",
            "put_replication_configuration",
            replicationConfiguration={"rules": [PROD_RULE]},
        )

    summary = await replicate(
        build_config(lab.document(rules_from_ecr=rules_from_ecr)), session, aws
    )

    assert outcomes(summary) == {
        (destination, repository, tag): ImageOutcome.COPIED
        for destination in ("west", "partner")
        for repository, tag in (("prod/api", "1.0"), ("prod/web", "2.0"))
    }
    for destination in (lab.west, lab.partner):
        assert_same_image(destination, "prod/api", "1.0", api_image)
        assert_same_image(destination, "prod/web", "2.0", web_index)
        assert "dev/tool" not in destination.lab_client().list_repositories()
    # Blobs came from the object-storage stand-in, which never saw credentials.
    assert lab.source_proxy.blob_host_requests
    assert not any(r.authorized for r in lab.source_proxy.blob_host_requests)


async def test_creates_destination_repositories_with_the_configured_settings(
    lab: EcrLab, moto: MotoServer, aws: AwsSession, session: aiohttp.ClientSession
) -> None:
    lab.push("prod/api", "1.0", sample_image("api"))

    await replicate(build_config(lab.document()), session, aws)
    assumed = moto_state(moto)["sts"]["AssumedRole"]

    west = await describe_repository(aws, moto, "eu-west-1", "prod/api", None)
    partner = await describe_repository(
        aws, moto, "ap-southeast-2", "prod/api", PARTNER_ROLE
    )
    assert (west["registryId"], partner["registryId"]) == (
        SOURCE_ACCOUNT,
        PARTNER_ACCOUNT,
    )
    assert west["imageTagMutability"] == "IMMUTABLE"
    assert west["imageScanningConfiguration"] == {"scanOnPush": True}
    assert west["encryptionConfiguration"] == {"encryptionType": "AES256"}
    assert west["tags"] == {"replicated-from": "us-east-1"}
    assert partner["imageTagMutability"] == "MUTABLE"
    assert partner["imageScanningConfiguration"] == {"scanOnPush": False}
    assert partner["encryptionConfiguration"] == {
        "encryptionType": "KMS",
        "kmsKey": KMS_KEY,
    }
    assert partner["tags"] == {"owner": "partner", "replicated-from": "us-east-1"}
    assert {(r["role_arn"], r["external_id"], r["session_name"]) for r in assumed} == {
        (PARTNER_ROLE, EXTERNAL_ID, "replicator-lab")
    }


def tag_invalid(repository: str, tag: str) -> Respond:
    """Return ECR's answer to a PUT that would move a tag of an immutable repository."""
    message = (
        f"The image tag '{tag}' already exists in the '{repository}' repository "
        "and cannot be overwritten because the repository is immutable."
    )
    headers = {"Content-Type": "application/json"}

    return Respond(400, headers, oci_error_body("TAG_INVALID", message))


async def test_skips_an_immutable_destination_tag_and_copies_the_rest(
    lab: EcrLab, moto: MotoServer, aws: AwsSession, session: aiohttp.ClientSession
) -> None:
    first, moved, new = sample_image("one"), sample_image("moved"), sample_image("new")
    lab.push("prod/app", "1.0", first)
    config = build_config(lab.document())
    await replicate(config, session, aws)
    # docker-registry does not enforce immutability; the proxy answers as ECR
    # does for the repository created IMMUTABLE in moto.
    lab.west_proxy.add_fault(
        tag_invalid("prod/app", "1.0"),
        method="PUT",
        path=r"^/v2/prod/app/manifests/1\.0$",
        times=None,
    )
    lab.push("prod/app", "1.0", moved)
    lab.push("prod/app", "2.0", new)

    summary = await replicate(config, session, aws)

    assert outcomes(summary) == {
        ("west", "prod/app", "1.0"): ImageOutcome.SKIPPED,
        ("partner", "prod/app", "1.0"): ImageOutcome.COPIED,
        ("west", "prod/app", "2.0"): ImageOutcome.COPIED,
        ("partner", "prod/app", "2.0"): ImageOutcome.COPIED,
    }
    [skipped] = [r for r in summary.results if r.outcome is ImageOutcome.SKIPPED]
    assert skipped.error is not None
    assert "destination tag is immutable and names other content" in skipped.error
    assert_same_image(lab.west, "prod/app", "1.0", first)
    assert_same_image(lab.partner, "prod/app", "1.0", moved)
    assert_same_image(lab.west, "prod/app", "2.0", new)


def token_fetches(logs: Sequence[Mapping[str, Any]], registry: str) -> int:
    """Count the ECR tokens fetched for a registry, from captured logs."""
    return sum(
        1
        for entry in logs
        if entry["event"] == "ecr_token_refreshed" and entry["registry"] == registry
    )


async def copy_to_west(
    lab: EcrLab,
    config: Config,
    session: aiohttp.ClientSession,
    aws: AwsSession,
    destination: RegistryClient,
) -> ImageOutcome:
    """Copy prod/app:1.0 from the source to west with a given west client."""
    clients = registry_clients(config, session, aws)
    copier = Copier(repository_hooks=repository_hooks(config, aws))
    job = CopyJob(clients["source"], "prod/app", "1.0", destination, "prod/app")

    return (await copier.copy(job)).outcome


async def test_fetches_a_new_token_when_the_registry_refuses_the_old_one(
    lab: EcrLab, aws: AwsSession, session: aiohttp.ClientSession
) -> None:
    image = sample_image("app")
    lab.push("prod/app", "1.0", image)
    config = build_config(lab.document())
    # What ECR's data plane does with a token that expired: refuse it.
    lab.west_proxy.add_fault(
        Respond(401, {"WWW-Authenticate": 'Basic realm="lab-registry"'}),
        method="PUT",
        path=r"/manifests/1\.0$",
    )
    west = registry_clients(config, session, aws)["west"]

    with capture_logs() as logs:
        outcome = await copy_to_west(lab, config, session, aws, west)

    assert outcome is ImageOutcome.COPIED
    assert token_fetches(logs, "west") == 2
    statuses = [r.status for r in lab.west_proxy.requests if r.method == "PUT"]
    assert statuses[-2:] == [401, 201]
    assert_same_image(lab.west, "prod/app", "1.0", image)


class JumpingClock:
    """Wall-clock time that jumps ahead once, after some readings: a long copy."""

    def __init__(self, jump_after_reads: int, jump_s: float) -> None:
        self.reads = 0
        self.jump_after_reads = jump_after_reads
        self.jump_s = jump_s

    def __call__(self) -> float:
        self.reads += 1
        jumped = self.reads > self.jump_after_reads
        return time.time() + (self.jump_s if jumped else 0.0)


async def test_renews_a_token_that_expires_during_a_copy(
    lab: EcrLab, aws: AwsSession, session: aiohttp.ClientSession
) -> None:
    index = sample_index("long")
    lab.push("prod/app", "1.0", index)
    config = build_config(lab.document())
    # Thirteen hours pass after a few requests: longer than a token lives.
    clock = JumpingClock(jump_after_reads=6, jump_s=13 * 3600)
    credentials = EcrCredentialSource(
        aws_api("west", config.registries["west"], aws), clock=clock
    )
    west = registry_clients(config, session, aws)["west"]
    west_with_clock = RegistryClient(session, west.endpoint, credentials, west.retry)

    with capture_logs() as logs:
        outcome = await copy_to_west(lab, config, session, aws, west_with_clock)

    assert outcome is ImageOutcome.COPIED
    assert clock.reads > clock.jump_after_reads + 5  # requests after the jump
    assert token_fetches(logs, "west") == 2
    assert_same_image(lab.west, "prod/app", "1.0", index)
