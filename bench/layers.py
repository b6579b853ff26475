"""Write blobs to the corpus cache as streams: gzip tar layers and big raw layers.

Layers are tars of real files with fixed metadata (owner 0, mode 0644, mtime 0),
compressed with gzip level 6 and a zero gzip timestamp, so their digests depend on
the files alone. Nothing here holds a whole layer in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

from bench.files import FilePool

GZIP_LEVEL = 6
_RANDOM_CHUNK_BYTES = 4 * 1024 * 1024
_TAR_BLOCK_BYTES = 512
_TAR_END_BYTES = 2 * _TAR_BLOCK_BYTES


@dataclass(frozen=True, slots=True)
class WrittenBlob:
    """A blob written to a file: its digest, size and uncompressed digest."""

    digest: str
    size_bytes: int
    diff_id: str


class _DigestingWriter(io.BufferedIOBase):
    """A write-only stream that hashes and counts what passes to ``target``."""

    def __init__(self, target: BinaryIO | gzip.GzipFile) -> None:
        super().__init__()
        self.target = target
        self.hasher = hashlib.sha256()
        self.size_bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        view = memoryview(data)
        self.hasher.update(view)
        self.size_bytes += view.nbytes
        self.target.write(view)
        return view.nbytes

    def flush(self) -> None:
        # Nothing is buffered here, and a flush passed on to gzip would change the
        # compressed bytes (a sync point), and so the digest.
        return

    @property
    def digest(self) -> str:
        return f"sha256:{self.hasher.hexdigest()}"


def write_files_layer(
    path: Path, pool: FilePool, target_bytes: int, prefix: str
) -> WrittenBlob:
    """Write a gzip tar of pool files until about ``target_bytes`` are compressed."""
    with path.open("wb") as output:
        compressed = _DigestingWriter(output)
        with gzip.GzipFile(
            filename="",
            mode="wb",
            compresslevel=GZIP_LEVEL,
            fileobj=compressed,
            mtime=0,
        ) as gzip_stream:
            uncompressed = _DigestingWriter(gzip_stream)
            with tarfile.open(
                fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT
            ) as tar:
                _add_files(
                    tar, pool, prefix, lambda: compressed.size_bytes, target_bytes
                )

    return WrittenBlob(compressed.digest, compressed.size_bytes, uncompressed.digest)


def write_empty_tar_gzip(path: Path) -> WrittenBlob:
    """Write the gzip of an empty tar, the "empty layer" Docker images carry."""
    tar = bytes(_TAR_END_BYTES)
    data = gzip.compress(tar, compresslevel=GZIP_LEVEL, mtime=0)
    path.write_bytes(data)
    return WrittenBlob(_sha256(data), len(data), _sha256(tar))


def write_bytes(path: Path, data: bytes) -> WrittenBlob:
    """Write a small blob (a config, an SBOM) whole."""
    path.write_bytes(data)
    return WrittenBlob(_sha256(data), len(data), _sha256(data))


def write_random_tar(path: Path, payload_bytes: int, seed: str) -> WrittenBlob:
    """Write an uncompressed tar of one file of seeded pseudo-random bytes."""
    info = _tar_info(f"data/{seed}.bin", payload_bytes)
    padding = -payload_bytes % _TAR_BLOCK_BYTES
    with path.open("wb") as output:
        writer = _DigestingWriter(output)
        writer.write(info.tobuf(format=tarfile.PAX_FORMAT))
        _write_random(writer, payload_bytes, seed)
        writer.write(bytes(padding + _TAR_END_BYTES))

    return WrittenBlob(writer.digest, writer.size_bytes, writer.digest)


def _add_files(
    tar: tarfile.TarFile,
    pool: FilePool,
    prefix: str,
    written_bytes: Callable[[], int],
    target_bytes: int,
) -> None:
    added = 0
    # The gzip stream lags a little behind the tar; the size is approximate.
    while added == 0 or written_bytes() < target_bytes:
        found, pass_prefix = pool.draw()
        name = prefix + pass_prefix + str(found.path).lstrip("/")
        try:
            content = found.path.open("rb")
        except OSError:
            continue
        with content:
            tar.addfile(_tar_info(name, found.size_bytes), content)
        added += 1


def _tar_info(name: str, size_bytes: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size_bytes
    info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _write_random(writer: _DigestingWriter, payload_bytes: int, seed: str) -> None:
    generator = random.Random(seed)
    remaining = payload_bytes
    while remaining:
        size = min(remaining, _RANDOM_CHUNK_BYTES)
        writer.write(generator.randbytes(size))
        remaining -= size


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"
