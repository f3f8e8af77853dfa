"""Stripe's `incomplete`: the first invoice of a charge_automatically subscription fails -> the
subscription is `incomplete` (no access); paying that invoice makes it `active`; 23 hours unpaid ->
`incomplete_expired` (terminal), on the wall clock and on test clocks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gateway.billing.run import billing_run
from gateway.payments.lookup import billing_config
from gateway.provisioning.jobs import Wiring, tick
from tests.payments.conftest import PayKit
from tests.payments.test_collection_api import events


async def subscribe(kit: PayKit, name: str, card: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    customer = await kit.customer(name, currency="USD")
    await kit.method(customer, card)
    sub = await kit.api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    assert sub["status"] == "active"
    [invoice] = (await kit.api.get("/v1/invoices", params={"subscription": sub["id"]}))["data"]
    assert (invoice["billing_reason"], invoice["status"]) == ("subscription_create", "open")
    return customer, sub, invoice


async def test_a_failed_first_invoice_makes_the_subscription_incomplete_until_paid(
    kit: PayKit, demo: Any
) -> None:
    customer, sub, invoice = await subscribe(kit, "Declined", "card_insufficient_funds")
    await tick(kit.db, kit.clock, Wiring.from_settings(kit.settings))  # the first attempt, after commit
    [payment] = (await kit.api.get("/v1/payments", params={"invoice": invoice["id"]}))["data"]
    assert (payment["status"], payment["decline_code"]) == ("failed", "insufficient_funds")
    assert (await kit.api.get(f"/v1/subscriptions/{sub['id']}"))["status"] == "incomplete"
    [incomplete] = await events(kit, "subscription.incomplete")
    assert (incomplete["previous_status"], incomplete["invoice"], incomplete["payment"]) == (
        "active",
        invoice["id"],
        payment["id"],
    )
    assert incomplete["decline_code"] == "insufficient_funds"
    # A second failure changes nothing more.
    await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", {}, expect=200)
    assert len(await events(kit, "subscription.incomplete")) == 1

    good = await kit.method(customer, "card_ok")
    paid = await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", {"payment_method": good}, expect=200)
    assert (paid["status"], paid["amount_remaining"]) == ("paid", 0)
    after = await kit.api.get(f"/v1/subscriptions/{sub['id']}")
    assert (after["status"], after["current_period_start"], after["current_period_end"]) == (
        "active",
        sub["current_period_start"],
        sub["current_period_end"],
    )
    [active] = await events(kit, "subscription.active")
    assert (active["previous_status"], active["invoice"]) == ("incomplete", invoice["id"])
    # Twenty-three hours later nothing expires: it was paid.
    kit.clock.set(kit.clock.now() + timedelta(hours=24))
    await billing_run(kit.db, kit.clock, billing_config(kit.settings))
    assert (await kit.api.get(f"/v1/subscriptions/{sub['id']}"))["status"] == "active"


async def test_an_incomplete_subscription_expires_23_hours_after_it_started(kit: PayKit, demo: Any) -> None:
    started = kit.clock.now()
    _, sub, _ = await subscribe(kit, "Lost", "card_lost")
    kit.clock.set(started + timedelta(minutes=5))
    await tick(kit.db, kit.clock, Wiring.from_settings(kit.settings))
    assert (await kit.api.get(f"/v1/subscriptions/{sub['id']}"))["status"] == "incomplete"
    kit.clock.set(started + timedelta(hours=23) - timedelta(seconds=1))
    await billing_run(kit.db, kit.clock, billing_config(kit.settings))
    assert (await kit.api.get(f"/v1/subscriptions/{sub['id']}"))["status"] == "incomplete"
    kit.clock.set(started + timedelta(hours=23))
    result = await billing_run(kit.db, kit.clock, billing_config(kit.settings))
    assert (result.subscriptions, result.steps) == (1, 1)
    expired = await kit.api.get(f"/v1/subscriptions/{sub['id']}")
    assert expired["status"] == "incomplete_expired"
    [event] = await events(kit, "subscription.incomplete_expired")
    assert (event["previous_status"], event["reason"]) == ("incomplete", "first_invoice_unpaid")
    assert event["subscription"]["status"] == "incomplete_expired"
