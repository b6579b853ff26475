"""The replication rule models: ECR's rule shape (filters, destinations) plus our
extensions. Matching images against them lives in ``replicator.rules``."""

from __future__ import annotations

from typing import Self

from pydantic import StrictBool, StrictStr, model_validator

from replicator.config.base import AccountId, EcrShapedModel, Name, NonEmptyStr, Region
from replicator.rules import FilterType


class Filter(EcrShapedModel):
    """A repository or tag filter in ECR's shape (``filter``, ``filterType``)."""

    filter: NonEmptyStr
    filter_type: FilterType


class Destination(EcrShapedModel):
    """Where a rule copies to: a ``registries`` entry, or ECR's region+registryId."""

    registry: Name | None = None
    region: Region | None = None
    registry_id: AccountId | None = None
    repository_prefix: StrictStr = ""

    @model_validator(mode="after")
    def _check_one_registry(self) -> Self:
        """Require either registry or the pair region and registryId."""
        ecr_keys = (self.region, self.registry_id)
        if self.registry is not None and ecr_keys != (None, None):
            raise ValueError(
                "give either registry, or region and registryId (ECR's form), not both"
            )
        if self.registry is None and None in ecr_keys:
            raise ValueError(
                "name the destination with registry (a key of registries), or with "
                "both region and registryId as ECR does"
            )
        return self

    @property
    def ecr_identity(self) -> tuple[str, str] | None:
        """Return (registry_id, region) when written ECR's way, else None."""
        if self.registry_id is None or self.region is None:
            return None
        return (self.registry_id, self.region)


class Rule(EcrShapedModel):
    """One replication rule: ECR's shape plus our extensions."""

    name: Name
    destinations: tuple[Destination, ...]
    repository_filters: tuple[Filter, ...] = ()
    repository_exclusions: tuple[Filter, ...] = ()
    tag_filters: tuple[Filter, ...] = ()
    tag_exclusions: tuple[Filter, ...] = ()
    replicate_deletes: StrictBool = False
