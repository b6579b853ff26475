"""Build realistic test images deterministically, as values ready to push.

Layers are tars of real files (Python's own stdlib) with fixed metadata, compressed
with gzip, zstd or not at all; manifests come in Docker schema 2 and OCI forms,
indexes and manifest lists carry platforms, and artifacts carry a ``subject``.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import random
import sysconfig
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import zstandard

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
SBOM_ARTIFACT_TYPE = "application/vnd.example.sbom.v1+json"

Compression = Literal["gzip", "zstd", "none"]

_OCI_LAYER_TYPES: dict[Compression, str] = {
    "gzip": OCI_LAYER_GZIP,
    "zstd": OCI_LAYER_ZSTD,
    "none": OCI_LAYER,
}
_EPOCH = "1970-01-01T00:00:00Z"


def sha256_digest(data: bytes) -> str:
    """Return the ``sha256:<hex>`` digest of ``data``."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


@dataclass(frozen=True, slots=True)
class Blob:
    """Content addressed by its digest, with the media type that describes it."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        """Return the content digest."""
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        """Return the size in bytes."""
        return len(self.data)

    def descriptor(self) -> dict[str, Any]:
        """Return the OCI descriptor that references this blob."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True, slots=True)
class Layer:
    """A layer blob and the digest of its uncompressed tar (the ``diff_id``)."""

    blob: Blob
    diff_id: str


@dataclass(frozen=True, slots=True)
class Platform:
    """The platform an image runs on, as named in indexes."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    def as_dict(self) -> dict[str, str]:
        """Return the ``platform`` object of an index entry."""
        platform = {"architecture": self.architecture, "os": self.os}
        if self.variant is not None:
            platform["variant"] = self.variant
        return platform


@dataclass(frozen=True, slots=True)
class Image:
    """A manifest's exact bytes with its config and layer blobs."""

    manifest: bytes
    media_type: str
    config: Blob
    layers: tuple[Blob, ...]
    platform: Platform | None = None

    @property
    def digest(self) -> str:
        """Return the manifest digest."""
        return sha256_digest(self.manifest)

    @property
    def size(self) -> int:
        """Return the manifest size in bytes."""
        return len(self.manifest)

    @property
    def blobs(self) -> tuple[Blob, ...]:
        """Return the config then the layers, without duplicates."""
        return _unique_blobs((self.config, *self.layers))

    def document(self) -> dict[str, Any]:
        """Return the parsed manifest."""
        parsed: dict[str, Any] = json.loads(self.manifest)
        return parsed

    def descriptor(self) -> dict[str, Any]:
        """Return the descriptor that references this manifest."""
        return _manifest_descriptor(self.media_type, self.manifest, self.document())


@dataclass(frozen=True, slots=True)
class Index:
    """An OCI index or Docker manifest list's exact bytes with its children."""

    manifest: bytes
    media_type: str
    children: tuple[Image, ...]

    @property
    def digest(self) -> str:
        """Return the index digest."""
        return sha256_digest(self.manifest)

    @property
    def size(self) -> int:
        """Return the index size in bytes."""
        return len(self.manifest)

    def document(self) -> dict[str, Any]:
        """Return the parsed index."""
        parsed: dict[str, Any] = json.loads(self.manifest)
        return parsed

    def descriptor(self) -> dict[str, Any]:
        """Return the descriptor that references this index."""
        return _manifest_descriptor(self.media_type, self.manifest, self.document())


@dataclass(frozen=True, slots=True)
class CorpusEntry:
    """One image of a corpus and where it belongs."""

    repository: str
    tag: str
    image: Image


def serialize(document: Mapping[str, Any], *, pretty: bool = False) -> bytes:
    """Serialise a manifest compactly, or indented with a trailing newline."""
    if pretty:
        return (json.dumps(document, indent=3) + "\n").encode()
    return json.dumps(document, separators=(",", ":")).encode()


def tar_files(files: Mapping[str, bytes]) -> bytes:
    """Tar files in name order with fixed owner, mode and mtime."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(files[name]))

    return buffer.getvalue()


def tar_directory(directory: Path, *, prefix: str = "") -> bytes:
    """Tar the regular files under ``directory``, skipping bytecode caches."""
    files = {
        prefix + path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
    return tar_files(files)


def stdlib_tar(package: str = "json") -> bytes:
    """Tar a package directory of the running Python's standard library."""
    directory = Path(sysconfig.get_paths()["stdlib"]) / package
    return tar_directory(directory, prefix=f"usr/lib/python3/{package}/")


def random_tar(size_bytes: int, *, seed: str = "lab") -> bytes:
    """Tar one file of incompressible pseudo-random bytes, for large layers."""
    data = random.Random(seed).randbytes(size_bytes)
    return tar_files({f"data/{seed}.bin": data})


def make_layer(
    tar: bytes, compression: Compression = "gzip", *, docker: bool = False
) -> Layer:
    """Compress a tar into a layer with the media type that names it."""
    if docker and compression != "gzip":
        raise ValueError("Docker schema 2 layers are gzip only")
    media_type = DOCKER_LAYER_GZIP if docker else _OCI_LAYER_TYPES[compression]
    data = _compress(tar, compression)

    return Layer(Blob(media_type, data), diff_id=sha256_digest(tar))


def empty_layer() -> Layer:
    """Return a zero-length layer blob, which registries must still accept."""
    return Layer(Blob(OCI_LAYER, b""), diff_id=sha256_digest(b""))


