"""Shared fixtures. Every database test runs on SQLite and, when `TIERGATE_TEST_POSTGRES_URL` is set, on
PostgreSQL too. With `CI` set, a missing PostgreSQL or Redis is a failure, never a skip."""

from __future__ import annotations

import atexit
import base64
import gc
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import create_engine, text

from gateway.all_models import Base
from gateway.app import create_app
from gateway.config import Settings
from gateway.db.session import Database
from gateway.identity.http import forget_cached_keys
from gateway.kernel.clock import FrozenClock
from tests.notifications.smtp import Mailbox, SmtpServer

# Secrets at rest: every app the suite builds seals with this key (Settings reads TIERGATE_SECRET_KEY from
# the environment), so no test writes a key file and PostgreSQL runs do not refuse to start.
TEST_SECRET_KEY = "test:" + base64.b64encode(hashlib.sha256(b"tiergate test suite").digest()).decode()
os.environ.setdefault("TIERGATE_SECRET_KEY", TEST_SECRET_KEY)

POSTGRES_URL = os.environ.get("TIERGATE_TEST_POSTGRES_URL", "")
REDIS_URL = os.environ.get("TIERGATE_TEST_REDIS_URL", "")


def _per_worker_services() -> None:
    """Under pytest-xdist (`-n N`), give each worker its own PostgreSQL database and Redis db number.

    Each test truncates every table and some flush Redis, so two workers must never share either. Worker
    `gwK` uses `<test db>_gwK` (created here when missing; CI drops every `<test db>_*` afterwards) and
    Redis db `<base> + K`. The environment is updated too, so subprocesses a test starts inherit them.
    """
    global POSTGRES_URL, REDIS_URL
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return
    index = int(worker[2:])
    if POSTGRES_URL:
        base, name = POSTGRES_URL.rsplit("/", 1)
        own = f"{name.split('?')[0]}_{worker}"
        _create_database_once(POSTGRES_URL, own)
        POSTGRES_URL = f"{base}/{own}"
        os.environ["TIERGATE_TEST_POSTGRES_URL"] = POSTGRES_URL
    if REDIS_URL:
        head, _, db_number = REDIS_URL.rpartition("/")
        number = int(db_number) if db_number.isdigit() else 0
        REDIS_URL = f"{head}/{number + index}" if db_number.isdigit() else f"{REDIS_URL}/{index}"
        os.environ["TIERGATE_TEST_REDIS_URL"] = REDIS_URL


def _create_database_once(url: str, name: str) -> None:
    import asyncio

    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    parsed = make_url(url)

    async def create() -> None:
        conn = await asyncpg.connect(
            host=parsed.host,
            port=parsed.port or 5432,
            user=parsed.username,
            password=parsed.password,
            database="postgres",
        )
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())


_per_worker_services()
IN_CI = bool(os.environ.get("CI"))
ADMIN_KEY = "tg_sk_test_admin_key_0123456789"
START = datetime(2026, 1, 1, tzinfo=UTC)


