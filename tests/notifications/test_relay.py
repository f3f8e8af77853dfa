"""The outbox relay: seq order, per-consumer watermarks that survive a restart, at-least-once retries of
a failing handler without skipping ahead, and the job function. (Late commits: tests/db/test_stream.py.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.outbox import OutboxEvent, record_event
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.kernel.events import DomainEvent
from gateway.notifications.relay import Consumer, OutboxConsumer, Relay, watermark
from gateway.provisioning.jobs import relay_once

AT = datetime(2026, 1, 1, tzinfo=UTC)


async def write(db: Database, *types: str) -> None:
    async with db.unit_of_work() as session:
        for type_ in types:
            await record_event(session, DomainEvent(type_, "thing", "t1", AT, data={"n": type_}))


class Recorder:
    def __init__(self, fail_on: str | None = None, fail_times: int = 0) -> None:
        self.seen: list[str] = []
        self.fail_on = fail_on
        self.fail_times = fail_times

    async def __call__(self, session: AsyncSession, event: OutboxEvent) -> None:
        if event.type == self.fail_on and self.fail_times > 0:
            self.fail_times -= 1
            raise RuntimeError("handler down")
        self.seen.append(event.type)


async def test_order_watermark_and_restart(db: Database, clock: FrozenClock) -> None:
    await write(db, "a.1", "a.2", "a.3")
    first = Recorder()
    assert await Relay(db, clock, [Consumer("c", first)]).run_once() == 3
    assert first.seen == ["a.1", "a.2", "a.3"]
    assert await watermark(db, "c") == 3
    await write(db, "a.4")
    # A new relay (a restart) resumes after the watermark: only the new event.
    again = Recorder()
    assert await Relay(db, clock, [Consumer("c", again)]).run_once() == 1
    assert again.seen == ["a.4"]
    # Consumers are independent: a new consumer starts from the beginning.
    other = Recorder()
    await Relay(db, clock, [Consumer("other", other)]).run_once()
    assert other.seen == ["a.1", "a.2", "a.3", "a.4"]


async def test_failing_handler_is_retried_and_later_events_wait(db: Database, clock: FrozenClock) -> None:
    await write(db, "b.1", "b.2", "b.3")
    flaky = Recorder(fail_on="b.2", fail_times=2)
    relay = Relay(db, clock, [Consumer("c", flaky)])
    assert await relay.run_once() == 1  # b.1 handled, b.2 failed, b.3 waits behind it
    assert (flaky.seen, await watermark(db, "c")) == (["b.1"], 1)
    assert await relay.run_once() == 0
    assert await relay.run_once() == 2
    assert flaky.seen == ["b.1", "b.2", "b.3"]
    assert await watermark(db, "c") == 3


async def test_filtered_events_are_passed_over_once(db: Database, clock: FrozenClock) -> None:
    await write(db, "x.1", "keep.1")
    kept = Recorder()
    relay = Relay(db, clock, [Consumer("c", kept, lambda t: t.startswith("keep."))])
    assert await relay.run_once() == 2
    assert kept.seen == ["keep.1"]
    assert await relay.run_once() == 0
    await write(db, "x.2", "keep.2")
    assert await relay.run_once() == 2
    assert kept.seen == ["keep.1", "keep.2"]
    assert await watermark(db, "c") == 4
    # Late commits (a transaction overtaken by later ones) are proven in tests/db/test_stream.py.


async def test_relay_once_job_runs_the_default_consumers(db: Database, clock: FrozenClock) -> None:
    await write(db, "policy.published")
    # provisioning, metrics, audit, webhooks, payments, dunning and email each saw the event
    assert await relay_once(db, clock) == 7
    assert await relay_once(db, clock) == 0
    for name in ("provisioning", "metrics", "audit", "webhooks", "payments", "dunning", "email"):
        assert await watermark(db, name) == 1


async def test_an_idle_pass_writes_nothing_and_waits_for_no_writer(db: Database, clock: FrozenClock) -> None:
    """The relay is idle on most passes: such a pass is one read. It neither writes (the consumers' rows
    stay as the last pass that handled something left them) nor waits for a writer: with a write
    transaction open, holding SQLite's one write lock and, on PostgreSQL, the consumer's row, it answers
    at once. (Before, each consumer's pass began by taking the write lock: 30 s of busy timeout here.)"""
    await write(db, "d.1")
    seen = Recorder()
    relay = Relay(db, clock, [Consumer("c", seen), Consumer("other", Recorder(), lambda _t: False)])
    assert await relay.run_once() == 2
    # On PostgreSQL a horizon is the cluster's oldest running transaction when the pass settled: one of
    # a parallel test (another database, the same xids) can hold it below d.1's for a moment, and the
    # pass after that still has d.1 above a horizon to settle. Passes until the relay is idle.
    for _ in range(200):
        if await relay._idle():
            break
        await relay.run_once()
        await asyncio.sleep(0.05)
    async with db.unit_of_work() as session:
        before = (await session.execute(select(OutboxConsumer).order_by(OutboxConsumer.name))).scalars().all()
        settled = [(c.name, c.last_seq, c.horizon, c.updated_at) for c in before]
    clock.advance(timedelta(seconds=30))
    async with db.unit_of_work() as writer:
        locked = select(OutboxConsumer).where(OutboxConsumer.name == "c").with_for_update()
        await writer.execute(locked)
        assert await asyncio.wait_for(relay.run_once(), timeout=5) == 0
    async with db.unit_of_work() as session:
        after = (await session.execute(select(OutboxConsumer).order_by(OutboxConsumer.name))).scalars().all()
        assert [(c.name, c.last_seq, c.horizon, c.updated_at) for c in after] == settled
    # The next committed event is handled by the next pass, as ever.
    await write(db, "d.2")
    assert await relay.run_once() == 2
    assert seen.seen == ["d.1", "d.2"]
    assert await watermark(db, "c") == 2
