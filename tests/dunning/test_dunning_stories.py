"""Dunning told as an integrating app sees it, through the HTTP API on a test clock: a renewal fails,
the subscription goes past due, retries come exactly on the campaign's schedule, and paying (or running
out of retries) moves the subscription where the campaign says."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Litestar

from tests.dunning.helpers import START, subscriber
from tests.entitlements.test_check_api import check, stored_members, synced
from tests.payments.conftest import PayKit
from tests.payments.test_collection_api import events

RENEWAL = START.replace(month=2)


async def run_of(kit: PayKit, invoice: str) -> dict[str, Any]:
    """The invoice's dunning run (GET /v1/invoices/{id}/dunning lists none or one)."""
    [run] = (await kit.api.get(f"/v1/invoices/{invoice}/dunning"))["data"]
    return dict(run)  # basic_monthly from 2027-01-05 renews on 2027-02-05


async def test_a_failed_renewal_is_retried_on_the_default_schedule_and_recovers_on_the_third_retry(
    kit: PayKit, demo: Any
) -> None:
    who = await subscriber(kit)
    who.card("card_insufficient_funds")
    await who.advance(RENEWAL)
    invoice = await who.renewal_invoice()
    assert (invoice["status"], invoice["amount_remaining"]) == ("open", 900)
    assert await who.status() == "past_due"
    run = await run_of(kit, invoice["id"])
    # Stripe's "8 tries within 2 weeks": days 1, 3, 5, 7, 9, 11, 13 and 14 after the failure.
    assert run["schedule"] == [(RENEWAL + timedelta(days=d)).isoformat() for d in (1, 3, 5, 7, 9, 11, 13, 14)]
    assert (run["status"], run["attempts"], run["retries_taken"]) == ("active", 0, 0)
    assert run["next_attempt_at"] == (RENEWAL + timedelta(days=1)).isoformat()
    assert run["last_decline_code"] == "insufficient_funds"

    # Nothing is retried a second early.
    await who.advance(RENEWAL + timedelta(days=1) - timedelta(seconds=1))
    assert len(await who.payments(invoice["id"])) == 1
    await who.advance(RENEWAL + timedelta(days=1))
    assert len(await who.payments(invoice["id"])) == 2
    await who.advance(RENEWAL + timedelta(days=3))
    assert len(await who.payments(invoice["id"])) == 3
    who.card("card_ok")
    await who.advance(RENEWAL + timedelta(days=5))

    payments = await who.payments(invoice["id"])
    assert sorted((p["attempt"], p["status"]) for p in payments) == [
        (1, "failed"), (2, "failed"), (3, "failed"), (4, "succeeded"),
    ]  # fmt: skip
    run = await run_of(kit, invoice["id"])
    assert (run["status"], run["attempts"], run["retries_taken"], run["recovered_amount"]) == (
        "recovered", 3, 3, 900,
    )  # fmt: skip
    assert await who.status() == "active"
    # Nothing more happens on the old schedule.
    await who.advance(RENEWAL + timedelta(days=15))
    assert len(await who.payments(invoice["id"])) == 4
    assert [e["type"] for e in await events(kit, "dunning.")] == [
        "dunning.started",
        "dunning.email_requested",
        "dunning.attempt",
        "dunning.email_requested",
        "dunning.attempt_failed",
        "dunning.attempt",
        "dunning.email_requested",
        "dunning.attempt_failed",
        "dunning.attempt",
        "dunning.recovered",
    ]
    # A "payment failed" mail after each failed attempt, saying when the next one is.
    mails = await events(kit, "dunning.email_requested")
    assert [(m["template"], m["attempt"], m["amount_due"], m["next_attempt_at"]) for m in mails] == [
        ("payment_failed", 0, 900, (RENEWAL + timedelta(days=1)).isoformat()),
        ("payment_failed", 1, 900, (RENEWAL + timedelta(days=3)).isoformat()),
        ("payment_failed", 2, 900, (RENEWAL + timedelta(days=5)).isoformat()),
    ]


