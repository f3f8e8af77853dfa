"""Business stories on a test clock, through the public API, asserting exact dates and states.

Each story attaches a fresh customer to a test clock, subscribes it to the demo catalog, and moves the
clock; the subscription's periods follow billing-rules.md rules 1–4 and 15.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.conftest import Api


def iso(*args: int) -> str:
    return datetime(*args, tzinfo=UTC).isoformat().replace("+00:00", "Z")


def day(value: str) -> str:
    return value[:10]


async def on_clock(api: Api, start: datetime, **customer: Any) -> tuple[str, str]:
    clock = await api.post("/v1/test_clocks", {"frozen_time": start.isoformat(), "name": "story"})
    body = {"name": "Story Co", "currency": "USD", "test_clock": clock["id"], **customer}
    created = await api.post("/v1/customers", body)
    return clock["id"], created["id"]


async def advance(api: Api, clock_id: str, *to: int) -> dict[str, Any]:
    result: dict[str, Any] = await api.post(
        f"/v1/test_clocks/{clock_id}/advance", {"frozen_time": iso(*to)}, expect=201
    )
    return result


async def events_of(api: Api, subscription_id: str) -> list[str]:
    page = await api.get("/v1/events", params={"aggregate": subscription_id, "limit": 100})
    return [e["type"] for e in page["data"]]


async def test_jan_31_anchor_clamps_then_recovers_for_five_months(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2026, 1, 31, 9, 0, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    assert sub["status"] == "active"
    assert (day(sub["current_period_start"]), day(sub["current_period_end"])) == ("2026-01-31", "2026-02-28")

    seen = []
    for month, last_day in [(2, 28), (3, 31), (4, 30), (5, 31), (6, 30)]:
        await advance(api, clock, 2026, month, last_day, 9, 0)
        sub = await api.get(f"/v1/subscriptions/{sub['id']}")
        seen.append((day(sub["current_period_start"]), day(sub["current_period_end"])))
    assert seen == [
        ("2026-02-28", "2026-03-31"),
        ("2026-03-31", "2026-04-30"),
        ("2026-04-30", "2026-05-31"),
        ("2026-05-31", "2026-06-30"),
        ("2026-06-30", "2026-07-31"),
    ]
    assert sub["billing_cycle_anchor"].startswith("2026-01-31T09:00:00")
    assert (await events_of(api, sub["id"])).count("subscription.renewed") == 5


async def test_leap_year_and_jan_30_anchor(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2028, 1, 30, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    await advance(api, clock, 2028, 3, 1)
    sub = await api.get(f"/v1/subscriptions/{sub['id']}")
    # Jan 30 → Feb 29 (leap year) → Mar 30
    assert (day(sub["current_period_start"]), day(sub["current_period_end"])) == ("2028-02-29", "2028-03-30")


async def test_fourteen_day_trial_converts(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    sub = await api.post(
        "/v1/subscriptions", {"customer": customer, "price": "pro_monthly", "trial_days": 14}
    )
    assert sub["status"] == "trialing"
    assert sub["trial_end"].startswith("2026-03-24T12:00:00")
    assert day(sub["current_period_end"]) == "2026-03-24"

    await advance(api, clock, 2026, 3, 21, 12, 0)  # 3 days before the end
    assert "subscription.trial_will_end" in await events_of(api, sub["id"])
    sub = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert sub["status"] == "trialing"

    await advance(api, clock, 2026, 3, 24, 12, 0)
    sub = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert sub["status"] == "active"
    # The first paid period starts at trial end and the anchor moves there (rule 15).
    assert sub["billing_cycle_anchor"].startswith("2026-03-24T12:00:00")
    assert (day(sub["current_period_start"]), day(sub["current_period_end"])) == ("2026-03-24", "2026-04-24")
    types = await events_of(api, sub["id"])
    assert types.index("subscription.trial_will_end") < types.index("subscription.trial_ended")


async def test_trial_without_payment_method_can_expire_or_pause(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2026, 3, 1, tzinfo=UTC))
    sub = await api.post(
        "/v1/subscriptions",
        {"customer": customer, "price": "pro_monthly", "trial_days": 7, "trial_end_behavior": "cancel"},
    )
    await advance(api, clock, 2026, 3, 8)
    sub = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert sub["status"] == "expired"
    assert sub["ended_at"].startswith("2026-03-08")

    # One trial per customer per product (rule 17): asking for a second one is refused.
    problem = await api.post(
        "/v1/subscriptions", {"customer": customer, "price": "pro_monthly", "trial_days": 7}, expect=409
    )
    assert problem["code"] == "trial_already_used"
    # The plan's default trial is silently not given again.
    again = await api.post("/v1/subscriptions", {"customer": customer, "price": "pro_monthly"})
    assert again["status"] == "active" and again["trial_end"] is None


async def test_upgrade_now_and_downgrade_at_period_end(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2026, 4, 1, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    basic_plan = sub["plan"]

    await advance(api, clock, 2026, 4, 11)
    up = await api.post(f"/v1/subscriptions/{sub['id']}/plan_change", {"price": "pro_monthly"})
    pro = await api.get("/v1/plans/pro")
    assert up["plan"] == pro["id"] and up["scheduled_change"] is None
    # An upgrade keeps the period (billing prorates it); the anchor does not move.
    assert (day(up["current_period_start"]), day(up["current_period_end"])) == ("2026-04-01", "2026-05-01")
    assert "subscription.plan_changed" in await events_of(api, sub["id"])

    down = await api.post(f"/v1/subscriptions/{sub['id']}/plan_change", {"price": "basic_monthly"})
    assert down["plan"] == pro["id"], "a downgrade waits for the period end by default"
    assert down["scheduled_change"]["effective_at"].startswith("2026-05-01")

    await advance(api, clock, 2026, 4, 30)
    assert (await api.get(f"/v1/subscriptions/{sub['id']}"))["plan"] == pro["id"]
    await advance(api, clock, 2026, 5, 1)
    after = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert after["plan"] == basic_plan and after["scheduled_change"] is None
    assert (day(after["current_period_start"]), day(after["current_period_end"])) == (
        "2026-05-01",
        "2026-06-01",
    )

    # Both defaults can be overridden: a downgrade now.
    now = await api.post(f"/v1/subscriptions/{sub['id']}/plan_change", {"price": "pro_monthly"})
    assert now["plan"] == pro["id"]
    down_now = await api.post(
        f"/v1/subscriptions/{sub['id']}/plan_change", {"price": "basic_monthly", "timing": "now"}
    )
    assert down_now["plan"] == basic_plan


async def test_interval_change_resets_anchor(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2026, 2, 10, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "pro_monthly", "trial_days": 0})
    await advance(api, clock, 2026, 2, 20)
    yearly = await api.post(f"/v1/subscriptions/{sub['id']}/plan_change", {"price": "pro_yearly"})
    assert yearly["interval"] == "year"
    assert (day(yearly["current_period_start"]), day(yearly["current_period_end"])) == (
        "2026-02-20",
        "2027-02-20",
    )


async def test_pause_and_resume(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2026, 5, 5, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    await advance(api, clock, 2026, 5, 20)
    paused = await api.post(f"/v1/subscriptions/{sub['id']}/pause", {})
    assert paused["status"] == "paused" and paused["paused_at"].startswith("2026-05-20")

    # Time stands still for a paused subscription: no renewal on Jun 5.
    await advance(api, clock, 2026, 6, 15)
    still = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert still["status"] == "paused" and day(still["current_period_end"]) == "2026-06-05"
    assert "subscription.renewed" not in await events_of(api, sub["id"])

    resumed = await api.post(f"/v1/subscriptions/{sub['id']}/resume", {})
    assert resumed["status"] == "active"
    assert (day(resumed["current_period_start"]), day(resumed["current_period_end"])) == (
        "2026-06-15",
        "2026-07-15",
    )

    # Pausing twice, or resuming an active subscription, is a state conflict.
    problem = await api.post(f"/v1/subscriptions/{sub['id']}/resume", {}, expect=409)
    assert problem["code"] == "invalid_transition"


async def test_pause_until_date_resumes_by_itself_keeping_anchor_if_asked(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2026, 1, 10, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    await api.post(f"/v1/subscriptions/{sub['id']}/pause", {"resumes_at": iso(2026, 3, 1)})
    await advance(api, clock, 2026, 3, 2)
    sub2 = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert sub2["status"] == "active"
    assert (day(sub2["current_period_start"]), day(sub2["current_period_end"])) == (
        "2026-03-01",
        "2026-04-01",
    )

    # Resume keeping the anchor: the period that contains the resume, on the original anchor day.
    await api.post(f"/v1/subscriptions/{sub['id']}/pause", {})
    await advance(api, clock, 2026, 5, 20)
    kept = await api.post(f"/v1/subscriptions/{sub['id']}/resume", {"billing_cycle_anchor": "unchanged"})
    assert (day(kept["current_period_start"]), day(kept["current_period_end"])) == (
        "2026-05-01",
        "2026-06-01",
    )


async def test_cancel_at_period_end_then_undo_then_cancel_for_real(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2026, 7, 15, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    await advance(api, clock, 2026, 7, 20)
    scheduled = await api.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": True})
    assert scheduled["status"] == "active" and scheduled["cancel_at_period_end"] is True
    assert scheduled["cancel_at"].startswith("2026-08-15")

    undone = await api.post(f"/v1/subscriptions/{sub['id']}/undo_cancel")
    assert undone["cancel_at_period_end"] is False and undone["cancel_at"] is None
    await advance(api, clock, 2026, 8, 16)
    renewed = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert renewed["status"] == "active" and day(renewed["current_period_end"]) == "2026-09-15"

    await api.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": True})
    await advance(api, clock, 2026, 9, 15)
    ended = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert ended["status"] == "canceled" and ended["ended_at"].startswith("2026-09-15")
    # Ended is final: no undo, no changes.
    assert (await api.post(f"/v1/subscriptions/{sub['id']}/undo_cancel", expect=409))[
        "code"
    ] == "invalid_transition"
    problem = await api.post(
        f"/v1/subscriptions/{sub['id']}/plan_change", {"price": "pro_monthly"}, expect=409
    )
    assert problem["code"] == "invalid_transition"
    types = await events_of(api, sub["id"])
    assert types.count("subscription.cancel_scheduled") == 2 and types[-1] == "subscription.canceled"


async def test_cancel_now(api: Api, demo: Any) -> None:
    _, customer = await on_clock(api, datetime(2026, 7, 15, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    canceled = await api.post(
        f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": False, "reason": "too pricey"}
    )
    assert canceled["status"] == "canceled" and canceled["ended_at"].startswith("2026-07-15")
    # A new subscription can start once the old one ended.
    await api.post("/v1/subscriptions", {"customer": customer, "price": "pro_monthly", "trial_days": 0})


async def test_calendar_alignment_first_period_is_short(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2026, 8, 10, tzinfo=UTC))
    sub = await api.post(
        "/v1/subscriptions", {"customer": customer, "price": "basic_monthly", "alignment": "calendar"}
    )
    assert (day(sub["current_period_start"]), day(sub["current_period_end"])) == ("2026-08-10", "2026-09-01")
    await advance(api, clock, 2026, 10, 1)
    sub = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert (day(sub["current_period_start"]), day(sub["current_period_end"])) == ("2026-10-01", "2026-11-01")


async def test_a_year_on_a_test_clock_renews_twelve_times(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC))
    monthly = await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    _, other = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC))
    result = await advance(api, clock, 2027, 1, 1)
    assert result["steps_applied"] == 12
    assert (await events_of(api, monthly["id"])).count("subscription.renewed") == 12
    # A customer on another clock did not move.
    assert other


async def test_grandfathering_keeps_the_version_bought(api: Api, demo: Any) -> None:
    _, customer = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    v1 = sub["plan_version"]
    version = await api.post(
        "/v1/plans/basic/versions",
        {
            "grants": [{"feature": "projects", "limit": 3}, {"feature": "seats", "limit": 1}],
            "note": "fewer projects",
        },
    )
    assert version["version"] == 2
    assert (await api.get(f"/v1/subscriptions/{sub['id']}"))["plan_version"] == v1
    _, newcomer = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC))
    fresh = await api.post("/v1/subscriptions", {"customer": newcomer, "price": "basic_monthly"})
    assert fresh["plan_version"] != v1
    versions = await api.get("/v1/plans/basic/versions")
    assert [v["version"] for v in versions["data"]] == [1, 2]
    limits = {g["feature"]: g["limit"] for g in versions["data"][1]["grants"]}
    assert limits == {"projects": 3, "seats": 1}


async def test_seats_and_addons(api: Api, demo: Any) -> None:
    _, customer = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC))
    sub = await api.post(
        "/v1/subscriptions",
        {
            "customer": customer,
            "price": "pro_monthly",
            "trial_days": 0,
            "addons": [{"price": "extra_seats_monthly", "quantity": 2}],
        },
    )
    assert [a["quantity"] for a in sub["addons"]] == [2]
    sub = await api.post(f"/v1/subscriptions/{sub['id']}/quantity", {"quantity": 4})
    assert sub["quantity"] == 4
    problem = await api.post(f"/v1/subscriptions/{sub['id']}/quantity", {"quantity": 0}, expect=422)
    assert problem["status"] == 422
    removed = await api.delete(f"/v1/subscriptions/{sub['id']}/addons/{sub['addons'][0]['id']}")
    assert removed["addons"] == []
    # The add-on is only compatible with pro.
    _, basic_customer = await on_clock(api, datetime(2026, 1, 1, tzinfo=UTC))
    problem = await api.post(
        "/v1/subscriptions",
        {"customer": basic_customer, "price": "basic_monthly", "addons": [{"price": "extra_seats_monthly"}]},
        expect=422,
    )
    assert "not available" in problem["detail"]
    # ...and nothing was written by the refused request.
    assert (await api.get("/v1/subscriptions", params={"customer": basic_customer}))["data"] == []
