"""Metered billing from ingested events, on a test clock through the HTTP API: events drive overage
and the gateway's balance; a late event for an invoiced period becomes an adjustment on the next
invoice; a voided one a credit note; per-group lines where the price groups by a property."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Litestar

from tests.conftest import Api
from tests.metering.story_helpers import (
    advance,
    consume,
    invoices_of,
    iso,
    metered_plan,
    reconcile,
    send_calls,
    subscribed,
    usage_lines,
)


async def test_events_bill_overage_and_a_late_event_is_an_adjustment_on_the_next_invoice(
    api: Api, app: Litestar
) -> None:
    plan = await metered_plan(api, app)
    story = await subscribed(api, plan["price"], datetime(2026, 1, 1, tzinfo=UTC))
    customer = story["customer"]
    sent = await send_calls(api, customer, plan["meter"], range(12_345))
    assert sent == {"accepted": 12_345, "duplicates": 0, "rejected": 0}
    resent = await send_calls(api, customer, plan["meter"], range(12_000, 12_345))  # a client retry
    assert resent["duplicates"] == 345
    await advance(api, story["clock"], 2026, 2, 1)
    [january] = await invoices_of(api, customer)
    assert usage_lines(january) == [("usage", 469, 2_345)]

    # Two weeks later, 500 calls of January arrive (inside the grace window).
    await advance(api, story["clock"], 2026, 2, 14)
    late = await send_calls(api, customer, plan["meter"], range(20_000, 20_500), time=iso(2026, 1, 20))
    assert late["accepted"] == 500
    await advance(api, story["clock"], 2026, 3, 1)
    first, second = await invoices_of(api, customer)
    # January's invoice is final and unchanged; February's carries the difference: 2,845 × 0.2¢ = 569
    # against the 469 billed, +500 units, $1.00.
    assert (first["id"], first["total"], usage_lines(first)) == (january["id"], 469, [("usage", 469, 2_345)])
    assert usage_lines(second) == [("usage", 100, 500)]
    adjustment = second["lines"][0]
    assert adjustment["description"].startswith("API calls adjustment: late usage, 12,345 → 12,845 used")
    assert (adjustment["period_start"][:10], adjustment["period_end"][:10]) == ("2026-01-01", "2026-02-01")

    # Nothing more arrives: the next invoice has no adjustment again.
    await advance(api, story["clock"], 2026, 4, 1)
    assert len(await invoices_of(api, customer)) == 2


async def test_a_voided_event_after_the_invoice_becomes_a_credit_note(api: Api, app: Litestar) -> None:
    plan = await metered_plan(api, app, per_call="10")  # 10¢ a call beyond the included units
    story = await subscribed(api, plan["price"], datetime(2026, 1, 1, tzinfo=UTC))
    customer = story["customer"]
    await send_calls(api, customer, plan["meter"], range(10_010))
    await advance(api, story["clock"], 2026, 2, 1)
    [january] = await invoices_of(api, customer)
    assert usage_lines(january) == [("usage", 100, 10)]
    for i in range(4):
        await api.post(f"/v1/usage_events/call-{i}/void", {"source": "app", "subject": customer}, expect=200)
    await advance(api, story["clock"], 2026, 3, 1)
    notes = (await api.get("/v1/credit_notes", params={"invoice": january["id"]}))["data"]
    assert [(n["total"], n["reason"]) for n in notes] == [(40, "order_change")]  # 4 calls × 10¢
    assert [i["id"] for i in await invoices_of(api, customer)] == [january["id"]]  # nothing else due


async def test_ingested_events_count_against_a_hard_limit_once_reconciled(api: Api, app: Litestar) -> None:
    plan = await metered_plan(api, app, soft=False)
    story = await subscribed(api, plan["price"], datetime(2026, 1, 1, tzinfo=UTC))
    customer, feature = story["customer"], plan["feature"]
    await send_calls(api, customer, plan["meter"], range(9_990))
    report = await reconcile(api, customer)
    [row] = report["data"]
    # The hot path had not seen the events yet: that is the drift the reconciliation folds in.
    assert (row["metered"], row["consumed"], row["used"], row["drift"]) == (9_990, 0, 9_990, 9_990)
    assert report["alerts"] == [{"customer": customer, "feature": feature, "thresholds": [80]}]
    assert (await consume(api, customer, feature, 10))["remaining"] == 0
    denied = await consume(api, customer, feature, 1)
    assert (denied["allowed"], denied["reason"], denied["used"]) == (False, "quota_exceeded", 10_000)
    again = await reconcile(api, customer)
    assert (again["data"][0]["used"], again["data"][0]["drift"]) == (10_000, 0)
    assert again["alerts"] == [{"customer": customer, "feature": feature, "thresholds": [100]}]


async def test_a_grouped_price_bills_one_line_per_group(api: Api, app: Litestar) -> None:
    plan = await metered_plan(api, app, included=1_000, group_by=["region"], usage_group_by=["region"])
    story = await subscribed(api, plan["price"], datetime(2026, 1, 1, tzinfo=UTC))
    customer = story["customer"]
    await send_calls(api, customer, plan["meter"], range(1_500), region="eu")
    await send_calls(api, customer, plan["meter"], range(5_000, 5_700), region="us")
    await advance(api, story["clock"], 2026, 2, 1)
    [invoice] = await invoices_of(api, customer)
    # The 1,000 included units go to the groups in key order: eu 1,500 → 500 billed; us 700 billed.
    assert [
        (line["description"].split(" overage")[0], line["amount"], line["quantity"])
        for line in invoice["lines"]
    ] == [
        ("API calls [region=eu]", 100, 500),
        ("API calls [region=us]", 140, 700),
    ]


async def test_late_usage_of_a_canceled_subscription_is_billed_on_an_invoice_of_its_own(
    api: Api, app: Litestar
) -> None:
    """No next invoice comes after a subscription ends, so late usage of its invoiced periods cannot ride
    on one: within the adjustment window it is billed on an invoice of its own (`usage_adjustment`), and
    usage that shrank is credited on the invoice that billed it. January is invoiced at the renewal;
    the subscription is canceled in February; then 500 calls of January arrive, then 5 are voided."""
    plan = await metered_plan(api, app)
    story = await subscribed(api, plan["price"], datetime(2026, 1, 1, tzinfo=UTC))
    customer, sub = story["customer"], story["subscription"]
    await send_calls(api, customer, plan["meter"], range(12_345))
    await advance(api, story["clock"], 2026, 2, 1)
    [january] = await invoices_of(api, customer)
    assert usage_lines(january) == [("usage", 469, 2_345)]

    await advance(api, story["clock"], 2026, 2, 10)
    await api.post(f"/v1/subscriptions/{sub}/cancel", {"at_period_end": False})
    assert (await api.get(f"/v1/subscriptions/{sub}"))["status"] == "canceled"
    assert [i["id"] for i in await invoices_of(api, customer)] == [january["id"]]  # February: no overage

    late = await send_calls(api, customer, plan["meter"], range(20_000, 20_500), time=iso(2026, 1, 20))
    assert late["accepted"] == 500
    await advance(api, story["clock"], 2026, 2, 11)
    first, adjustment = await invoices_of(api, customer)
    assert first["id"] == january["id"] and first["total"] == 469  # final, unchanged
    assert (adjustment["billing_reason"], adjustment["status"], adjustment["total"]) == (
        "usage_adjustment",
        "open",
        100,
    )
    assert usage_lines(adjustment) == [("usage", 100, 500)]  # 2,845 × 0.2¢ = 569 against 469 billed
    assert adjustment["lines"][0]["description"].startswith(
        "API calls adjustment: late usage, 12,345 → 12,845 used"
    )

    for i in range(5):  # 5 calls of January voided: 2,840 × 0.2¢ = 568, one cent less than billed
        await api.post(f"/v1/usage_events/call-{i}/void", {"source": "app", "subject": customer}, expect=200)
    await advance(api, story["clock"], 2026, 2, 12)
    notes = (await api.get("/v1/credit_notes", params={"invoice": january["id"]}))["data"]
    assert [(n["total"], n["reason"]) for n in notes] == [(1, "order_change")]
    # Nothing new arrives: the next sweep bills nothing.
    await advance(api, story["clock"], 2026, 2, 20)
    assert len(await invoices_of(api, customer)) == 2


async def test_late_usage_known_when_a_subscription_ends_goes_on_its_final_invoice(
    api: Api, app: Litestar
) -> None:
    """The final invoice is the last one of a subscription, so it carries the late usage of the periods
    before it too (as a renewal's invoice does)."""
    plan = await metered_plan(api, app)
    story = await subscribed(api, plan["price"], datetime(2026, 1, 1, tzinfo=UTC))
    customer, sub = story["customer"], story["subscription"]
    await send_calls(api, customer, plan["meter"], range(12_345))
    await advance(api, story["clock"], 2026, 2, 1)
    await advance(api, story["clock"], 2026, 2, 5)
    await send_calls(api, customer, plan["meter"], range(20_000, 20_500), time=iso(2026, 1, 20))
    await api.post(f"/v1/subscriptions/{sub}/cancel", {"at_period_end": False})
    january, final = await invoices_of(api, customer)
    assert usage_lines(january) == [("usage", 469, 2_345)]  # final, unchanged
    assert (final["billing_reason"], usage_lines(final)) == ("subscription_end", [("usage", 100, 500)])
    assert final["lines"][0]["description"].startswith("API calls adjustment: late usage")
    await advance(api, story["clock"], 2026, 2, 12)  # billed once: the sweep finds nothing more
    assert len(await invoices_of(api, customer)) == 2