async def test_run_out_of_retries_leaves_the_subscription_unpaid_until_the_invoice_is_paid(
    kit: PayKit, demo: Any, app: Litestar
) -> None:
    campaign = await kit.api.post(
        "/v1/dunning_campaigns",
        {
            "name": "Two tries, then unpaid",
            "retry_offsets_hours": [24, 48],
            "emails": {"0": "payment_failed", "1": "dunning_final_notice"},
            "final_action": "unpaid",
            "access": "revoke",
            "is_default": True,
        },
    )
    assert (campaign["retry_offsets_hours"], campaign["final_action"], campaign["is_default"]) == (
        [24, 48], "unpaid", True,
    )  # fmt: skip
    who = await subscriber(kit, "Revoked")
    users = await stored_members(app, who.customer, {"owner": "owner"})
    await synced(kit.api)
    assert (await check(kit.api, who.customer, feature="reporting_basic"))["allowed"] is True
    who.card("card_insufficient_funds")
    await who.advance(RENEWAL)
    assert await who.status() == "past_due"
    await synced(kit.api)
    refused = await check(kit.api, who.customer, feature="reporting_basic")
    assert (refused["allowed"], refused["reason"]) == (False, "payment_past_due")
    as_owner = await check(kit.api, who.customer, user=users["owner"], resource="projects/1", action="read")
    assert (as_owner["allowed"], as_owner["reason"]) == (False, "payment_past_due")

    await who.advance(RENEWAL + timedelta(hours=24))
    assert await who.status() == "past_due"
    await who.advance(RENEWAL + timedelta(hours=48))
    invoice = await who.renewal_invoice()
    assert len(await who.payments(invoice["id"])) == 3  # the failure + exactly two retries
    run = await run_of(kit, invoice["id"])
    assert (run["status"], run["final_action"], run["attempts"], run["campaign"]) == (
        "exhausted", "unpaid", 2, campaign["id"],
    )  # fmt: skip
    assert await who.status() == "unpaid"
    await synced(kit.api)
    unpaid = await check(kit.api, who.customer, feature="reporting_basic")
    assert (unpaid["allowed"], unpaid["reason"]) == (False, "subscription_unpaid")
    assert [m["template"] for m in await events(kit, "dunning.email_requested")] == [
        "payment_failed", "dunning_final_notice",
    ]  # fmt: skip
    # Nothing more is tried on its own, however long it waits.
    await who.advance(RENEWAL + timedelta(days=20))
    assert len(await who.payments(invoice["id"])) == 3

    # The customer pays with a working card: active again, access back within the propagation bound.
    who.card("card_ok")
    paid = await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", {}, expect=200)
    assert paid["status"] == "paid"
    await who.settle()
    assert await who.status() == "active"
    await synced(kit.api)
    assert (await check(kit.api, who.customer, feature="reporting_basic"))["allowed"] is True
    run = await run_of(kit, invoice["id"])
    assert (run["status"], run["recovered_amount"]) == ("recovered", 900)


async def test_read_only_during_dunning_lets_members_read_and_refuses_the_rest(
    kit: PayKit, demo: Any, app: Litestar
) -> None:
    await kit.api.post(
        "/v1/dunning_campaigns",
        {
            "name": "Read-only",
            "final_action": "cancel",
            "access": "read_only",
            "read_only_role": "viewer",
            "is_default": True,
        },
    )
    who = await subscriber(kit, "Reader")
    users = await stored_members(app, who.customer, {"owner": "owner"})
    who.card("card_insufficient_funds")
    await who.advance(RENEWAL)
    await synced(kit.api)
    owner = users["owner"]
    read = await check(kit.api, who.customer, user=owner, resource="projects/42", action="read")
    assert (read["allowed"], read["role"]) == (True, "viewer")
    write = await check(kit.api, who.customer, user=owner, resource="projects/42", action="update")
    assert (write["allowed"], write["reason"]) == (False, "payment_past_due")
    # A feature the plan grants stays on (the campaign revoked none).
    assert (await check(kit.api, who.customer, feature="reporting_basic"))["allowed"] is True


async def test_a_hard_decline_is_never_retried_on_that_card_and_the_fallback_card_is_charged_at_once(
    kit: PayKit, demo: Any
) -> None:
    who = await subscriber(kit, "Stolen")
    who.card("card_stolen")
    backup = await kit.method(who.customer, "card_ok")  # priority 1: the fallback
    await who.advance(RENEWAL)
    invoice = await who.renewal_invoice()
    payments = sorted(await who.payments(invoice["id"]), key=lambda p: p["attempt"])
    assert [(p["status"], p["decline_code"], p["payment_method"] == backup) for p in payments] == [
        ("failed", "stolen_card", False),
        ("succeeded", None, True),
    ]
    assert (await kit.api.get(f"/v1/invoices/{invoice['id']}"))["status"] == "paid"
    run = await run_of(kit, invoice["id"])
    assert (run["status"], run["attempts"], run["retries_taken"]) == ("recovered", 1, 0)
    assert await who.status() == "active"


