"""Profile ``replicator backfill`` on a cold copy of a corpus with py-spy.

``python -m bench.profile [--size medium] [--out DIR]`` seeds a source registry,
runs one cold backfill under ``py-spy record`` (a sampling profiler; install it
into the venv, it is not a project dependency) and prints the functions with the
most samples, by own time and by inclusive time. The raw stacks, one sample count
per collapsed stack, stay in ``DIR`` for a flame graph.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench import tools
from bench.check import check_destination
from bench.cli import DEFAULT_CACHE
from bench.corpora import cached_corpus
from bench.lab import Lab
from bench.measure import run_measured
from bench.runner import REPO_ROOT
from bench.seed import seed
from bench.sizes import SIZE_ORDER, SIZES

PY_SPY = Path(sys.executable).with_name("py-spy")
SAMPLES_PER_S = 200
TOP = 25


def main(arguments: Sequence[str] | None = None) -> int:
    """Profile one cold backfill and print the hot spots."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--size", choices=SIZE_ORDER, default="medium")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, default=Path("bench-profile"))
    parser.add_argument("--idle", action="store_true", help="also sample waiting")
    options = parser.parse_args(arguments)
    if not PY_SPY.exists():
        print(f"py-spy is not installed at {PY_SPY}", file=sys.stderr)
        return 2
    options.out.mkdir(parents=True, exist_ok=True)
    stacks = options.out / f"replicator-{options.size}.collapsed"
    _profile(options.size, options.cache_dir, stacks, options.idle)
    print(hot_spots(stacks.read_text()))

    return 0


def hot_spots(collapsed: str, top: int = TOP) -> str:
    """Summarise collapsed stacks: the functions with most own and total samples."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_function(frame) for frame in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{samples} samples"]
    for title, counter in (("own time", own), ("inclusive time", total)):
        lines.append(f"\ntop {top} by {title}:")
        lines += [
            f"{count / samples:6.1%}  {frame}"
            for frame, count in counter.most_common(top)
        ]
    return "\n".join(lines)


def _profile(size_name: str, cache_root: Path, stacks: Path, idle: bool) -> None:
    corpus = cached_corpus(cache_root, SIZES[size_name])
    work_dir = Path(tempfile.mkdtemp(prefix="replicator-profile-"))
    try:
        with Lab(work_dir) as lab:
            source, destination = lab.start("source"), lab.start("destination")
            asyncio.run(seed(corpus, source.url))
            config = tools.write_replicator_config(
                work_dir / "config.yaml", source.url, [destination.url]
            )
            command = [
                str(PY_SPY),
                "record",
                "--format",
                "raw",
                "--rate",
                str(SAMPLES_PER_S),
                "--output",
                str(stacks),
                *(["--idle"] if idle else []),
                "--",
                *tools.replicator_command(config),
            ]
            measurement = run_measured(command, work_dir / "profile.log")
            result = asyncio.run(check_destination(corpus, destination.url))
            print(
                f"backfill under py-spy: {measurement.wall_s:.2f} s, "
                f"exit {measurement.exit_code}, check "
                f"{'ok' if result.ok else result.problems[:3]}"
            )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _function(frame: str) -> str:
    # py-spy writes "function (path/to/file.py:line)"; lines are merged here.
    name, _, location = frame.partition(" (")
    path = location.rsplit(":", 1)[0]
    return f"{name} ({_short_path(path)})"


def _short_path(path: str) -> str:
    if path.startswith(f"{REPO_ROOT}/"):
        return path.removeprefix(f"{REPO_ROOT}/")
    for marker in ("site-packages/", "python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


if __name__ == "__main__":
    sys.exit(main())
