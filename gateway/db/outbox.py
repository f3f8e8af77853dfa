"""The transactional outbox: every state change writes its domain event in the same transaction.

The relay (later: worker) reads rows in `seq` order and delivers them at least once; consumers dedupe by
`event_id`. `seq` is a database-assigned increasing number, so per-aggregate order is the insert order.
Readers never query this table by `seq` ranges themselves: `gateway.db.stream` is the one reader that
knows when an event can no longer appear below what was already read (`xid`, below).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, FetchedValue, Index, Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base
from gateway.db.bulk import buffer_row
from gateway.kernel.events import DomainEvent
from gateway.kernel.ids import new_id


class OutboxEvent(Base):
    __tablename__ = "outbox"

    # BigInteger on PostgreSQL, plain INTEGER on SQLite (only INTEGER PRIMARY KEY autoincrements there).
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(80))
    aggregate_type: Mapped[str] = mapped_column(String(40))
    aggregate_id: Mapped[str] = mapped_column(String(40))
    tenant_id: Mapped[str | None] = mapped_column(String(40), index=True)
    occurred_at: Mapped[datetime]
    data: Mapped[dict[str, Any]]
    # Who caused the change (see `actor_of`): the audit log names it; webhooks do not carry it.
    actor: Mapped[str | None] = mapped_column(String(80))
    delivered_at: Mapped[datetime | None]
    # PostgreSQL: the id of the transaction that wrote the row (`pg_current_xact_id()`, the column's server
    # default, set by the migration), which tells the change stream when the row can no longer be
    # outrun by a late commit (see gateway.db.stream). SQLite (one writer at a time) leaves it NULL.
    # Never set by the application: `FetchedValue` keeps every insert (ORM or bulk) from sending a NULL.
    xid: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), server_default=FetchedValue()
    )

    __table_args__ = (
        Index("ix_outbox_undelivered", "delivered_at", "seq"),
        Index("ix_outbox_xid_seq", "xid", "seq"),
    )


SYSTEM = "system"
_ACTOR = "actor"


def set_actor(session: AsyncSession, actor: str) -> None:
    """Say who this unit of work acts for. The one way an actor travels: the HTTP edge sets it from the
    authenticated caller (`key:<api key id>`, `scim:<SCIM token id>`, `user:<user id>`), a job from its
    name (`system:<job>`), the relay from the event it is handling; every outbox event the unit of work
    records carries it (`OutboxEvent.actor`), and so does every audit entry written or derived from it."""
    session.info[_ACTOR] = actor[:80]


def actor_of(session: AsyncSession) -> str:
    return str(session.info.get(_ACTOR) or SYSTEM)


async def record_event(session: AsyncSession, event: DomainEvent) -> OutboxEvent | None:
    # Inside a batch job (gateway.db.bulk) the event is a plain row in the batch's one INSERT.
    row_values = {
        "event_id": new_id("evt"),
        "type": event.type,
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "tenant_id": event.tenant_id,
        "occurred_at": event.occurred_at,
        "data": event.data,
        "actor": actor_of(session),
    }
    if buffer_row(session, OutboxEvent.__table__, row_values):
        return None
    row = OutboxEvent(**row_values)
    session.add(row)
    return row


async def record_change(
    session: AsyncSession,
    type_: str,
    aggregate_type: str,
    aggregate_id: str,
    at: datetime,
    *,
    tenant_id: str | None,
    **data: Any,
) -> None:
    """An event for a change to configuration or credentials (an API key created, a webhook endpoint
    deleted…): the audit log records it, for whoever the unit of work acts for; webhooks do not send it."""
    event = DomainEvent(type_, aggregate_type, aggregate_id, at, data=dict(data), tenant_id=tenant_id)
    await record_event(session, event)


async def list_events(
    session: AsyncSession,
    *,
    tenant_id: str | None,
    aggregate_id: str | None = None,
    type_prefix: str | None = None,
    after_seq: int = 0,
    limit: int = 50,
) -> list[OutboxEvent]:
    query = select(OutboxEvent).where(OutboxEvent.seq > after_seq).order_by(OutboxEvent.seq).limit(limit)
    if tenant_id is not None:
        query = query.where(OutboxEvent.tenant_id == tenant_id)
    if aggregate_id is not None:
        query = query.where(OutboxEvent.aggregate_id == aggregate_id)
    if type_prefix:
        query = query.where(OutboxEvent.type.startswith(type_prefix, autoescape=True))
    return list((await session.scalars(query)).all())
