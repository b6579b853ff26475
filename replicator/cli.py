"""The command line: ``copy``, ``backfill``, ``verify`` and ``check-config``.

Exit codes: 0 success; 1 something failed or drifted; 2 bad usage or configuration.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from replicator import __version__
from replicator.backfill import BackfillSummary, backfill
from replicator.config import Config, load_config
from replicator.copier.copier import Copier
from replicator.copier.results import CopyJob
from replicator.errors import ConfigError, InvalidInputError, ReplicatorError
from replicator.logging import LogFormat, configure_logging
from replicator.progress import (
    console,
    print_backfill_summary,
    print_verify_report,
    progress_display,
)
from replicator.pushgateway import push_backfill_figures
from replicator.reference import parse_image_reference
from replicator.registry.auth import ANONYMOUS, Credentials
from replicator.registry.client import RegistryClient, RegistryEndpoint, open_session
from replicator.registry.retry import RetryPolicy
from replicator.rules import RuleSet, compile_rules
from replicator.verify import verify
from replicator.wiring import build_engine

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_USAGE = 2

config_option = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The replicator YAML configuration file.",
)
log_format_option = click.option(
    "--log-format",
    type=click.Choice(["auto", "json", "console"]),
    default=None,
    help="Log format (default: the config's log.format, else auto).",
)
report_option = click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the full result, item by item, to this file as JSON.",
)
verbose_option = click.option(
    "-v", "--verbose", is_flag=True, help="Log at DEBUG, one line per HTTP request."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="replicator")
def main() -> None:
    """Replicate container images between registries."""


@main.command("run")
@config_option
@log_format_option
@verbose_option
def run_command(config_path: Path, log_format: LogFormat | None, verbose: bool) -> None:
    """Run the daemon: replicate on push events until SIGTERM."""
    config, _ = _load(config_path)
    _configure_logging(config, log_format, verbose)
    # Imported here so the one-shot commands never load the daemon's sources.
    from replicator.daemon import serve

    sys.exit(_run(lambda: serve(config)))


@main.command("check-config")
@click.argument(
    "config_path", required=False, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "--config",
    "config_option",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The configuration file, as the other commands take it.",
)
def check_config(config_path: Path | None, config_option: Path | None) -> None:
    """Validate a configuration file and print the effective rules."""
    config_path = config_path or config_option
    if config_path is None:
        _fail_usage("check-config needs a configuration file: FILE or --config FILE")
    config, rules = _load(config_path)
    console.print(f"{config_path}: valid (source: {config.source})")
    if config.rules_from_ecr:
        console.print("rules are also read from the source's ECR replication config")
    console.print_json(json.dumps({"rules": rules.describe()}))


@main.command(short_help="Copy one image from SRC to DST.")
@click.argument("source_ref")
@click.argument("destination_ref")
@click.option(
    "--src-insecure", is_flag=True, help="Plain HTTP, no TLS, for the source."
)
@click.option(
    "--dest-insecure", is_flag=True, help="Plain HTTP, no TLS, for the destination."
)
@click.option(
    "--src-creds-env",
    metavar="VAR",
    help="Environment variable holding 'user:password' for the source.",
)
@click.option(
    "--dest-creds-env",
    metavar="VAR",
    help="Environment variable holding 'user:password' for the destination.",
)
@log_format_option
@verbose_option
def copy(
    source_ref: str,
    destination_ref: str,
    src_insecure: bool,
    dest_insecure: bool,
    src_creds_env: str | None,
    dest_creds_env: str | None,
    log_format: LogFormat | None,
    verbose: bool,
) -> None:
    """Copy one image, e.g. 127.0.0.1:5000/app:1.0 127.0.0.1:5001/app:1.0."""
    configure_logging("debug" if verbose else "info", log_format or "auto")
    try:
        source = parse_image_reference(source_ref)
        destination = parse_image_reference(destination_ref)
        if destination.digest and destination.digest != source.digest:
            raise InvalidInputError("a destination digest must equal the source digest")
        source_creds = _env_credentials(src_creds_env)
        destination_creds = _env_credentials(dest_creds_env)
    except ReplicatorError as error:
        _fail_usage(str(error))

    async def run() -> bool:
        async with open_session() as session:
            job = CopyJob(
                source=_client(session, source.registry, src_insecure, source_creds),
                source_repository=source.repository,
                reference=source.manifest_reference,
                destination=_client(
                    session, destination.registry, dest_insecure, destination_creds
                ),
                destination_repository=destination.repository,
                destination_tag=destination.tag or source.tag,
            )
            result = await Copier().copy(job)
            console.print(
                f"{result.outcome.value}: {destination_ref} {result.digest or ''}"
            )
            if result.error:
                console.print(f"error: {result.error}")
            return result.outcome.succeeded

    if not _run(run):
        sys.exit(EXIT_FAILED)


@main.command("backfill")
@config_option
@click.option(
    "--dry-run", is_flag=True, help="Report what would be copied; push nothing."
)
@report_option
@click.option(
    "--progress/--no-progress", default=True, help="Live progress on a terminal."
)
@click.option(
    "--pushgateway",
    "pushgateway_url",
    metavar="URL",
    help="Push the run's figures to this Prometheus Pushgateway (not on --dry-run).",
)
@log_format_option
@verbose_option
def backfill_command(
    config_path: Path,
    dry_run: bool,
    report_path: Path | None,
    progress: bool,
    pushgateway_url: str | None,
    log_format: LogFormat | None,
    verbose: bool,
) -> None:
    """Replicate every selected image that a destination lacks."""
    config, _ = _load(config_path)
    _configure_logging(config, log_format, verbose)

    async def run() -> BackfillSummary:
        async with open_session() as session:
            engine = await build_engine(config, session)
            with progress_display(progress) as display:
                summary = await backfill(
                    engine.selection(),
                    engine.copier(dry_run, remember_content=True),
                    config.concurrency.images,
                    display.on_result,
                )
            print_backfill_summary(summary, dry_run)
            return summary

    summary = _run(run)
    _write_report(report_path, summary.to_report())
    if pushgateway_url and not dry_run:
        _push_figures(pushgateway_url, summary)
    if summary.failed:
        sys.exit(EXIT_FAILED)


@main.command("verify")
@config_option
@report_option
@log_format_option
@verbose_option
def verify_command(
    config_path: Path,
    report_path: Path | None,
    log_format: LogFormat | None,
    verbose: bool,
) -> None:
    """Report tags whose destination digest differs from the source (read-only)."""
    config, _ = _load(config_path)
    _configure_logging(config, log_format, verbose)

    async def run() -> dict[str, Any]:
        async with open_session() as session:
            engine = await build_engine(config, session)
            report = await verify(engine.selection(), config.concurrency.images * 4)
            print_verify_report(report)
            return report.to_report()

    report = _run(run)
    _write_report(report_path, report)
    if report["problems"]:
        sys.exit(EXIT_FAILED)


def _load(config_path: Path) -> tuple[Config, RuleSet]:
    """Load and check a configuration; rules are compiled to report their errors."""
    try:
        config = load_config(config_path)
        return config, compile_rules(config)
    except ConfigError as error:
        _fail_usage(f"invalid configuration: {error}")


def _configure_logging(
    config: Config, log_format: LogFormat | None, verbose: bool
) -> None:
    level = "debug" if verbose else config.log.level
    configure_logging(level, log_format or config.log.format)


def _client(
    session: Any, host: str, insecure: bool, credentials: Credentials
) -> RegistryClient:
    scheme = "http" if insecure else "https"
    endpoint = RegistryEndpoint(host, f"{scheme}://{host}", verify_tls=not insecure)
    return RegistryClient(session, endpoint, credentials, RetryPolicy())


def _env_credentials(variable: str | None) -> Credentials:
    if variable is None:
        return ANONYMOUS
    value = os.environ.get(variable)
    if value is None:
        raise InvalidInputError(f"environment variable {variable} is not set")
    if ":" not in value:
        raise InvalidInputError(
            f"environment variable {variable} must hold 'user:password'"
        )
    username, _, password = value.partition(":")
    return Credentials(username=username, password=password)


def _run(coroutine_function: Callable[[], Awaitable[T]]) -> T:
    async def main_coroutine() -> T:
        return await coroutine_function()

    try:
        return asyncio.run(main_coroutine())
    except KeyboardInterrupt:
        sys.exit(130)


def _push_figures(gateway_url: str, summary: BackfillSummary) -> None:
    try:
        push_backfill_figures(gateway_url, summary)
    except ReplicatorError as error:
        # The copies are done; a monitoring hiccup must not fail the run.
        click.echo(f"replicator: could not push figures: {error}", err=True)


def _write_report(path: Path | None, report: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def _fail_usage(message: str) -> NoReturn:
    click.echo(f"replicator: {message}", err=True)
    sys.exit(EXIT_USAGE)
