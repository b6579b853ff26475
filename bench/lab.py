"""The registries of a bench run: one source per corpus, fresh destinations.

Built on the test lab's ``RegistryProcess``; every registry lives in its own
directory under the run's work directory, and a destination's storage is deleted
as soon as its run has been checked, so a 1 GB layer does not pile up on disk.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from tests.lab.registry import NotificationEndpoint, RegistryProcess


class Lab:
    """Starts and stops the registries of one bench invocation."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self._numbers = itertools.count(1)
        self._running: list[RegistryProcess] = []

    def start(
        self, role: str, *, notifications: Sequence[NotificationEndpoint] = ()
    ) -> RegistryProcess:
        """Start a fresh, empty registry (notifying the given endpoints)."""
        directory = self.work_dir / "registries" / f"{role}-{next(self._numbers)}"
        registry = RegistryProcess(directory, notifications=notifications)
        self._running.append(registry)

        return registry.start()

    def discard(self, registry: RegistryProcess) -> None:
        """Stop a registry and delete its storage."""
        registry.stop()
        if registry in self._running:
            self._running.remove(registry)
        shutil.rmtree(registry.workdir, ignore_errors=True)

    def stop_all(self) -> None:
        """Stop every registry still running."""
        for registry in list(self._running):
            self.discard(registry)

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()
