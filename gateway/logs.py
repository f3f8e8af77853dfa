"""One log format for Tiergate, uvicorn and alembic, quiet by default.

There used to be three (the CLI's, uvicorn's `INFO:     …` and Litestar's `INFO - … - module - …`) and
every start printed alembic's plugin set-up and "Context impl" lines. Now the root logger has the one
format below (the CLI sets it up first; the app's Litestar logging config keeps it), uvicorn's loggers
propagate to it, and alembic speaks only at WARNING unless `log_level` is DEBUG.
"""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def quiet_libraries(level: str) -> None:
    """alembic's INFO lines (plugin set-up, context, each revision) only when debugging."""
    debug = level.upper() == "DEBUG"
    logging.getLogger("alembic").setLevel(logging.DEBUG if debug else logging.WARNING)


def configure_logging(level: str) -> None:
    """For the `tiergate` command, before any app exists (a no-op where logging is already set up)."""
    logging.basicConfig(level=level.upper(), format=FORMAT)
    quiet_libraries(level)
