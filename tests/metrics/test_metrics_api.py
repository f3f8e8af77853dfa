"""Metrics through the public API: a month of a small SaaS on one test clock, every figure by hand.

The customers (USD) on a test clock starting 2026-02-28T12:00Z, so they are all there when March begins
(windows are half-open: a subscription starting at exactly 03-01T00:00Z would be March's new MRR):
- A: basic monthly ($9), upgraded to pro ($29) on Mar 10: expansion +$20;
- B: pro monthly ($29) without a trial: unchanged;
- C: basic yearly ($86.40 = $7.20 a month), canceled on Mar 10: churn $7.20;
- D: pro monthly with its 14-day trial, converted on Mar 15: new $29;
- E: pro monthly trial, canceled on Mar 5: a trial that ended unconverted.
"""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar

from gateway.config import Settings
from tests.conftest import Api
from tests.provisioning.helpers import manual_settings, settle

START, END = "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"


@pytest.fixture
def settings() -> Settings:
    return manual_settings()


async def subscribe(api: Api, clock: str, name: str, price: str, **extra: Any) -> dict[str, Any]:
    customer = await api.post("/v1/customers", {"name": name, "currency": "USD", "test_clock": clock})
    sub: dict[str, Any] = await api.post(
        "/v1/subscriptions", {"customer": customer["id"], "price": price, **extra}
    )
    return sub


def reasons(**lost: tuple[int, int]) -> dict[str, dict[str, int]]:
    """`churn.by_reason` with every reason at zero but those given as (customers, mrr)."""
    names = ["too_expensive", "missing_features", "switched_service", "unused", "technical_issues", "other"]
    return {
        name: dict(zip(("customers", "mrr"), lost.get(name, (0, 0)), strict=True))
        for name in [*names, "unspecified"]
    }


async def advance(api: Api, app: Litestar, clock: str, to: str) -> None:
    await api.post(f"/v1/test_clocks/{clock}/advance", {"frozen_time": to}, expect=201)
    await settle(api, app)


async def test_a_month_of_mrr_movements_churn_retention_ltv_and_trials(
    api: Api, app: Litestar, demo: Any
) -> None:
    clock = (await api.post("/v1/test_clocks", {"frozen_time": "2026-02-28T12:00:00Z"}))["id"]
    a = await subscribe(api, clock, "A", "basic_monthly")
    b = await subscribe(api, clock, "B", "pro_monthly", trial_days=0)
    c = await subscribe(api, clock, "C", "basic_yearly")
    d = await subscribe(api, clock, "D", "pro_monthly")
    e = await subscribe(api, clock, "E", "pro_monthly")
    assert d["status"] == e["status"] == "trialing"
    await settle(api, app)

    now = await api.get("/v1/metrics/mrr", params={"test_clock": clock})
    assert (now["mrr"], now["arr"], now["customers"]) == (900 + 2900 + 720, (900 + 2900 + 720) * 12, 3)
    assert [row["mrr"] for row in now["data"]] == [2900, 900, 720]
    assert now["data"][0]["customer"] == b["customer"]
    # Wall-clock customers are another world: none here.
    assert (await api.get("/v1/metrics/mrr"))["mrr"] == 0

    await advance(api, app, clock, "2026-03-05T00:00:00Z")
    await api.post(f"/v1/subscriptions/{e['id']}/cancel", {"at_period_end": False}, expect=201)
    await advance(api, app, clock, "2026-03-10T00:00:00Z")
    await api.post(f"/v1/subscriptions/{a['id']}/plan_change", {"price": "pro_monthly"}, expect=201)
    await api.post(f"/v1/subscriptions/{c['id']}/cancel", {"at_period_end": False}, expect=201)
    await advance(api, app, clock, "2026-03-15T00:00:00Z")  # D's trial ends: it becomes paid
    await advance(api, app, clock, END)  # renewals change nothing

    month = await api.get("/v1/metrics", params={"test_clock": clock, "start": START, "end": END})
    assert month["mrr"] == {"start": 4520, "end": 8700}
    assert month["arr"] == 8700 * 12
    assert month["customers"] == {"start": 3, "end": 3, "churned": 1}
    assert month["movements"] == {
        "view": "net",
        "new": {"amount": 2900, "count": 1, "customers": 1},
        "expansion": {"amount": 2000, "count": 1, "customers": 1},
        "contraction": {"amount": 0, "count": 0, "customers": 0},
        "churn": {"amount": 720, "count": 1, "customers": 1},
        "reactivation": {"amount": 0, "count": 0, "customers": 0},
        "net_new": 8700 - 4520,
    }
    # 720 / 4520; (720 - 2000) / 4520; 1 of 3 customers.
    assert month["churn"] == {
        "computed_from": "net_movements",
        "gross_revenue": "0.1593",
        "net_revenue": "-0.2832",
        "customer": "0.3333",
        # C canceled through the API without saying why.
        "by_reason": reasons(unspecified=(1, 720)),
    }
    # Cohort A, B, C: (4520 - 720 + 2000) / 4520 and (4520 - 720) / 4520; D is new, so not in it.
    assert month["retention"] == {"net": "1.2832", "gross": "0.8407"}
    assert month["arpa"] == 2900  # 8700 / 3
    assert month["ltv"] == 8700  # 2900 / (1/3)
    assert month["trials"] == {"converted": 1, "ended": 2, "conversion": "0.5000"}

    # The default window is the month up to the clock's now; the answer is the same here.
    assert (await api.get("/v1/metrics", params={"test_clock": clock}))["mrr"] == month["mrr"]
    # Looking back: MRR at an instant in the middle of the month.
    mid = await api.get("/v1/metrics/mrr", params={"test_clock": clock, "at": "2026-03-12T00:00:00Z"})
    assert mid["mrr"] == 2900 + 2900  # A upgraded, B; C canceled, D still trialing


