"""Write a corpus into a directory: blobs and manifests by digest, and the tags.

``CorpusBuilder`` is the one writer; ``bench.corpora`` decides what goes in.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.corpus import Corpus, ManifestEntry, save_corpus
from bench.files import FilePool
from bench.layers import (
    WrittenBlob,
    write_bytes,
    write_empty_tar_gzip,
    write_files_layer,
    write_random_tar,
)
from tests.lab.images import DOCKER_LAYER_GZIP, OCI_LAYER, serialize

_GROUPS = ("team/app", "team/data", "platform", "tools", "ml/serving", "ops/infra")
_SERVICES = ("sidecar", "api", "web", "worker", "scheduler", "gateway", "cli", "agent")


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A blob or manifest as a descriptor names it, with the layer's diff_id."""

    media_type: str
    digest: str
    size_bytes: int
    diff_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Return the OCI descriptor object."""
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size_bytes,
        }


class CorpusBuilder:
    """Writes blobs and manifests into a directory and records the tag map."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self.blobs: dict[str, int] = {}
        self.manifests: dict[str, ManifestEntry] = {}
        self.repositories: dict[str, dict[str, str]] = {}
        self._pool: FilePool | None = None
        (directory / "blobs").mkdir(parents=True)
        (directory / "manifests").mkdir()

    def files_layer(
        self, target_bytes: int, prefix: str, media_type: str
    ) -> Descriptor:
        """Add a gzip tar layer of real files, about ``target_bytes`` compressed."""
        if self._pool is None:
            self._pool = FilePool()
        pool = self._pool
        return self._blob(
            media_type, lambda path: write_files_layer(path, pool, target_bytes, prefix)
        )

    def empty_layer(self, docker: bool) -> Descriptor:
        """Add the empty layer: a gzip empty tar (Docker) or zero bytes (OCI)."""
        if docker:
            return self._blob(DOCKER_LAYER_GZIP, write_empty_tar_gzip)
        return self._blob(OCI_LAYER, lambda path: write_bytes(path, b""))

    def random_layer(self, size_bytes: int, seed: str) -> Descriptor:
        """Add an uncompressed tar of incompressible bytes."""
        return self._blob(
            OCI_LAYER, lambda path: write_random_tar(path, size_bytes, seed)
        )

    def data_blob(self, media_type: str, data: bytes) -> Descriptor:
        """Add a small blob such as a config or an SBOM."""
        return self._blob(media_type, lambda path: write_bytes(path, data))

    def manifest(
        self,
        document: dict[str, Any],
        blobs: list[Descriptor],
        children: list[Descriptor],
        pretty: bool = False,
    ) -> Descriptor:
        """Add a manifest's exact bytes; return its descriptor."""
        data = serialize(document, pretty=pretty)
        written = write_bytes(self.directory / "manifests" / "incoming", data)
        target = self.directory / "manifests" / written.digest.split(":", 1)[1]
        os.replace(self.directory / "manifests" / "incoming", target)
        self.manifests[written.digest] = ManifestEntry(
            document["mediaType"],
            tuple(blob.digest for blob in blobs),
            tuple(child.digest for child in children),
        )

        return Descriptor(document["mediaType"], written.digest, written.size_bytes)

    def tag(self, repository: str, tag: str, manifest: Descriptor) -> None:
        """Name a manifest by a tag in a repository."""
        self.repositories.setdefault(repository, {})[tag] = manifest.digest

    def finish(self) -> Corpus:
        """Write ``corpus.json`` and return the corpus."""
        corpus = Corpus(
            self.directory, self.name, self.blobs, self.manifests, self.repositories
        )
        save_corpus(corpus)
        return corpus

    def _blob(
        self, media_type: str, write: Callable[[Path], WrittenBlob]
    ) -> Descriptor:
        incoming = self.directory / "blobs" / "incoming"
        written = write(incoming)
        os.replace(incoming, self.directory / "blobs" / written.digest.split(":", 1)[1])
        self.blobs[written.digest] = written.size_bytes

        return Descriptor(
            media_type, written.digest, written.size_bytes, written.diff_id
        )


def repository_names(count: int) -> list[str]:
    """Return ``count`` distinct nested repository names such as team/app/sidecar."""
    names = []
    for number in range(count):
        group = _GROUPS[number % len(_GROUPS)]
        # 7q + r mod 8 differs for every q < 8, so pairs never repeat below 48.
        service = _SERVICES[(number // len(_GROUPS) * 7 + number) % len(_SERVICES)]
        cycle = number // (len(_GROUPS) * len(_SERVICES))
        names.append(f"{group}/{service}" + (f"-{cycle}" if cycle else ""))
    return names
