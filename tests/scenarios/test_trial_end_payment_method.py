"""Trial end without a payment method (billing-rules rule 17, issue 10): a trial that would be charged
automatically and has no usable default method follows its `trial_end_behavior`: `cancel` expires it,
`pause` pauses it, `create_invoice` converts it and leaves its first invoice open. A customer with a
method converts whatever the behaviour; a `send_invoice` subscription needs no method at all.

The subscriptions domain asks through its `PaymentMethodLookup` port (it cannot import payments): the
API stories run with the default answer (nobody has a method); the stories with a method hand the
billed services a lookup that answers from a set of customers, as the payments domain will."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from gateway.billing.models import Invoice
from gateway.billing.run import billing_run
from gateway.billing.wiring import BillingConfig, billed_subscriptions
from gateway.customers import CustomerService
from gateway.customers.repository import CustomerRepository
from gateway.db.outbox import OutboxEvent
from gateway.db.session import Database
from gateway.demo import seed_catalog
from gateway.kernel.clock import FrozenClock
from gateway.subscriptions.models import Subscription
from gateway.subscriptions.ports import PaymentMethodLookup
from tests.conftest import Api

START = datetime(2026, 5, 4, 8, 30, tzinfo=UTC)
TRIAL_END = START + timedelta(days=14)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def trialing(api: Api, behavior: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    clock = await api.post("/v1/test_clocks", {"frozen_time": iso(START), "name": "trial"})
    customer = await api.post(
        "/v1/customers", {"name": "Trial Co", "currency": "USD", "test_clock": clock["id"]}
    )
    sub = await api.post(
        "/v1/subscriptions",
        {
            "customer": customer["id"],
            "price": "pro_monthly",
            "trial_days": 14,
            "trial_end_behavior": behavior,
            **extra,
        },
    )
    assert sub["status"] == "trialing"
    await api.post(
        f"/v1/test_clocks/{clock['id']}/advance", {"frozen_time": iso(TRIAL_END + timedelta(hours=1))}
    )
    return clock["id"], sub


async def events(api: Api, aggregate: str) -> list[dict[str, Any]]:
    return (await api.get("/v1/events", params={"aggregate": aggregate, "limit": 100}))["data"]


async def invoices(api: Api, subscription_id: str) -> list[dict[str, Any]]:
    return (await api.get("/v1/invoices", params={"subscription": subscription_id}))["data"]


async def test_cancel_without_a_method_expires_the_trial(api: Api, demo: Any) -> None:
    _, sub = await trialing(api, "cancel")
    after = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert after["status"] == "expired" and after["ended_at"] == iso(TRIAL_END)
    [expired] = [e for e in await events(api, sub["id"]) if e["type"] == "subscription.expired"]
    assert expired["data"]["reason"] == "missing_payment_method"
    assert await invoices(api, sub["id"]) == []


async def test_pause_without_a_method_pauses_the_trial(api: Api, demo: Any) -> None:
    _, sub = await trialing(api, "pause")
    after = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert after["status"] == "paused" and after["paused_at"] == iso(TRIAL_END)
    [ended] = [e for e in await events(api, sub["id"]) if e["type"] == "subscription.trial_ended"]
    assert ended["data"]["outcome"] == "paused"
    assert ended["data"]["reason"] == "missing_payment_method"
    assert await invoices(api, sub["id"]) == []


async def test_create_invoice_without_a_method_converts_and_leaves_the_invoice_open(
    api: Api, demo: Any
) -> None:
    _, sub = await trialing(api, "create_invoice")
    after = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert after["status"] == "active" and after["current_period_start"] == iso(TRIAL_END)
    [invoice] = await invoices(api, sub["id"])
    assert (invoice["status"], invoice["billing_reason"]) == ("open", "subscription_create")
    assert invoice["collection_method"] == "charge_automatically"
    assert invoice["amount_remaining"] == invoice["total"] > 0


@pytest.mark.parametrize("behavior", ["cancel", "pause"])
async def test_a_send_invoice_trial_needs_no_method_and_converts(api: Api, demo: Any, behavior: str) -> None:
    _, sub = await trialing(api, behavior, collection_method="send_invoice", days_until_due=10)
    after = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert after["status"] == "active"
    [invoice] = await invoices(api, sub["id"])
    assert invoice["collection_method"] == "send_invoice"
    assert invoice["due_date"] == iso(TRIAL_END + timedelta(days=10))


# -- with a payment method (the port answering yes), through the billing run -----------------------
class MethodsOf:
    """A PaymentMethodLookup over a fixed set of customers; records who was asked."""

    def __init__(self, with_method: set[str]) -> None:
        self.with_method = with_method
        self.asked: list[str] = []

    async def has_usable_default(self, tenant_id: str) -> bool:
        self.asked.append(tenant_id)
        return tenant_id in self.with_method


async def test_a_customer_with_a_method_converts_whatever_the_behaviour(db: Database) -> None:
    clock = FrozenClock(START)
    async with db.unit_of_work() as session:
        await seed_catalog(session, clock)
    lookup = MethodsOf(set())
    config = BillingConfig(payment_methods=lambda _session: lookup)
    assert isinstance(lookup, PaymentMethodLookup)
    subs: dict[str, tuple[str, bool, str]] = {}  # subscription → (customer, has a method, status after)
    async with db.unit_of_work() as session:
        customers = CustomerService(CustomerRepository(session), clock)
        subscriptions = billed_subscriptions(session, clock, config)
        for n, (behavior, has_method, expected) in enumerate(
            [
                ("cancel", True, "active"),
                ("pause", True, "active"),
                ("cancel", False, "expired"),
                ("pause", False, "paused"),
            ]
        ):
            customer = await customers.create(name=f"Trial {n}", currency="USD", country="US")
            sub = await subscriptions.create(
                customer_id=customer.id, price="pro_monthly", trial_days=14, trial_end_behavior=behavior
            )
            if has_method:
                lookup.with_method.add(customer.id)
            subs[sub.id] = (customer.id, has_method, expected)

    clock.set(TRIAL_END + timedelta(minutes=5))
    result = await billing_run(db, clock, config)
    assert result.subscriptions == 4

    async with db.unit_of_work() as session:
        rows = {s.id: s for s in (await session.scalars(select(Subscription))).all()}
        billed = {i.subscription_id for i in (await session.scalars(select(Invoice))).all()}
        expired = (
            await session.scalars(select(OutboxEvent).where(OutboxEvent.type == "subscription.expired"))
        ).all()
    assert {sub_id: rows[sub_id].status for sub_id in subs} == {
        sub_id: expected for sub_id, (_, _, expected) in subs.items()
    }
    assert billed == {sub_id for sub_id, (_, has, _) in subs.items() if has}
    assert len(expired) == 1
    assert sorted(lookup.asked) == sorted(customer for customer, _, _ in subs.values())
