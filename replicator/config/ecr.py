"""Amazon ECR settings: AWS role and endpoints, how repositories are created, and
how ECR registry URLs and identities (account, region) map to each other."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import Field, Strict, StrictBool, StrictStr, model_validator

from replicator.config.base import ConfigModel, NonEmptyStr, RegistryUrl, full_match

# ECR registry hosts: <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]
_ECR_HOST = re.compile(
    r"(?P<registry_id>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)"
    r"\.amazonaws\.com(?:\.cn)?"
)

# IAM and STS formats: see the AssumeRole API reference (RoleArn, RoleSessionName,
# ExternalId) and IAM's limits on role paths and names.
RoleArn = Annotated[
    StrictStr,
    full_match(
        r"arn:aws(?:-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]{1,512}",
        "must be an IAM role ARN such as arn:aws:iam::111122223333:role/replicator",
    ),
]
SessionName = Annotated[
    StrictStr,
    full_match(
        r"[\w+=,.@-]{2,64}",
        "must be 2 to 64 characters of letters, digits and + = , . @ _ -",
    ),
]
ExternalId = Annotated[
    StrictStr,
    full_match(
        r"[\w+=,.@:/-]{2,1224}",
        "must be 2 to 1224 characters of letters, digits and + = , . @ : / _ -",
    ),
]
TagKey = Annotated[StrictStr, Field(min_length=1, max_length=128)]
TagValue = Annotated[StrictStr, Field(max_length=256)]
# AWS allows 50 tags per resource.
MAX_REPOSITORY_TAGS = 50
# ECR's default quota for PutImage is 10 requests per second per registry.
DEFAULT_PUT_IMAGE_RATE_PER_S = 10.0


class EcrEndpoints(ConfigModel):
    """Overrides of AWS API endpoints (VPC endpoints, local tests); AWS's by default."""

    ecr: RegistryUrl | None = None
    sts: RegistryUrl | None = None


class RepositorySettings(ConfigModel):
    """How a destination repository is created (ECR CreateRepository)."""

    image_tag_mutability: Literal["MUTABLE", "IMMUTABLE"] = "MUTABLE"
    encryption_type: Literal["AES256", "KMS", "KMS_DSSE"] = "AES256"
    kms_key: NonEmptyStr | None = None
    scan_on_push: StrictBool = False
    tags: dict[TagKey, TagValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_encryption(self) -> Self:
        """Allow a KMS key only with KMS encryption, and at most 50 tags."""
        if self.kms_key is not None and self.encryption_type == "AES256":
            raise ValueError(
                "kms_key needs encryption_type: KMS (or KMS_DSSE); AES256 uses "
                "keys that Amazon ECR manages"
            )
        if len(self.tags) > MAX_REPOSITORY_TAGS:
            raise ValueError(f"tags: AWS allows at most {MAX_REPOSITORY_TAGS} tags")
        return self


class EcrSettings(ConfigModel):
    """How replicator reaches an Amazon ECR registry: AWS credentials and endpoints.

    AWS credentials come from the standard chain (environment, profile, web
    identity for Kubernetes service accounts, instance role); ``assume_role_arn``
    then switches to a role, typically in the registry's own account.
    """

    endpoint_url: EcrEndpoints = EcrEndpoints()
    data_plane_url: RegistryUrl | None = None
    assume_role_arn: RoleArn | None = None
    external_id: ExternalId | None = None
    session_name: SessionName = "replicator"
    create_repositories: StrictBool = True
    repository_settings: RepositorySettings = RepositorySettings()
    put_image_rate_per_s: Annotated[float, Strict(), Field(gt=0, le=10000)] = (
        DEFAULT_PUT_IMAGE_RATE_PER_S
    )

    @model_validator(mode="after")
    def _check_role(self) -> Self:
        """Allow an external ID or a session name only with a role to assume."""
        if self.external_id is not None and self.assume_role_arn is None:
            raise ValueError("external_id needs assume_role_arn")
        return self


DEFAULT_ECR_SETTINGS = EcrSettings()


def ecr_registry_url(registry_id: str, region: str) -> str:
    """Return the URL AWS gives a private registry: ``https://<id>.dkr.ecr...``."""
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{registry_id}.dkr.ecr.{region}.{domain}"


def ecr_identity_from_host(host: str) -> tuple[str, str] | None:
    """Return (registry_id, region) from an ECR registry host name, else None."""
    match = _ECR_HOST.fullmatch(host)
    if match is None:
        return None
    return (match["registry_id"], match["region"])
