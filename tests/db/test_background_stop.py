"""A shutdown stops the background loops between transactions, not inside one (`BackgroundWork`).

Cancelling a task that awaits the database does not stop the statement in aiosqlite's thread, and
SQLAlchemy's cleanup of such a connection could leave SQLite's write lock taken after the app had gone:
the next app on the same file (a restart test in CI) waited out the 30 s busy timeout and failed with
"database is locked". Each test ends by taking the write lock from a fresh connection that does not
wait at all (`timeout=0`), so a lock left behind fails it at once."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.db.session import BackgroundWork, Database


@pytest.fixture
async def sqlite(tmp_path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'stop.sqlite3'}")
    async with db.unit_of_work() as session:
        await session.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    return db


def write_lock_is_free(path: Path) -> bool:
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as error:
        assert "locked" in str(error)
        return False
    finally:
        conn.close()


async def bodies(db: Database) -> list[str]:
    async with db.unit_of_work(read_only=True) as session:
        return list((await session.scalars(text("SELECT body FROM notes ORDER BY id"))).all())


async def test_a_stop_lets_the_open_transaction_commit_then_cancels_the_loop(
    sqlite: Database, tmp_path: Path
) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()
    rounds: list[int] = []

    async def loop() -> None:
        for n in range(1, 1000):
            async with sqlite.unit_of_work() as session:
                await session.execute(text("INSERT INTO notes (body) VALUES (:b)"), {"b": f"round {n}"})
                rounds.append(n)
                if n == 1:
                    inside.set()
                    await release.wait()  # mid-transaction, holding the write lock, when the stop comes
            await asyncio.sleep(0)

    background = BackgroundWork()
    task = background.spawn(loop())
    try:
        await inside.wait()
        stopping = asyncio.create_task(background.stop(grace_seconds=10))
        await asyncio.sleep(0.05)
        assert not stopping.done()  # it waits for the transaction, it does not cancel into it
        assert not write_lock_is_free(tmp_path / "stop.sqlite3")
        release.set()
        await stopping
        assert task.cancelled()
        # Round 1 committed whole; the loop never began round 2's transaction once the stop was asked.
        assert rounds == [1]
        assert await bodies(sqlite) == ["round 1"]
        assert write_lock_is_free(tmp_path / "stop.sqlite3")
    finally:
        await sqlite.dispose()


async def test_a_loop_started_by_a_background_task_is_held_back_too(sqlite: Database, tmp_path: Path) -> None:
    """Tasks a background task starts (the job runner's loops under `gather`) share its context."""
    started = asyncio.Event()

    async def child() -> None:
        started.set()
        while True:
            async with sqlite.unit_of_work() as session:
                await session.execute(text("INSERT INTO notes (body) VALUES ('child')"))
            await asyncio.sleep(0.01)

    async def parent() -> None:
        await asyncio.gather(child())

    background = BackgroundWork()
    background.spawn(parent())
    try:
        await started.wait()
        await asyncio.sleep(0.05)
        await background.stop(grace_seconds=10)
        written = len(await bodies(sqlite))
        await asyncio.sleep(0.05)
        assert written >= 1 and len(await bodies(sqlite)) == written  # nothing more after the stop
        assert write_lock_is_free(tmp_path / "stop.sqlite3")
    finally:
        await sqlite.dispose()


async def test_a_transaction_that_outlasts_the_grace_is_cancelled_and_rolled_back(
    sqlite: Database, tmp_path: Path
) -> None:
    inside = asyncio.Event()

    async def stuck() -> None:
        async with sqlite.unit_of_work() as session:
            await session.execute(text("INSERT INTO notes (body) VALUES ('never committed')"))
            inside.set()
            await asyncio.Event().wait()

    background = BackgroundWork()
    task = background.spawn(stuck())
    try:
        await inside.wait()
        await background.stop(grace_seconds=0.1)
        assert task.cancelled()
        assert await bodies(sqlite) == []
        assert write_lock_is_free(tmp_path / "stop.sqlite3")
    finally:
        await sqlite.dispose()


async def test_requests_are_not_background_work(sqlite: Database) -> None:
    """A unit of work outside the background context is never held back by a stopping app."""
    background = BackgroundWork()
    await background.stop(grace_seconds=1)
    try:
        async with sqlite.unit_of_work() as session:
            await session.execute(text("INSERT INTO notes (body) VALUES ('request')"))
        assert await bodies(sqlite) == ["request"]
    finally:
        await sqlite.dispose()
