"""One log format for Tiergate, the ASGI server and alembic, quiet by default.

Every log line goes through the standard library's root logger (Tiergate's `logging.getLogger(...)`
calls, structlog's `get_logger()`, uvicorn's and alembic's loggers all propagate to it) and is rendered by
one structlog `ProcessorFormatter`:
- `json`: one JSON object per line, `{"event", "level", "logger", "timestamp", "request_id", ...}`, for
  log shippers (production);
- `console`: human-readable lines, for the embedded default (`log_format = "auto"` picks it on SQLite).

The request id: the request middleware (`gateway.observability.requests`) sets `REQUEST_ID` for the
request's task; every line logged while serving it carries it, whichever library logged it.

There used to be three formats (the CLI's, uvicorn's `INFO:     …` and Litestar's `INFO - … - module -
…`) and every start printed alembic's plugin set-up and "Context impl" lines; alembic now speaks only at
WARNING unless `log_level` is DEBUG.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any

import structlog
import structlog.tracebacks

# The id of the request being served (gateway.observability.requests sets it).
REQUEST_ID: ContextVar[str | None] = ContextVar("tiergate_request_id", default=None)

FORMATS = ("json", "console")


def add_request_id(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


# What every line gets, from structlog and from the standard library alike.
SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    add_request_id,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def resolve_format(log_format: str, database_url: str = "") -> str:
    """`auto`: console for the embedded default (SQLite), json for everything else."""
    chosen = log_format.lower()
    if chosen == "auto":
        return "console" if not database_url or database_url.startswith("sqlite") else "json"
    if chosen not in FORMATS:
        raise ValueError(f"log_format must be auto, json or console, not {log_format!r}")
    return chosen


def formatter(fmt: str = "console") -> logging.Formatter:
    """The formatter for the root handler (also built by name from Litestar's dictConfig: `"()"`)."""
    if fmt == "json":
        # Tracebacks as data, without frame locals (they would carry secrets and request bodies into logs).
        no_locals = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        tail: list[Any] = [
            structlog.processors.ExceptionRenderer(no_locals),
            structlog.processors.JSONRenderer(),
        ]
    else:
        tail = [
            structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
        ]
    renderer: logging.Formatter = structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.stdlib.ExtraAdder(),
            *tail,
        ],
        foreign_pre_chain=[*SHARED, structlog.stdlib.PositionalArgumentsFormatter()],
    )
    return renderer


def litestar_formatters(fmt: str) -> dict[str, dict[str, Any]]:
    """Litestar's LoggingConfig formatters: its `standard` formatter is ours."""
    return {"standard": {"()": "gateway.logs.formatter", "fmt": fmt}}


def configure_structlog() -> None:
    """structlog's own loggers hand their events to the standard library (and so to the one formatter)."""
    structlog.configure(
        processors=[*SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def quiet_libraries(level: str) -> None:
    """alembic's INFO lines (plugin set-up, context, each revision) only when debugging."""
    debug = level.upper() == "DEBUG"
    logging.getLogger("alembic").setLevel(logging.DEBUG if debug else logging.WARNING)


def configure_logging(level: str, fmt: str = "console") -> None:
    """For the `tiergate` command and alembic, before any app exists: one stderr handler on the root
    logger with the one formatter (replacing a handler an earlier call put there)."""
    configure_structlog()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_tiergate", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler._tiergate = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Servers propagate to the root (uvicorn is started with log_config=None; granian likewise).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "granian", "_granian", "granian.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    quiet_libraries(level)
