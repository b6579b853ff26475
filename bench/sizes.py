"""Corpus sizes: how many repositories, tags and bytes each benchmark size holds."""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


@dataclass(frozen=True, slots=True)
class CorpusSize:
    """The shape of one corpus; layer sizes are compressed bytes, approximate."""

    name: str
    single_repositories: int
    """Repositories of single-platform images (Docker and OCI alternately)."""
    multi_repositories: int
    """Repositories of two-platform indexes (OCI index and Docker list alternately)."""
    versions: int
    """Distinct images per repository; each also gets a minor and a latest alias."""
    base_bytes: int
    """The amd64 base layer that almost every image shares."""
    arm_base_bytes: int
    """The arm64 base layer of the multi-platform images."""
    runtime_bytes: int
    """A runtime layer shared by half the single-platform repositories."""
    deps_bytes: int
    """A dependencies layer per single-platform repository, shared by its tags."""
    app_bytes: int
    """The application layer unique to each image."""
    big_layer_bytes: int
    """The one incompressible layer of the big-layer scenario."""

    @property
    def repositories(self) -> int:
        """Return how many image repositories the corpus has."""
        return self.single_repositories + self.multi_repositories

    @property
    def tags_per_repository(self) -> int:
        """Return the image tags per repository (referrers fallback tags aside)."""
        return self.versions + 2


SIZES: dict[str, CorpusSize] = {
    size.name: size
    for size in (
        CorpusSize(
            name="smoke",
            single_repositories=2,
            multi_repositories=1,
            versions=2,
            base_bytes=192 * KIB,
            arm_base_bytes=96 * KIB,
            runtime_bytes=64 * KIB,
            deps_bytes=32 * KIB,
            app_bytes=16 * KIB,
            big_layer_bytes=8 * MIB,
        ),
        CorpusSize(
            name="small",
            single_repositories=3,
            multi_repositories=1,
            versions=3,
            base_bytes=10 * MIB,
            arm_base_bytes=5 * MIB,
            runtime_bytes=4 * MIB,
            deps_bytes=1 * MIB,
            app_bytes=400 * KIB,
            big_layer_bytes=256 * MIB,
        ),
        CorpusSize(
            name="medium",
            single_repositories=8,
            multi_repositories=2,
            versions=3,
            base_bytes=40 * MIB,
            arm_base_bytes=20 * MIB,
            runtime_bytes=15 * MIB,
            deps_bytes=3 * MIB,
            app_bytes=1400 * KIB,
            big_layer_bytes=1 * GIB,
        ),
        CorpusSize(
            name="large",
            single_repositories=24,
            multi_repositories=6,
            versions=4,
            base_bytes=40 * MIB,
            arm_base_bytes=20 * MIB,
            runtime_bytes=15 * MIB,
            deps_bytes=3 * MIB,
            app_bytes=1400 * KIB,
            big_layer_bytes=1 * GIB,
        ),
    )
}

SIZE_ORDER = ("smoke", "small", "medium", "large")


def scaling_sizes(requested: str) -> tuple[str, ...]:
    """Return the sizes the scaling scenario measures for a requested size."""
    if requested == "smoke":
        return ("smoke",)
    ladder = SIZE_ORDER[1:]
    return ladder[: ladder.index(requested) + 1]
