"""``python -m bench``: parse options, run the scenarios, write the report."""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import report, tools
from bench.lab import Lab
from bench.machine import describe_machine, load_average
from bench.measure import Measurement, run_measured
from bench.results import ScenarioResult
from bench.runner import REPO_ROOT, BenchContext, progress
from bench.scenarios import SCENARIOS
from bench.sizes import SIZE_ORDER, SIZES
from bench.targets import evaluate

DEFAULT_CACHE = Path(tempfile.gettempdir()) / "replicator-bench-cache"
STARTUP_RUNS = 5


def parse_arguments(arguments: Sequence[str]) -> argparse.Namespace:
    """Return the parsed command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.split(":", 1)[-1].strip()
    )
    parser.add_argument("--size", choices=SIZE_ORDER, default="medium")
    parser.add_argument("--runs", type=_positive, default=3)
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, of: {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--scaling-sizes",
        default="",
        help="sizes the scaling scenario measures (default: small up to --size)",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument(
        "--keep-work", action="store_true", help="keep registries' dirs and logs"
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="measure nothing: rewrite benchmarks.md in --out from this JSON",
    )
    parsed = parser.parse_args(arguments)
    unknown = set(_names(parsed.scenarios)) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    unknown = set(_names(parsed.scaling_sizes)) - set(SIZES)
    if unknown:
        parser.error(f"unknown sizes: {', '.join(sorted(unknown))}")

    return parsed


def main(arguments: Sequence[str] | None = None) -> int:
    """Run the bench; exit 1 if any run left a destination wrong."""
    options = parse_arguments(sys.argv[1:] if arguments is None else arguments)
    if options.render is not None:
        return _render(options.render, options.out)
    command = "python -m bench " + shlex.join(
        sys.argv[1:] if arguments is None else arguments
    )
    work_dir = Path(tempfile.mkdtemp(prefix="replicator-bench-"))
    skopeo_homes = Path(tempfile.mkdtemp(prefix="replicator-bench-skopeo-"))
    # skopeo runs unprivileged and must reach its HOME below this directory.
    skopeo_homes.chmod(0o755)
    options.cache_dir.mkdir(parents=True, exist_ok=True)
    machine = describe_machine(REPO_ROOT)
    try:
        results, startup = _run(options, work_dir, skopeo_homes)
    finally:
        shutil.rmtree(skopeo_homes, ignore_errors=True)
    machine["load_average_at_end"] = load_average()
    wrong = any(not run.ok for result in results for run in result.runs)
    _finish(options, command, machine, results, startup)
    if options.keep_work or wrong:
        progress(f"logs and registries kept in {work_dir}")
    else:
        shutil.rmtree(work_dir, ignore_errors=True)

    return 1 if wrong else 0


def _run(
    options: argparse.Namespace, work_dir: Path, skopeo_homes: Path
) -> tuple[list[ScenarioResult], dict[str, Measurement]]:
    size = SIZES[options.size]
    results: list[ScenarioResult] = []
    with Lab(work_dir) as lab:
        context = BenchContext(
            lab,
            options.cache_dir,
            options.runs,
            work_dir / "logs",
            skopeo_homes,
            tuple(_names(options.scaling_sizes)),
        )
        startup = _measure_startup(context)
        for name in _names(options.scenarios):
            new = SCENARIOS[name].run(context, size)
            print(report.text_tables(new, []), flush=True)
            results += new
    return results, startup


def _finish(
    options: argparse.Namespace,
    command: str,
    machine: dict[str, Any],
    results: list[ScenarioResult],
    startup: dict[str, Measurement],
) -> None:
    targets = evaluate(results, startup)
    document = report.build_document(
        command=command,
        size=options.size,
        runs=options.runs,
        machine=machine,
        startup=startup,
        results=results,
        targets=targets,
        generated_at=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    print(report.text_tables(results, targets), flush=True)
    report.write_outputs(options.out, document, results)
    progress(f"wrote {options.out / 'benchmarks.md'} and benchmarks.json")


def _render(json_path: Path, out_dir: Path) -> int:
    document = json.loads(json_path.read_text())
    results = [ScenarioResult.from_json(data) for data in document["scenarios"]]
    startup = {
        tool: Measurement(figures["wall_s"], figures["peak_rss_bytes"], 0)
        for tool, figures in document["startup"].items()
    }
    document["targets"] = [target.to_json() for target in evaluate(results, startup)]
    report.write_outputs(out_dir, document, results)
    progress(f"rewrote {out_dir / 'benchmarks.md'} from {json_path}")

    return 0


def _measure_startup(context: BenchContext) -> dict[str, Measurement]:
    startup = {}
    for tool in ("replicator", "skopeo", "floor"):
        log_path = context.log_path(f"startup-{tool}")
        runs = [
            run_measured(tools.version_command(tool), log_path)
            for _ in range(STARTUP_RUNS)
        ]
        # The least disturbed of several: start-up is short, and one busy moment
        # on a shared machine would otherwise dominate it.
        best = min(runs, key=lambda run: run.wall_s)
        startup[tool] = Measurement(
            best.wall_s, best.peak_rss_bytes, best.exit_code, best.cpu_s
        )
    return startup


def _names(scenarios: str) -> list[str]:
    return [name.strip() for name in scenarios.split(",") if name.strip()]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
