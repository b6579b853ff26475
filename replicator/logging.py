"""Structured logging: JSON lines in a cluster, readable lines on a terminal.

Every log call names a stable snake_case event and passes data as keys from one
vocabulary (destination, repository, tag, digest, size_bytes, duration_s, attempt,
error). Logs go to stderr so command output on stdout stays machine-readable.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

LogFormat = Literal["auto", "json", "console"]


def configure_logging(level: str = "info", log_format: LogFormat = "auto") -> None:
    """Set up structlog for the process; call once at start."""
    use_console = log_format == "console" or (
        log_format == "auto" and sys.stderr.isatty()
    )
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if use_console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks
            if not use_console
            else structlog.dev.set_exc_info,
            _drop_none_values,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=_StderrLogger,
        cache_logger_on_first_use=True,
    )


class _StderrLogger:
    """Writes each line to whatever ``sys.stderr`` is at that moment.

    A live progress display replaces ``sys.stderr`` to keep log lines above its
    bar; a logger holding the original stream would draw through it.
    """

    def __init__(self, *args: object) -> None:
        del args

    def msg(self, message: str) -> None:
        """Write one rendered line."""
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = msg


def _drop_none_values(
    logger: object, method_name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    return {key: value for key, value in event_dict.items() if value is not None}