async def test_without_a_usable_card_retries_wait_and_a_new_card_is_tried_at_once(
    kit: PayKit, demo: Any
) -> None:
    who = await subscriber(kit, "Lost")
    who.card("card_lost")
    await who.advance(RENEWAL)
    invoice = await who.renewal_invoice()
    run = await run_of(kit, invoice["id"])
    assert (run["waiting_for"], run["last_decline_code"]) == ("new_payment_method", "lost_card")
    await who.advance(RENEWAL + timedelta(days=3))  # two slots pass: the lost card is not charged again
    assert len(await who.payments(invoice["id"])) == 1
    run = await run_of(kit, invoice["id"])
    assert (run["retries_taken"], run["attempts"], run["status"]) == (2, 0, "active")
    new_card = await kit.method(who.customer, "card_ok")
    await who.settle()
    payments = sorted(await who.payments(invoice["id"]), key=lambda p: p["attempt"])
    assert [(p["status"], p["payment_method"] == new_card) for p in payments] == [
        ("failed", False),
        ("succeeded", True),
    ]
    assert await who.status() == "active"


async def test_no_retry_after_the_subscription_is_canceled(kit: PayKit, demo: Any) -> None:
    who = await subscriber(kit, "Leaving")
    who.card("card_insufficient_funds")
    await who.advance(RENEWAL)
    invoice = await who.renewal_invoice()
    await kit.api.post(f"/v1/subscriptions/{who.subscription['id']}/cancel", {"at_period_end": False})
    await who.settle()
    await who.advance(RENEWAL + timedelta(days=15))
    assert len(await who.payments(invoice["id"])) == 1
    run = await run_of(kit, invoice["id"])
    assert (run["status"], run["stop_reason"], run["next_attempt_at"]) == (
        "stopped",
        "subscription_canceled",
        None,
    )


async def test_a_voided_invoice_stops_dunning_and_gives_access_back(kit: PayKit, demo: Any) -> None:
    await kit.api.post(
        "/v1/dunning_campaigns",
        {"name": "Strict", "final_action": "cancel", "access": "revoke", "is_default": True},
    )
    who = await subscriber(kit, "Forgiven")
    who.card("card_insufficient_funds")
    await who.advance(RENEWAL)
    invoice = await who.renewal_invoice()
    await kit.api.post(f"/v1/invoices/{invoice['id']}/void", {}, expect=200)
    await who.settle()
    await who.advance(RENEWAL + timedelta(days=15))
    assert len(await who.payments(invoice["id"])) == 1
    run = await run_of(kit, invoice["id"])
    assert (run["status"], run["stop_reason"]) == ("stopped", "invoice_voided")
    assert await who.status() == "active"


async def test_bad_campaigns_are_refused_with_the_field_and_change_nothing(kit: PayKit) -> None:
    for body, field in [
        ({"name": "x"}, "final_action"),
        ({"name": "x", "final_action": "cancel", "retry_offsets_hours": [-24, 48]}, "retry_offsets_hours"),
        ({"name": "x", "final_action": "cancel", "retry_offsets_hours": [48, 24]}, "retry_offsets_hours"),
        ({"name": "x", "final_action": "cancel", "retry_offsets_hours": []}, "retry_offsets_hours"),
        ({"name": "x", "final_action": "cancel", "access": "read_only"}, "read_only_role"),
        ({"name": "x", "final_action": "cancel", "emails": {"9": "payment_failed"}}, "emails"),
        ({"name": "x", "final_action": "cancel", "emails": {"0": "no_such_template"}}, "emails"),
        ({"name": "x", "final_action": "explode"}, "final_action"),
    ]:
        problem = await kit.api.post("/v1/dunning_campaigns", body, expect=422)
        assert field in str(problem), (body, problem)
    assert (await kit.api.get("/v1/dunning_campaigns"))["data"] == []


async def dunning_metrics(kit: PayKit, clock: str) -> dict[str, Any]:
    params = {
        "currency": "USD",
        "test_clock": clock,
        "start": "2027-02-01T00:00:00Z",
        "end": "2027-03-01T00:00:00Z",
    }
    metrics: dict[str, Any] = await kit.api.get("/v1/metrics", params=params)
    return metrics


