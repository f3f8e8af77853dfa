"""Billing stories on a test clock, through the public API, asserting every invoice line and total to the
minor unit (billing-rules.md rules 1-24).

Each story builds what it needs (plans with round prices, tax rates, coupons), attaches a fresh customer
to a test clock, and moves the clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.conftest import Api


def iso(*args: int) -> str:
    return datetime(*args, tzinfo=UTC).isoformat().replace("+00:00", "Z")


async def on_clock(api: Api, start: datetime, **customer: Any) -> tuple[str, str]:
    clock = await api.post("/v1/test_clocks", {"frozen_time": start.isoformat(), "name": "billing story"})
    body = {"name": "Story Co", "currency": "USD", "test_clock": clock["id"], **customer}
    created = await api.post("/v1/customers", body)
    return clock["id"], created["id"]


async def advance(api: Api, clock_id: str, *to: int) -> dict[str, Any]:
    result: dict[str, Any] = await api.post(
        f"/v1/test_clocks/{clock_id}/advance", {"frozen_time": iso(*to)}, expect=201
    )
    return result


async def invoices_of(api: Api, customer: str) -> list[dict[str, Any]]:
    page = await api.get("/v1/invoices", params={"customer": customer, "limit": 100})
    return list(page["data"])


async def pending_of(api: Api, customer: str) -> list[dict[str, Any]]:
    page = await api.get("/v1/invoice_items", params={"customer": customer, "pending": "true"})
    return list(page["data"])


_product: dict[str, str] = {}


async def plan(
    api: Api,
    key: str,
    *,
    rank: int = 1,
    model: str = "flat",
    interval: str = "month",
    amounts: dict[str, Any] | None = None,
    **price: Any,
) -> str:
    """A base plan with one price; returns the price's lookup key (`<key>_<interval>`)."""
    products = await api.get("/v1/products", params={"limit": 100})
    product = next((p["id"] for p in products["data"] if p["name"] == "Billing stories"), None)
    if product is None:
        product = (await api.post("/v1/products", {"name": "Billing stories"}))["id"]
    existing = await api.get("/v1/plans", params={"limit": 100})
    if not any(p["key"] == key for p in existing["data"]):
        await api.post("/v1/plans", {"product": product, "key": key, "name": key.title(), "rank": rank})
    lookup = f"{key}_{interval}"
    await api.post(
        "/v1/prices",
        {
            "plan": key,
            "model": model,
            "interval": interval,
            "currency_options": amounts or {"USD": {"unit_amount": 1000}},
            "lookup_key": lookup,
            **price,
        },
    )
    return lookup


def totals(invoice: dict[str, Any]) -> tuple[int, int, int, int]:
    return invoice["subtotal"], invoice["discount_total"], invoice["tax_total"], invoice["total"]


# -- renewals ---------------------------------------------------------------------------------------
async def test_a_year_of_monthly_renewals_gives_twelve_numbered_invoices(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2026, 1, 1, 9, 0, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    first = await invoices_of(api, customer)
    assert len(first) == 1
    assert first[0]["billing_reason"] == "subscription_create"
    assert first[0]["number"] == "TG-2026-000001"
    assert [line["description"] for line in first[0]["lines"]] == ["Basic (Jan 01, 2026 - Feb 01, 2026)"]

    result = await advance(api, clock, 2026, 12, 31, 9, 0)
    assert result["steps_applied"] == 11
    invoices = await invoices_of(api, customer)
    assert len(invoices) == 12
    assert [i["total"] for i in invoices] == [900] * 12
    assert [i["number"] for i in invoices] == [f"TG-2026-{n:06d}" for n in range(1, 13)]
    assert [i["period_start"][:10] for i in invoices] == [f"2026-{m:02d}-01" for m in range(1, 13)]
    assert {i["billing_reason"] for i in invoices[1:]} == {"subscription_cycle"}
    assert all(i["status"] == "open" and i["amount_due"] == 900 for i in invoices)
    assert all(i["subscription"] == sub["id"] for i in invoices)


async def test_yearly_price_is_twenty_percent_off_and_bills_once_a_year(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2026, 3, 15, tzinfo=UTC))
    await api.post("/v1/subscriptions", {"customer": customer, "price": "pro_yearly", "trial_days": 0})
    await advance(api, clock, 2027, 3, 14)
    invoices = await invoices_of(api, customer)
    assert [i["total"] for i in invoices] == [27840]  # 29 × 12 × 0.8
    await advance(api, clock, 2027, 3, 15)
    invoices = await invoices_of(api, customer)
    assert [i["total"] for i in invoices] == [27840, 27840]
    assert invoices[1]["number"] == "TG-2027-000001"  # one gapless sequence per issuer and year