async def test_a_lost_customer_who_comes_back_is_a_reactivation(api: Api, app: Litestar, demo: Any) -> None:
    clock = (await api.post("/v1/test_clocks", {"frozen_time": "2026-01-01T00:00:00Z"}))["id"]
    sub = await subscribe(api, clock, "Back", "basic_monthly")
    await settle(api, app)
    await advance(api, app, clock, "2026-01-20T00:00:00Z")
    await api.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": False}, expect=201)
    await advance(api, app, clock, "2026-03-05T00:00:00Z")
    await api.post("/v1/subscriptions", {"customer": sub["customer"], "price": "basic_monthly"})
    await settle(api, app)
    march = await api.get("/v1/metrics", params={"test_clock": clock, "start": START, "end": END})
    assert march["movements"]["reactivation"] == {"amount": 900, "count": 1, "customers": 1}
    assert march["movements"]["new"]["amount"] == 0
    # Nobody at the start: every rate over the start is undefined, not zero.
    assert march["churn"] == {
        "computed_from": "net_movements",
        "gross_revenue": None,
        "net_revenue": None,
        "customer": None,
        "by_reason": reasons(),
    }
    assert march["retention"] == {"net": None, "gross": None} and march["ltv"] is None


async def test_recurring_discounts_lower_mrr_and_once_only_coupons_do_not(
    api: Api, app: Litestar, demo: Any
) -> None:
    await api.post("/v1/coupons", {"id": "HALF", "percent_off": 50, "duration": "forever"})
    await api.post("/v1/coupons", {"id": "FIRST", "percent_off": 50, "duration": "once"})
    clock = (await api.post("/v1/test_clocks", {"frozen_time": START}))["id"]
    await subscribe(api, clock, "Half", "basic_monthly", coupon="HALF")
    await subscribe(api, clock, "First", "basic_monthly", coupon="FIRST")
    await settle(api, app)
    assert (await api.get("/v1/metrics/mrr", params={"test_clock": clock}))["mrr"] == 450 + 900


@pytest.mark.parametrize("settings", [manual_settings(metrics_mrr_subtract_discounts=False)])
async def test_mrr_before_discounts_is_a_setting(
    api: Api, app: Litestar, demo: Any, settings: Settings
) -> None:
    await api.post("/v1/coupons", {"id": "HALF", "percent_off": 50, "duration": "forever"})
    clock = (await api.post("/v1/test_clocks", {"frozen_time": START}))["id"]
    await subscribe(api, clock, "Half", "basic_monthly", coupon="HALF")
    # The default window ends at the clock's now, exclusive: look an hour after the subscription.
    await advance(api, app, clock, "2026-03-01T01:00:00Z")
    summary = await api.get("/v1/metrics", params={"test_clock": clock})
    assert summary["mrr"]["end"] == 900 and summary["mrr_subtracts_discounts"] is False


