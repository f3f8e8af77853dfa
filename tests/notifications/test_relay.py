"""The outbox relay: seq order, per-consumer watermarks that survive a restart, at-least-once retries of
a failing handler without skipping ahead, and the job function. (Late commits: tests/db/test_stream.py.)"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.outbox import OutboxEvent, record_event
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.kernel.events import DomainEvent
from gateway.notifications.relay import Consumer, Relay, watermark
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