async def test_jan_31_anchor_invoices_follow_the_month_end_clamp(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2026, 1, 31, 12, 0, tzinfo=UTC))
    await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    await advance(api, clock, 2026, 5, 31, 12, 0)
    periods = [(i["period_start"][:10], i["period_end"][:10]) for i in await invoices_of(api, customer)]
    assert periods == [
        ("2026-01-31", "2026-02-28"),
        ("2026-02-28", "2026-03-31"),
        ("2026-03-31", "2026-04-30"),
        ("2026-04-30", "2026-05-31"),
        ("2026-05-31", "2026-06-30"),
    ]


async def test_calendar_alignment_prorates_the_first_period(api: Api, demo: Any) -> None:
    price = await plan(api, "fifty", amounts={"USD": {"unit_amount": 5000}}, alignment="calendar")
    clock, customer = await on_clock(api, datetime(2026, 8, 10, tzinfo=UTC))
    await api.post("/v1/subscriptions", {"customer": customer, "price": price})
    await advance(api, clock, 2026, 9, 1)
    invoices = await invoices_of(api, customer)
    # Rule 2: Aug 10 → Sep 1 is 22 of August's 31 days: 22/31 × $50 = $35.48; then whole months.
    assert [i["total"] for i in invoices] == [3548, 5000]
    assert invoices[1]["period_start"][:10] == "2026-09-01"


# -- proration --------------------------------------------------------------------------------------
async def _ten_and_twenty(api: Api) -> tuple[str, str]:
    ten = await plan(api, "ten", rank=1, amounts={"USD": {"unit_amount": 1000}})
    twenty = await plan(api, "twenty", rank=2, amounts={"USD": {"unit_amount": 2000}})
    return ten, twenty


async def test_upgrade_halfway_prorates_to_plus_five_on_the_next_invoice(api: Api, demo: Any) -> None:
    ten, twenty = await _ten_and_twenty(api)
    clock, customer = await on_clock(api, datetime(2026, 4, 1, tzinfo=UTC))  # April: 30 days
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": ten})
    await advance(api, clock, 2026, 4, 16)
    await api.post(f"/v1/subscriptions/{sub['id']}/plan_change", {"price": twenty}, expect=201)
    pending = await pending_of(api, customer)
    # Rule 10: $10 → $20 halfway: −$5.00 + $10.00 = +$5.00, one net line (rounded once).
    assert [(p["amount"], p["proration"]) for p in pending] == [(500, True)]
    await advance(api, clock, 2026, 5, 1)
    renewal = (await invoices_of(api, customer))[-1]
    assert [(line["kind"], line["amount"]) for line in renewal["lines"]] == [
        ("subscription", 2000),
        ("proration", 500),
    ]
    assert renewal["total"] == 2500
    assert await pending_of(api, customer) == []