async def test_bad_requests_are_4xx_and_tenant_keys_are_refused(api: Api, demo: Any) -> None:
    assert (await api.get("/v1/metrics", params={"currency": "XXQ"}, expect=422))["field"] == "currency"
    await api.get("/v1/metrics", params={"start": "yesterday"}, expect=422)
    await api.get("/v1/metrics", params={"start": END, "end": START}, expect=422)
    # Dates at the ends of the calendar are refused, not overflowed (found by the OpenAPI fuzzing).
    await api.get("/v1/metrics", params={"end": "0001-01-05T00:00:00Z"}, expect=422)
    await api.get("/v1/metrics/cohorts", params={"start": "9999-12-01T00:00:00Z", "months": 36}, expect=422)
    await api.get("/v1/metrics/mrr", params={"at": "0001-01-01T00:00:00+14:00"}, expect=422)
    assert (await api.get("/v1/metrics", params={"test_clock": "clock_nope"}, expect=404))["code"] == (
        "test_clock_not_found"
    )
    customer = (await api.post("/v1/customers", {"name": "T", "currency": "USD"}))["id"]
    key = api.as_key(
        (await api.post("/v1/api_keys", {"name": "k", "scopes": ["metrics:read"], "customer": customer}))[
            "secret"
        ]
    )
    assert (await key.get("/v1/metrics", expect=403))["code"] == "platform_key_required"
    assert (await api.get("/v1/metrics", params={"currency": "eur"}))["currency"] == "EUR"


async def test_monthly_cohorts_follow_who_still_pays(api: Api, app: Litestar, demo: Any) -> None:
    clock = (await api.post("/v1/test_clocks", {"frozen_time": "2026-01-01T00:00:00Z"}))["id"]
    a = await subscribe(api, clock, "A", "basic_monthly")
    await subscribe(api, clock, "B", "pro_monthly", trial_days=0)
    await settle(api, app)
    await advance(api, app, clock, "2026-02-10T00:00:00Z")
    await subscribe(api, clock, "C", "basic_monthly")
    await advance(api, app, clock, "2026-03-05T00:00:00Z")
    await api.post(f"/v1/subscriptions/{a['id']}/cancel", {"at_period_end": False}, expect=201)
    await advance(api, app, clock, "2026-03-20T00:00:00Z")

    cohorts = await api.get(
        "/v1/metrics/cohorts", params={"test_clock": clock, "start": "2026-01-01T00:00:00Z", "months": 3}
    )
    assert [(row["cohort"][:7], row["customers"]) for row in cohorts["data"]] == [
        ("2026-01", 2),
        ("2026-02", 1),
        ("2026-03", 0),
    ]
    january, february, march = cohorts["data"]
    # End of January, end of February, and March so far (A left on Mar 5).
    assert [(p["customers"], p["mrr"]) for p in january["periods"]] == [(2, 3800), (2, 3800), (1, 2900)]
    assert [(p["customers"], p["mrr"]) for p in february["periods"]] == [(1, 900), (1, 900)]
    assert [(p["customers"], p["mrr"]) for p in march["periods"]] == [(0, 0)]
    await api.get("/v1/metrics/cohorts", params={"months": 0}, expect=422)


# --- one boundary rule: half-open windows [start, end) -----------------------------------------------


