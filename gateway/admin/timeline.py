"""A customer's timeline for the console: everything that happened to the customer, newest first, read
from the event log (the outbox). Every state change of the customer's subscriptions, invoices, payments,
dunning, e-mails and members' sign-ins is an outbox event carrying the customer (`tenant_id`), so the
log is the one source; the audit log is derived from the same events and would only repeat them.

Order is the events' domain time (`occurred_at`: a test clock's time for a customer on one), then the
insert order for events at one instant. The cursor is that pair, so paging is stable while events are
being added at the top.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.outbox import OutboxEvent
from gateway.kernel.clock import ensure_utc, format_timestamp
from gateway.kernel.errors import ValidationFailed
from gateway.kernel.pagination import encode_cursor
from gateway.web.timestamps import parse_timestamp

# What the console groups an event under, by its type's first word (the rest is "other").
CATEGORIES: dict[str, str] = {
    "customer": "customer",
    "subscription": "subscription",
    "invoice": "invoice",
    "invoice_item": "invoice",
    "credit_note": "invoice",
    "credit_grant": "credit",
    "payment": "payment",
    "payment_method": "payment",
    "dunning": "dunning",
    "email": "email",
    "notification": "email",
    "member": "member",
    "invite": "member",
    "user": "member",  # erasure, exports, revoked tokens; `user.signed_in` is a sign-in
}


def category_of(event_type: str) -> str:
    if event_type.startswith("subscription.trial"):
        return "trial"
    if event_type == "user.signed_in":
        return "sign_in"
    return CATEGORIES.get(event_type.split(".", 1)[0], "other")


@dataclass(frozen=True, slots=True)
class TimelinePage:
    entries: list[dict[str, Any]]
    next_cursor: str | None


def _cursor(row: OutboxEvent) -> str:
    return encode_cursor(f"{format_timestamp(ensure_utc(row.occurred_at))}|{row.seq}")


def _position(after: str) -> tuple[datetime, int]:
    """The (domain time, seq) a decoded cursor names."""
    at, _, seq = after.partition("|")
    instant = parse_timestamp(at, "starting_after")
    if instant is None or not seq.isdigit():
        raise ValidationFailed("malformed pagination cursor", field="starting_after")
    return instant, int(seq)


def entry_of(row: OutboxEvent) -> dict[str, Any]:
    return {
        "id": row.event_id,
        "object": "timeline_entry",
        "type": row.type,
        "category": category_of(row.type),
        "at": format_timestamp(ensure_utc(row.occurred_at)),
        "actor": row.actor,
        "subject": {"type": row.aggregate_type, "id": row.aggregate_id},
        "data": row.data,
    }


async def timeline(
    session: AsyncSession,
    customer_id: str,
    *,
    limit: int,
    after: str | None = None,
    category: str | None = None,
) -> TimelinePage:
    """One page of `customer_id`'s timeline, newest first (`after`: the decoded cursor of the last page)."""
    query = select(OutboxEvent).where(OutboxEvent.tenant_id == customer_id)
    if after:
        at, seq = _position(after)
        query = query.where(
            or_(OutboxEvent.occurred_at < at, and_(OutboxEvent.occurred_at == at, OutboxEvent.seq < seq))
        )
    if category is not None:
        query = query.where(category_filter(category))
    query = query.order_by(OutboxEvent.occurred_at.desc(), OutboxEvent.seq.desc()).limit(limit + 1)
    rows = list((await session.scalars(query)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return TimelinePage([entry_of(r) for r in rows], _cursor(rows[-1]) if more and rows else None)


def category_filter(category: str) -> ColumnElement[bool]:
    """The SQL condition for one category, exactly as `category_of` names events."""
    kind = OutboxEvent.type
    if category == "trial":
        return kind.like("subscription.trial%")
    if category == "sign_in":
        return kind == "user.signed_in"
    heads = [head for head, name in CATEGORIES.items() if name == category]
    if not heads:
        raise ValidationFailed(f"unknown category {category!r}", field="category")
    matches = or_(*[kind.like(f"{head}.%") for head in heads])
    if category == "subscription":
        return and_(matches, ~kind.like("subscription.trial%"))
    if category == "member":
        return and_(matches, kind != "user.signed_in")
    return matches