async def test_upgrade_after_ten_of_thirty_days_is_plus_six_sixty_seven(api: Api, demo: Any) -> None:
    ten, twenty = await _ten_and_twenty(api)
    clock, customer = await on_clock(api, datetime(2026, 4, 1, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": ten})
    await advance(api, clock, 2026, 4, 11)
    await api.post(
        f"/v1/subscriptions/{sub['id']}/plan_change",
        {"price": twenty, "proration_behavior": "always_invoice"},
        expect=201,
    )
    invoices = await invoices_of(api, customer)
    assert [i["billing_reason"] for i in invoices] == ["subscription_create", "subscription_update"]
    assert invoices[1]["total"] == 667
    assert invoices[1]["lines"][0]["proration"] is True
    assert await pending_of(api, customer) == []


async def test_proration_behavior_none_bills_nothing_now(api: Api, demo: Any) -> None:
    ten, twenty = await _ten_and_twenty(api)
    clock, customer = await on_clock(api, datetime(2026, 4, 1, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": ten})
    await advance(api, clock, 2026, 4, 16)
    await api.post(
        f"/v1/subscriptions/{sub['id']}/plan_change",
        {"price": twenty, "proration_behavior": "none"},
        expect=201,
    )
    assert await pending_of(api, customer) == []
    assert len(await invoices_of(api, customer)) == 1


async def test_downgrade_waits_for_the_period_end_without_proration(api: Api, demo: Any) -> None:
    ten, twenty = await _ten_and_twenty(api)
    clock, customer = await on_clock(api, datetime(2026, 4, 1, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": twenty})
    await advance(api, clock, 2026, 4, 16)
    changed = await api.post(f"/v1/subscriptions/{sub['id']}/plan_change", {"price": ten}, expect=201)
    assert changed["scheduled_change"]["price"]
    assert await pending_of(api, customer) == []
    await advance(api, clock, 2026, 5, 1)
    assert [i["total"] for i in await invoices_of(api, customer)] == [2000, 1000]


async def test_immediate_downgrade_credit_becomes_balance_and_pays_the_next_invoice(
    api: Api, demo: Any
) -> None:
    ten, twenty = await _ten_and_twenty(api)
    clock, customer = await on_clock(api, datetime(2026, 4, 1, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": twenty})
    await advance(api, clock, 2026, 4, 16)
    await api.post(
        f"/v1/subscriptions/{sub['id']}/plan_change",
        {"price": ten, "timing": "now", "proration_behavior": "always_invoice"},
        expect=201,
    )
    invoices = await invoices_of(api, customer)
    credit_invoice = invoices[1]
    assert (credit_invoice["total"], credit_invoice["amount_due"], credit_invoice["status"]) == (
        -500,
        0,
        "paid",
    )
    balance = await api.get(f"/v1/customers/{customer}/balance")
    assert balance["available"] == {"USD": 500}  # rule 12: kept as balance, never refunded
    await advance(api, clock, 2026, 5, 1)
    renewal = (await invoices_of(api, customer))[-1]
    assert (renewal["total"], renewal["credit_applied"], renewal["amount_due"]) == (1000, 500, 500)
    assert (await api.get(f"/v1/customers/{customer}/balance"))["available"] == {}


async def test_seat_change_and_moving_from_seats_to_flat_credit_unused_seats(api: Api, demo: Any) -> None:
    seats = await plan(api, "seats", rank=1, model="per_seat", amounts={"USD": {"unit_amount": 1000}})
    flat = await plan(api, "flat", rank=2, amounts={"USD": {"unit_amount": 2000}})
    clock, customer = await on_clock(api, datetime(2026, 4, 1, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": seats, "quantity": 5})
    assert (await invoices_of(api, customer))[0]["total"] == 5000
    await advance(api, clock, 2026, 4, 16)
    await api.post(f"/v1/subscriptions/{sub['id']}/quantity", {"quantity": 8}, expect=201)
    assert [p["amount"] for p in await pending_of(api, customer)] == [1500]  # 3 seats × $10 × 1/2
    # Rule 12: 8 seats ($80) to a flat $20, halfway: credit $40, charge $10 → −$30.
    await api.post(f"/v1/subscriptions/{sub['id']}/plan_change", {"price": flat, "timing": "now"}, expect=201)
    assert [p["amount"] for p in await pending_of(api, customer)] == [1500, -3000]
    await advance(api, clock, 2026, 5, 1)
    renewal = (await invoices_of(api, customer))[-1]
    # 2000 + 1500 − 3000 = 500
    assert renewal["total"] == 500


async def test_interval_change_resets_the_anchor_and_invoices_now(api: Api, demo: Any) -> None:
    monthly = await plan(api, "swing", amounts={"USD": {"unit_amount": 1000}})
    yearly = await plan(api, "swing", interval="year", amounts={"USD": {"unit_amount": 9600}})
    clock, customer = await on_clock(api, datetime(2026, 4, 1, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": monthly})
    await advance(api, clock, 2026, 4, 16)
    sub = await api.post(f"/v1/subscriptions/{sub['id']}/plan_change", {"price": yearly}, expect=201)
    assert sub["current_period_start"].startswith("2026-04-16")
    assert sub["current_period_end"].startswith("2027-04-16")
    invoices = await invoices_of(api, customer)
    change = invoices[-1]
    assert change["billing_reason"] == "subscription_update"
    assert [line["amount"] for line in change["lines"]] == [-500, 9600]  # rule 13
    assert change["total"] == 9100
    await advance(api, clock, 2027, 4, 15)
    assert len(await invoices_of(api, customer)) == 2  # the new year is already paid for


async def test_interval_change_in_the_first_second_invoices_the_new_period_beside_the_first(
    api: Api, demo: Any
) -> None:
    """The new yearly period starts the very instant the first month did: both invoices stand (the
    period key once collided here, a 409 "concurrent change" for a customer switching at once)."""
    monthly = await plan(api, "instant", amounts={"USD": {"unit_amount": 1000}})
    yearly = await plan(api, "instant", interval="year", amounts={"USD": {"unit_amount": 9600}})
    clock, customer = await on_clock(api, datetime(2026, 4, 1, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": monthly})
    sub = await api.post(f"/v1/subscriptions/{sub['id']}/plan_change", {"price": yearly}, expect=201)
    assert (sub["current_period_start"][:10], sub["current_period_end"][:10]) == ("2026-04-01", "2027-04-01")
    first, change = await invoices_of(api, customer)
    assert first["total"] == 1000
    assert [line["amount"] for line in change["lines"]] == [-1000, 9600]  # the whole month credited
    assert change["total"] == 8600
    await advance(api, clock, 2027, 3, 31)
    assert len(await invoices_of(api, customer)) == 2


async def test_addon_mid_period_is_prorated(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2026, 4, 1, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "pro_monthly", "trial_days": 0})
    await advance(api, clock, 2026, 4, 16)
    prices = await api.get("/v1/prices", params={"limit": 100})
    seats = next(p for p in prices["data"] if p["lookup_key"] == "extra_seats_monthly")
    await api.post(f"/v1/subscriptions/{sub['id']}/addons", {"price": seats["id"], "quantity": 2}, expect=201)
    unit = seats["currency_options"]["USD"]["unit_amount"]
    expected = round(int(unit) * 2 / 2)
    assert [p["amount"] for p in await pending_of(api, customer)] == [expected]
    await advance(api, clock, 2026, 5, 1)
    renewal = (await invoices_of(api, customer))[-1]
    assert [line["kind"] for line in renewal["lines"]] == ["subscription", "addon", "proration"]
    assert renewal["total"] == 2900 + int(unit) * 2 + expected


# -- trials -----------------------------------------------------------------------------------------
async def test_trial_is_not_invoiced_and_converts_into_the_first_invoice(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "pro_monthly"})
    assert sub["status"] == "trialing"
    assert await invoices_of(api, customer) == []
    await advance(api, clock, 2026, 3, 21, 12, 0)
    events = await api.get("/v1/events", params={"aggregate": sub["id"], "limit": 100})
    will_end = [e for e in events["data"] if e["type"] == "subscription.trial_will_end"]
    assert [e["occurred_at"][:19] for e in will_end] == ["2026-03-21T12:00:00"]  # rule 16: 3 days before
    await advance(api, clock, 2026, 3, 24, 12, 0)
    invoices = await invoices_of(api, customer)
    assert [(i["billing_reason"], i["total"], i["period_start"][:10]) for i in invoices] == [
        ("subscription_create", 2900, "2026-03-24")
    ]


async def test_an_extended_trial_reminds_again_and_converts_at_its_new_end(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "pro_monthly"})
    assert sub["trial_end"][:10] == "2026-03-24"
    await advance(api, clock, 2026, 3, 22, 12, 0)  # the 3-day reminder went on the 21st
    # Bad input changes nothing: an end not later than the current one, or more than two years out.
    for bad in ("2026-03-24T12:00:00Z", "2028-04-01T00:00:00Z"):
        problem = await api.post(
            f"/v1/subscriptions/{sub['id']}/extend_trial", {"trial_end": bad}, expect=422
        )
        assert problem["field"] == "trial_end"
    extended = await api.post(
        f"/v1/subscriptions/{sub['id']}/extend_trial", {"trial_end": iso(2026, 4, 9, 12)}, expect=201
    )
    assert (extended["status"], extended["trial_end"], extended["current_period_end"]) == (
        "trialing",
        "2026-04-09T12:00:00Z",
        "2026-04-09T12:00:00Z",
    )
    await advance(api, clock, 2026, 4, 1, 12, 0)
    assert await invoices_of(api, customer) == []  # still a trial past its first end
    await advance(api, clock, 2026, 4, 10, 12, 0)
    events = await api.get("/v1/events", params={"aggregate": sub["id"], "limit": 100})
    types = [e["type"] for e in events["data"]]
    assert types.count("subscription.trial_extended") == 1
    will_end = [e["occurred_at"][:10] for e in events["data"] if e["type"] == "subscription.trial_will_end"]
    assert will_end == ["2026-03-21", "2026-04-06"]  # reminded again, 3 days before the new end
    invoices = await invoices_of(api, customer)
    assert [(i["billing_reason"], i["total"], i["period_start"][:10]) for i in invoices] == [
        ("subscription_create", 2900, "2026-04-09")
    ]
    # Once active there is no trial to extend.
    conflict = await api.post(
        f"/v1/subscriptions/{sub['id']}/extend_trial", {"trial_end": iso(2026, 5, 1)}, expect=409
    )
    assert conflict["code"] == "invalid_transition"


# -- taxes, currencies, credit ----------------------------------------------------------------------
async def test_vat_exclusive_inclusive_and_reverse_charge(api: Api, demo: Any) -> None:
    hundred = await plan(
        api, "hundred", amounts={"USD": {"unit_amount": 10000}, "EUR": {"unit_amount": 10000}}
    )
    await api.post(
        "/v1/tax_rates", {"display_name": "VAT", "country": "DE", "percent": "19", "inclusive": False}
    )
    await api.post(
        "/v1/tax_rates", {"display_name": "TVA", "country": "FR", "percent": "20", "inclusive": True}
    )

    _, german = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC), currency="EUR", country="DE")
    await api.post("/v1/subscriptions", {"customer": german, "price": hundred})
    invoice = (await invoices_of(api, german))[0]
    assert totals(invoice) == (10000, 0, 1900, 11900)
    assert invoice["tax"]["percent"] == "19"
    assert invoice["lines"][0]["tax_amount"] == 1900

    _, french = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC), currency="EUR", country="FR")
    await api.post("/v1/subscriptions", {"customer": french, "price": hundred})
    invoice = (await invoices_of(api, french))[0]
    # Inclusive: €100.00 contains 100 × 20/120 = €16.67 of VAT; the total stays €100.00.
    assert totals(invoice) == (10000, 0, 1667, 10000)

    _, business = await on_clock(
        api,
        datetime(2026, 1, 1, tzinfo=UTC),
        currency="EUR",
        country="DE",
        tax_ids=[{"type": "eu_vat", "value": "DE136695976"}],
    )
    await api.post("/v1/subscriptions", {"customer": business, "price": hundred})
    invoice = (await invoices_of(api, business))[0]
    assert totals(invoice) == (10000, 0, 0, 10000)
    assert invoice["tax"]["reverse_charge"] is True
    assert any("Reverse charge" in m for m in invoice["legal_mentions"])


async def test_currency_is_fixed_by_the_first_invoice(api: Api, demo: Any) -> None:
    _clock, customer = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC), currency=None)
    await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly", "currency": "EUR"})
    assert (await api.get(f"/v1/customers/{customer}"))["currency"] == "EUR"
    assert (await invoices_of(api, customer))[0]["currency"] == "EUR"
    refused = await api.post(
        "/v1/invoice_items",
        {"customer": customer, "amount": 500, "currency": "USD", "description": "Setup"},
        expect=409,
    )
    assert refused["code"] == "currency_mismatch"


async def test_credit_balance_is_consumed_before_charging(api: Api, demo: Any) -> None:
    hundred = await plan(api, "hundred", amounts={"USD": {"unit_amount": 10000}})
    _clock, customer = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC))
    await api.post(f"/v1/customers/{customer}/credit_grants", {"amount": 4000, "currency": "USD"})
    await api.post("/v1/subscriptions", {"customer": customer, "price": hundred})
    invoice = (await invoices_of(api, customer))[0]
    # Rule 24: a $100 invoice with $40 of credit charges $60.
    assert (invoice["total"], invoice["credit_applied"], invoice["amount_due"]) == (10000, 4000, 6000)


# -- one-time charges, credit notes, the invoice lifecycle ---------------------------------------------
async def test_one_time_charge_goes_on_the_next_renewal_or_its_own_invoice(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC))
    await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    await api.post(
        "/v1/invoice_items",
        {"customer": customer, "amount": 2500, "currency": "USD", "description": "Onboarding"},
    )
    await advance(api, clock, 2026, 2, 1)
    renewal = (await invoices_of(api, customer))[-1]
    assert [(line["description"], line["amount"]) for line in renewal["lines"]][-1] == ("Onboarding", 2500)
    assert renewal["total"] == 3400

    await api.post(
        "/v1/invoice_items",
        {"customer": customer, "amount": 1200, "currency": "USD", "description": "Training"},
    )
    own = await api.post("/v1/invoices", {"customer": customer, "auto_advance": True})
    assert (own["billing_reason"], own["total"], own["status"]) == ("manual", 1200, "open")
    assert own["number"] == "TG-2026-000003"
    refused = await api.post("/v1/invoices", {"customer": customer}, expect=409)
    assert refused["code"] == "nothing_to_invoice"


async def test_credit_notes_on_open_and_paid_invoices(api: Api, demo: Any) -> None:
    hundred = await plan(api, "hundred", amounts={"USD": {"unit_amount": 10000}})
    _clock, customer = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC))
    await api.post("/v1/subscriptions", {"customer": customer, "price": hundred})
    invoice = (await invoices_of(api, customer))[0]

    partial = await api.post(
        "/v1/credit_notes", {"invoice": invoice["id"], "amount": 3000, "reason": "order_change"}
    )
    assert (partial["total"], partial["credit_to_invoice"], partial["credit_to_balance"]) == (3000, 3000, 0)
    assert partial["number"] == "TG-CN-2026-000001"
    invoice = await api.get(f"/v1/invoices/{invoice['id']}")
    assert (invoice["status"], invoice["amount_remaining"]) == ("open", 7000)

    too_much = await api.post("/v1/credit_notes", {"invoice": invoice["id"], "amount": 7001}, expect=409)
    assert too_much["code"] == "credit_exceeds_invoice"

    await api.post(f"/v1/invoices/{invoice['id']}/pay", {"paid_out_of_band": True}, expect=200)
    after_pay = await api.post("/v1/credit_notes", {"invoice": invoice["id"], "amount": 2000})
    assert (after_pay["credit_to_invoice"], after_pay["credit_to_balance"]) == (0, 2000)
    assert (await api.get(f"/v1/customers/{customer}/balance"))["available"] == {"USD": 2000}