async def test_a_month_owns_its_first_instant_for_movements_trials_and_cohorts(
    api: Api, app: Litestar, demo: Any
) -> None:
    clock = (await api.post("/v1/test_clocks", {"frozen_time": "2027-02-14T00:00:00Z"}))["id"]
    # T's trial ends at exactly 2027-03-01T00:00Z; S starts paying at exactly that instant.
    trial = await subscribe(api, clock, "T", "pro_monthly", trial_days=15)
    assert trial["trial_end"] == "2027-03-01T00:00:00Z"
    await advance(api, app, clock, "2027-03-01T00:00:00Z")
    await subscribe(api, clock, "S", "basic_monthly", trial_days=0)
    await advance(api, app, clock, "2027-03-15T00:00:00Z")

    window = {"test_clock": clock}
    february = await api.get(
        "/v1/metrics", params={**window, "start": "2027-02-01T00:00:00Z", "end": "2027-03-01T00:00:00Z"}
    )
    assert february["mrr"] == {"start": 0, "end": 0}
    assert february["movements"]["new"] == {"amount": 0, "count": 0, "customers": 0}
    assert february["trials"] == {"converted": 0, "ended": 0, "conversion": None}

    march = await api.get(
        "/v1/metrics", params={**window, "start": "2027-03-01T00:00:00Z", "end": "2027-04-01T00:00:00Z"}
    )
    assert march["mrr"] == {"start": 0, "end": 2900 + 900}
    assert march["movements"]["new"] == {"amount": 3800, "count": 2, "customers": 2}
    assert march["trials"] == {"converted": 1, "ended": 1, "conversion": "1.0000"}

    cohorts = await api.get(
        "/v1/metrics/cohorts", params={**window, "start": "2027-02-01T00:00:00Z", "months": 2}
    )
    assert [(row["cohort"][:7], row["customers"]) for row in cohorts["data"]] == [
        ("2027-02", 0),
        ("2027-03", 2),
    ]
    # February's end is its last instant: the two who start paying on March 1st are not in it.
    assert [(p["customers"], p["mrr"]) for p in cohorts["data"][0]["periods"]] == [(0, 0), (0, 0)]


async def test_movements_each_shows_what_the_net_view_hides(api: Api, app: Litestar, demo: Any) -> None:
    clock = (await api.post("/v1/test_clocks", {"frozen_time": "2027-02-20T00:00:00Z"}))["id"]
    swing = await subscribe(api, clock, "Swing", "basic_monthly", trial_days=0)
    back = await subscribe(api, clock, "Back", "basic_monthly", trial_days=0)
    await advance(api, app, clock, "2027-03-05T00:00:00Z")
    await api.post(f"/v1/subscriptions/{swing['id']}/plan_change", {"price": "pro_monthly"}, expect=201)
    await advance(api, app, clock, "2027-03-10T00:00:00Z")
    await api.post(
        f"/v1/subscriptions/{swing['id']}/plan_change",
        {"price": "basic_monthly", "timing": "now"},
        expect=201,
    )
    await advance(api, app, clock, "2027-03-12T00:00:00Z")
    await api.post(f"/v1/subscriptions/{back['id']}/cancel", {"at_period_end": False}, expect=201)
    await advance(api, app, clock, "2027-03-20T00:00:00Z")
    await api.post(
        "/v1/subscriptions", {"customer": back["customer"], "price": "basic_monthly", "trial_days": 0}
    )
    await advance(api, app, clock, "2027-04-01T00:00:00Z")

    window = {"test_clock": clock, "start": "2027-03-01T00:00:00Z", "end": "2027-04-01T00:00:00Z"}
    zero = {"amount": 0, "count": 0, "customers": 0}
    net = await api.get("/v1/metrics", params=window)
    assert net["mrr"] == {"start": 1800, "end": 1800}
    assert net["movements"] == {
        "view": "net",
        **{kind: zero for kind in ("new", "expansion", "contraction", "churn", "reactivation")},
        "net_new": 0,
    }
    assert net["churn"] == {
        "computed_from": "net_movements",
        "gross_revenue": "0.0000",
        "net_revenue": "0.0000",
        "customer": "0.0000",
        "by_reason": reasons(),
    }
    each = await api.get("/v1/metrics", params={**window, "movements": "each"})
    assert each["mrr"] == net["mrr"]
    assert each["movements"] == {
        "view": "each",
        "new": zero,
        "expansion": {"amount": 2000, "count": 1, "customers": 1},
        "contraction": {"amount": 2000, "count": 1, "customers": 1},
        "churn": {"amount": 900, "count": 1, "customers": 1},
        "reactivation": {"amount": 900, "count": 1, "customers": 1},
        "net_new": 0,
    }
    # Gross: (900 + 2000) / 1800; net: (2900 - 2900) / 1800; customer churn compares the ends: 0 of 2.
    assert each["churn"] == {
        "computed_from": "each_movements",
        "gross_revenue": "1.6111",
        "net_revenue": "0.0000",
        "customer": "0.0000",
        "by_reason": reasons(),
    }
    await api.get("/v1/metrics", params={**window, "movements": "gross"}, expect=422)


