from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest
import zstandard

from tests.lab.images import (
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    Compression,
    Platform,
    build_artifact,
    build_corpus,
    empty_layer,
    make_layer,
    sample_image,
    sample_index,
    sha256_digest,
    stdlib_tar,
)


def _decompress(data: bytes, compression: Compression) -> bytes:
    if compression == "gzip":
        return gzip.decompress(data)
    if compression == "zstd":
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
            plain: bytes = reader.read()
        return plain
    return data


def test_builds_the_same_image_twice() -> None:
    first = sample_image("same", compression="zstd")
    second = sample_image("same", compression="zstd")

    assert first == second
    assert first.digest == second.digest


def test_tar_holds_real_files_with_fixed_metadata() -> None:
    with tarfile.open(fileobj=io.BytesIO(stdlib_tar("json"))) as tar:
        members = tar.getmembers()

    names = [member.name for member in members]
    assert "usr/lib/python3/json/decoder.py" in names
    assert names == sorted(names)
    assert {(m.mtime, m.uid, m.gid, m.uname) for m in members} == {(0, 0, 0, "")}


@pytest.mark.parametrize(
    ("compression", "media_type"),
    [("gzip", OCI_LAYER_GZIP), ("zstd", OCI_LAYER_ZSTD), ("none", OCI_LAYER)],
)
def test_layer_diff_id_is_the_digest_of_the_tar(
    compression: Compression, media_type: str
) -> None:
    tar = stdlib_tar("json")

    layer = make_layer(tar, compression)

    assert layer.blob.media_type == media_type
    assert layer.diff_id == sha256_digest(_decompress(layer.blob.data, compression))


def test_config_lists_the_diff_ids_of_the_layers() -> None:
    image = sample_image(compression="zstd")

    diff_ids = json.loads(image.config.data)["rootfs"]["diff_ids"]

    expected = [sha256_digest(_decompress(b.data, "zstd")) for b in image.layers]
    assert diff_ids == expected


def test_docker_image_uses_docker_media_types() -> None:
    image = sample_image(docker=True)

    assert image.media_type == DOCKER_MANIFEST
    assert {layer.media_type for layer in image.layers} == {DOCKER_LAYER_GZIP}


def test_docker_layers_must_be_gzip() -> None:
    with pytest.raises(ValueError, match="gzip"):
        make_layer(b"", "zstd", docker=True)


def test_zero_length_layer() -> None:
    layer = empty_layer()

    assert layer.blob.size == 0
    assert layer.blob.digest == sha256_digest(b"")


def test_index_names_children_by_digest_and_platform() -> None:
    arm = Platform(architecture="arm64", variant="v8")

    index = sample_index(platforms=[Platform(), arm])

    entries = index.document()["manifests"]
    assert index.media_type == OCI_INDEX
    assert [e["digest"] for e in entries] == [c.digest for c in index.children]
    assert entries[1]["platform"] == {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
    }


def test_docker_manifest_list() -> None:
    index = sample_index(docker=True)

    assert index.document()["mediaType"] == DOCKER_MANIFEST_LIST
    assert {c.media_type for c in index.children} == {DOCKER_MANIFEST}


def test_artifact_refers_to_its_subject() -> None:
    subject = sample_image()

    artifact = build_artifact(subject, annotations={"org.example.kind": "sbom"})

    document = artifact.document()
    assert document["subject"] == {
        "mediaType": subject.media_type,
        "digest": subject.digest,
        "size": subject.size,
    }
    assert artifact.config.media_type == OCI_EMPTY
    assert artifact.config.data == b"{}"
    assert artifact.descriptor()["artifactType"] == document["artifactType"]


def test_pretty_manifest_has_another_digest_than_the_compact_one() -> None:
    compact = sample_image()
    pretty = sample_image(pretty=True)

    assert pretty.manifest.endswith(b"}\n")
    assert json.loads(pretty.manifest) == json.loads(compact.manifest)
    assert pretty.digest != compact.digest


def test_corpus_images_share_one_base_layer() -> None:
    corpus = build_corpus(6, repositories=("lab/a", "lab/b"))

    bases = {entry.image.layers[0].digest for entry in corpus}
    tops = {entry.image.layers[1].digest for entry in corpus}
    assert len(bases) == 1
    assert len(tops) == 6
    assert [e.repository for e in corpus[:3]] == ["lab/a", "lab/b", "lab/a"]