async def test_invoice_lifecycle_transitions_and_refusals(api: Api, demo: Any) -> None:
    _clock, customer = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC))
    await api.post(f"/v1/customers/{customer}/credit_grants", {"amount": 300, "currency": "USD"})
    await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    invoice = (await invoices_of(api, customer))[0]
    assert invoice["credit_applied"] == 300

    voided = await api.post(f"/v1/invoices/{invoice['id']}/void", expect=200)
    assert (voided["status"], voided["number"]) == ("void", invoice["number"])  # keeps its number
    assert (await api.get(f"/v1/customers/{customer}/balance"))["available"] == {"USD": 300}
    again = await api.post(f"/v1/invoices/{invoice['id']}/pay", {"paid_out_of_band": True}, expect=409)
    assert again["code"] == "invalid_transition"

    await api.post(
        "/v1/invoice_items", {"customer": customer, "amount": 1000, "currency": "USD", "description": "Extra"}
    )
    draft = await api.post("/v1/invoices", {"customer": customer})
    assert (draft["status"], draft["number"]) == ("draft", None)
    await api.post(
        "/v1/invoice_items",
        {
            "customer": customer,
            "amount": 500,
            "currency": "USD",
            "description": "More",
            "invoice": draft["id"],
        },
    )
    draft = await api.get(f"/v1/invoices/{draft['id']}")
    assert draft["total"] == 1500
    finalized = await api.post(f"/v1/invoices/{draft['id']}/finalize", expect=200)
    # The void invoice kept number 1; this is number 2: no gaps.
    assert (finalized["status"], finalized["number"]) == ("open", "TG-2026-000002")
    assert finalized["credit_applied"] == 300
    written_off = await api.post(f"/v1/invoices/{draft['id']}/mark_uncollectible", expect=200)
    assert written_off["status"] == "uncollectible"
    paid = await api.post(f"/v1/invoices/{draft['id']}/pay", {"paid_out_of_band": True}, expect=200)
    assert (paid["status"], paid["amount_paid"], paid["amount_remaining"]) == ("paid", 1200, 0)
    refused = await api.call("DELETE", f"/v1/invoices/{draft['id']}", expect=409)
    assert refused["code"] == "invoice_not_draft"
    types = [e["type"] for e in (await api.get("/v1/events", params={"aggregate": draft["id"]}))["data"]]
    assert types == ["invoice.created", "invoice.finalized", "invoice.marked_uncollectible", "invoice.paid"]


