"""Metered allowances into the gateway and onto the invoice, on a test clock, through the HTTP API,
with exact amounts: overage beyond the included units, threshold alerts once per period, hard limits,
prepaid usage credits drawn before overage and expiring."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Litestar

from tests.conftest import Api
from tests.metering.story_helpers import (
    advance,
    consume,
    invoices_of,
    iso,
    metered_plan,
    reconcile,
    subscribed,
    usage_lines,
)


async def threshold_events(api: Api, customer: str) -> list[dict[str, Any]]:
    page = await api.get("/v1/events", params={"limit": 100, "type": "usage.threshold_reached"})
    return [
        e
        for e in page["data"]
        if e["type"] == "usage.threshold_reached" and e["data"]["customer"] == customer
    ]


async def test_12345_calls_with_10000_included_bill_one_overage_line_of_4_69(api: Api, app: Litestar) -> None:
    plan = await metered_plan(api, app)
    story = await subscribed(api, plan["price"], datetime(2026, 1, 1, tzinfo=UTC))
    assert await invoices_of(api, story["customer"]) == []  # a usage-only price bills nothing in advance

    answer = await consume(api, story["customer"], plan["feature"], 12_345)
    # A soft limit admits the overage and says so.
    assert (answer["allowed"], answer["used"], answer["limit"], answer["overage"]) == (
        True,
        12_345,
        10_000,
        2_345,
    )
    await reconcile(api, story["customer"])
    await advance(api, story["clock"], 2026, 2, 1)

    [invoice] = await invoices_of(api, story["customer"])
    # 2,345 × $0.002 = $4.69 exactly: one line, the quantity shown is the overage.
    assert usage_lines(invoice) == [("usage", 469, 2_345)]
    line = invoice["lines"][0]
    assert line["description"].startswith("API calls overage: 2,345 units (12,345 used, 10,000 included)")
    assert (line["period_start"][:10], line["period_end"][:10]) == ("2026-01-01", "2026-02-01")
    assert invoice["total"] == 469


async def test_threshold_alerts_fire_once_per_threshold_per_period(api: Api, app: Litestar) -> None:
    plan = await metered_plan(api, app)
    story = await subscribed(api, plan["price"], datetime(2026, 1, 1, tzinfo=UTC))
    customer, feature = story["customer"], plan["feature"]

    await consume(api, customer, feature, 7_999)
    assert (await reconcile(api, customer))["alerts"] == []
    await consume(api, customer, feature, 1)  # exactly 80 %
    ran = await reconcile(api, customer)
    assert ran["alerts"] == [{"customer": customer, "feature": feature, "thresholds": [80]}]
    assert (await reconcile(api, customer))["alerts"] == []  # the same crossing: nothing again
    await consume(api, customer, feature, 2_500)  # past 100 %
    assert (await reconcile(api, customer))["alerts"] == [
        {"customer": customer, "feature": feature, "thresholds": [100]}
    ]
    await consume(api, customer, feature, 5_000)
    assert (await reconcile(api, customer))["alerts"] == []

    events = await threshold_events(api, customer)
    assert sorted((e["data"]["threshold"], e["data"]["used"], e["data"]["allowance"]) for e in events) == [
        (80, 8_000, 10_000),
        (100, 10_500, 10_000),
    ]
    first = min(events, key=lambda e: e["data"]["threshold"])["data"]
    assert (first["customer_id"], first["feature"], first["used"], first["limit"], first["percent"]) == (
        customer,
        feature,
        8_000,
        10_000,
        80,
    )
    assert first["period_end"] == "2026-02-01T00:00:00Z"
    # A new period is a new crossing.
    await advance(api, story["clock"], 2026, 2, 1)
    await consume(api, customer, feature, 9_000)
    assert (await reconcile(api, customer))["alerts"] == [
        {"customer": customer, "feature": feature, "thresholds": [80]}
    ]
    assert len(await threshold_events(api, customer)) == 3


async def test_custom_thresholds_on_the_feature(api: Api, app: Litestar) -> None:
    plan = await metered_plan(api, app, thresholds=[50, 90, 150])
    story = await subscribed(api, plan["price"], datetime(2026, 1, 1, tzinfo=UTC))
    await consume(api, story["customer"], plan["feature"], 15_000)
    ran = await reconcile(api, story["customer"])
    assert ran["alerts"][0]["thresholds"] == [50, 90, 150]


async def test_a_hard_limit_denies_with_quota_exceeded_and_usage_credits_raise_it(
    api: Api, app: Litestar
) -> None:
    plan = await metered_plan(api, app, soft=False)
    story = await subscribed(api, plan["price"], datetime(2026, 1, 1, tzinfo=UTC))
    customer, feature = story["customer"], plan["feature"]
    assert (await consume(api, customer, feature, 10_000))["remaining"] == 0
    denied = await consume(api, customer, feature, 1)
    assert (denied["allowed"], denied["reason"], denied["used"]) == (False, "quota_exceeded", 10_000)

    credit = await api.post(
        f"/v1/customers/{customer}/usage_credits",
        {"feature": feature, "units": 100, "expires_at": iso(2026, 6, 1)},
    )
    assert (credit["units"], credit["remaining"], credit["effective_at"][:10]) == (100, 100, "2026-01-01")
    await reconcile(api, customer)
    allowed = await consume(api, customer, feature, 100)
    assert (allowed["allowed"], allowed["limit"], allowed["used"], allowed["remaining"]) == (
        True,
        10_100,
        10_100,
        0,
    )
    denied = await consume(api, customer, feature, 1)
    assert (denied["allowed"], denied["reason"]) == (False, "quota_exceeded")

    snapshot = await api.get(f"/v1/entitlements/{customer}")
    calls = next(f for f in snapshot["features"] if f["feature"] == feature)
    assert (calls["limit"], calls["included"], calls["credits"], calls["used"], calls["remaining"]) == (
        10_100,
        10_000,
        100,
        10_100,
        0,
    )
    assert calls["meter"] == plan["meter"]


async def test_prepaid_credits_are_drawn_before_overage_and_expire(api: Api, app: Litestar) -> None:
    plan = await metered_plan(api, app)
    story = await subscribed(api, plan["price"], datetime(2026, 1, 1, tzinfo=UTC))
    customer, feature = story["customer"], plan["feature"]
    await api.post(
        f"/v1/customers/{customer}/usage_credits",
        {"feature": feature, "units": 5_000, "expires_at": iso(2026, 2, 15), "description": "Prepaid pack"},
    )
    await consume(api, customer, feature, 12_345)
    await reconcile(api, customer)
    await advance(api, story["clock"], 2026, 2, 1)
    # 2,345 beyond the included 10,000, all covered by the credit: nothing is due, so no invoice.
    assert await invoices_of(api, customer) == []
    credits = (await api.get(f"/v1/customers/{customer}/usage_credits"))["data"]
    assert [(c["units"], c["remaining"]) for c in credits] == [(5_000, 2_655)]

    # February: the credit expires mid-period, so it covers none of February's 11,000 calls.
    await consume(api, customer, feature, 11_000)
    await reconcile(api, customer)
    await advance(api, story["clock"], 2026, 3, 1)
    [february] = await invoices_of(api, customer)
    assert usage_lines(february) == [("usage", 200, 1_000)]  # 1,000 × $0.002


async def test_graduated_overage_uses_the_catalog_tiers(api: Api, app: Litestar) -> None:
    tiers = [{"up_to": 1_000, "unit_amount_decimal": "0.5"}, {"up_to": None, "unit_amount_decimal": "0.1"}]
    plan = await metered_plan(api, app, model="graduated", amounts={"USD": {"tiers": tiers}})
    story = await subscribed(api, plan["price"], datetime(2026, 1, 1, tzinfo=UTC))
    await consume(api, story["customer"], plan["feature"], 12_345)
    await reconcile(api, story["customer"])
    await advance(api, story["clock"], 2026, 2, 1)
    [invoice] = await invoices_of(api, story["customer"])
    # Overage 2,345: 1,000 × 0.5¢ + 1,345 × 0.1¢ = 500 + 134.5 = 634.5¢ → $6.35 (rounded once, half up).
    assert usage_lines(invoice) == [("usage", 635, 2_345)]


async def test_drift_report_shows_what_the_hot_path_missed(api: Api, app: Litestar) -> None:
    plan = await metered_plan(api, app)
    story = await subscribed(api, plan["price"], datetime(2026, 1, 1, tzinfo=UTC))
    customer, feature = story["customer"], plan["feature"]
    await consume(api, customer, feature, 300)
    await reconcile(api, customer)
    # The counter loses its units (a Redis flush): reconciliation puts them back and reports the drift.
    quotas = app.state.engine.quotas
    period = (await api.get(f"/v1/entitlements/{customer}"))["current_period_start"]
    lost = await quotas.usage(customer, feature, datetime.fromisoformat(period))
    await _wipe_counter(app, customer, feature, datetime.fromisoformat(period))
    report = await reconcile(api, customer)
    [row] = [r for r in report["data"] if r["feature"] == feature]
    assert (row["used"], row["consumed"], row["drift"]) == (300, 300, lost)
    assert (await consume(api, customer, feature, 1))["used"] == 301  # the counter was topped up
    drifting = await api.get("/v1/usage_reconciliation", params={"customer": customer, "drift_only": "true"})
    assert [r["drift"] for r in drifting["data"]] == [300]


async def _wipe_counter(app: Litestar, customer: str, feature: str, period_start: datetime) -> None:
    """What a Redis flush or an embedded restart does to one counter."""
    store = app.state.engine.quotas
    inner = getattr(store, "inner", store)
    redis = getattr(inner, "_redis", None)
    if redis is not None:
        pattern = f"{inner._prefix}:{{{customer}}}:m:{feature}:{int(period_start.timestamp())}"
        assert await redis.delete(pattern) == 1
    else:
        assert inner._periods.pop((customer, feature), None) is not None


async def test_checks_consumed_after_the_last_reconciliation_are_billed_on_the_next_invoice(
    api: Api, app: Litestar
) -> None:
    plan = await metered_plan(api, app)
    story = await subscribed(api, plan["price"], datetime(2026, 1, 1, tzinfo=UTC))
    customer, feature = story["customer"], plan["feature"]
    await consume(api, customer, feature, 12_000)
    await reconcile(api, customer)
    await consume(api, customer, feature, 345)  # minutes before the period ends: not reconciled yet
    await advance(api, story["clock"], 2026, 2, 1)
    [january] = await invoices_of(api, customer)
    assert usage_lines(january) == [("usage", 400, 2_000)]
    await reconcile(api, customer)  # folds January's last counter reading into January
    await advance(api, story["clock"], 2026, 3, 1)
    _, february = await invoices_of(api, customer)
    assert usage_lines(february) == [("usage", 69, 345)]  # 345 × 0.2¢, an adjustment for January
    assert february["lines"][0]["period_start"][:10] == "2026-01-01"


async def test_the_billing_run_batch_bills_overage_and_draws_credits(api: Api, app: Litestar) -> None:
    """The worker's billing run (batched inserts, deferred flushes) bills metered prices like a test
    clock does: two customers on the wall clock, one with a usage credit."""
    from gateway.billing.run import billing_run
    from gateway.billing.wiring import BillingConfig

    plan = await metered_plan(api, app)
    clock = app.state.clock
    start = clock.now()
    customers = []
    for _ in range(2):
        customer = (await api.post("/v1/customers", {"name": "Wall Co", "currency": "USD"}))["id"]
        await api.post("/v1/subscriptions", {"customer": customer, "price": plan["price"]})
        customers.append(customer)
    await api.post(
        f"/v1/customers/{customers[1]}/usage_credits", {"feature": plan["feature"], "units": 1_000}
    )
    from tests.entitlements.test_check_api import synced

    await synced(api)
    for customer in customers:
        await consume(api, customer, plan["feature"], 12_345)
        await reconcile(api, customer)
    sub = (await api.get("/v1/subscriptions", params={"customer": customers[0]}))["data"][0]
    end = datetime.fromisoformat(sub["current_period_end"])
    assert end > start
    result = await billing_run(app.state.db, type(clock)(end), BillingConfig(), batch_size=10)
    assert result.steps >= 2
    lines = [usage_lines((await invoices_of(api, c))[0]) for c in customers]
    # 2,345 over → $4.69; with 1,000 prepaid units, 1,345 over → $2.69.
    assert lines == [[("usage", 469, 2_345)], [("usage", 269, 1_345)]]
    credits = (await api.get(f"/v1/customers/{customers[1]}/usage_credits"))["data"]
    assert [c["remaining"] for c in credits] == [0]
