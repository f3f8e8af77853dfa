"""The outbox relay: hands every committed outbox event, in `seq` order, to in-process consumers.

Each consumer has a watermark (`outbox_consumers.last_seq`) and a receipt per event it handled
(`outbox_receipts`), written in the same transaction as the handler's own writes. So:

* a restart resumes after the watermark (nothing is handled twice that committed its receipt);
* a handler that raises rolls back with its receipt, and the event is offered again next pass
  (at least once); the consumer stops at that event, so events after it wait (order is kept);
* events come from the shared change stream (`gateway.db.stream`), which cannot skip a committed event:
  on PostgreSQL a transaction may commit long after ones with higher seqs, so each consumer reads every
  visible event at or above its *safe horizon* (`outbox_consumers.horizon`) that has no receipt yet, in
  `seq` order; the horizon moves up as the transactions below it end, and receipts below it are pruned.
  The watermark (`last_seq`) is the highest seq handled, for reporting only.
* events a consumer does not want get their receipt without a savepoint (one insert per batch).

Handlers must still be idempotent by event id: a handler with effects outside this database (ending
sessions in Redis) may run again after a crash between its effect and the commit.
Concurrent relays (several replicas) serialise per consumer on the `outbox_consumers` row lock.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, ColumnElement, Integer, String, delete, exists, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base
from gateway.db.outbox import OutboxEvent, set_actor
from gateway.db.session import Database
from gateway.db.stream import (
    DEFAULT_WARN_AFTER_SECONDS,
    HorizonWatch,
    horizon_watch,
    safe_horizon,
    settle,
    stream_key,
    unsettled,
)
from gateway.kernel.clock import Clock

log = logging.getLogger("tiergate.relay")

BATCH = 200

Handler = Callable[[AsyncSession, OutboxEvent], Awaitable[None]]


class OutboxConsumer(Base):
    __tablename__ = "outbox_consumers"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    # The consumer's safe horizon (gateway.db.stream): every committed event whose stream key is below it
    # has been handled; receipts say which ones at or above it have.
    horizon: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), default=0, server_default="0"
    )
    # When the consumer last took an event (handled it or passed over it); an idle pass writes nothing.
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
    def __init__(
        self,
        db: Database,
        clock: Clock,
        consumers: Sequence[Consumer],
        *,
        watch: HorizonWatch | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.consumers = list(consumers)
        self.watch = watch or horizon_watch("relay", DEFAULT_WARN_AFTER_SECONDS)

    async def run_once(self) -> int:
        """Hand every pending event to every consumer; returns how many (consumer, event) pairs were
        handled. Consumers take turns one batch at a time, each of them in every round while any has a
        backlog, so a backlog does not delay the others: an event that commits during the pass reaches
        each consumer within a round."""
        if await self._idle():
            return 0
        total = 0
        while True:
            more = False
            for consumer in self.consumers:
                try:
                    done, has_more = await self._batch(consumer)
                except (IntegrityError, DBAPIError):
                    # Another relay raced us for the same events (receipt already there) or the database
                    # is busy: nothing was committed by this batch, the next pass retries.
                    log.info("relay pass for %s lost a race; retrying later", consumer.name, exc_info=True)
                    continue
                total += done
                more = more or has_more
            if not more:
                return total

    async def _idle(self) -> bool:
        """Whether no consumer can have anything to do: each has its row and no committed event is visible
        at or above the lowest horizon among them (so none is pending for any of them, whatever their
        receipts say). One read that takes no lock, instead of a locked write transaction per consumer:
        the relay is idle on most passes, and on SQLite each of those transactions took the write lock and
        wrote, once a second per consumer, on the event loop of the process serving checks. A pass that
        finds anything does the full work below, as before; skipping the bookkeeping of an idle pass
        (settling a horizon that has nothing above it) loses nothing."""
        names = [consumer.name for consumer in self.consumers]
        if not names:
            return True
        async with self.db.unit_of_work(read_only=True) as session:
            horizons = (
                await session.scalars(select(OutboxConsumer.horizon).where(OutboxConsumer.name.in_(names)))
            ).all()
            if len(horizons) < len(set(names)):
                return False  # a consumer not seen yet: the full pass creates its row
            key = stream_key(session)
            waiting = await session.scalar(select(exists().where(key >= min(horizons))))
        return not waiting

    async def _batch(self, consumer: Consumer) -> tuple[int, bool]:
        """Handle up to BATCH pending events in one transaction, each in its own savepoint. A handler
        that raises rolls back its own event only; the events before it commit, the ones after wait."""
        async with self.db.unit_of_work() as session:
            state = await self._lock(session, consumer.name)
            if state is None:
                return 0, False  # another relay holds this consumer right now
            measured = await safe_horizon(session)  # before reading: see gateway.db.stream
            events = await self._pending(session, consumer.name, state.horizon)
            done, failed, skipped = 0, False, []
            for event in events:
                if not consumer.wants(event.type):
                    skipped.append(event.seq)
                    continue
                try:
                    async with session.begin_nested():
                        # What a consumer does because of an event, it does for whoever caused the event
                        # (a tenant revoked because a key canceled its subscription was revoked by that key).
                        set_actor(session, event.actor or f"system:relay:{consumer.name}")
                        await consumer.handle(session, event)
                        session.add(OutboxReceipt(consumer=consumer.name, seq=event.seq))
                        await session.flush()
                except Exception:
                    log.exception(
                        "consumer %s failed on event seq=%s (%s)", consumer.name, event.seq, event.type
                    )
                    failed = True
                    break
                done += 1
                state.last_seq = max(state.last_seq, event.seq)
            if skipped:
                # Events this consumer does not want need no savepoint: their receipts, in one insert.
                await session.execute(
                    insert(OutboxReceipt), [{"consumer": consumer.name, "seq": seq} for seq in skipped]
                )
                done += len(skipped)
                state.last_seq = max(state.last_seq, *skipped)
            if done:
                state.updated_at = self.clock.now()  # when the consumer last took an event
            await self._settle(session, consumer.name, state, measured)
            return done, not failed and len(events) == BATCH

    async def _settle(self, session: AsyncSession, name: str, state: OutboxConsumer, measured: int) -> None:
        """Move the consumer's horizon up to where every committed event below it has a receipt, and
        forget those receipts (no query looks below the horizon again)."""
        horizon = await settle(session, state.horizon, measured, ~self._receipt(name))
        if horizon > state.horizon:
            key = stream_key(session)
            below = select(OutboxEvent.seq).where(key >= state.horizon, key < horizon)
            await session.execute(
                delete(OutboxReceipt).where(OutboxReceipt.consumer == name, OutboxReceipt.seq.in_(below))
            )
            state.horizon = horizon
        await session.flush()
        await self.watch.observe(session, measured)

    @staticmethod
    def _receipt(name: str) -> ColumnElement[bool]:
        return exists().where(OutboxReceipt.consumer == name, OutboxReceipt.seq == OutboxEvent.seq)

    async def _lock(self, session: AsyncSession, name: str) -> OutboxConsumer | None:
        query = select(OutboxConsumer).where(OutboxConsumer.name == name).with_for_update(skip_locked=True)
        state = (await session.scalars(query)).first()
        if state is not None:
            return state
        exists_q = select(OutboxConsumer.name).where(OutboxConsumer.name == name)
        if await session.scalar(exists_q) is not None:
            return None  # it exists, and is locked by someone else
        state = OutboxConsumer(name=name, last_seq=0, horizon=0, updated_at=self.clock.now())
        session.add(state)
        await session.flush()
        return state

    async def _pending(self, session: AsyncSession, name: str, horizon: int) -> list[OutboxEvent]:
        """The oldest BATCH events at or above the consumer's horizon that it has not handled."""
        query = (
            select(OutboxEvent)
            .where(unsettled(session, horizon), ~self._receipt(name))
            .order_by(OutboxEvent.seq)
            .limit(BATCH)
        )
        return list((await session.scalars(query)).all())


async def watermark(db: Database, name: str) -> int:
    async with db.unit_of_work() as session:
        value = await session.scalar(select(OutboxConsumer.last_seq).where(OutboxConsumer.name == name))
    return int(value or 0)
