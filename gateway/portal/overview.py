"""What the portal's overview shows, read through the same services the API uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from gateway.catalog import CatalogService, price_terms
from gateway.customers.models import Customer
from gateway.subscriptions.models import Subscription
from gateway.subscriptions.service import SubscriptionService


@dataclass(frozen=True, slots=True)
class PlanView:
    sub: Subscription
    plan_name: str
    # What one period costs at the subscription's quantity, in minor units (before discounts and tax).
    price_amount: int
    interval: str


async def current_plan(
    subscriptions: SubscriptionService, catalog: CatalogService, customer: Customer
) -> PlanView | None:
    sub = await subscriptions.live_for_tenant(customer.id)
    if sub is None:
        return None
    price = await catalog.get_price(sub.price_id)
    plan = await catalog.get_plan(sub.plan_id)
    terms = price_terms(price)
    per_period = terms.monthly_amount(sub.currency, sub.quantity) * terms.interval.months
    amount = int(per_period.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return PlanView(sub, plan.name, amount, sub.interval)


def interval_label(gettext: Callable[..., str], interval: str) -> str:
    labels = {"month": gettext("month"), "year": gettext("year"), "quarter": gettext("quarter")}
    return labels.get(interval, interval)


def status_label(gettext: Callable[..., str], status: str) -> str:
    labels = {
        "active": gettext("Active"),
        "trialing": gettext("Trial"),
        "past_due": gettext("Payment overdue"),
        "paused": gettext("Paused"),
    }
    return labels.get(status, status)
