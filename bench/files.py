"""The pool of real files on this machine that corpus layers are made of.

Files are taken in path order from a few system directories, so the same machine
always yields the same layers. A cursor walks the pool; layers drawn one after the
other hold different files, and a pass past the end starts over under a new prefix,
so every layer's bytes stay unique.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Python sources first (they compress like application code), then the shared
# data and libraries of the system (docs, locales, icons, shared objects).
POOL_ROOTS = (*sorted(glob.glob("/usr/lib/python3*")), "/usr/share", "/usr/lib")
MAX_FILE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PoolFile:
    """A regular file of the pool and its size."""

    path: Path
    size_bytes: int


class FilePool:
    """Hands out real files in a fixed order, each layer its own run of them."""

    def __init__(self, roots: tuple[str, ...] = POOL_ROOTS) -> None:
        self._roots = roots
        self._pass = 0
        # Walked lazily: a small corpus never lists the whole of /usr.
        self._files = _list_files(roots)

    def draw(self) -> tuple[PoolFile, str]:
        """Return the next file and the prefix to store it under."""
        found = next(self._files, None)
        if found is None:
            self._pass += 1
            self._files = _list_files(self._roots)
            found = next(self._files, None)
            if found is None:
                raise RuntimeError(f"no readable files under {', '.join(self._roots)}")

        return found, f"pass{self._pass}/"


def _list_files(roots: tuple[str, ...]) -> Iterator[PoolFile]:
    seen: set[str] = set()
    for root in roots:
        for path in _walk_sorted(Path(root)):
            # /usr/lib holds the python3* roots again.
            if str(path) in seen:
                continue
            seen.add(str(path))
            yield PoolFile(path, path.stat().st_size)


def _walk_sorted(root: Path) -> Iterator[Path]:
    for directory, subdirectories, names in os.walk(root):
        # Bytecode caches appear whenever an interpreter runs; they would make the
        # pool, and so the corpus, change over time.
        subdirectories[:] = sorted(
            name for name in subdirectories if name != "__pycache__"
        )
        for name in sorted(names):
            path = Path(directory) / name
            if _usable(path):
                yield path


def _usable(path: Path) -> bool:
    try:
        if path.is_symlink() or not path.is_file():
            return False
        size = path.stat().st_size
    except OSError:
        return False
    return 0 < size <= MAX_FILE_BYTES and os.access(path, os.R_OK)
