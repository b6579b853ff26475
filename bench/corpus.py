"""The corpus as built on disk: blobs, manifests' exact bytes and the tag map.

A corpus directory holds ``blobs/<hex>``, ``manifests/<hex>`` and ``corpus.json``,
which names every blob's size, every manifest's media type and references, and
every repository's tags. Seeding, the floor copier and the checks read it from here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORPUS_FILE = "corpus.json"
REFERRERS_TAG_PREFIX = "sha256-"


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One manifest: its media type, the blobs and child manifests it names."""

    media_type: str
    blobs: tuple[str, ...]
    children: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Corpus:
    """A built corpus and where its bytes are."""

    directory: Path
    name: str
    blobs: Mapping[str, int]
    manifests: Mapping[str, ManifestEntry]
    repositories: Mapping[str, Mapping[str, str]]

    @property
    def unique_bytes(self) -> int:
        """Return the bytes of all unique blobs."""
        return sum(self.blobs.values())

    @property
    def tag_count(self) -> int:
        """Return the number of tags, referrers fallback tags included."""
        return sum(len(tags) for tags in self.repositories.values())

    def blob_path(self, digest: str) -> Path:
        """Return the file holding a blob."""
        return self.directory / "blobs" / _hex(digest)

    def manifest_bytes(self, digest: str) -> bytes:
        """Return a manifest's exact bytes."""
        return (self.directory / "manifests" / _hex(digest)).read_bytes()

    def repository_manifests(self, repository: str) -> tuple[str, ...]:
        """Return a repository's manifests, children before parents, each once."""
        ordered: dict[str, None] = {}
        for tag in sorted(self.repositories[repository]):
            for digest in self._post_order(self.repositories[repository][tag]):
                ordered.setdefault(digest, None)
        return tuple(ordered)

    def repository_blobs(self, repository: str) -> tuple[str, ...]:
        """Return the blobs a repository's manifests name, each once."""
        found: dict[str, None] = {}
        for digest in self.repository_manifests(repository):
            for blob in self.manifests[digest].blobs:
                found.setdefault(blob, None)
        return tuple(found)

    def tags_of(self, repository: str, digest: str) -> tuple[str, ...]:
        """Return the tags of a repository that name a manifest."""
        tags = self.repositories[repository]
        return tuple(sorted(tag for tag, target in tags.items() if target == digest))

    def blob_holders(self) -> dict[str, tuple[str, ...]]:
        """Return, for every blob, the repositories that need it, by name."""
        holders: dict[str, list[str]] = {}
        for repository in sorted(self.repositories):
            for blob in self.repository_blobs(repository):
                holders.setdefault(blob, []).append(repository)
        return {blob: tuple(names) for blob, names in holders.items()}

    def manifest_holders(self) -> dict[str, str]:
        """Return, for every manifest, the first repository by name that holds it."""
        holders: dict[str, str] = {}
        for repository in sorted(self.repositories):
            for digest in self.repository_manifests(repository):
                holders.setdefault(digest, repository)
        return holders

    def _post_order(self, digest: str) -> Iterator[str]:
        for child in self.manifests[digest].children:
            yield from self._post_order(child)
        yield digest


def is_referrers_tag(tag: str) -> bool:
    """Say whether a tag is a referrers fallback tag (``sha256-<hex>``)."""
    return tag.startswith(REFERRERS_TAG_PREFIX)


def save_corpus(corpus: Corpus) -> None:
    """Write ``corpus.json`` into the corpus directory."""
    document = {
        "name": corpus.name,
        "blobs": dict(corpus.blobs),
        "manifests": {
            digest: {
                "media_type": entry.media_type,
                "blobs": list(entry.blobs),
                "children": list(entry.children),
            }
            for digest, entry in corpus.manifests.items()
        },
        "repositories": {
            name: dict(tags) for name, tags in corpus.repositories.items()
        },
    }
    text = json.dumps(document, indent=1, sort_keys=True) + "\n"
    (corpus.directory / CORPUS_FILE).write_text(text)


def load_corpus(directory: Path) -> Corpus:
    """Read a corpus directory written by ``save_corpus``."""
    document: dict[str, Any] = json.loads((directory / CORPUS_FILE).read_text())
    manifests = {
        digest: ManifestEntry(
            entry["media_type"], tuple(entry["blobs"]), tuple(entry["children"])
        )
        for digest, entry in document["manifests"].items()
    }
    return Corpus(
        directory=directory,
        name=document["name"],
        blobs={digest: int(size) for digest, size in document["blobs"].items()},
        manifests=manifests,
        repositories=document["repositories"],
    )


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]
