"""The ECR lab: moto for the control plane, a docker-registry per ECR registry.

Each ECR registry (one account in one region) gets its own distribution registry
as its data plane, with htpasswd user ``AWS`` and the password moto's
GetAuthorizationToken hands out for that account (``<account>-auth-token``).
Configurations point at both through the ``ecr`` block's endpoint overrides.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from replicator.aws.session import AssumeRole, AwsApi, AwsSession, AwsTarget
from replicator.config import Config, parse_config
from tests.lab.fixtures import RegistryFactory
from tests.lab.moto import ACCOUNT_ID, MotoServer
from tests.lab.pusher import Credentials, LabClient
from tests.lab.registry import RegistryProcess

SOURCE_ACCOUNT = ACCOUNT_ID
PARTNER_ACCOUNT = "222233334444"
PARTNER_ROLE = f"arn:aws:iam::{PARTNER_ACCOUNT}:role/replicator-writer"


def moto_password(account: str) -> str:
    """Return the registry password moto's GetAuthorizationToken gives account."""
    return f"{account}-auth-token"


@dataclass(frozen=True, slots=True)
class EcrRegistry:
    """One ECR registry of the lab: an account and region with its data plane."""

    account: str
    region: str
    data_plane: RegistryProcess
    moto_url: str

    @property
    def credentials(self) -> Credentials:
        """Return the credentials its data plane accepts."""
        return Credentials("AWS", moto_password(self.account))

    def lab_client(self) -> LabClient:
        """Return a lab client, independent of replicator, for seeding and checks."""
        return LabClient(self.data_plane.url, credentials=self.credentials)

    def entry(self, **ecr: Any) -> dict[str, Any]:
        """Return its ``registries`` entry, with extra keys for the ecr block."""
        settings = {"data_plane_url": self.data_plane.url, **ecr}
        return ecr_entry(self.account, self.region, self.moto_url, **settings)

    def target(self, role_arn: str | None = None) -> AwsTarget:
        """Return the AWS target of this registry's control plane."""
        role = None if role_arn is None else AssumeRole(role_arn, "lab-session")
        return AwsTarget(self.region, self.moto_url, self.moto_url, role)


EcrRegistryFactory = Callable[[str, str], EcrRegistry]


def ecr_entry(account: str, region: str, moto_url: str, **ecr: Any) -> dict[str, Any]:
    """Return a ``registries`` entry of an ECR registry whose APIs moto serves.

    Without ``data_plane_url`` the registry API is AWS's own URL, which such a
    test must never reach.
    """
    return {
        "registry_id": account,
        "region": region,
        "insecure": True,
        "ecr": {"endpoint_url": {"ecr": moto_url, "sts": moto_url}, **ecr},
    }


@pytest.fixture
def ecr_registry_factory(
    moto: MotoServer, registry_factory: RegistryFactory
) -> EcrRegistryFactory:
    """Start an ECR registry's data plane for an account and a region."""

    def start(account: str, region: str) -> EcrRegistry:
        data_plane = registry_factory(htpasswd={"AWS": moto_password(account)})
        return EcrRegistry(account, region, data_plane, moto.url)

    return start


@pytest.fixture
def aws() -> AwsSession:
    """Return a fresh AWS session: no credentials or roles cached across tests."""
    return AwsSession()


def api(
    aws: AwsSession, moto: MotoServer, region: str, role: str | None = None
) -> AwsApi:
    """Return AWS access in a region of moto, as the default account or a role."""
    assume = None if role is None else AssumeRole(role, "lab-session")
    return aws.api(AwsTarget(region, moto.url, moto.url, assume), f"lab-{region}")


def build_config(
    document: dict[str, Any], environ: dict[str, str] | None = None
) -> Config:
    """Validate a configuration document as the CLI would."""
    return parse_config({"version": 1, **document}, "test", environ=environ or {})


def moto_state(moto: MotoServer) -> dict[str, Any]:
    """Return moto's internal state (its /moto-api/data.json), for assertions."""
    with urllib.request.urlopen(f"{moto.url}/moto-api/data.json", timeout=5) as answer:
        state: dict[str, Any] = json.load(answer)
    return state


@pytest.fixture
def iam_moto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto: MotoServer
) -> Iterator[MotoServer]:
    """Start a second moto that enforces IAM after three unauthenticated calls.

    The three calls create a user, its policy and its access key; see moto's
    INITIAL_NO_AUTH_ACTION_COUNT. ``moto`` comes first for its dummy environment.
    """
    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "3")
    with MotoServer(tmp_path / "iam-moto") as server:
        monkeypatch.delenv("INITIAL_NO_AUTH_ACTION_COUNT")
        yield server
