"""The one-shot engine's scenarios, each a function from the context to results.

Every scenario runs each tool ``runs`` times with fresh destinations, rotating which
tool goes first, and checks each run. Daemon scenarios register in the same table
from ``bench.daemon``.
"""

from __future__ import annotations

import asyncio

from bench.corpora import cached_big_layer_corpus, cached_corpus
from bench.corpus import Corpus
from bench.daemon import DAEMON_SCENARIOS
from bench.results import CorpusStats, ScenarioResult
from bench.runner import (
    BenchContext,
    Scenario,
    progress,
    rotated,
    run_tool,
    run_tool_into,
)
from bench.seed import seed
from bench.sizes import SIZES, CorpusSize, scaling_sizes

PEERS = ("replicator", "skopeo", "floor")
FAN_OUT_DESTINATIONS = 3


def cold_backfill(context: BenchContext, size: CorpusSize) -> list[ScenarioResult]:
    """Copy the whole corpus to an empty destination."""
    corpus = cached_corpus(context.cache_root, size)
    result = _result("cold", "cold backfill", corpus, 1, PEERS)
    _run_rounds(context, corpus, result)
    return [result]


def no_op(context: BenchContext, size: CorpusSize) -> list[ScenarioResult]:
    """Run again against a destination that already holds everything."""
    corpus = cached_corpus(context.cache_root, size)
    result = _result(
        "noop", "no-op re-run", corpus, 1, ("replicator", "skopeo"), moves=False
    )
    for run in range(1, context.runs + 1):
        destination = context.lab.start("destination")
        try:
            asyncio.run(seed(corpus, destination.url))
            for tool in rotated(result.tools, run):
                result.runs.append(
                    run_tool_into(
                        context, tool, corpus, run, [destination], label="noop"
                    )
                )
        finally:
            context.lab.discard(destination)
    return [result]


def fan_out(context: BenchContext, size: CorpusSize) -> list[ScenarioResult]:
    """Copy the whole corpus to three empty destinations."""
    corpus = cached_corpus(context.cache_root, size)
    result = _result(
        "fanout", "fan-out to three destinations", corpus, FAN_OUT_DESTINATIONS, PEERS
    )
    result.notes.append(
        "replicator: one config naming three destinations; skopeo: the per-repository"
        " syncs run once per destination, one after another; floor: the three"
        " destinations at once, each blob fetched once per destination."
    )
    _run_rounds(context, corpus, result)
    return [result]


def big_layer(context: BenchContext, size: CorpusSize) -> list[ScenarioResult]:
    """Copy one image whose single layer is large and incompressible."""
    corpus = cached_big_layer_corpus(context.cache_root, size.big_layer_bytes)
    title = f"one {_binary_size(size.big_layer_bytes)} layer"
    result = _result("big-layer", title, corpus, 1, PEERS)
    _run_rounds(context, corpus, result)
    return [result]


def scaling(context: BenchContext, size: CorpusSize) -> list[ScenarioResult]:
    """Cold backfill time and peak memory as the corpus grows."""
    results = []
    for name in context.scaling_sizes or scaling_sizes(size.name):
        corpus = cached_corpus(context.cache_root, SIZES[name])
        result = _result(
            f"scaling-{name}", f"scaling: {name}", corpus, 1, ("replicator", "floor")
        )
        _run_rounds(context, corpus, result)
        results.append(result)
    return results


ONE_SHOT_SCENARIOS = {
    scenario.name: scenario
    for scenario in (
        Scenario("cold", "cold backfill of the whole corpus", cold_backfill),
        Scenario("noop", "no-op re-run, everything present", no_op),
        Scenario("fanout", "fan-out to three destinations", fan_out),
        Scenario("big-layer", "one big incompressible layer", big_layer),
        Scenario("scaling", "cold backfill, small to large", scaling),
    )
}
__all__ = ["ONE_SHOT_SCENARIOS", "SCENARIOS", "Scenario"]
SCENARIOS: dict[str, Scenario] = {**ONE_SHOT_SCENARIOS, **DAEMON_SCENARIOS}


def _run_rounds(context: BenchContext, corpus: Corpus, result: ScenarioResult) -> None:
    progress(f"{result.title}: {CorpusStats.of(corpus)}")
    for run in range(1, context.runs + 1):
        for tool in rotated(result.tools, run):
            result.runs.append(
                run_tool(
                    context,
                    tool,
                    corpus,
                    run,
                    destinations=result.destinations,
                    label=result.name,
                )
            )


def _result(
    name: str,
    title: str,
    corpus: Corpus,
    destinations: int,
    tools: tuple[str, ...],
    *,
    moves: bool = True,
) -> ScenarioResult:
    return ScenarioResult(
        name, title, CorpusStats.of(corpus), destinations, tools, moves_content=moves
    )


def _binary_size(size_bytes: int) -> str:
    if size_bytes >= 2**30:
        return f"{size_bytes / 2**30:g} GiB"
    return f"{size_bytes / 2**20:g} MiB"
