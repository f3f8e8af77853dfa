"""The outbox relay: hands every committed outbox event, in `seq` order, to in-process consumers.

Each consumer has a watermark (`outbox_consumers.last_seq`) and a receipt per event it handled
(`outbox_receipts`), written in the same transaction as the handler's own writes. So:

* a restart resumes after the watermark (nothing is handled twice that committed its receipt);
* a handler that raises rolls back with its receipt, and the event is offered again next pass
  (at least once); the consumer stops at that event, so events after it wait (order is kept);
* like the decision engine, each pass re-reads `REORDER_WINDOW` seqs below the watermark: on PostgreSQL
  a transaction may commit after one with a higher `seq`, and the receipts (not the watermark) say
  whether such a late event was handled.

Handlers must still be idempotent by event id: a handler with effects outside this database (ending
sessions in Redis) may run again after a crash between its effect and the commit.
Concurrent relays (several replicas) serialise per consumer on the `outbox_consumers` row lock.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, delete, exists, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base
from gateway.db.outbox import OutboxEvent, set_actor
from gateway.db.session import Database
from gateway.kernel.clock import Clock

log = logging.getLogger("tiergate.relay")

REORDER_WINDOW = 2_000
BATCH = 200

Handler = Callable[[AsyncSession, OutboxEvent], Awaitable[None]]


class OutboxConsumer(Base):
    __tablename__ = "outbox_consumers"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    updated_at: Mapped[datetime | None]


class OutboxReceipt(Base):
    """Consumer `consumer` has handled the event at `seq` (committed with the handler's writes)."""

    __tablename__ = "outbox_receipts"

    consumer: Mapped[str] = mapped_column(String(60), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)


@dataclass(frozen=True, slots=True)
class Consumer:
    """`wants(type)` filters cheaply before the handler runs; skipped events still get a receipt."""

    name: str
    handle: Handler
    wants: Callable[[str], bool] = lambda _type: True


class Relay:
    def __init__(self, db: Database, clock: Clock, consumers: Sequence[Consumer]) -> None:
        self.db = db
        self.clock = clock
        self.consumers = list(consumers)

    async def run_once(self) -> int:
        """One pass over every consumer; returns how many (consumer, event) pairs were handled."""
        total = 0
        for consumer in self.consumers:
            try:
                total += await self._drain(consumer)
            except (IntegrityError, DBAPIError):
                # Another relay raced us for the same events (receipt already there) or the database
                # is busy: nothing was committed by this pass, the next one retries.
                log.info("relay pass for %s lost a race; retrying later", consumer.name, exc_info=True)
        return total

    async def _drain(self, consumer: Consumer) -> int:
        handled = 0
        while True:
            done, more = await self._batch(consumer)
            handled += done
            if not more:
                return handled

    async def _batch(self, consumer: Consumer) -> tuple[int, bool]:
        """Handle up to BATCH pending events in one transaction, each in its own savepoint. A handler
        that raises rolls back its own event only; the events before it commit, the ones after wait."""
        async with self.db.unit_of_work() as session:
            state = await self._lock(session, consumer.name)
            if state is None:
                return 0, False  # another relay holds this consumer right now
            events = await self._pending(session, consumer.name, state.last_seq)
            done = 0
            for event in events:
                try:
                    async with session.begin_nested():
                        await self._handle_one(session, consumer, event, state)
                except Exception:
                    log.exception(
                        "consumer %s failed on event seq=%s (%s)", consumer.name, event.seq, event.type
                    )
                    return done, False
                done += 1
            return done, len(events) == BATCH

    async def _handle_one(
        self, session: AsyncSession, consumer: Consumer, event: OutboxEvent, state: OutboxConsumer
    ) -> None:
        if consumer.wants(event.type):
            # What a consumer does because of an event, it does for whoever caused the event (a tenant
            # revoked because a key canceled its subscription was revoked by that key).
            set_actor(session, event.actor or f"system:relay:{consumer.name}")
            await consumer.handle(session, event)
        session.add(OutboxReceipt(consumer=consumer.name, seq=event.seq))
        if event.seq > state.last_seq:
            state.last_seq = event.seq
        state.updated_at = self.clock.now()
        await session.flush()

    async def _lock(self, session: AsyncSession, name: str) -> OutboxConsumer | None:
        query = select(OutboxConsumer).where(OutboxConsumer.name == name).with_for_update(skip_locked=True)
        state = (await session.scalars(query)).first()
        if state is not None:
            return state
        exists_q = select(OutboxConsumer.name).where(OutboxConsumer.name == name)
        if await session.scalar(exists_q) is not None:
            return None  # it exists, and is locked by someone else
        state = OutboxConsumer(name=name, last_seq=0, updated_at=self.clock.now())
        session.add(state)
        await session.flush()
        return state

    async def _pending(self, session: AsyncSession, name: str, last_seq: int) -> list[OutboxEvent]:
        low = max(0, last_seq - REORDER_WINDOW)
        receipt = exists().where(OutboxReceipt.consumer == name, OutboxReceipt.seq == OutboxEvent.seq)
        query = (
            select(OutboxEvent).where(OutboxEvent.seq > low, ~receipt).order_by(OutboxEvent.seq).limit(BATCH)
        )
        events = list((await session.scalars(query)).all())
        # Receipts below the window can never be asked about again.
        await session.execute(
            delete(OutboxReceipt).where(OutboxReceipt.consumer == name, OutboxReceipt.seq <= low)
        )
        return events


async def watermark(db: Database, name: str) -> int:
    async with db.unit_of_work() as session:
        value = await session.scalar(select(OutboxConsumer.last_seq).where(OutboxConsumer.name == name))
    return int(value or 0)
