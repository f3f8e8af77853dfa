"""SQLite (the embedded default): a transaction takes the write lock when it begins, so a transaction that
reads first and writes later waits its turn instead of failing.

With the driver's deferred BEGIN, reading first pinned a snapshot; when another connection committed
before the write, SQLite refused the write at once with "database is locked" (busy_timeout does not apply
to a stale snapshot). A hosted checkout in the browser tests met exactly that beside the relay's tick."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from gateway.db.session import Database


@pytest.fixture
async def sqlite(tmp_path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'lock.sqlite3'}")
    async with db.unit_of_work() as session:
        await session.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    return db


async def add(db: Database, body: str, *, read_only: bool = False) -> None:
    async with db.unit_of_work(read_only=read_only) as session:
        await session.execute(text("INSERT INTO notes (body) VALUES (:body)"), {"body": body})


async def bodies(db: Database) -> list[str]:
    async with db.unit_of_work(read_only=True) as session:
        return list((await session.scalars(text("SELECT body FROM notes ORDER BY id"))).all())


async def test_a_writer_that_read_first_makes_a_concurrent_writer_wait_and_both_commit(
    sqlite: Database,
) -> None:
    try:
        async with sqlite.unit_of_work() as first:
            assert (await first.scalars(text("SELECT count(*) FROM notes"))).one() == 0
            second = asyncio.create_task(add(sqlite, "second"))
            await asyncio.sleep(0.3)
            assert not second.done()  # it waits for the lock the first one holds since it began
            await first.execute(text("INSERT INTO notes (body) VALUES ('first')"))
        await second
        assert await bodies(sqlite) == ["first", "second"]
    finally:
        await sqlite.dispose()


async def test_a_read_only_transaction_runs_beside_a_writer_and_cannot_write_after_it(
    sqlite: Database,
) -> None:
    try:
        async with sqlite.unit_of_work(read_only=True) as reader:
            assert (await reader.scalars(text("SELECT count(*) FROM notes"))).one() == 0
            await add(sqlite, "writer")  # not held up by the reader
            # The reader still sees its snapshot; writing from it is what deferred transactions got wrong.
            assert (await reader.scalars(text("SELECT count(*) FROM notes"))).one() == 0
            with pytest.raises(OperationalError, match="database is locked"):
                await reader.execute(text("INSERT INTO notes (body) VALUES ('stale')"))
        assert await bodies(sqlite) == ["writer"]
    finally:
        await sqlite.dispose()
