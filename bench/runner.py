"""Run one tool once against fresh destinations, then check what it left there.

``BenchContext`` holds what a bench invocation shares: the lab of registries, one
seeded source registry per corpus, the corpus cache and the log directory.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import tools
from bench.check import check_destination
from bench.corpus import Corpus
from bench.lab import Lab
from bench.measure import Measurement, run_measured, run_sequence
from bench.results import ScenarioResult, ToolRun
from bench.seed import seed
from bench.sizes import CorpusSize
from tests.lab.registry import RegistryProcess

REPO_ROOT = Path(__file__).resolve().parents[1]
# skopeo --keep-going logs each image it could not copy on one line like this.
_SKOPEO_FAILURE = re.compile(r'Error copying ref \\?"(?P<ref>[^"\\]+)')


class SeedError(RuntimeError):
    """A source registry did not hold the corpus after seeding."""


@dataclass(slots=True)
class BenchContext:
    """What every scenario of one bench invocation shares."""

    lab: Lab
    cache_root: Path
    runs: int
    log_dir: Path
    skopeo_homes: Path
    scaling_sizes: tuple[str, ...] = ()
    _sources: dict[str, RegistryProcess] = field(default_factory=dict)

    def source(self, corpus: Corpus) -> RegistryProcess:
        """Return the source registry holding a corpus, seeding it on first use."""
        if corpus.name not in self._sources:
            registry = self.lab.start("source")
            progress(f"seeding {corpus.name} into {registry.url}")
            asyncio.run(seed(corpus, registry.url))
            result = asyncio.run(check_destination(corpus, registry.url))
            if not result.ok:
                raise SeedError(f"{corpus.name}: {result.problems[:3]}")
            self._sources[corpus.name] = registry
        return self._sources[corpus.name]

    def log_path(self, label: str) -> Path:
        """Return the log file of one labelled run."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self.log_dir / f"{label}.log"


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named scenario and the function that runs it."""

    name: str
    title: str
    run: Callable[[BenchContext, CorpusSize], list[ScenarioResult]]


def run_tool(
    context: BenchContext,
    tool: str,
    corpus: Corpus,
    run: int,
    *,
    destinations: int = 1,
    label: str,
) -> ToolRun:
    """Copy the corpus to fresh destinations with one tool; measure and check."""
    registries = [context.lab.start("destination") for _ in range(destinations)]
    try:
        return run_tool_into(context, tool, corpus, run, registries, label=label)
    finally:
        for registry in registries:
            context.lab.discard(registry)


def run_tool_into(
    context: BenchContext,
    tool: str,
    corpus: Corpus,
    run: int,
    registries: Sequence[RegistryProcess],
    *,
    label: str,
) -> ToolRun:
    """Copy the corpus into the given destinations with one tool; measure, check."""
    source = context.source(corpus)
    log_path = context.log_path(f"{label}-{tool}-run{run}")
    measurement = _measure(context, tool, corpus, source, registries, log_path)
    excuse = tool == "skopeo"
    checks = [
        asyncio.run(check_destination(corpus, r.url, excuse_referrers_tags=excuse))
        for r in registries
    ]
    problems = _exit_problems(tool, measurement, log_path)
    problems += [problem for check in checks for problem in check.problems]
    progress(
        f"  {label} run {run} {tool}: {measurement.wall_s:.2f} s, "
        f"{measurement.cpu_s:.2f} s CPU, {measurement.peak_rss_bytes / 1e6:.0f} MB peak"
        + ("" if not problems else f", WRONG: {problems[:2]}")
    )

    return ToolRun(
        tool=tool,
        run=run,
        wall_s=measurement.wall_s,
        peak_rss_bytes=measurement.peak_rss_bytes,
        exit_code=measurement.exit_code,
        checked=sum(check.checked for check in checks),
        problems=tuple(problems),
        excused_tags=sum(check.excused_tags for check in checks),
        cpu_s=measurement.cpu_s,
    )


def rotated(tools_in_order: Sequence[str], run: int) -> list[str]:
    """Return the tools in the order of one run: each goes first in turn."""
    shift = run % len(tools_in_order)
    return [*tools_in_order[shift:], *tools_in_order[:shift]]


def progress(message: str) -> None:
    """Tell the person running the bench what is happening (on stderr)."""
    print(message, file=sys.stderr, flush=True)


def _measure(
    context: BenchContext,
    tool: str,
    corpus: Corpus,
    source: RegistryProcess,
    registries: Sequence[RegistryProcess],
    log_path: Path,
) -> Measurement:
    urls = [registry.url for registry in registries]
    if tool == "replicator":
        config = log_path.with_suffix(".yaml")
        tools.write_replicator_config(config, source.url, urls)
        return run_measured(tools.replicator_command(config), log_path)
    if tool == "skopeo":
        home = context.skopeo_homes / log_path.stem
        shutil.rmtree(home, ignore_errors=True)
        commands = [
            command
            for registry in registries
            for command in tools.skopeo_commands(
                corpus, source.host_port, registry.host_port
            )
        ]
        return run_sequence(commands, log_path, env=tools.skopeo_environment(home))
    if tool == "floor":
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        command = tools.floor_command(corpus, source.url, urls)
        return run_measured(command, log_path, env=env)
    raise ValueError(f"unknown tool {tool!r}")


def _exit_problems(tool: str, measurement: Measurement, log_path: Path) -> list[str]:
    if measurement.exit_code == 0:
        return []
    if tool != "skopeo":
        return [f"{tool} exited with {measurement.exit_code} (see {log_path})"]
    # skopeo --keep-going exits 1 after the referrers fallback tags it cannot copy
    # unchanged; any other image it failed is a real failure.
    failed = _SKOPEO_FAILURE.findall(log_path.read_text(errors="replace"))
    unexpected = [ref for ref in failed if ":sha256-" not in ref]
    if unexpected or not failed:
        return [f"skopeo failed on {unexpected or 'an unknown step'} (see {log_path})"]
    return []
