"""Run a tool as a fresh child process and measure its wall time and peak memory.

Peak resident memory is the child's ``VmHWM`` from ``/proc/<pid>/status``, sampled
while it runs. ``ru_maxrss`` cannot serve: a child started with vfork (as Python
starts them) inherits the parent's high-water mark at exec, so every tool would
seem to need at least what the bench itself holds.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_POLL_INTERVAL_S = 0.005


class ToolTimeoutError(RuntimeError):
    """A measured tool ran past its time limit and was killed."""


@dataclass(frozen=True, slots=True)
class Measurement:
    """One process run (or a sequence of them): time, peak memory, exit status."""

    wall_s: float
    peak_rss_bytes: int
    exit_code: int
    cpu_s: float = 0.0
    """User plus system CPU time of the process."""


def run_measured(
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 1800.0,
) -> Measurement:
    """Run one command with its output appended to ``log_path``; measure it."""
    with log_path.open("ab") as log:
        log.write(f"$ {' '.join(argv)}\n".encode())
        log.flush()
        started = time.perf_counter()
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
        )
        status, peak_rss_bytes, cpu_s = _wait(process, started + timeout_s)
        wall_s = time.perf_counter() - started
    return Measurement(wall_s, peak_rss_bytes, status, cpu_s)


def run_sequence(
    commands: Sequence[Sequence[str]],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
) -> Measurement:
    """Run commands one after another: total time, highest peak, first failure."""
    measurements = [run_measured(argv, log_path, env=env) for argv in commands]
    failures = [m.exit_code for m in measurements if m.exit_code != 0]

    return Measurement(
        wall_s=sum(m.wall_s for m in measurements),
        peak_rss_bytes=max((m.peak_rss_bytes for m in measurements), default=0),
        exit_code=failures[0] if failures else 0,
        cpu_s=sum(m.cpu_s for m in measurements),
    )


def _wait(process: subprocess.Popen[bytes], deadline: float) -> tuple[int, int, float]:
    """Wait for the process; return its exit code, peak resident bytes, CPU time."""
    status_path = Path(f"/proc/{process.pid}/status")
    peak_rss_bytes = 0
    while True:
        peak_rss_bytes = max(peak_rss_bytes, _high_water_mark(status_path))
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, peak_rss_bytes, usage.ru_utime + usage.ru_stime
        if time.perf_counter() > deadline:
            process.kill()
            process.wait()
            raise ToolTimeoutError(f"{process.args!r} ran past its time limit")
        time.sleep(_POLL_INTERVAL_S)


def _high_water_mark(status_path: Path) -> int:
    try:
        text = status_path.read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            # The kernel reports kB meaning KiB.
            return int(line.split()[1]) * 1024
    # A zombie has no memory map and no VmHWM line.
    return 0
