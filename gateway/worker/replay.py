"""Replaying outbox events to one relay consumer (`tiergate replay-events`).

The relay remembers, per consumer, a safe horizon and a receipt per event handled above it
(gateway/notifications/relay.py, gateway/db/stream.py). Rewinding = lowering the horizon to the stream key
of the first event to replay and dropping that consumer's receipts from there on: the next relay pass
reads those events again, in `seq` order, exactly as if they had just committed. Handlers are idempotent
by event id, so what was applied stays applied once. (On PostgreSQL a few earlier events that committed
late, above the new horizon with their receipts pruned, may be handed over again too; same rule.)
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.outbox import OutboxEvent
from gateway.db.stream import stream_key
from gateway.kernel.errors import ValidationFailed
from gateway.notifications.relay import OutboxConsumer, OutboxReceipt

# The relay's consumers (gateway/provisioning/jobs.py `consumers`).
CONSUMERS = ("provisioning", "metrics", "audit", "webhooks")


async def rewind_consumer(session: AsyncSession, consumer: str, from_seq: int, *, apply: bool) -> int:
    """The number of events at or after `from_seq`; with `apply`, rewind `consumer` to hand them over
    again. Locks the consumer's row (a relay pass in flight finishes first)."""
    row = await session.get(OutboxConsumer, consumer, with_for_update=True)
    known = {*CONSUMERS, *(await session.execute(select(OutboxConsumer.name))).scalars().all()}
    if consumer not in known:
        raise ValidationFailed(f"no relay consumer {consumer!r} (known: {', '.join(sorted(known))})")
    key = stream_key(session)
    count = int(await session.scalar(select(func.count()).where(OutboxEvent.seq >= from_seq)) or 0)
    if row is None or not apply or not count:
        # A consumer that never ran has read nothing: its first pass reads every event anyway.
        return count
    first_key = await session.scalar(select(func.min(key)).where(OutboxEvent.seq >= from_seq))
    await session.execute(
        delete(OutboxReceipt).where(OutboxReceipt.consumer == consumer, OutboxReceipt.seq >= from_seq)
    )
    # Receipts of events below from_seq that sit above the new horizon stay: those are not replayed.
    row.horizon = min(row.horizon, int(first_key or row.horizon))
    row.last_seq = min(row.last_seq, from_seq - 1)
    return count
