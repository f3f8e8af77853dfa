"""Payment metrics in /v1/metrics (issue 10), with exact numbers, on the in-process fake provider: four
invoices, three paid at the first attempt, one declined (insufficient funds) and then paid with another
card → first-attempt success 75 %, final success 100 %, one decline of 40.00 EUR. Other currencies and
test-clock customers stay out of the wall clock's EUR numbers; a test clock's numbers are its own.

Also here, because it needs stored payment methods: the payments domain's answer to the trial-end
question (`StoredPaymentMethods`), through the billing run as every process composes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.billing.run import billing_run
from gateway.kernel.clock import format_timestamp
from gateway.payments.lookup import billing_config
from tests.payments.conftest import PayKit


async def pay(kit: PayKit, invoice: dict[str, Any], **body: Any) -> dict[str, Any]:
    result: dict[str, Any] = await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", body, expect=200)
    return result


async def window(kit: PayKit, currency: str = "EUR", **params: Any) -> dict[str, Any]:
    now = kit.clock.now()
    query = {
        "currency": currency,
        "start": format_timestamp(now - timedelta(days=1)),
        "end": format_timestamp(now + timedelta(seconds=1)),
        **params,
    }
    metrics: dict[str, Any] = await kit.api.get("/v1/metrics", params=query)
    return metrics["payments"]


async def test_first_attempt_and_final_success_declines_and_failed_amount(kit: PayKit) -> None:
    for name, amount in [("Alpha", 10_000), ("Beta", 20_000), ("Gamma", 30_000)]:
        customer = await kit.customer(name)
        await kit.method(customer, "card_ok")
        assert (await pay(kit, await kit.open_invoice(customer, amount)))["status"] == "paid"
    delta = await kit.customer("Delta")
    await kit.method(delta, "card_insufficient_funds")
    invoice = await kit.open_invoice(delta, 4_000)
    assert (await pay(kit, invoice))["status"] == "open"
    assert await window(kit) == {
        "invoices_attempted": 4,
        "first_attempt_succeeded": 3,
        "succeeded": 3,
        "pending": 0,
        "first_attempt_success_rate": "0.7500",
        "final_success_rate": "0.7500",
        "attempts": 4,
        "failed_attempts": 1,
        "failed_amount": 4_000,
        "declines": [{"decline_code": "insufficient_funds", "count": 1, "amount": 4_000}],
    }

    kit.clock.advance(timedelta(hours=2))
    good = await kit.method(delta, "card_ok")
    assert (await pay(kit, invoice, payment_method=good))["status"] == "paid"
    after = await window(kit)
    assert (after["first_attempt_success_rate"], after["final_success_rate"]) == ("0.7500", "1.0000")
    assert (after["invoices_attempted"], after["succeeded"], after["attempts"]) == (4, 4, 5)
    assert after["failed_amount"] == 4_000

    # A window holding only the retry: no invoice had its first attempt in it, so the rates are
    # undefined (null, not 0), while the retry is still an attempt of the window.
    later = await kit.api.get(
        "/v1/metrics",
        params={
            "currency": "EUR",
            "start": format_timestamp(kit.clock.now() - timedelta(minutes=1)),
            "end": format_timestamp(kit.clock.now() + timedelta(seconds=1)),
        },
    )
    assert later["payments"]["invoices_attempted"] == 0
    assert later["payments"]["first_attempt_success_rate"] is None
    assert later["payments"]["final_success_rate"] is None
    assert later["payments"]["attempts"] == 1


async def test_each_currency_and_each_clock_has_its_own_numbers(kit: PayKit) -> None:
    euro = await kit.customer("Euro")
    await kit.method(euro, "card_ok")
    await pay(kit, await kit.open_invoice(euro, 1_000))
    dollar = await kit.customer("Dollar", currency="USD")
    await kit.method(dollar, "card_lost")
    await pay(kit, await kit.open_invoice(dollar, 7_700, currency="USD"))

    clock = await kit.api.post("/v1/test_clocks", {"frozen_time": "2027-01-05T00:00:00Z"})
    timed = await kit.api.post(
        "/v1/customers", {"name": "Timed", "currency": "EUR", "country": "NL", "test_clock": clock["id"]}
    )
    await kit.method(timed["id"], "card_do_not_honor")
    await pay(kit, await kit.open_invoice(timed["id"], 5_500))

    wall_eur = await window(kit)
    assert (wall_eur["invoices_attempted"], wall_eur["first_attempt_success_rate"]) == (1, "1.0000")
    assert wall_eur["declines"] == [] and wall_eur["failed_amount"] == 0
    wall_usd = await window(kit, "USD")
    assert wall_usd["first_attempt_success_rate"] == "0.0000"
    assert wall_usd["declines"] == [{"decline_code": "lost_card", "count": 1, "amount": 7_700}]

    on_clock = await kit.api.get(
        "/v1/metrics",
        params={
            "currency": "EUR",
            "test_clock": clock["id"],
            "start": "2027-01-01T00:00:00Z",
            "end": "2027-01-06T00:00:00Z",
        },
    )
    assert on_clock["payments"]["invoices_attempted"] == 1
    assert on_clock["payments"]["final_success_rate"] == "0.0000"
    assert on_clock["payments"]["declines"] == [{"decline_code": "do_not_honor", "count": 1, "amount": 5_500}]


async def test_trial_end_asks_the_stored_payment_methods(kit: PayKit, demo: Any) -> None:
    start = kit.clock.now()
    subs = {}
    for name, with_method in [("Carded", True), ("Cardless", False)]:
        customer = await kit.customer(name, currency="USD")
        if with_method:
            await kit.method(customer, "card_ok")
        sub = await kit.api.post(
            "/v1/subscriptions",
            {"customer": customer, "price": "pro_monthly", "trial_days": 7, "trial_end_behavior": "cancel"},
        )
        subs[name] = sub["id"]
    kit.clock.set(start + timedelta(days=7, minutes=1))
    await billing_run(kit.db, kit.clock, billing_config(kit.settings))
    carded = await kit.api.get(f"/v1/subscriptions/{subs['Carded']}")
    cardless = await kit.api.get(f"/v1/subscriptions/{subs['Cardless']}")
    assert (carded["status"], cardless["status"]) == ("active", "expired")
    invoices = await kit.api.get("/v1/invoices", params={"subscription": subs["Carded"]})
    assert [i["billing_reason"] for i in invoices["data"]] == ["subscription_create"]
    assert (await kit.api.get("/v1/invoices", params={"subscription": subs["Cardless"]}))["data"] == []
    trial_end = datetime.fromisoformat(carded["current_period_start"].replace("Z", "+00:00"))
    assert trial_end == (start + timedelta(days=7)).astimezone(UTC)
