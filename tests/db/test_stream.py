"""The change stream (gateway.db.stream): its contract on SQLite and PostgreSQL, a transaction overtaken by
far more commits than the old re-read window (PostgreSQL), and many concurrent writers that commit or roll
back while a reader and a relay consumer tail: each committed event is seen exactly once, rolled-back ones
never."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.outbox import OutboxEvent, record_event
from gateway.db.session import Database
from gateway.db.stream import HorizonWatch, OutboxTail
from gateway.kernel.clock import FrozenClock
from gateway.kernel.events import DomainEvent
from gateway.kernel.ids import new_id
from gateway.notifications.relay import Consumer, Relay
from tests.conftest import IN_CI, POSTGRES_URL, empty_sqlite_file

AT = datetime(2026, 1, 1, tzinfo=UTC)
OLD_REORDER_WINDOW = 2_000

needs_postgres = pytest.mark.skipif(not POSTGRES_URL and not IN_CI, reason="needs PostgreSQL (always in CI)")


async def write(db: Database, *names: str) -> None:
    async with db.unit_of_work() as session:
        for name in names:
            await record_event(session, DomainEvent("thing.done", "thing", name, AT, data={"name": name}))


async def commit_filler(db: Database, count: int, *, batch: int = 2_500) -> None:
    """`count` committed events, one multi-row INSERT per transaction of `batch`."""
    for start in range(0, count, batch):
        rows = [
            {
                "event_id": new_id("evt"),
                "type": "customer.updated",
                "aggregate_type": "customer",
                "aggregate_id": f"cus_filler_{i % 50}",
                "tenant_id": f"cus_filler_{i % 50}",
                "occurred_at": AT,
                "data": {},
            }
            for i in range(start, min(count, start + batch))
        ]
        async with db.unit_of_work() as session:
            await session.execute(insert(OutboxEvent), rows)


async def drain(db: Database, tail: OutboxTail) -> list[str]:
    """Read and acknowledge until nothing is unread; the aggregate ids read, in order."""
    names: list[str] = []
    while True:
        async with db.unit_of_work() as session:
            batch = await tail.read(session, OutboxEvent.aggregate_id, limit=5_000)
        tail.acknowledge(batch)
        names += [row.aggregate_id for row in batch.rows]
        if batch.complete and not batch.rows:
            return names


async def started(db: Database, tail: OutboxTail) -> OutboxTail:
    async with db.unit_of_work() as session:
        await tail.start(session)
    return tail


async def test_an_idle_read_on_sqlite_is_one_query(tmp_path: Path) -> None:
    """Nothing committed since the last complete pass: the reader measures the snapshot and stops there,
    every second on every replica. (On PostgreSQL the same holds while no transaction id is handed out
    anywhere in the cluster, which a shared test cluster cannot promise: its contract tests below.)"""
    db = Database(f"sqlite+aiosqlite:///{empty_sqlite_file(tmp_path / 'idle.sqlite3')}")
    try:
        tail = await started(db, OutboxTail("t"))
        await write(db, "one")
        assert await drain(db, tail) == ["one"]
        statements: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
            statements.append(statement)

        event.listen(db.engine.sync_engine, "before_cursor_execute", record)
        async with db.unit_of_work(read_only=True) as session:
            batch = await tail.read(session, OutboxEvent.aggregate_id)
        assert (batch.rows, batch.complete) == ([], True)
        # (BEGIN is a statement too; COMMIT is the driver's.) Before: the snapshot, then the keys.
        assert [s.split()[0].upper() for s in statements if not s.startswith("BEGIN")] == ["SELECT"]
        await write(db, "two")
        assert await drain(db, tail) == ["two"]
    finally:
        await db.dispose()


# -- the contract, on SQLite and PostgreSQL ---------------------------------------------------------


async def test_tail_reads_each_committed_event_once_in_seq_order(db: Database) -> None:
    await write(db, "before.1", "before.2")
    tail = await started(db, OutboxTail("t"))
    assert tail.top == 2
    assert await drain(db, tail) == [], "what committed before start counts as read"
    await write(db, "a", "b")
    await write(db, "c")
    async with db.unit_of_work() as session:
        batch = await tail.read(session, OutboxEvent.aggregate_id)
    assert [row.aggregate_id for row in batch.rows] == ["a", "b", "c"]
    assert batch.seqs == [3, 4, 5]
    # Not acknowledged (the caller failed to apply them): the same events again.
    async with db.unit_of_work() as session:
        again = await tail.read(session, OutboxEvent.aggregate_id)
    assert again.seqs == [3, 4, 5]
    tail.acknowledge(again)
    assert (tail.top, await drain(db, tail)) == (5, [])


async def test_tail_limit_and_filter(db: Database) -> None:
    tail = await started(db, OutboxTail("t", where=(OutboxEvent.aggregate_id.like("keep%"),)))
    await write(db, "keep.1", "skip.1", "keep.2", "keep.3", "skip.2", "keep.4")
    async with db.unit_of_work() as session:
        first = await tail.read(session, OutboxEvent.aggregate_id, limit=3)
    assert ([r.aggregate_id for r in first.rows], first.complete) == (["keep.1", "keep.2", "keep.3"], False)
    tail.acknowledge(first)
    assert await drain(db, tail) == ["keep.4"]


async def test_rolled_back_events_are_never_read(db: Database) -> None:
    tail = await started(db, OutboxTail("t"))
    with pytest.raises(RuntimeError):
        async with db.unit_of_work() as session:
            await record_event(session, DomainEvent("thing.done", "thing", "ghost", AT, data={}))
            await session.flush()
            raise RuntimeError("rolled back")
    await write(db, "real")
    assert await drain(db, tail) == ["real"]


# -- PostgreSQL: a transaction overtaken by far more than the old window -------------------------------


@pytest.fixture
def pg(postgres_db: Database) -> Database:
    return postgres_db


class Handled:
    def __init__(self) -> None:
        self.names: list[str] = []

    async def __call__(self, session: AsyncSession, event: OutboxEvent) -> None:
        self.names.append(event.aggregate_id)


@needs_postgres
async def test_a_transaction_overtaken_by_22500_commits_is_read_once_it_commits(
    pg: Database, clock: FrozenClock
) -> None:
    tail = await started(pg, OutboxTail("t", where=(OutboxEvent.type == "thing.done",)))
    handled = Handled()
    relay = Relay(pg, clock, [Consumer("c", handled, lambda t: t == "thing.done")])
    await write(pg, "first")
    async with pg.sessionmaker() as held, held.begin():
        await record_event(held, DomainEvent("thing.done", "thing", "late", AT, data={}))
        await held.flush()  # the row has its seq now: 2, below everything that follows
        for overtaking in (OLD_REORDER_WINDOW + 500, 20_000):
            await commit_filler(pg, overtaking)
            await write(pg, f"after {overtaking}")
            assert await drain(pg, tail) == ([] if overtaking == 20_000 else ["first"]) + [
                f"after {overtaking}"
            ]
            # The reader's last pass looked only at transactions that ended since the pass before it:
            # none. (A horizon-bounded read would look at every key committed since `held` began.)
            assert tail.keys_read == 0
            await relay.run_once()
        assert handled.names == ["first", "after 2500", "after 20000"]
    # Committed now, 22,502 seqs below the newest: the reader and the relay both get it, once.
    assert await drain(pg, tail) == ["late"]
    assert await drain(pg, tail) == []
    await relay.run_once()
    await relay.run_once()
    assert handled.names == ["first", "after 2500", "after 20000", "late"]


@needs_postgres
async def test_a_horizon_held_back_is_logged(pg: Database, caplog: pytest.LogCaptureFixture) -> None:
    watch = HorizonWatch("test-reader", warn_after_seconds=0.2)
    tail = await started(pg, OutboxTail("t", watch=watch))
    async with pg.sessionmaker() as held, held.begin():
        await record_event(held, DomainEvent("thing.done", "thing", "held", AT, data={}))
        await held.flush()
        await write(pg, "meanwhile")
        with caplog.at_level(logging.WARNING, logger="tiergate.stream"):
            assert await drain(pg, tail) == ["meanwhile"], "delivery is not held back"
            # (the horizon is cluster-wide: give older transactions elsewhere time to end first)
            for _ in range(40):
                await asyncio.sleep(0.1)
                assert await drain(pg, tail) == []
                if watch.warnings:
                    break
    assert watch.warnings == 1
    [record] = [r for r in caplog.records if r.name == "tiergate.stream"]
    assert "test-reader: the outbox horizon has been held" in record.getMessage()
    assert await drain(pg, tail) == ["held"]


# -- many concurrent writers, on SQLite and PostgreSQL ---------------------------------------------


async def writer(
    db: Database, rng: random.Random, name: str, committed: set[str], rolled_back: set[str]
) -> None:
    for txn in range(12):
        names = [f"{name}-{txn}-{i}" for i in range(rng.randint(1, 4))]
        commit = rng.random() < 0.75
        try:
            async with db.unit_of_work() as session:
                for event_name in names:
                    await record_event(session, DomainEvent("thing.done", "thing", event_name, AT, data={}))
                    await session.flush()
                    await asyncio.sleep(rng.uniform(0, 0.03))  # transactions of random length
                if not commit:
                    raise RuntimeError("roll back")
        except RuntimeError:
            rolled_back.update(names)
            continue
        committed.update(names)


@pytest.mark.parametrize("seed", [1, 2])
async def test_concurrent_writers_each_committed_event_is_seen_exactly_once(
    db: Database, clock: FrozenClock, seed: int
) -> None:
    rng = random.Random(seed)
    tail = await started(db, OutboxTail("t"))
    handled = Handled()
    relay = Relay(db, clock, [Consumer("c", handled)])
    committed: set[str] = set()
    rolled_back: set[str] = set()
    seen: list[str] = []
    writers_done = asyncio.Event()

    async def reader() -> None:
        while not writers_done.is_set():
            seen.extend(await drain(db, tail))
            await relay.run_once()
            await asyncio.sleep(rng.uniform(0, 0.01))

    writers_count = 8 if db.dialect == "postgresql" else 3
    reading = asyncio.create_task(reader())
    await asyncio.gather(
        *(
            writer(db, random.Random(rng.random()), f"w{i}", committed, rolled_back)
            for i in range(writers_count)
        )
    )
    writers_done.set()
    await reading
    seen.extend(await drain(db, tail))
    await relay.run_once()

    assert rolled_back and committed
    assert sorted(seen) == sorted(committed), "every committed event, none twice, no rolled-back one"
    assert len(seen) == len(set(seen))
    assert sorted(handled.names) == sorted(committed)
    assert not set(seen) & rolled_back
