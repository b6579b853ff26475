"""What each corpus holds, and the cache that builds it once per size.

The image corpus: images share a large base layer, half of the single-platform
repositories a runtime layer, each repository a dependencies layer, and every image
has a small layer of its own. Repositories alternate Docker schema 2 and OCI; some
hold two-platform indexes (OCI index or Docker manifest list); some images carry the
empty layer. Each repository has several versions plus a minor and a ``latest``
alias, and its newest image has an SBOM artifact (with ``subject``) listed under
the referrers fallback tag, as registries without the referrers API need.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.builder import CorpusBuilder, Descriptor, repository_names
from bench.corpus import REFERRERS_TAG_PREFIX, Corpus, load_corpus
from bench.sizes import CorpusSize
from tests.lab.images import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    SBOM_ARTIFACT_TYPE,
)

# Bump when what a corpus holds changes, so stale caches are rebuilt.
CORPUS_FORMAT = 1
BIG_LAYER_REPOSITORY = "bench/big-layer"
_EPOCH = "1970-01-01T00:00:00Z"
_AMD64 = {"architecture": "amd64", "os": "linux"}
_ARM64 = {"architecture": "arm64", "os": "linux"}


class _SharedLayers:
    """The layers many images share, built on first use."""

    def __init__(self, builder: CorpusBuilder, size: CorpusSize) -> None:
        self.builder = builder
        self.size = size
        self._made: dict[tuple[str, bool], Descriptor] = {}

    def base(self, docker: bool, arm: bool = False) -> Descriptor:
        target = self.size.arm_base_bytes if arm else self.size.base_bytes
        return self._layer("base-arm64" if arm else "base", target, docker)

    def runtime(self, docker: bool) -> Descriptor:
        return self._layer("runtime", self.size.runtime_bytes, docker)

    def empty(self, docker: bool) -> Descriptor:
        key = ("empty", docker)
        if key not in self._made:
            self._made[key] = self.builder.empty_layer(docker)
        return self._made[key]

    def _layer(self, name: str, target_bytes: int, docker: bool) -> Descriptor:
        # The same gzip bytes serve both formats; only the media type differs.
        key = (name, False)
        if key not in self._made:
            self._made[key] = self.builder.files_layer(
                target_bytes, f"{name}/", OCI_LAYER_GZIP
            )
        return _retyped(self._made[key], _layer_type(docker))


def cached_corpus(cache_root: Path, size: CorpusSize) -> Corpus:
    """Return the corpus of a size, building it into the cache first if needed."""
    key = f"{size.name}-v{CORPUS_FORMAT}"
    return _cached(cache_root, key, lambda builder: _build_images(builder, size))


def cached_big_layer_corpus(cache_root: Path, size_bytes: int) -> Corpus:
    """Return a corpus of one image whose one layer is ``size_bytes`` of noise."""
    key = f"big-{size_bytes}-v{CORPUS_FORMAT}"
    return _cached(
        cache_root, key, lambda builder: _build_big_layer(builder, size_bytes)
    )


def _cached(
    cache_root: Path, key: str, build: Callable[[CorpusBuilder], None]
) -> Corpus:
    final = cache_root / key
    if (final / "corpus.json").exists():
        return load_corpus(final)
    partial = cache_root / f"{key}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    builder = CorpusBuilder(partial, key)
    build(builder)
    builder.finish()
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)

    return load_corpus(final)


def _build_images(builder: CorpusBuilder, size: CorpusSize) -> None:
    shared = _SharedLayers(builder, size)
    step = size.repositories // max(size.multi_repositories, 1)
    for number, name in enumerate(repository_names(size.repositories)):
        multi = size.multi_repositories > 0 and number % step == step - 1
        if multi:
            docker = (number // step) % 2 == 1
            roots = _multi_platform_versions(builder, shared, name, docker)
        else:
            roots = _single_platform_versions(builder, shared, name, number)
        _tag_versions(builder, name, roots)
        _add_sbom(builder, name, roots[-1])


def _single_platform_versions(
    builder: CorpusBuilder, shared: _SharedLayers, name: str, number: int
) -> list[Descriptor]:
    size = shared.size
    docker = number % 2 == 0
    layer_type = _layer_type(docker)
    common = [shared.base(docker)]
    if number % 4 < 2:
        common.append(shared.runtime(docker))
    common.append(builder.files_layer(size.deps_bytes, f"{name}/deps/", layer_type))
    roots = []
    for version in range(size.versions):
        app = builder.files_layer(size.app_bytes, f"{name}/{version}/", layer_type)
        layers = [*common, app]
        if number % 3 == 0:
            layers.append(shared.empty(docker))
        roots.append(_image(builder, layers, _AMD64, docker))
    return roots


def _multi_platform_versions(
    builder: CorpusBuilder, shared: _SharedLayers, name: str, docker: bool
) -> list[Descriptor]:
    size = shared.size
    layer_type = _layer_type(docker)
    roots = []
    for version in range(size.versions):
        children = []
        for platform in (_AMD64, _ARM64):
            arch = platform["architecture"]
            prefix = f"{name}/{version}/{arch}/"
            app = builder.files_layer(size.app_bytes, prefix, layer_type)
            base = shared.base(docker, arm=arch == "arm64")
            children.append((_image(builder, [base, app], platform, docker), platform))
        roots.append(_index(builder, children, docker))
    return roots


def _image(
    builder: CorpusBuilder,
    layers: list[Descriptor],
    platform: dict[str, str],
    docker: bool,
) -> Descriptor:
    config_document = {
        "architecture": platform["architecture"],
        "config": {"Cmd": ["/app/run"], "Env": ["PATH=/usr/bin:/bin"]},
        "created": _EPOCH,
        "history": [{"created": _EPOCH, "created_by": "bench"} for _ in layers],
        "os": platform["os"],
        "rootfs": {"diff_ids": [layer.diff_id for layer in layers], "type": "layers"},
    }
    config_data = json.dumps(config_document, separators=(",", ":")).encode()
    config = builder.data_blob(DOCKER_CONFIG if docker else OCI_CONFIG, config_data)
    document = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": config.as_dict(),
        "layers": [layer.as_dict() for layer in layers],
    }
    # Docker writes its manifests indented; the bytes must survive as they are.
    return builder.manifest(document, [config, *layers], [], pretty=docker)


def _index(
    builder: CorpusBuilder,
    children: list[tuple[Descriptor, dict[str, str]]],
    docker: bool,
) -> Descriptor:
    entries = [
        {**child.as_dict(), "platform": platform} for child, platform in children
    ]
    document = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST if docker else OCI_INDEX,
        "manifests": entries,
    }
    child_descriptors = [child for child, _ in children]
    return builder.manifest(document, [], child_descriptors, pretty=docker)


def _tag_versions(
    builder: CorpusBuilder, repository: str, roots: list[Descriptor]
) -> None:
    for version, root in enumerate(roots):
        builder.tag(repository, f"1.{version}.0", root)
    builder.tag(repository, f"1.{len(roots) - 1}", roots[-1])
    builder.tag(repository, "latest", roots[-1])


def _add_sbom(builder: CorpusBuilder, repository: str, subject: Descriptor) -> None:
    config = builder.data_blob(OCI_EMPTY, b"{}")
    sbom = json.dumps({"subject": subject.digest, "repository": repository}).encode()
    payload = builder.data_blob(SBOM_ARTIFACT_TYPE, sbom)
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SBOM_ARTIFACT_TYPE,
        "config": config.as_dict(),
        "layers": [payload.as_dict()],
        "subject": subject.as_dict(),
    }
    artifact = builder.manifest(document, [config, payload], [])
    # distribution-spec, "Pushing Manifests with Subject": the fallback tag names
    # an index of the referrers, each entry carrying its artifactType.
    entry = {**artifact.as_dict(), "artifactType": SBOM_ARTIFACT_TYPE}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}
    fallback = builder.manifest(index, [], [artifact])
    tag = REFERRERS_TAG_PREFIX + subject.digest.split(":", 1)[1]
    builder.tag(repository, tag, fallback)


def _build_big_layer(builder: CorpusBuilder, size_bytes: int) -> None:
    layer = builder.random_layer(size_bytes, seed=f"big-{size_bytes}")
    root = _image(builder, [layer], _AMD64, docker=False)
    builder.tag(BIG_LAYER_REPOSITORY, "latest", root)


def _layer_type(docker: bool) -> str:
    return DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP


def _retyped(descriptor: Descriptor, media_type: str) -> Descriptor:
    return Descriptor(
        media_type, descriptor.digest, descriptor.size_bytes, descriptor.diff_id
    )