# -- usage in arrears ---------------------------------------------------------------------------------
async def test_metered_usage_is_billed_in_arrears_with_graduated_tiers(api: Api, demo: Any) -> None:
    tiers = [
        {"up_to": 100, "unit_amount": 100},
        {"up_to": 200, "unit_amount": 50},
        {"up_to": None, "unit_amount": 10},
    ]
    usage = await plan(
        api,
        "calls",
        model="graduated",
        usage_type="metered",
        metered_feature="api_calls",
        amounts={"USD": {"tiers": tiers}},
    )
    clock, customer = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": usage})
    assert await invoices_of(api, customer) == []  # nothing in advance for a metered price
    await api.post(f"/v1/subscriptions/{sub['id']}/usage", {"quantity": 200}, expect=200)
    reported = await api.post(f"/v1/subscriptions/{sub['id']}/usage", {"quantity": 50}, expect=200)
    assert reported["quantity"] == 250
    await advance(api, clock, 2026, 2, 1)
    invoice = (await invoices_of(api, customer))[0]
    # Rule 5: 100 × $1 + 100 × $0.50 + 50 × $0.10 = $155.00, for January, billed on Feb 1.
    assert [(line["kind"], line["amount"], line["quantity"]) for line in invoice["lines"]] == [
        ("usage", 15500, 250)
    ]
    assert invoice["period_start"][:10] == "2026-02-01"
    assert invoice["lines"][0]["period_start"][:10] == "2026-01-01"