def pytest_configure(config: pytest.Config) -> None:
    if IN_CI and not (POSTGRES_URL and REDIS_URL):
        raise pytest.UsageError(
            "CI is set but TIERGATE_TEST_POSTGRES_URL / TIERGATE_TEST_REDIS_URL are not: "
            "the real services must be tested in CI"
        )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Garbage collection tuned for a test process, the way `tiergate serve` tunes it after start-up.

    Nearly every test builds a whole app (~640 route handlers, ~40k objects), and with the default
    thresholds each build paid for several full collections over everything imported (measured: a third
    of `create_app`'s time; `tests/catalog tests/customers` ran 22% faster with this). Freezing moves what
    is loaded by now out of the collector's sight; the larger first threshold collects less often. Cycles
    are still collected; only later.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


logging.getLogger("httpx").setLevel(logging.WARNING)

BACKENDS = ["sqlite", *(["postgres"] if POSTGRES_URL else [])]


def sibling_database(suffix: str) -> tuple[str, str]:
    """(name, url) of a scratch database named after the test database (`<test db>_<suffix>`), for tests
    that need a whole database of their own: two runs with different test databases never share one."""
    base, name = POSTGRES_URL.rsplit("/", 1)
    sibling = f"{name.split('?')[0]}_{suffix}"
    return sibling, f"{base}/{sibling}"


_pg_ready = False
_pg_emptying: str | None = None  # the statements that empty every table and restart the sequences
_sqlite_template: Path | None = None


def empty_sqlite_file(path: Path) -> Path:
    """`path`, a copy of an SQLite file with every table and nothing in it.

    The tables are created once per process (`create_all` of ~80 tables took 0.1–0.25 s a test); each test
    gets its own copy of that file.
    """
    global _sqlite_template
    if _sqlite_template is None:
        folder = Path(tempfile.mkdtemp(prefix="tiergate-empty-sqlite-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        template = folder / "empty.sqlite3"
        engine = create_engine(f"sqlite:///{template}")
        Base.metadata.create_all(engine)
        engine.dispose()
        _sqlite_template = template
    shutil.copyfile(_sqlite_template, path)
    return path


async def _prepare_postgres(db: Database) -> None:
    """Migrate once per run (the migrations themselves are under test), then empty the tables per test."""
    global _pg_ready, _pg_emptying
    if not _pg_ready:
        from gateway.db.migrate import upgrade_head

        async with db.engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await upgrade_head(db)
        _pg_ready = True
    async with db.engine.begin() as conn:
        if _pg_emptying is None:
            sequences = await conn.scalars(
                text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
            )
            _pg_emptying = "; ".join(
                [f'DELETE FROM "{table.name}"' for table in reversed(Base.metadata.sorted_tables)]
                + [f'ALTER SEQUENCE "{name}" RESTART' for name in sequences]
            )
        # DELETE, children first, as one simple-protocol batch: a test leaves a few rows behind, and this
        # takes 0.02–0.03 s where TRUNCATE of every table took 0.15–0.24 s (new files for every table).
        raw = await conn.get_raw_connection()
        await raw.driver_connection.execute(_pg_emptying)


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "postgres":
        database = Database(POSTGRES_URL, pooled=False)
        await _prepare_postgres(database)
    else:
        database = Database(f"sqlite+aiosqlite:///{empty_sqlite_file(tmp_path / 'test.sqlite3')}")
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def postgres_db() -> AsyncIterator[Database]:
    """PostgreSQL alone, migrated and emptied, for tests that only PostgreSQL can run (concurrent
    writers, transaction horizons); their modules skip it outside CI when no PostgreSQL is configured."""
    database = Database(POSTGRES_URL, pooled=False)
    await _prepare_postgres(database)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def settings() -> Settings:
    return Settings(
        database_url="unused-db-is-injected",
        migrate_on_start=False,
        scheduler_enabled=False,
        bootstrap_api_key=ADMIN_KEY,
        # GET /v1/changes streams until this; a test that reads a whole stream waits that long.
        changes_stream_max_seconds=1.0,
        changes_heartbeat_seconds=0.25,
        # The mounted sandbox provider keeps nothing between tests.
        payments_sandbox_store=":memory:",
    )


@pytest.fixture
def app(settings: Settings, clock: FrozenClock, db: Database) -> Iterator[Litestar]:
    forget_cached_keys()
    yield create_app(settings, clock=clock, db=db)
    forget_cached_keys()


class Api:
    """A test client that speaks as one API key and fails loudly on unexpected statuses."""

    def __init__(self, client: AsyncTestClient[Litestar], key: str) -> None:
        self.client = client
        self.key = key

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", **(extra or {})}

    async def call(
        self,
        method: str,
        path: str,
        *,
        expect: int | None = 200,
        json: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        response = await self.client.request(
            method, path, json=json, headers=self._headers(headers), params=params
        )
        if expect is not None:
            assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        kw.setdefault("expect", 201)
        return await self.call("POST", path, json=json if json is not None else {}, **kw)

    async def patch(self, path: str, json: Any, **kw: Any) -> Any:
        return await self.call("PATCH", path, json=json, **kw)

    async def delete(self, path: str, **kw: Any) -> Any:
        return await self.call("DELETE", path, **kw)

    def as_key(self, key: str) -> Api:
        return Api(self.client, key)


@pytest.fixture
async def api(app: Litestar) -> AsyncIterator[Api]:
    async with AsyncTestClient(app) as client:
        yield Api(client, ADMIN_KEY)


@pytest.fixture
async def demo(api: Api, db: Database, clock: FrozenClock) -> dict[str, Any]:
    """The demo catalog (no demo customers: tests make their own)."""
    from gateway.demo import seed_catalog

    async with db.unit_of_work() as session:
        await seed_catalog(session, clock)
    return {}


# A real SMTP server on loopback and what reaches it, for the e-mail stories (tests/notifications/smtp.py).
# A module that needs another shape (the dunning stories' pair) defines its own `smtp`.
@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def smtp(mailbox: Mailbox) -> Iterator[SmtpServer]:
    with SmtpServer(mailbox) as server:
        yield server
