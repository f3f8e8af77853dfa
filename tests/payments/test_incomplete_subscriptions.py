"""Stripe's `incomplete`: the first invoice of a charge_automatically subscription fails -> the
subscription is `incomplete` (no access); paying that invoice makes it `active`; 23 hours unpaid ->
`incomplete_expired` (terminal), on the wall clock and on test clocks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gateway.billing.run import billing_run
from gateway.payments.lookup import billing_config
from gateway.provisioning.jobs import Wiring, tick
from tests.entitlements.test_check_api import check, synced
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
    await kit.api.post(
        "/v1/test_clocks", {"frozen_time": "2030-01-01T00:00:00Z"}
    )  # a write: nudges the index
    await synced(kit.api)
    refused = await check(kit.api, customer, feature="reporting_basic")
    assert (refused["allowed"], refused["reason"]) == (False, "subscription_inactive")
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
    await synced(kit.api)
    assert (await check(kit.api, customer, feature="reporting_basic"))["allowed"] is True
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
    # The never-started subscription's first invoice is voided with it: nobody collects or dunns it.
    [invoice] = (await kit.api.get("/v1/invoices", params={"subscription": sub["id"]}))["data"]
    assert (invoice["status"], invoice["amount_remaining"]) == ("void", 0)
    [voided] = await events(kit, "invoice.voided")
    assert voided["invoice"]["id"] == invoice["id"]


async def test_on_a_test_clock_a_trial_that_converts_on_a_declined_card_expires_incomplete(
    kit: PayKit, demo: Any
) -> None:
    clock = await kit.api.post("/v1/test_clocks", {"frozen_time": "2027-01-05T00:00:00Z"})
    customer = await kit.api.post(
        "/v1/customers", {"name": "Timed", "currency": "USD", "country": "NL", "test_clock": clock["id"]}
    )
    await kit.method(customer["id"], "card_do_not_honor")
    sub = await kit.api.post(
        "/v1/subscriptions", {"customer": customer["id"], "price": "basic_monthly", "trial_days": 7}
    )
    assert sub["status"] == "trialing"

    async def advance(to: str) -> str:
        await kit.api.post(f"/v1/test_clocks/{clock['id']}/advance", {"frozen_time": to})
        await tick(kit.db, kit.clock, Wiring.from_settings(kit.settings))
        return str((await kit.api.get(f"/v1/subscriptions/{sub['id']}"))["status"])

    assert await advance("2027-01-12T00:00:00Z") == "incomplete"  # trial end: invoiced, declined
    [invoice] = (await kit.api.get("/v1/invoices", params={"subscription": sub["id"]}))["data"]
    assert (invoice["billing_reason"], invoice["status"]) == ("subscription_create", "open")
    assert await advance("2027-01-12T22:59:59Z") == "incomplete"
    assert await advance("2027-01-12T23:00:00Z") == "incomplete_expired"
    [voided] = (await kit.api.get("/v1/invoices", params={"subscription": sub["id"]}))["data"]
    assert (voided["id"], voided["status"]) == (invoice["id"], "void")
    assert [e["type"] for e in await events(kit, "subscription.incomplete")] == [
        "subscription.incomplete",
        "subscription.incomplete_expired",
    ]
