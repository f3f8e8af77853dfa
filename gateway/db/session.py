"""Engine and unit of work. One transaction per request or job: services flush, the boundary commits."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from gateway.db.outbox import set_actor

log = logging.getLogger(__name__)

# The execution option that makes a SQLite transaction begin deferred (`unit_of_work(read_only=True)`).
DEFERRED = "tiergate_sqlite_deferred"


class BackgroundWork:
    """An app's background loops (index sync, relay, sweeps), stopped between transactions, not in one.

    Cancelling a task while it awaits the database does not stop the statement: aiosqlite's thread runs
    it to the end (a `BEGIN IMMEDIATE` waits out the busy timeout, 30 s), and SQLAlchemy's cleanup of a
    cancelled connection can leave the SQLite connection open with its write lock taken, long after the
    app has gone (seen as "database is locked" in the next app on the same file). So `stop` lets every
    unit of work these tasks are in end normally first, refuses new ones, and only then cancels.

    The tasks (and the tasks they start) run in a context of their own that names this object, so a unit
    of work knows it is background work; requests are not counted and never refused."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any]] = []
        self.stopping = False
        self._in_units = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._context = contextvars.copy_context()
        self._context.run(_background.set, self)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, context=self._context)
        self.tasks.append(task)
        return task

    async def entering(self) -> None:
        if self.stopping:
            # The app is stopping: park here, outside any transaction, until `stop` cancels the task.
            await asyncio.Event().wait()
        self._in_units += 1
        self._idle.clear()

    def left(self) -> None:
        self._in_units -= 1
        if self._in_units == 0:
            self._idle.set()

    async def stop(self, grace_seconds: float) -> None:
        """Refuse new units of work, wait up to `grace_seconds` for the open ones to end, then cancel."""
        self.stopping = True
        try:
            async with asyncio.timeout(grace_seconds):
                await self._idle.wait()
        except TimeoutError:
            log.warning("background work still in a transaction after %.0f s; cancelling it", grace_seconds)
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


_background: contextvars.ContextVar[BackgroundWork | None] = contextvars.ContextVar(
    "tiergate_background_work", default=None
)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


class Database:
    def __init__(self, url: str, *, echo: bool = False, pooled: bool = True) -> None:
        self.url = url
        kwargs: dict[str, object] = {"echo": echo}
        if not pooled:
            # Tests: the app under test and the test body may run on different event loops, and an
            # asyncpg connection belongs to the loop that opened it.
            kwargs["poolclass"] = NullPool
        elif not is_sqlite(url):
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        in_memory = ":memory:" in url or url.rstrip("/").endswith(":")
        self._deferrable = is_sqlite(url) and not in_memory
        if is_sqlite(url):
            _sqlite_pragmas(self.engine, in_memory=in_memory)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def unit_of_work(
        self, *, actor: str | None = None, read_only: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed if the block succeeds, rolled back if it raises,
        so a refused request never leaves a partial write behind. `actor`: who it acts for (a job's
        `system:<name>`; see `gateway.db.outbox.set_actor`). `read_only`: on SQLite, the transaction
        does not take the write lock when it starts (see `_sqlite_pragmas`), so it neither waits for a
        writer nor holds one up; a write in it can then fail with "database is locked"."""
        background = _background.get()
        if background is not None:
            await background.entering()
        try:
            async with self.sessionmaker() as session, session.begin():
                if read_only and self._deferrable:
                    await session.connection(execution_options={DEFERRED: True})
                if actor is not None:
                    set_actor(session, actor)
                yield session
        finally:
            if background is not None:
                background.left()

    async def dispose(self) -> None:
        await self.engine.dispose()


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's outermost transaction has committed; never on a rollback.

    For what must not happen before the data is visible to others, e.g. dropping a cache entry: done
    inside the transaction, a concurrent reader can still see (and cache) the old row. SQLAlchemy also
    fires `after_commit` when a SAVEPOINT is released, which commits nothing yet: those are skipped.
    """
    fired = False

    def on_commit(sync_session: Any) -> None:
        nonlocal fired
        if fired or sync_session.get_nested_transaction() is not None:
            return
        fired = True
        callback()

    event.listen(session.sync_session, "after_commit", on_commit)


def _sqlite_pragmas(engine: AsyncEngine, *, in_memory: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        # Foreign keys are off by default in SQLite; WAL lets readers run beside the one writer.
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        # A writer waits for the one write lock (in aiosqlite's thread, never on the event loop), on a
        # loaded 2-core machine sometimes for seconds.
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        if not in_memory:
            # The driver's own transaction handling is switched off: SQLAlchemy's `begin` below opens each
            # transaction itself.
            dbapi_connection.isolation_level = None

    if in_memory:
        return  # one shared connection (StaticPool): sessions already share its one transaction

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection):  # type: ignore[no-untyped-def]
        # A transaction takes the write lock when it starts. With the driver's deferred BEGIN, one that
        # read first and then wrote after another connection had committed failed at once with "database
        # is locked" (SQLite cannot move a stale read snapshot forward, and busy_timeout does not apply
        # then): a hosted checkout met that beside the relay's tick. Taken up front, writers queue
        # instead. Transactions that only read (`unit_of_work(read_only=True)`: the API-key and revocation
        # reads) begin deferred, so they run beside the writer as WAL allows.
        deferred = connection.get_execution_options().get(DEFERRED)
        connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")
