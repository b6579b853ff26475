"""Walk an image's manifest graph at the source: index -> children -> blobs.

The walk is I/O-free apart from the two callables it is given, so its order and
its guards (depth bound, cycles, children the destination already holds) are tested
with plain dictionaries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from replicator.errors import ManifestError
from replicator.manifest import MAX_INDEX_DEPTH, Descriptor, Manifest, parse_references

FetchManifest = Callable[[str], Awaitable[Manifest]]
IsPresent = Callable[[str], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class ImageGraph:
    """What must exist at a destination before an image's root can be pushed."""

    manifests: tuple[Manifest, ...]
    """Every manifest to push, children before parents, the root last."""
    blobs: tuple[Descriptor, ...]
    """Every blob those manifests name, once each, largest first."""


async def walk(
    root: Manifest, fetch: FetchManifest, is_present: IsPresent
) -> ImageGraph:
    """Collect the manifests and blobs to copy for ``root``.

    A child the destination already holds is skipped with everything below it: a
    registry accepts a manifest only once all it names exists (guarantee 3).
    """
    ordered: list[Manifest] = []
    blobs: dict[str, Descriptor] = {}
    await _visit(root, fetch, is_present, ordered, blobs, {root.digest}, depth=0)
    largest_first = sorted(blobs.values(), key=lambda blob: blob.size, reverse=True)

    return ImageGraph(tuple(ordered), tuple(largest_first))


async def _visit(
    manifest: Manifest,
    fetch: FetchManifest,
    is_present: IsPresent,
    ordered: list[Manifest],
    blobs: dict[str, Descriptor],
    seen: set[str],
    depth: int,
) -> None:
    if depth > MAX_INDEX_DEPTH:
        raise ManifestError(
            "index nesting is deeper than allowed",
            digest=manifest.digest,
            max_depth=MAX_INDEX_DEPTH,
        )
    references = parse_references(manifest)
    for blob in references.blobs:
        blobs.setdefault(blob.digest, blob)

    children = await _missing_children(references.manifests, is_present, seen)
    fetched = await asyncio.gather(*(fetch(child.digest) for child in children))
    for child in fetched:
        await _visit(child, fetch, is_present, ordered, blobs, seen, depth + 1)
    ordered.append(manifest)


async def _missing_children(
    children: tuple[Descriptor, ...], is_present: IsPresent, seen: set[str]
) -> list[Descriptor]:
    # A digest seen before is either an ancestor (a cycle, which cannot be pushed
    # in any order) or a sibling already collected; both are skipped.
    fresh = [child for child in _unique(children) if child.digest not in seen]
    seen.update(child.digest for child in fresh)
    present = await asyncio.gather(*(is_present(child.digest) for child in fresh))
    return [child for child, exists in zip(fresh, present, strict=True) if not exists]


def _unique(children: tuple[Descriptor, ...]) -> list[Descriptor]:
    return list({child.digest: child for child in children}.values())
