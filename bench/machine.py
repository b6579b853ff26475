"""Describe the machine and the software versions a bench ran with."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import tools


def describe_machine(repo_root: Path) -> dict[str, Any]:
    """Return CPU, memory, OS and the versions of every tool measured."""
    return {
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "replicator": _first_line([str(tools.REPLICATOR), "--version"]),
        "replicator_commit": _first_line(
            ["git", "-C", str(repo_root), "describe", "--always", "--dirty"]
        ),
        "aiohttp": metadata.version("aiohttp"),
        "skopeo": _first_line([tools.SKOPEO, "--version"]),
        "registry": _first_line(["docker-registry", "--version"]),
        "load_average_at_start": load_average(),
    }


def load_average() -> list[float]:
    """Return the 1, 5 and 15 minute load averages (others' work shows here)."""
    return [round(value, 2) for value in os.getloadavg()]


def _cpu_model() -> str:
    for line in _read_lines(Path("/proc/cpuinfo")):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    for line in _read_lines(Path("/proc/meminfo")):
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


def _first_line(argv: list[str]) -> str:
    try:
        completed = subprocess.run(
            argv, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"unavailable ({type(error).__name__})"
    output = (completed.stdout or completed.stderr).strip().splitlines()
    return output[0] if output else "unknown"
