"""Present a bench invocation: a table on stdout, Markdown and JSON in ``--out``.

The JSON holds every run; the Markdown holds the medians, the ratios, the targets,
the machine and how to reproduce the figures. ``bench/findings.md``, the written
analysis of the figures (hot spots, why a target is missed), is included as is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.measure import Measurement
from bench.results import FIGURE_LABELS, ScenarioResult, ToolSummary
from bench.targets import MB, Target

FINDINGS = Path(__file__).with_name("findings.md")
_COLUMNS = (
    "tool",
    "median s",
    "range s",
    "CPU s",
    "peak RSS MB",
    "MB/s",
    "replicator/tool",
)


def build_document(
    *,
    command: str,
    size: str,
    runs: int,
    machine: Mapping[str, Any],
    startup: Mapping[str, Measurement],
    results: Sequence[ScenarioResult],
    targets: Sequence[Target],
    generated_at: str,
) -> dict[str, Any]:
    """Return everything measured as JSON-ready data."""
    return {
        "generated_at": generated_at,
        "command": command,
        "size": size,
        "runs": runs,
        "machine": dict(machine),
        "startup": {
            tool: {"wall_s": m.wall_s, "peak_rss_bytes": m.peak_rss_bytes}
            for tool, m in startup.items()
        },
        "scenarios": [result.to_json() for result in results],
        "targets": [target.to_json() for target in targets],
    }


def text_tables(results: Sequence[ScenarioResult], targets: Sequence[Target]) -> str:
    """Return the figures and targets as plain-text tables for a terminal."""
    blocks = [_heading(result) + "\n" + _aligned(_table(result)) for result in results]
    scaling = _scaling_rows(results)
    if len(scaling) > 2:
        blocks.append("scaling (cold backfill)\n" + _aligned(scaling))
    if targets:
        rows = [("target", "measured", "met")]
        rows += [(t.requirement, t.measured, _verdict(t)) for t in targets]
        blocks.append("targets\n" + _aligned(rows))
    return "\n\n".join(blocks) + "\n"


def markdown(document: Mapping[str, Any], results: Sequence[ScenarioResult]) -> str:
    """Return the Markdown page of a bench invocation."""
    sections = [
        _intro(document),
        _targets_section(document["targets"]),
        _figures_section(results),
        _startup_section(document["startup"]),
        _machine_section(document["machine"]),
        _method_section(),
        _reproduce_section(document["command"]),
    ]
    if FINDINGS.exists():
        sections.insert(2, FINDINGS.read_text().strip())
    return "\n\n".join(sections) + "\n"


def write_outputs(
    out_dir: Path, document: Mapping[str, Any], results: Sequence[ScenarioResult]
) -> None:
    """Write ``benchmarks.md`` and ``benchmarks.json`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    (out_dir / "benchmarks.json").write_text(text)
    (out_dir / "benchmarks.md").write_text(markdown(document, results))


def _heading(result: ScenarioResult) -> str:
    corpus = result.corpus
    return (
        f"{result.title} [{corpus.name}: {corpus.repositories} repositories, "
        f"{corpus.tags} tags, {corpus.manifests} manifests, {corpus.blobs} blobs, "
        f"{corpus.unique_bytes / MB:.1f} MB; {result.destinations} destination(s); "
        f"{len(result.runs_of(result.tools[0]))} runs]"
    )


def _table(result: ScenarioResult) -> list[tuple[str, ...]]:
    if result.figures:
        return _figure_rows(result)
    return [_COLUMNS, *_rows(result)]


def _figure_rows(result: ScenarioResult) -> list[tuple[str, ...]]:
    """Return the table of a scenario with its own figures and no peer."""
    labels = tuple(FIGURE_LABELS.get(name, name) for name in result.figures)
    rows = [("tool", "median s", "range s", *labels, "CPU s", "peak RSS MB")]
    for tool in result.tools:
        summary = result.summary(tool)
        if summary.median_wall_s is None:
            failed = f"WRONG in {summary.failed_runs} of {summary.runs} runs"
            rows.append((tool, failed, *[""] * (len(labels) + 3)))
            continue
        rows.append(
            (
                tool,
                f"{summary.median_wall_s:.2f}",
                f"{summary.min_wall_s:.2f}-{summary.max_wall_s:.2f}",
                *(_number(result.figure(tool, n), "{:.2f}") for n in result.figures),
                _number(summary.median_cpu_s, "{:.2f}"),
                f"{(summary.median_peak_rss_bytes or 0) / MB:.0f}",
            )
        )
    return rows


def _rows(result: ScenarioResult) -> list[tuple[str, ...]]:
    rows = []
    for tool in result.tools:
        summary = result.summary(tool)
        ratio = None if tool == "replicator" else result.ratio("replicator", tool)
        rows.append(_row(summary, ratio))
    return rows


def _row(summary: ToolSummary, ratio: float | None) -> tuple[str, ...]:
    if summary.median_wall_s is None:
        failed = f"WRONG in {summary.failed_runs} of {summary.runs} runs"
        return (summary.tool, failed, "", "", "", "", "")
    spread = f"{summary.min_wall_s:.2f}-{summary.max_wall_s:.2f}"
    rss = summary.median_peak_rss_bytes or 0
    throughput = summary.throughput_bytes_per_s
    return (
        summary.tool,
        f"{summary.median_wall_s:.2f}",
        spread,
        _number(summary.median_cpu_s, "{:.2f}"),
        f"{rss / MB:.0f}",
        "" if throughput is None else f"{throughput / MB:.1f}",
        "" if ratio is None else f"{ratio:.2f}x",
    )


def _aligned(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def _verdict(target: Target) -> str:
    if target.met is None:
        return "not measured"
    return "met" if target.met else "MISSED"


def _markdown_table(rows: Sequence[Sequence[str]]) -> str:
    header, *body = rows
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
        for row in body
    ]
    return "\n".join(lines)


def _intro(document: Mapping[str, Any]) -> str:
    return (
        "# Benchmarks\n\n"
        "The one-shot engine (`replicator backfill`) against `skopeo sync` and a raw"
        " floor, on local registries, and the daemon (`replicator run`, figures"
        " only: it has no peer). Generated by `python -m bench`; do not edit by"
        " hand (the analysis comes from `bench/findings.md`).\n\n"
        f"Size `{document['size']}`, {document['runs']} runs per tool and scenario,"
        f" generated {document['generated_at']} with `{document['command']}`."
    )


def _targets_section(targets: Sequence[Mapping[str, Any]]) -> str:
    rows = [("scenario", "target (issue 6)", "measured", "met", "why missed")]
    for target in targets:
        met = target["met"]
        verdict = "not measured" if met is None else ("met" if met else "**missed**")
        rows.append(
            (
                target["scenario"],
                target["requirement"],
                target["measured"],
                verdict,
                target["detail"],
            )
        )
    return "## Targets\n\n" + _markdown_table(rows)


def _figures_section(results: Sequence[ScenarioResult]) -> str:
    parts = [
        "## Figures\n\n"
        "Medians over the runs; `replicator/tool` is the median over runs of"
        " replicator's time divided by that tool's time in the same run (below 1:"
        " replicator is faster). MB are 10^6 bytes; MB/s counts the unique blob"
        " bytes delivered to all destinations."
    ]
    for result in results:
        table = _markdown_table(_table(result))
        notes = "".join(f"\n\n{note}" for note in result.notes)
        parts.append(f"### {_heading(result)}\n\n{table}{notes}")
    scaling = _scaling_rows(results)
    if len(scaling) > 1:
        parts.append("### Scaling of the cold backfill\n\n" + _markdown_table(scaling))
    return "\n\n".join(parts)


def _scaling_rows(results: Sequence[ScenarioResult]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        (
            "size",
            "tags",
            "blobs",
            "MB",
            "replicator s",
            "MB/s",
            "peak RSS MB",
            "floor s",
            "replicator/floor",
        )
    ]
    for result in results:
        if not result.name.startswith("scaling-"):
            continue
        ours = result.summary("replicator")
        floor = result.summary("floor")
        ratio = result.ratio("replicator", "floor")
        rows.append(
            (
                result.name.removeprefix("scaling-"),
                str(result.corpus.tags),
                str(result.corpus.blobs),
                f"{result.corpus.unique_bytes / MB:.0f}",
                _number(ours.median_wall_s, "{:.2f}"),
                _number(ours.throughput_bytes_per_s, "{:.1f}", MB),
                _number(ours.median_peak_rss_bytes, "{:.0f}", MB),
                _number(floor.median_wall_s, "{:.2f}"),
                _number(ratio, "{:.2f}x"),
            )
        )
    return rows


def _number(value: float | None, pattern: str, unit: float = 1.0) -> str:
    return "-" if value is None else pattern.format(value / unit)


def _startup_section(startup: Mapping[str, Mapping[str, float]]) -> str:
    rows = [("tool", "start-up s (--version, best of 5)", "peak RSS MB")]
    rows += [
        (tool, f"{m['wall_s']:.2f}", f"{m['peak_rss_bytes'] / MB:.0f}")
        for tool, m in startup.items()
    ]
    return "## Start-up cost\n\n" + _markdown_table(rows)


def _machine_section(machine: Mapping[str, Any]) -> str:
    memory = machine.get("memory_bytes") or 0
    rows = [
        ("CPU", f"{machine['cpu_model']}, {machine['cpu_cores']} cores"),
        ("memory", f"{memory / 2**30:.1f} GiB"),
        ("kernel", str(machine["kernel"])),
        ("Python", str(machine["python"])),
        ("replicator", f"{machine['replicator']} ({machine['replicator_commit']})"),
        ("aiohttp", str(machine["aiohttp"])),
        ("skopeo", str(machine["skopeo"])),
        ("registry", str(machine["registry"])),
        (
            "load average (1, 5, 15 min)",
            f"{machine.get('load_average_at_start')} at start,"
            f" {machine.get('load_average_at_end')} at end",
        ),
    ]
    return "## Machine\n\n" + _markdown_table([("", ""), *rows])


def _method_section() -> str:
    return """## Method

- **Corpus**: gzip tars (level 6, sorted, owner 0, mtime 0) of real files on the
  machine (`/usr/lib/python3*`, `/usr/share`, `/usr/lib`): a large base layer most
  images share, an arm64 base, a runtime layer, a dependencies layer per repository
  and a small layer per image; the empty layer; Docker schema 2 and OCI manifests;
  two-platform OCI indexes and Docker manifest lists; an SBOM artifact with
  `subject` per repository, listed under the referrers fallback tag; nested names
  (`team/app/sidecar`); versions plus a minor and a `latest` alias per repository.
  Built once into a cache (`/tmp/replicator-bench-cache`), pushed to a fresh source
  registry per invocation.
- **Runs**: every run copies into fresh, empty CNCF distribution registries on
  loopback; the order of the tools rotates from run to run. Each tool is a fresh
  child process; its time is wall-clock from spawn to exit, its CPU time user plus
  system from `wait4`, its memory the peak resident set (`VmHWM` of
  `/proc/PID/status`, sampled every 5 ms; `ru_maxrss` would include the bench's
  own memory, which a vforked child inherits). Start-up is `--version` (for the
  floor: the module run without arguments), best of 5.
- **Checks**: after every run, every tag at every destination must resolve to the
  source's digest, and every manifest and blob it reaches must be present; a run
  that fails the check has no figures.
- **replicator**: `replicator backfill --config FILE --no-progress`, one rule to
  every destination, default concurrency (4 images, 8 blobs per registry).
- **skopeo**: `skopeo sync --src docker --dest docker --all --preserve-digests
  --keep-going` once per source repository, into the destination's matching parent
  path, one after another (and once per destination for fan-out). It runs as an
  unprivileged user with a fresh `HOME` per run, so its blob-location cache starts
  empty like replicator's. skopeo 1.9 cannot copy a referrers fallback index
  unchanged (it drops the entries' `artifactType` and so refuses under
  `--preserve-digests`): those tags, a few hundred bytes each, are left out of its
  checks and its work.
- **floor** (`bench/floor.py`): knows the corpus in advance, fetches each unique
  blob once and uploads it once per destination (8 at a time, one monolithic PUT,
  mounted into the other repositories that need it), then fetches and puts each
  manifest. No listing, no existence checks, no verification, no retries.
- **daemon** (`bench/daemon.py`): a fresh `replicator run` per run on loopback,
  its webhook enabled, default concurrency. `daemon-events` POSTs push events
  (10 per distribution notification envelope, 4 posters) for tags the
  destination already holds and times them until `/metrics` shows every event
  acknowledged; `daemon-burst` pushes new small images to the source at once,
  the source registry notifies the daemon, and each tag's lag runs from its
  manifest PUT's answer until it shows in the destination's tag list (polled
  every 20 ms). CPU and peak RSS are the daemon's. There is no peer: skopeo has
  no daemon."""


def _reproduce_section(command: str) -> str:
    return f"""## Reproduce

```sh
bash scripts/setup.sh                     # docker-registry, skopeo, .venv
PYTHONPATH=. .venv/bin/python -m bench --size medium --runs 3 \\
    --scaling-sizes small,medium,large --out docs/
```

This page came from `{command}`. `--size smoke` takes about a minute, `small` a
few minutes, `medium` with the scaling sizes above 15 to 30 minutes on 2 cores.
`--scenarios cold,noop` picks scenarios (cold, noop, fanout, big-layer, scaling,
daemon-events, daemon-burst);
`--keep-work` keeps every tool's log. Corpora are built once into
`/tmp/replicator-bench-cache` (`--cache-dir`); building them takes seconds (smoke)
to several minutes (large) the first time. `python -m bench.profile --size medium`
runs one cold backfill under py-spy (install `py-spy` into the venv first) and
prints the hot spots. `python -m bench --render docs/benchmarks.json` rewrites this
page from its JSON after `bench/findings.md` changes."""
