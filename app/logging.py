"""Logging: stdlib loggers everywhere, rendered by structlog as key=value (or JSON).

Extra fields passed with `extra={...}` (the dedupe key, the inbox id) become
structured fields. Nothing logs secrets or decrypted bodies at info level.

`configure_logging` runs wherever a CampBot process starts: the CLI commands, and
`create_app` — so `uvicorn app.main:app` (the Docker entrypoint) logs like `campbot serve`.
It is idempotent: it installs one handler on the root logger, and does nothing when the
root logger already has handlers (CampBot's own from an earlier call, or whatever the host
set up on purpose: a `--log-config` that configures the root logger, a test runner).
uvicorn's own loggers are then routed through the same handler, so one process writes one
format, and uvicorn's `--log-level` (which it sets on `uvicorn.error`) is CampBot's level too.
uvicorn's access log is the exception: it is turned off, and CampBot writes the same lines on
`campbot.access` (app.api.access_log).
"""

from __future__ import annotations

import logging
import sys

import structlog


def _drop_color_message(
    _logger: object, _name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    event.pop("color_message", None)  # uvicorn's ANSI twin of the message
    return event


# uvicorn's loggers: its default config gives them their own plain handlers.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# CampBot writes the access lines itself (app.api.access_log). uvicorn decides per connection
# whether to log access from whether this logger has handlers: with none and no propagation,
# it builds no record at all.
UVICORN_ACCESS = "uvicorn.access"
# Loggers whose INFO lines say nothing an operator needs: APScheduler's "Running job" and
# "executed successfully" for every tick of every job.
QUIET_LOGGERS = ("apscheduler",)


def configure_logging(*, level: str | int | None = None, json: bool | None = None) -> bool:
    """Structured logs on stderr at `level` (default: uvicorn's `--log-level` when one was
    given, else INFO; JSON when stderr is not a terminal); False when logging was already set
    up and was left alone."""
    root = logging.getLogger()
    if root.handlers:
        return False
    if level is None:
        level = logging.getLogger("uvicorn.error").level or logging.INFO
    use_json = (not sys.stderr.isatty()) if json is None else json
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_color_message,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level)
    for name in UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = name != UVICORN_ACCESS
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return True