async def test_metrics_report_recovery_rate_revenue_and_time_to_recover(kit: PayKit, demo: Any) -> None:
    who = await subscriber(kit, "Recovered")
    who.card("card_insufficient_funds")
    await who.advance(RENEWAL)
    who.card("card_ok")
    await who.advance(RENEWAL + timedelta(days=3))  # recovered on the second retry
    report = (await dunning_metrics(kit, who.clock_id))["dunning"]
    assert report == {
        "runs_started": 1,
        "active": 0,
        "recovered": 1,
        "exhausted": 0,
        "stopped": 0,
        "recovery_rate": "1.0000",
        "recovered_revenue": 900,
        "recovered_in_window": 1,
        "time_to_recover_seconds": {"median": 3 * 86_400, "mean": 3 * 86_400},
        "involuntary_churn": {"customers": 0, "mrr": 0},
        "voluntary_churn": {"mrr": 0},
    }


async def test_mrr_lost_to_exhausted_dunning_is_involuntary_churn(kit: PayKit, demo: Any) -> None:
    await kit.api.post(
        "/v1/dunning_campaigns",
        {"name": "Short", "final_action": "cancel", "retry_offsets_hours": [24], "is_default": True},
    )
    who = await subscriber(kit, "Churned")
    who.card("card_insufficient_funds")
    await who.advance(RENEWAL)
    await who.advance(RENEWAL + timedelta(days=1))
    assert await who.status() == "canceled"
    [canceled] = await events(kit, "subscription.canceled")
    assert (canceled["previous_status"], canceled["subscription"]["status"]) == ("past_due", "canceled")
    metrics = await dunning_metrics(kit, who.clock_id)
    report = metrics["dunning"]
    assert (report["exhausted"], report["recovery_rate"]) == (1, "0.0000")
    assert report["involuntary_churn"] == {"customers": 1, "mrr": 900}
    assert metrics["movements"]["churn"]["amount"] == 900
    assert report["voluntary_churn"] == {"mrr": 0}


async def test_an_expired_card_waits_for_the_account_updater_then_is_retried_at_once(
    kit: PayKit, demo: Any
) -> None:
    who = await subscriber(kit, "Expired")
    who.card("card_expired")
    await who.advance(RENEWAL)
    invoice = await who.renewal_invoice()
    run = await run_of(kit, invoice["id"])
    assert (run["waiting_for"], run["last_decline_code"]) == ("account_updater", "expired_card")
    await who.advance(RENEWAL + timedelta(days=1))  # the first slot passes: the expired card is not charged
    assert len(await who.payments(invoice["id"])) == 1
    # The network's account updater gives the card a new expiry (the provider's webhook).
    who.card("card_ok")
    pcus = kit.provider.world.customers[f"customer:{who.customer}:account:{kit.account}"]
    [pmid] = [k for k, m in kit.provider.world.methods.items() if m["customer"] == pcus]
    await kit.webhook(
        {
            "id": "evt_updater",
            "type": "payment_method.updated",
            "customer": pcus,
            "method": {"id": pmid, "exp_year": 2031},
        }
    )
    await who.settle()
    payments = sorted(await who.payments(invoice["id"]), key=lambda p: p["attempt"])
    assert [p["status"] for p in payments] == ["failed", "succeeded"]
    assert (await run_of(kit, invoice["id"]))["status"] == "recovered"
    assert await who.status() == "active"


async def test_an_unpaid_add_on_invoice_never_blocks_the_period_already_paid(kit: PayKit, demo: Any) -> None:
    await kit.api.post(
        "/v1/dunning_campaigns",
        {"name": "Strict", "final_action": "cancel", "access": "revoke", "is_default": True},
    )
    who = await subscriber(kit, "Paid up", price="pro_monthly")
    await who.advance(START + timedelta(days=10))  # mid-period: the add-on is prorated and invoiced now
    who.card("card_insufficient_funds")
    await kit.api.post(
        f"/v1/subscriptions/{who.subscription['id']}/addons",
        {"price": "extra_seats_monthly", "proration_behavior": "always_invoice"},
    )
    await who.settle()
    invoices = (await kit.api.get("/v1/invoices", params={"subscription": who.subscription["id"]}))["data"]
    [addon_invoice] = [i for i in invoices if i["status"] == "open"]
    run = await run_of(kit, addon_invoice["id"])
    assert run["status"] == "active"  # retried like any other ...
    assert await who.status() == "active"  # ... but the paid year keeps its access
    await synced(kit.api)
    assert (await check(kit.api, who.customer, feature="reporting_basic"))["allowed"] is True