def build_config(layers: Sequence[Layer], platform: Platform) -> dict[str, Any]:
    """Return an image config whose ``rootfs.diff_ids`` match the layers."""
    config: dict[str, Any] = {
        "created": _EPOCH,
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["python3"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": _EPOCH, "created_by": "tests.lab"} for _ in layers],
    }
    if platform.variant is not None:
        config["variant"] = platform.variant
    return config


def build_image(
    layers: Sequence[Layer],
    *,
    docker: bool = False,
    platform: Platform | None = None,
    pretty: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """Build a Docker schema 2 or OCI image manifest over ``layers``."""
    platform = platform or Platform()
    config_type = DOCKER_CONFIG if docker else OCI_CONFIG
    config = Blob(config_type, serialize(build_config(layers, platform)))
    blobs = tuple(layer.blob for layer in layers)
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [blob.descriptor() for blob in blobs],
    }
    if annotations:
        document["annotations"] = dict(annotations)
    media_type = document["mediaType"]

    return Image(
        serialize(document, pretty=pretty), media_type, config, blobs, platform
    )


def build_index(
    children: Sequence[Image],
    *,
    docker: bool = False,
    pretty: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> Index:
    """Build an OCI index or Docker manifest list naming children by digest."""
    entries = [_index_entry(child) for child in children]
    media_type = DOCKER_MANIFEST_LIST if docker else OCI_INDEX
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": entries,
    }
    if annotations:
        document["annotations"] = dict(annotations)

    return Index(serialize(document, pretty=pretty), media_type, tuple(children))


def build_artifact(
    subject: Image | Index,
    *,
    artifact_type: str = SBOM_ARTIFACT_TYPE,
    payload: bytes = b'{"packages":[]}',
    annotations: Mapping[str, str] | None = None,
    pretty: bool = False,
) -> Image:
    """Build an OCI artifact manifest that refers to ``subject``."""
    config = Blob(OCI_EMPTY, b"{}")
    layer = Blob(artifact_type, payload)
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
        "subject": _plain_descriptor(subject.descriptor()),
    }
    if annotations:
        document["annotations"] = dict(annotations)

    return Image(serialize(document, pretty=pretty), OCI_MANIFEST, config, (layer,))


def sample_image(
    name: str = "app",
    *,
    compression: Compression = "gzip",
    docker: bool = False,
    platform: Platform | None = None,
    pretty: bool = False,
) -> Image:
    """Build a small image: a stdlib base layer and a layer unique to ``name``."""
    platform = platform or Platform()
    base = base_layer(compression, docker=docker)
    platform_text = f"{platform.os}/{platform.architecture}"
    top_files = {"app/name.txt": name.encode(), "app/platform": platform_text.encode()}
    top = make_layer(tar_files(top_files), compression, docker=docker)

    return build_image([base, top], docker=docker, platform=platform, pretty=pretty)


def sample_index(
    name: str = "app",
    *,
    platforms: Sequence[Platform] = (Platform(), Platform(architecture="arm64")),
    docker: bool = False,
    compression: Compression = "gzip",
) -> Index:
    """Build a multi-platform index of small images."""
    children = [
        sample_image(name, compression=compression, docker=docker, platform=platform)
        for platform in platforms
    ]
    return build_index(children, docker=docker)


@functools.cache
def base_layer(compression: Compression = "gzip", *, docker: bool = False) -> Layer:
    """Return the shared base layer: Python's ``json`` package, about 30 KB packed."""
    return make_layer(stdlib_tar("json"), compression, docker=docker)


def build_corpus(
    image_count: int,
    *,
    repositories: Sequence[str] = ("lab/alpha", "lab/beta", "lab/gamma"),
    unique_bytes: int = 4096,
) -> tuple[CorpusEntry, ...]:
    """Build images spread round-robin over repositories, sharing one base layer."""
    base = base_layer("gzip")
    entries = []
    for number in range(image_count):
        repository = repositories[number % len(repositories)]
        tag = f"v{number}"
        unique = make_layer(random_tar(unique_bytes, seed=f"{repository}:{tag}"))
        image = build_image([base, unique])
        entries.append(CorpusEntry(repository, tag, image))

    return tuple(entries)


def _compress(tar: bytes, compression: Compression) -> bytes:
    if compression == "gzip":
        # mtime=0 keeps the gzip header, and so the digest, stable.
        return gzip.compress(tar, compresslevel=6, mtime=0)
    if compression == "zstd":
        compressed: bytes = zstandard.ZstdCompressor(level=3).compress(tar)
        return compressed
    return tar


def _index_entry(child: Image) -> dict[str, Any]:
    entry = _plain_descriptor(child.descriptor())
    entry["platform"] = (child.platform or Platform()).as_dict()
    return entry


def _plain_descriptor(descriptor: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("mediaType", "digest", "size")
    return {key: descriptor[key] for key in keys}


def _manifest_descriptor(
    media_type: str, manifest: bytes, document: Mapping[str, Any]
) -> dict[str, Any]:
    descriptor: dict[str, Any] = {
        "mediaType": media_type,
        "digest": sha256_digest(manifest),
        "size": len(manifest),
    }
    # Referrers listings copy these two fields from the manifest (image-spec
    # descriptor.md, distribution-spec "Listing Referrers").
    if "artifactType" in document:
        descriptor["artifactType"] = document["artifactType"]
    if "annotations" in document:
        descriptor["annotations"] = document["annotations"]

    return descriptor


def _unique_blobs(blobs: Sequence[Blob]) -> tuple[Blob, ...]:
    seen: dict[str, Blob] = {}
    for blob in blobs:
        seen.setdefault(blob.digest, blob)
    return tuple(seen.values())
