"""Reconciliation of metered usage: one truth per subscription period, the hot path's drift, alerts.

The hot path answers from the decision index (included units, credits, the meter's usage as last
reconciled) plus the quota store's counter of check-time consumption. This job folds both sources into
`usage_periods` for each tenant's current period:

    metered  = the meter's total over the period, now (ingested events, voids excluded)
    consumed = the highest counter reading ever seen for the period: a counter that went back (a Redis
               flush, an embedded restart) is topped up again, never believed
    used     = metered + consumed                                  (what billing reads)
    drift    = used − (the index's metered figure + the counter)   (how wrong the hot path was)

A changed `metered` figure is published as `usage.reconciled` (the engine reloads the tenant), and each
alert threshold `used` reached is sent once per period (`usage.threshold_reached`, unique per threshold).
Drift is reported per customer and feature by `GET /v1/usage_reconciliation`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog.domain import FeatureKind
from gateway.db.outbox import record_event
from gateway.db.session import Database
from gateway.entitlements.engine import Engine
from gateway.entitlements.loader import TenantEntitlements
from gateway.kernel.events import DomainEvent
from gateway.kernel.ids import new_id
from gateway.metering.allowance import DEFAULT_THRESHOLDS, allowance, reached_thresholds
from gateway.metering.allowance_models import UsagePeriod
from gateway.metering.allowance_service import AllowanceService
from gateway.metering.ports import MeterUsage
from gateway.subscriptions.models import Subscription, TestClock

log = logging.getLogger("tiergate.metering")


@dataclass(frozen=True, slots=True)
class Reconciled:
    customer: str
    feature: str
    period_start: datetime
    used: int
    drift: int
    alerts: tuple[int, ...]


class UsageReconciler:
    def __init__(self, engine: Engine, meters: Callable[[AsyncSession], MeterUsage]) -> None:
        self.engine = engine
        self.meters = meters

    async def run(self, session: AsyncSession, *, customer: str | None = None) -> list[Reconciled]:
        """Reconcile every tenant's metered features (or one customer's) in one unit of work."""
        view = self.engine.view()
        tenants = [view.tenant(customer)] if customer is not None else list(view.tenants.values())
        meters = self.meters(session)
        allowances = AllowanceService(session)
        done: list[Reconciled] = []
        for tenant in tenants:
            if tenant is None or not view.has_access(tenant.tenant_id):
                continue
            at = await self._now(session, tenant.subscription_id)
            changed = False
            for key, grant in sorted(tenant.features.items()):
                if grant.kind is not FeatureKind.METERED:
                    continue
                result, moved = await self._feature(session, meters, allowances, tenant, key, at)
                done.append(result)
                changed = changed or moved
                await self._closed_period(session, meters, tenant, key, at)
            if changed:
                # Every replica reloads the tenant: its metered base moved (gateway/entitlements/loader.py).
                await record_event(
                    session,
                    DomainEvent(
                        "usage.reconciled",
                        "subscription",
                        tenant.subscription_id,
                        at,
                        {"customer": tenant.tenant_id},
                        tenant.tenant_id,
                    ),
                )
        return done

    async def _feature(
        self,
        session: AsyncSession,
        meters: MeterUsage,
        allowances: AllowanceService,
        tenant: TenantEntitlements,
        key: str,
        at: datetime,
    ) -> tuple[Reconciled, bool]:
        grant = tenant.features[key]
        balance = tenant.metered.get(key)
        start, end = tenant.period_start, tenant.period_end
        meter = balance.meter if balance else None
        metered = await meters.total(tenant.tenant_id, meter, start, end) if meter else 0
        quotas = self.engine.quotas
        counter = await quotas.usage(tenant.tenant_id, key, start)
        row = await allowances.period(tenant.subscription_id, key, start)
        if row is None:
            row = UsagePeriod(
                id=new_id("upr"),
                tenant_id=tenant.tenant_id,
                subscription_id=tenant.subscription_id,
                feature_key=key,
                meter=meter,
                period_start=start,
                period_end=end,
                metered=0,
                consumed=0,
                used=0,
                allowance=None,
                overage=0,
                drift=0,
                reconciled_at=at,
            )
            allowances.add(row)
        consumed = max(row.consumed, counter)
        if counter < row.consumed:
            # The counter lost units it had counted: put them back (unlimited, so always admitted).
            log.warning(
                "quota counter of %s/%s went back %d units", tenant.tenant_id, key, row.consumed - counter
            )
            await quotas.consume(
                tenant.tenant_id, key, row.consumed - counter, None, period_start=start, period_end=end
            )
        indexed = balance.metered if balance else 0
        used = metered + consumed
        total = allowance(grant.limit, balance.credits if balance else 0)
        moved = metered != indexed
        row.meter = meter
        row.period_end = end
        row.metered = metered
        row.consumed = consumed
        row.used = used
        row.allowance = total
        row.overage = 0 if total is None else max(0, used - total)
        row.drift = used - (indexed + counter)
        row.reconciled_at = at
        await session.flush()
        sent = []
        thresholds = balance.thresholds if balance else None
        if total is not None:
            already = await allowances.alerts(tenant.subscription_id, key, start)
            for threshold in reached_thresholds(used, total, thresholds or DEFAULT_THRESHOLDS):
                if threshold in already:
                    continue
                if await allowances.alert_once(
                    tenant.tenant_id, tenant.subscription_id, key, (start, end), threshold, used, total, at=at
                ):
                    sent.append(threshold)
        return Reconciled(tenant.tenant_id, key, start, used, row.drift, tuple(sent)), moved

    async def _closed_period(
        self, session: AsyncSession, meters: MeterUsage, tenant: TenantEntitlements, key: str, at: datetime
    ) -> None:
        """The period that just ended: checks consumed between its last reconciliation and its end are
        still only in the counter (kept `METERED_RETENTION` after the period). Folding them in lets the
        next invoice bill them as an adjustment instead of losing them."""
        row = await session.scalar(
            select(UsagePeriod).where(
                UsagePeriod.subscription_id == tenant.subscription_id,
                UsagePeriod.feature_key == key,
                UsagePeriod.period_end == tenant.period_start,
            )
        )
        if row is None:
            return
        counter = await self.engine.quotas.usage(tenant.tenant_id, key, row.period_start)
        metered = (
            await meters.total(tenant.tenant_id, row.meter, row.period_start, row.period_end)
            if row.meter
            else 0
        )
        consumed = max(row.consumed, counter)
        if (consumed, metered) != (row.consumed, row.metered):
            row.consumed, row.metered, row.used = consumed, metered, metered + consumed
            row.overage = 0 if row.allowance is None else max(0, row.used - row.allowance)
            row.reconciled_at = at

    async def _now(self, session: AsyncSession, subscription_id: str) -> datetime:
        """The subscription's time: its test clock's when it has one (test clocks move metering too)."""
        frozen = await session.scalar(
            select(TestClock.frozen_time)
            .join(Subscription, Subscription.test_clock_id == TestClock.id)
            .where(Subscription.id == subscription_id)
        )
        return frozen if frozen is not None else self.engine.clock.now()


async def reconcile_loop(db: Database, reconciler: UsageReconciler, interval_seconds: float) -> None:
    """Reconcile every tenant every `interval_seconds` (in `serve`, beside the engine it reads). Several
    replicas doing it at once is harmless: alerts are unique per threshold and the figures are the same."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            async with db.unit_of_work() as session:
                await reconciler.run(session)
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed pass must not stop the loop; the next pass recomputes everything
            log.exception("usage reconciliation failed")
