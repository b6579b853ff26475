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
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def _drop_none_values(
    logger: object, method_name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    return {key: value for key, value in event_dict.items() if value is not None}
