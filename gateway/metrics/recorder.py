"""The metrics relay consumer: each subscription event → the subscription's MRR now, and a `mrr_changes`
row when it moved; trial endings are noted for the conversion rate.

A subscription's MRR (rule 32): its licensed price at its quantity plus its add-ons, normalised to a
month (yearly ÷ 12, quarterly ÷ 3); metered prices and one-time charges count 0. It counts while the
subscription is `active` or `past_due` (still owed; dunning decides later); trialing, paused, canceled
and expired count 0. Discounts that recur (repeating within their months, forever) are recorded apart, so
the read side can subtract them or not (the `metrics_mrr_subtract_discounts` setting). A once-only coupon
does not lower MRR: it is not recurring revenue.

Idempotent: the event id is unique in `mrr_changes`, and the subscription's `version` drops stale events.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.billing.discount_service import to_coupon
from gateway.billing.discounts import CouponDuration, applies_to_period
from gateway.billing.repository import BillingRepository
from gateway.catalog import CatalogService, price_terms
from gateway.catalog.repository import CatalogRepository
from gateway.customers.repository import CustomerRepository
from gateway.db.outbox import OutboxEvent
from gateway.kernel.clock import Clock
from gateway.kernel.periods import Interval
from gateway.metrics.domain import to_minor
from gateway.metrics.models import MetricsSubscription, MrrChange
from gateway.subscriptions.models import SubscriptionAddon

# Statuses whose subscription is recurring revenue.
PAYING = frozenset({"active", "past_due"})


def wants(event_type: str) -> bool:
    return event_type.startswith("subscription.")


class MetricsRecorder:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.session = session
        self.clock = clock
        self.catalog = CatalogService(CatalogRepository(session), clock)
        self.billing = BillingRepository(session)

    async def handle(self, event: OutboxEvent) -> None:
        snapshot: dict[str, Any] = (event.data or {}).get("subscription") or {}
        if not snapshot.get("id") or not snapshot.get("currency") or event.tenant_id is None:
            return
        version = int(snapshot.get("version") or 0)
        state = await self.session.get(MetricsSubscription, snapshot["id"])
        if state is not None and version < state.version:
            return  # an older snapshot than one already applied
        status = str(snapshot["status"])
        gross, discount = await self.mrr_of(snapshot, event.occurred_at) if status in PAYING else (0, 0)
        price = await self.catalog.get_price(snapshot["price"])
        plan, interval = price.plan_id, price.interval
        now = self.clock.now()
        if state is None:
            customer = await CustomerRepository(self.session).get(event.tenant_id)
            state = MetricsSubscription(
                subscription_id=snapshot["id"],
                tenant_id=event.tenant_id,
                version=version,
                status=status,
                currency=snapshot["currency"],
                gross=0,
                discount=0,
                test_clock_id=customer.test_clock_id if customer else None,
                plan_id=plan,
                interval=interval,
                updated_at=now,
            )
            self.session.add(state)
        if state.status == "trialing" and status != "trialing" and state.trial_ended_at is None:
            state.trial_ended_at, state.trial_converted = event.occurred_at, status in PAYING
        moved = (gross, discount) != (state.gross, state.discount)
        # A move to another plan or interval is a row even at the same MRR while it pays (plan flows).
        if moved or (gross and (plan, interval) != (state.plan_id, state.interval)):
            self.session.add(
                MrrChange(
                    event_id=event.event_id,
                    tenant_id=state.tenant_id,
                    subscription_id=state.subscription_id,
                    test_clock_id=state.test_clock_id,
                    currency=state.currency,
                    at=event.occurred_at,
                    gross=gross,
                    discount=discount,
                    status=status,
                    event_type=event.type,
                    plan_id=plan,
                    interval=interval,
                )
            )
        state.version, state.status, state.gross, state.discount = version, status, gross, discount
        state.plan_id, state.interval = plan, interval
        state.updated_at = now
        await self.session.flush()

    async def mrr_of(self, snapshot: dict[str, Any], at: datetime) -> tuple[int, int]:
        """(gross, recurring discount) per month in minor units, for the subscription as the snapshot
        shows it, with the add-ons it held at `at`."""
        currency = snapshot["currency"]
        price = await self.catalog.get_price(snapshot["price"])
        terms = price_terms(price)
        monthly = terms.monthly_amount(currency, int(snapshot.get("quantity") or 1))
        addons = await self.session.scalars(
            select(SubscriptionAddon).where(
                SubscriptionAddon.subscription_id == snapshot["id"], SubscriptionAddon.created_at <= at
            )
        )
        for addon in addons:
            if addon.removed_at is not None and addon.removed_at <= at:
                continue
            addon_terms = price_terms(await self.catalog.get_price(addon.price_id))
            monthly += addon_terms.monthly_amount(currency, addon.quantity)
        gross = to_minor(monthly)
        return gross, await self._recurring_discount(snapshot, terms.interval, monthly, gross)

    async def _recurring_discount(
        self, snapshot: dict[str, Any], interval: Interval, monthly: Decimal, gross: int
    ) -> int:
        period_start = snapshot.get("current_period_start")
        if not period_start or gross == 0:
            return 0
        start = datetime.fromisoformat(period_start)
        off = Decimal(0)
        for row in await self.billing.discounts(snapshot["customer"], snapshot["id"]):
            if row.currency is not None and row.currency != snapshot["currency"]:
                continue
            coupon = to_coupon(row)
            if coupon.duration is CouponDuration.ONCE:
                continue
            if not applies_to_period(coupon, row.start, start, interval=interval):
                continue
            if coupon.percent_off is not None:
                off += monthly * coupon.percent_off / 100
            elif coupon.amount_off is not None:  # per invoice: spread over the months it covers
                off += Decimal(coupon.amount_off.amount) / interval.months
        return min(gross, to_minor(off))