# -- previews ------------------------------------------------------------------------------------------
async def test_change_preview_returns_exactly_what_the_change_creates(api: Api, demo: Any) -> None:
    ten, twenty = await _ten_and_twenty(api)
    clock, customer = await on_clock(api, datetime(2026, 4, 1, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": ten})
    await advance(api, clock, 2026, 4, 11)
    preview = await api.post(f"/v1/subscriptions/{sub['id']}/preview_change", {"price": twenty}, expect=200)
    assert preview["outcome"] == "pending"
    assert [p["amount"] for p in preview["pending_items"]] == [667]
    assert await pending_of(api, customer) == []  # the preview wrote nothing
    assert (await api.get(f"/v1/subscriptions/{sub['id']}"))["price"] != twenty

    invoiced = await api.post(
        f"/v1/subscriptions/{sub['id']}/preview_change",
        {"price": twenty, "proration_behavior": "always_invoice"},
        expect=200,
    )
    assert invoiced["outcome"] == "invoice" and invoiced["invoice"]["total"] == 667

    await api.post(f"/v1/subscriptions/{sub['id']}/plan_change", {"price": twenty}, expect=201)
    made = await pending_of(api, customer)
    keep = ("amount", "description", "period_start", "period_end", "proration")
    assert [{k: p[k] for k in keep} for p in made] == [
        {k: p[k] for k in keep} for p in preview["pending_items"]
    ]

    upcoming = await api.get(f"/v1/subscriptions/{sub['id']}/upcoming_invoice")
    assert [line["amount"] for line in upcoming["lines"]] == [2000, 667]
    assert upcoming["total"] == 2667 and upcoming["period_start"][:10] == "2026-05-01"
    down = await api.post(f"/v1/subscriptions/{sub['id']}/preview_change", {"price": ten}, expect=200)
    assert down["outcome"] == "scheduled" and down["effective_at"][:10] == "2026-05-01"


# -- documents and tenancy -------------------------------------------------------------------------------
async def test_invoice_html_and_pdf(api: Api, demo: Any) -> None:
    import io

    from pypdf import PdfReader

    _clock, customer = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC), name="Beta <GmbH>")
    await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    invoice = (await invoices_of(api, customer))[0]
    html = await api.client.get(f"/v1/invoices/{invoice['id']}/html", headers=api._headers(None))
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "Beta &lt;GmbH&gt;" in html.text and invoice["number"] in html.text
    pdf = await api.client.get(f"/v1/invoices/{invoice['id']}/pdf", headers=api._headers(None))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert invoice["number"] in text and "Basic" in text and "9.00" in text


