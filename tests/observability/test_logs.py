"""One structured log format with the request id, for Tiergate, the server and alembic."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from litestar import Litestar, get

from gateway.logs import configure_logging, formatter, resolve_format
from gateway.web.permissions import ANYONE, MATRIX, Access
from tests.conftest import Api


class Capture(logging.Handler):
    def __init__(self, fmt: str) -> None:
        super().__init__()
        self.setFormatter(formatter(fmt))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture("json")
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


async def test_lines_logged_while_serving_a_request_carry_its_id(
    api: Api, app: Litestar, captured: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(MATRIX, ("GET", "/v1/log_something"), Access(ANYONE))  # type: ignore[arg-type]

    @get("/v1/log_something", sync_to_thread=False)
    def log_something() -> dict[str, str]:
        logging.getLogger("tiergate.example").warning("stdlib line %s", "one")
        structlog.get_logger("tiergate.example").warning("structlog line", tenant="cus_1")
        return {}

    app.register(log_something)
    await api.client.get("/v1/log_something", headers={"X-Request-ID": "req-7"})
    lines = [json.loads(line) for line in captured.lines if "line" in line]
    assert [(e["event"], e["logger"], e["level"], e["request_id"]) for e in lines] == [
        ("stdlib line one", "tiergate.example", "warning", "req-7"),
        ("structlog line", "tiergate.example", "warning", "req-7"),
    ]
    assert lines[1]["tenant"] == "cus_1"
    assert all(e["timestamp"].endswith("Z") for e in lines)


def test_server_and_alembic_loggers_share_the_format() -> None:
    stream = io.StringIO()
    # An earlier test's uvicorn.Config(log_level="warning") leaves uvicorn's loggers at WARNING (uvicorn
    # sets them process-wide); a server configured at INFO has them at INFO.
    server_logger = logging.getLogger("uvicorn.error")
    level, propagate = server_logger.level, server_logger.propagate
    server_logger.setLevel(logging.INFO)
    server_logger.propagate = True
    configure_logging("INFO", "json")
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_tiergate", False)]
    try:
        assert len(ours) == 1
        ours[0].setStream(stream)  # type: ignore[attr-defined]
        logging.getLogger("uvicorn.error").info("Started server process")
        logging.getLogger("alembic.runtime.migration").warning("Running upgrade")
        logging.getLogger("alembic.runtime.migration").info("quiet unless debugging")
        events = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [(e["logger"], e["event"]) for e in events] == [
            ("uvicorn.error", "Started server process"),
            ("alembic.runtime.migration", "Running upgrade"),
        ]
    finally:
        for handler in ours:
            root.removeHandler(handler)
        logging.getLogger("alembic").setLevel(logging.NOTSET)
        server_logger.setLevel(level)
        server_logger.propagate = propagate


def test_console_lines_are_for_people_and_exceptions_keep_their_traceback() -> None:
    record = logging.LogRecord("tiergate.x", logging.ERROR, __file__, 1, "failed %d", (3,), None)
    line = formatter("console").format(record)
    assert "failed 3" in line and "tiergate.x" in line and not line.startswith("{")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        failed = logging.LogRecord(
            "tiergate.x", logging.ERROR, __file__, 1, "pass failed", (), sys.exc_info()
        )
    event = json.loads(formatter("json").format(failed))
    assert event["exception"][0]["exc_type"] == "ValueError"
    assert all("locals" not in frame for frame in event["exception"][0]["frames"])  # no secrets leak


def test_auto_is_console_embedded_and_json_on_postgres() -> None:
    assert resolve_format("auto", "sqlite+aiosqlite:///var/x.sqlite3") == "console"
    assert resolve_format("auto", "postgresql+asyncpg://db/x") == "json"
    assert resolve_format("JSON") == "json"
    with pytest.raises(ValueError):
        resolve_format("xml")
