"""All SQL of the notifications domain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from gateway.db.outbox import OutboxEvent
from gateway.notifications.models import WebhookDelivery, WebhookEndpoint


class WebhookRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: WebhookEndpoint | WebhookDelivery) -> None:
        self.session.add(row)

    async def flush(self) -> None:
        await self.session.flush()

    async def endpoint(self, endpoint_id: str, *, scope: str | None) -> WebhookEndpoint | None:
        row = await self.session.get(WebhookEndpoint, endpoint_id)
        if row is None or (scope is not None and row.tenant_id != scope):
            return None
        return row

    async def endpoints(
        self, *, scope: str | None, after: str | None, limit: int
    ) -> Sequence[WebhookEndpoint]:
        query = select(WebhookEndpoint).order_by(WebhookEndpoint.id).limit(limit + 1)
        if scope is not None:
            query = query.where(WebhookEndpoint.tenant_id == scope)
        if after is not None:
            query = query.where(WebhookEndpoint.id > after)
        return (await self.session.scalars(query)).all()

    async def all_endpoints(self) -> Sequence[WebhookEndpoint]:
        return (await self.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))).all()

    async def endpoints_for(self, tenant_id: str | None) -> Sequence[WebhookEndpoint]:
        """Enabled endpoints that receive this tenant's events (platform endpoints receive all)."""
        query = select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))
        if tenant_id is None:
            query = query.where(WebhookEndpoint.tenant_id.is_(None))
        else:
            query = query.where(
                or_(WebhookEndpoint.tenant_id.is_(None), WebhookEndpoint.tenant_id == tenant_id)
            )
        return (await self.session.scalars(query.order_by(WebhookEndpoint.id))).all()

    async def delivery_exists(self, endpoint_id: str, event_id: str) -> bool:
        query = select(WebhookDelivery.id).where(
            WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.event_id == event_id
        )
        return await self.session.scalar(query) is not None

    async def deliveries(
        self, endpoint_id: str, *, after: str | None, limit: int, status: str | None
    ) -> Sequence[WebhookDelivery]:
        query = (
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.id)
            .limit(limit + 1)
        )
        if after is not None:
            query = query.where(WebhookDelivery.id > after)
        if status is not None:
            query = query.where(WebhookDelivery.status == status)
        return (await self.session.scalars(query)).all()

    async def claim_due(self, now: datetime, limit: int) -> Sequence[tuple[WebhookDelivery, WebhookEndpoint]]:
        """Pending deliveries due now on enabled endpoints, oldest event first, locked (skipping rows and
        endpoints another sender holds). Per-endpoint order: a delivery is held while an earlier one
        (lower `seq`) to the same endpoint is still pending and not due (waiting for its retry, or leased
        by a sender); a `failed` one (attempts exhausted) no longer holds the ones after it."""
        earlier = aliased(WebhookDelivery)
        held = exists().where(
            earlier.endpoint_id == WebhookDelivery.endpoint_id,
            earlier.status == "pending",
            earlier.seq < WebhookDelivery.seq,
            earlier.next_attempt_at > now,
        )
        query = (
            select(WebhookDelivery, WebhookEndpoint)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at <= now,
                WebhookEndpoint.enabled.is_(True),
                ~held,
            )
            .order_by(WebhookDelivery.seq, WebhookDelivery.id)
            .limit(limit)
            # The endpoint row too: two senders never work on one endpoint's queue at once.
            .with_for_update(skip_locked=True, of=(WebhookDelivery, WebhookEndpoint))
        )
        return [(d, e) for d, e in (await self.session.execute(query)).all()]

    async def delivery_for(self, endpoint_id: str, event_id: str) -> WebhookDelivery | None:
        query = select(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.event_id == event_id
        )
        return await self.session.scalar(query)

    async def events_between(
        self,
        *,
        tenant_id: str | None,
        from_seq: int | None,
        to_seq: int | None,
        from_time: datetime | None,
        to_time: datetime | None,
        limit: int,
    ) -> Sequence[OutboxEvent]:
        """Committed outbox events in a range, in `seq` order, for a replay (the relay's watermark does
        not matter: an event not relayed yet gets its delivery here and the relay skips it)."""
        query = select(OutboxEvent).order_by(OutboxEvent.seq).limit(limit)
        if tenant_id is not None:
            query = query.where(OutboxEvent.tenant_id == tenant_id)
        if from_seq is not None:
            query = query.where(OutboxEvent.seq >= from_seq)
        if to_seq is not None:
            query = query.where(OutboxEvent.seq <= to_seq)
        if from_time is not None:
            query = query.where(OutboxEvent.occurred_at >= from_time)
        if to_time is not None:
            query = query.where(OutboxEvent.occurred_at < to_time)
        return (await self.session.scalars(query)).all()

    async def delivery(self, delivery_id: str) -> WebhookDelivery | None:
        return await self.session.get(WebhookDelivery, delivery_id)

    async def delete_endpoint(self, row: WebhookEndpoint) -> None:
        await self.session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == row.id))
        await self.session.delete(row)
        await self.session.flush()