async def test_another_tenants_invoice_is_not_found(api: Api, demo: Any) -> None:
    _clock, customer = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC))
    _, other = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC), name="Other Co")
    await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    invoice = (await invoices_of(api, customer))[0]
    key = await api.post("/v1/api_keys", {"name": "other", "scopes": ["billing:read"], "customer": other})
    as_other = api.as_key(key["secret"])
    missing = await as_other.get(f"/v1/invoices/{invoice['id']}", expect=404)
    assert missing["code"] == "invoice_not_found"
    assert (await as_other.get("/v1/invoices"))["data"] == []


# -- coupons -------------------------------------------------------------------------------------------
async def test_twenty_percent_for_three_months_then_full_price(api: Api, demo: Any) -> None:
    fifty = await plan(api, "fifty", amounts={"USD": {"unit_amount": 5000}})
    coupon = await api.post(
        "/v1/coupons", {"percent_off": 20, "duration": "repeating", "duration_in_months": 3}
    )
    clock, customer = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC))
    await api.post("/v1/subscriptions", {"customer": customer, "price": fifty, "coupon": coupon["id"]})
    await advance(api, clock, 2026, 5, 1)
    invoices = await invoices_of(api, customer)
    # Rule 18: $40, $40, $40, then $50.
    assert [i["total"] for i in invoices] == [4000, 4000, 4000, 5000, 5000]
    assert [i["discount_total"] for i in invoices] == [1000, 1000, 1000, 0, 0]
    assert (await api.get(f"/v1/coupons/{coupon['id']}"))["times_redeemed"] == 1


async def test_promotion_code_once_amount_off_and_its_restrictions(api: Api, demo: Any) -> None:
    coupon = await api.post("/v1/coupons", {"amount_off": 500, "currency": "USD", "duration": "once"})
    await api.post(
        "/v1/promotion_codes",
        {"coupon": coupon["id"], "code": "welcome", "restrictions": {"first_time_transaction": True}},
    )
    clock, customer = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC))
    await api.post(
        "/v1/subscriptions", {"customer": customer, "price": "basic_monthly", "promotion_code": "WELCOME"}
    )
    await advance(api, clock, 2026, 2, 1)
    assert [i["total"] for i in await invoices_of(api, customer)] == [400, 900]  # once: the first invoice

    # A customer that has been invoiced before is refused, and nothing is created.
    refused = await api.post(
        f"/v1/subscriptions/{(await invoices_of(api, customer))[0]['subscription']}/discounts",
        {"promotion_code": "welcome"},
        expect=409,
    )
    assert refused["code"] == "not_first_time_customer"
    missing = await api.post(
        "/v1/subscriptions",
        {
            "customer": (await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC)))[1],
            "price": "basic_monthly",
            "coupon": "nope",
        },
        expect=404,
    )
    assert missing["code"] == "coupon_not_found"


