"""Use cases of a metered feature's allowance: prepaid usage credits (grant, list, draw at invoicing),
threshold alerts (once per threshold per period), and the reconciled usage of each period. All SQL of
the allowance tables lives here too: it is a handful of statements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.bulk import in_batch
from gateway.db.outbox import record_event
from gateway.kernel.clock import format_timestamp
from gateway.kernel.errors import NotFound, ValidationFailed
from gateway.kernel.events import DomainEvent
from gateway.kernel.ids import new_id
from gateway.metering.allowance import CreditLot, draw, live_at_close
from gateway.metering.allowance_models import (
    UsageCredit,
    UsageCreditDraw,
    UsagePeriod,
    UsageThresholdAlert,
)

THRESHOLD_EVENT = "usage.threshold_reached"


class UsageCreditNotFound(NotFound):
    code = "usage_credit_not_found"


class AllowanceService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- prepaid usage credits -------------------------------------------------------------------
    async def grant_credit(
        self,
        tenant_id: str,
        feature_key: str,
        units: int,
        *,
        at: datetime,
        effective_at: datetime | None = None,
        expires_at: datetime | None = None,
        description: str | None = None,
    ) -> UsageCredit:
        if isinstance(units, bool) or units < 1:
            raise ValidationFailed("units must be at least 1", field="units")
        start = effective_at or at
        if expires_at is not None and expires_at <= start:
            raise ValidationFailed("expires_at must be after the credit takes effect", field="expires_at")
        credit = UsageCredit(
            id=new_id("ucr"),
            tenant_id=tenant_id,
            feature_key=feature_key,
            units=units,
            remaining=units,
            effective_at=start,
            expires_at=expires_at,
            description=description,
            created_at=at,
        )
        self.session.add(credit)
        await self.session.flush()
        # The event names the tenant, so every replica reloads its allowance (gateway/entitlements).
        await record_event(
            self.session,
            DomainEvent(
                "usage_credit.granted", "usage_credit", credit.id, at, credit_snapshot(credit), tenant_id
            ),
        )
        return credit

    async def credits(self, tenant_id: str, feature_key: str | None = None) -> Sequence[UsageCredit]:
        query = select(UsageCredit).where(UsageCredit.tenant_id == tenant_id)
        if feature_key is not None:
            query = query.where(UsageCredit.feature_key == feature_key)
        return (await self.session.scalars(query.order_by(UsageCredit.created_at, UsageCredit.id))).all()

    async def credits_of(self, tenant_ids: Sequence[str]) -> dict[tuple[str, str], list[CreditLot]]:
        """(tenant, feature) → its credit lots with units left, for the decision index's bulk load."""
        if not tenant_ids:
            return {}
        query = select(UsageCredit).where(UsageCredit.tenant_id.in_(tenant_ids), UsageCredit.remaining > 0)
        lots: dict[tuple[str, str], list[CreditLot]] = {}
        for row in (await self.session.scalars(query)).all():
            lots.setdefault((row.tenant_id, row.feature_key), []).append(_lot(row))
        return lots

    async def available(self, tenant_id: str, feature_key: str, period_end: datetime) -> list[CreditLot]:
        rows = await self.credits(tenant_id, feature_key)
        return live_at_close([_lot(r) for r in rows], period_end)

    async def drawn(self, subscription_id: str, feature_key: str, period_start: datetime) -> int:
        query = (
            select(UsageCreditDraw.units)
            .join(UsageCredit, UsageCredit.id == UsageCreditDraw.credit_id)
            .where(
                UsageCreditDraw.subscription_id == subscription_id,
                UsageCreditDraw.period_start == period_start,
                UsageCredit.feature_key == feature_key,
            )
        )
        return sum((await self.session.scalars(query)).all())

    async def draw_for_period(
        self,
        tenant_id: str,
        subscription_id: str,
        feature_key: str,
        period_start: datetime,
        period_end: datetime,
        units: int,
        *,
        at: datetime,
    ) -> int:
        """Draw up to `units` from the credits live at the period's close; once per period: a second
        call (a rerun, a late recomputation) draws only what the first did not cover."""
        already = await self.drawn(subscription_id, feature_key, period_start)
        wanted = units - already
        if wanted <= 0:
            return already
        lots = await self.available(tenant_id, feature_key, period_end)
        taken = draw(lots, wanted)
        for credit_id, take in taken:
            credit = await self.session.get(UsageCredit, credit_id, with_for_update=True)
            if credit is None or credit.remaining < take:
                continue  # drawn meanwhile by another period: that period keeps it
            credit.remaining -= take
            existing = await self.session.scalar(
                select(UsageCreditDraw).where(
                    UsageCreditDraw.credit_id == credit_id,
                    UsageCreditDraw.subscription_id == subscription_id,
                    UsageCreditDraw.period_start == period_start,
                )
            )
            if existing is not None:
                existing.units += take
            else:
                self.session.add(
                    UsageCreditDraw(
                        id=new_id("ucd"),
                        tenant_id=tenant_id,
                        credit_id=credit_id,
                        subscription_id=subscription_id,
                        period_start=period_start,
                        units=take,
                        created_at=at,
                    )
                )
            already += take
        if not in_batch(self.session):
            # In a billing-run batch the ORM flush waits for the batch's end (gateway/db/bulk.py): a flush
            # here would write rows that point at invoices still in the batch's buffer.
            await self.session.flush()
        return already

    # -- threshold alerts ------------------------------------------------------------------------
    async def alerts(self, subscription_id: str, feature_key: str, period_start: datetime) -> set[int]:
        query = select(UsageThresholdAlert.threshold).where(
            UsageThresholdAlert.subscription_id == subscription_id,
            UsageThresholdAlert.feature_key == feature_key,
            UsageThresholdAlert.period_start == period_start,
        )
        return set((await self.session.scalars(query)).all())

    async def alert_once(
        self,
        tenant_id: str,
        subscription_id: str,
        feature_key: str,
        period: tuple[datetime, datetime],
        threshold: int,
        used: int,
        allowance: int,
        *,
        at: datetime,
    ) -> bool:
        """Record that `threshold` was reached and emit `usage.threshold_reached`, unless it was already
        (the unique key decides a race between two reconcilers). True when this call sent it."""
        row = UsageThresholdAlert(
            id=new_id("ual"),
            tenant_id=tenant_id,
            subscription_id=subscription_id,
            feature_key=feature_key,
            period_start=period[0],
            threshold=threshold,
            used=used,
            allowance=allowance,
            reached_at=at,
        )
        try:
            async with self.session.begin_nested():
                self.session.add(row)
        except IntegrityError:
            return False
        data: dict[str, Any] = {
            "customer": tenant_id,
            "subscription": subscription_id,
            "feature": feature_key,
            "threshold": threshold,
            "used": used,
            "allowance": allowance,
            "period_start": format_timestamp(period[0]),
            "period_end": format_timestamp(period[1]),
            # The names issue 12 asks consumers to rely on (the ones above stay for existing consumers):
            # `limit` is the period's allowance, `percent` the threshold crossed (a percentage of it).
            "customer_id": tenant_id,
            "limit": allowance,
            "percent": threshold,
        }
        await record_event(
            self.session, DomainEvent(THRESHOLD_EVENT, "usage_alert", row.id, at, data, tenant_id)
        )
        return True

    # -- reconciled periods ----------------------------------------------------------------------
    async def period(
        self, subscription_id: str, feature_key: str, period_start: datetime
    ) -> UsagePeriod | None:
        return await self.session.scalar(
            select(UsagePeriod).where(
                UsagePeriod.subscription_id == subscription_id,
                UsagePeriod.feature_key == feature_key,
                UsagePeriod.period_start == period_start,
            )
        )

    async def periods_of(self, tenant_ids: Sequence[str]) -> dict[tuple[str, str, datetime], UsagePeriod]:
        """(subscription, feature, period start) → reconciled row, for the decision index's bulk load."""
        if not tenant_ids:
            return {}
        rows = (
            await self.session.scalars(select(UsagePeriod).where(UsagePeriod.tenant_id.in_(tenant_ids)))
        ).all()
        return {(r.subscription_id, r.feature_key, r.period_start): r for r in rows}

    async def drift_report(
        self, *, tenant_id: str | None = None, only_drift: bool = False, limit: int = 100
    ) -> Sequence[UsagePeriod]:
        query = select(UsagePeriod)
        if tenant_id is not None:
            query = query.where(UsagePeriod.tenant_id == tenant_id)
        if only_drift:
            query = query.where(UsagePeriod.drift != 0)
        query = query.order_by(UsagePeriod.reconciled_at.desc(), UsagePeriod.id).limit(limit)
        return (await self.session.scalars(query)).all()

    def add(self, row: object) -> None:
        self.session.add(row)


def _lot(row: UsageCredit) -> CreditLot:
    return CreditLot(row.id, row.remaining, row.effective_at, row.expires_at)


def credit_snapshot(credit: UsageCredit) -> dict[str, Any]:
    return {
        "id": credit.id,
        "customer": credit.tenant_id,
        "feature": credit.feature_key,
        "units": credit.units,
        "remaining": credit.remaining,
        "effective_at": format_timestamp(credit.effective_at),
        "expires_at": format_timestamp(credit.expires_at) if credit.expires_at else None,
    }