async def test_churn_by_reason_counts_each_lost_customer_once_with_the_mrr_it_had(
    api: Api, app: Litestar, demo: Any
) -> None:
    """Three customers leave in March, two saying why (one at the period end, one at once), one of them
    after taking back an earlier cancellation; the reasons are in the canceled event too."""
    clock = (await api.post("/v1/test_clocks", {"frozen_time": "2026-02-28T12:00:00Z"}))["id"]
    a = await subscribe(api, clock, "A", "basic_monthly")  # $9: leaves at its period end, too expensive
    b = await subscribe(api, clock, "B", "pro_monthly", trial_days=0)  # $29: leaves at once, switched
    c = await subscribe(api, clock, "C", "basic_monthly")  # $9: leaves without a reason
    await subscribe(api, clock, "D", "pro_monthly", trial_days=0)  # stays
    await settle(api, app)
    await advance(api, app, clock, "2026-03-05T00:00:00Z")
    first = await api.post(
        f"/v1/subscriptions/{a['id']}/cancel", {"feedback": "unused", "comment": "on holiday"}
    )
    assert first["cancellation_details"] == {"reason": None, "feedback": "unused", "comment": "on holiday"}
    undone = await api.post(f"/v1/subscriptions/{a['id']}/undo_cancel")
    assert undone["cancellation_details"] is None
    again = await api.post(
        f"/v1/subscriptions/{a['id']}/cancel",
        {"feedback": "too_expensive", "comment": "half the price, please"},
    )
    assert (again["cancel_at_period_end"], again["cancel_at"]) == (True, "2026-03-28T12:00:00Z")
    gone = await api.post(
        f"/v1/subscriptions/{b['id']}/cancel", {"at_period_end": False, "feedback": "switched_service"}
    )
    assert gone["status"] == "canceled"
    assert gone["cancellation_details"] == {"reason": None, "feedback": "switched_service", "comment": None}
    await api.post(
        f"/v1/subscriptions/{c['id']}/cancel", {"at_period_end": False, "reason": "support ticket 7"}
    )
    await advance(api, app, clock, END)

    month = await api.get("/v1/metrics", params={"test_clock": clock, "start": START, "end": END})
    assert month["customers"] == {"start": 4, "end": 1, "churned": 3}
    assert month["churn"]["by_reason"] == reasons(
        too_expensive=(1, 900), switched_service=(1, 2900), unspecified=(1, 900)
    )
    # The subscription resource keeps the answer after the end, and the event carries it.
    ended = await api.get(f"/v1/subscriptions/{a['id']}")
    assert (ended["status"], ended["cancellation_details"]) == (
        "canceled",
        {"reason": None, "feedback": "too_expensive", "comment": "half the price, please"},
    )
    events = await api.get("/v1/events", params={"type": "subscription.canceled", "limit": 10})
    details = {e["data"]["subscription"]["id"]: e["data"]["cancellation_details"] for e in events["data"]}
    assert details == {
        a["id"]: {"reason": None, "feedback": "too_expensive", "comment": "half the price, please"},
        b["id"]: {"reason": None, "feedback": "switched_service", "comment": None},
        c["id"]: {"reason": "support ticket 7", "feedback": None, "comment": None},
    }


async def test_an_unknown_reason_or_a_long_comment_is_refused_and_changes_nothing(
    api: Api, app: Litestar, demo: Any
) -> None:
    customer = await api.post("/v1/customers", {"name": "Picky", "currency": "USD"})
    sub = await api.post("/v1/subscriptions", {"customer": customer["id"], "price": "basic_monthly"})
    path = f"/v1/subscriptions/{sub['id']}/cancel"
    bad = await api.post(path, {"feedback": "bored"}, expect=422)
    assert bad["field"] == "feedback"
    long = await api.post(path, {"feedback": "other", "comment": "x" * 501}, expect=422)
    assert long["field"] == "comment"
    after = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert (after["cancel_at_period_end"], after["cancellation_details"], after["version"]) == (
        False,
        None,
        sub["version"],
    )