async def test_amount_off_never_takes_an_invoice_below_zero(api: Api, demo: Any) -> None:
    coupon = await api.post("/v1/coupons", {"amount_off": 5000, "currency": "USD", "duration": "forever"})
    _clock, customer = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC))
    await api.post(
        "/v1/subscriptions", {"customer": customer, "price": "basic_monthly", "coupon": coupon["id"]}
    )
    invoice = (await invoices_of(api, customer))[0]
    assert (invoice["subtotal"], invoice["discount_total"], invoice["total"]) == (900, 900, 0)
    assert invoice["status"] == "paid"  # nothing to collect


async def test_an_admin_can_grant_a_second_trial(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2026, 3, 1, tzinfo=UTC))
    first = await api.post(
        "/v1/subscriptions", {"customer": customer, "price": "pro_monthly", "trial_end_behavior": "cancel"}
    )
    await advance(api, clock, 2026, 3, 16)
    assert (await api.get(f"/v1/subscriptions/{first['id']}"))["status"] == "expired"
    refused = await api.post(
        "/v1/subscriptions", {"customer": customer, "price": "pro_monthly", "trial_days": 7}, expect=409
    )
    assert refused["code"] == "trial_already_used"
    second = await api.post(
        "/v1/subscriptions",
        {"customer": customer, "price": "pro_monthly", "trial_days": 7, "allow_repeat_trial": True},
    )
    assert second["status"] == "trialing" and second["trial_end"].startswith("2026-03-23")
    assert await invoices_of(api, customer) == []  # neither trial was billed


async def test_cancel_now_with_proration_credits_the_unused_time(api: Api, demo: Any) -> None:
    ten, _ = await _ten_and_twenty(api)
    clock, customer = await on_clock(api, datetime(2026, 4, 1, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": ten})
    await api.post(
        "/v1/invoice_items", {"customer": customer, "amount": 300, "currency": "USD", "description": "Extra"}
    )
    await advance(api, clock, 2026, 4, 16)
    refused = await api.post(
        f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": True, "prorate": True}, expect=422
    )
    assert refused["field"] == "prorate"
    await api.post(
        f"/v1/subscriptions/{sub['id']}/cancel",
        {"at_period_end": False, "prorate": True, "invoice_now": True},
        expect=201,
    )
    final = (await invoices_of(api, customer))[-1]
    assert final["billing_reason"] == "subscription_end"
    assert [line["amount"] for line in final["lines"]] == [-500, 300]
    assert (final["total"], final["status"]) == (-200, "paid")
    assert (await api.get(f"/v1/customers/{customer}/balance"))["available"] == {"USD": 200}


async def test_cancel_now_without_proration_bills_nothing_more(api: Api, demo: Any) -> None:
    ten, _ = await _ten_and_twenty(api)
    clock, customer = await on_clock(api, datetime(2026, 4, 1, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": ten})
    await advance(api, clock, 2026, 4, 16)
    await api.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": False}, expect=201)
    assert len(await invoices_of(api, customer)) == 1


async def test_a_plan_can_invoice_its_prorations_at_once(api: Api, demo: Any) -> None:
    ten = await plan(api, "ten", rank=1, amounts={"USD": {"unit_amount": 1000}})
    products = await api.get("/v1/products", params={"limit": 100})
    product = next(p["id"] for p in products["data"] if p["name"] == "Billing stories")
    made = await api.post(
        "/v1/plans",
        {
            "product": product,
            "key": "eager",
            "name": "Eager",
            "rank": 2,
            "proration_behavior": "always_invoice",
        },
    )
    assert made["proration_behavior"] == "always_invoice"
    await api.post(
        "/v1/prices",
        {
            "plan": "eager",
            "model": "flat",
            "interval": "month",
            "lookup_key": "eager_month",
            "currency_options": {"USD": {"unit_amount": 2000}},
        },
    )
    clock, customer = await on_clock(api, datetime(2026, 4, 1, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": ten})
    await advance(api, clock, 2026, 4, 16)
    await api.post(f"/v1/subscriptions/{sub['id']}/plan_change", {"price": "eager_month"}, expect=201)
    # The plan the subscription moved to says "always_invoice": billed now, nothing left pending.
    assert [i["total"] for i in await invoices_of(api, customer)] == [1000, 500]
    assert await pending_of(api, customer) == []
    bad = await api.patch("/v1/plans/eager", {"proration_behavior": "sometimes"}, expect=422)
    assert bad["status"] == 422
