"""Payments and dunning metrics by segment, through `GET /v1/metrics`, on one test clock, every figure by
hand. A payment or a dunning run counts in a segment by its invoice: the invoice's customer (country,
metadata) and the plan and interval its subscription was on when the invoice was created.

Three USD customers from 2027-01-05, renewing on 2027-02-05:
- Ann (US): Basic $9; the renewal fails twice (at renewal and at the day-1 retry), paid on day 3;
- Bob (NL): Pro $29; the renewal is paid at once;
- Cas (US): Basic $9; the renewal fails, paid at the day-1 retry; on Feb 10 Cas moves to Pro and the
  proration invoice is paid at once. Cas's failed Basic renewal stays Basic's after the move.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.metrics.domain import window_of
from gateway.metrics.report import live_parts
from gateway.metrics.service import Scope
from tests.dunning.helpers import START, Subscriber
from tests.payments.conftest import PayKit

RENEWAL = START.replace(month=2)
DAY = 86_400


async def join(kit: PayKit, clock: str, name: str, country: str, price: str) -> Subscriber:
    customer = await kit.api.post(
        "/v1/customers", {"name": name, "currency": "USD", "country": country, "test_clock": clock}
    )
    await kit.method(customer["id"], "card_ok")
    sub = await kit.api.post(
        "/v1/subscriptions", {"customer": customer["id"], "price": price, "trial_days": 0}
    )
    return Subscriber(kit, clock, customer["id"], sub, START)


async def test_payments_and_dunning_count_a_segments_invoices(kit: PayKit, demo: Any) -> None:
    clock = (await kit.api.post("/v1/test_clocks", {"frozen_time": START.isoformat()}))["id"]
    ann = await join(kit, clock, "Ann", "US", "basic_monthly")
    bob = await join(kit, clock, "Bob", "NL", "pro_monthly")
    cas = await join(kit, clock, "Cas", "US", "basic_monthly")
    await ann.settle()  # the first invoices are paid (January: outside February's window)

    ann.card("card_insufficient_funds")
    cas.card("card_insufficient_funds")
    await ann.advance(RENEWAL)
    cas.card("card_ok")
    await ann.advance(RENEWAL + timedelta(days=1))  # Ann's retry fails, Cas's is paid
    ann.card("card_ok")
    await ann.advance(RENEWAL + timedelta(days=3))  # Ann's second retry is paid
    assert [await who.status() for who in (ann, bob, cas)] == ["active"] * 3
    await ann.advance(RENEWAL + timedelta(days=5))
    await kit.api.post(
        f"/v1/subscriptions/{cas.subscription['id']}/plan_change",
        {"price": "pro_monthly", "proration_behavior": "always_invoice"},
        expect=201,
    )
    await ann.advance(RENEWAL + timedelta(days=6))
    upgrade = [
        i
        for i in (await kit.api.get("/v1/invoices", params={"subscription": cas.subscription["id"]}))["data"]
        if i["billing_reason"] == "subscription_update"
    ]
    assert [(i["status"], i["billing_reason"]) for i in upgrade] == [("paid", "subscription_update")]

    async def february(**segment: Any) -> dict[str, Any]:
        params = {
            "currency": "USD",
            "test_clock": clock,
            "start": "2027-02-01T00:00:00Z",
            "end": "2027-03-01T00:00:00Z",
            **segment,
        }
        report: dict[str, Any] = await kit.api.get("/v1/metrics", params=params)
        return report

    whole, basic, pro = await february(), await february(plan="basic"), await february(plan="pro")
    # Basic: the two failed renewals, both recovered; three failed attempts of $9.
    assert basic["payments"] == {
        "invoices_attempted": 2,
        "first_attempt_succeeded": 0,
        "succeeded": 2,
        "pending": 0,
        "first_attempt_success_rate": "0.0000",
        "final_success_rate": "1.0000",
        "attempts": 5,
        "failed_attempts": 3,
        "failed_amount": 2_700,
        "declines": [{"decline_code": "insufficient_funds", "count": 3, "amount": 2_700}],
    }
    assert basic["dunning"] == {
        "runs_started": 2,
        "active": 0,
        "recovered": 2,
        "exhausted": 0,
        "stopped": 0,
        "recovery_rate": "1.0000",
        "recovered_revenue": 1_800,
        "recovered_in_window": 2,
        "time_to_recover_seconds": {"median": 2 * DAY, "mean": 2 * DAY},
        "involuntary_churn": {"customers": 0, "mrr": 0},
        # Cas's move to Pro is churn in Basic's segment (as its MRR movements count it), not dunning's.
        "voluntary_churn": {"mrr": 900},
    }
    assert basic["movements"]["churn"]["amount"] == 900
    # Pro: Bob's renewal and Cas's proration invoice, each paid at once; no dunning.
    assert (pro["payments"]["invoices_attempted"], pro["payments"]["first_attempt_succeeded"]) == (2, 2)
    assert (pro["payments"]["attempts"], pro["payments"]["failed_attempts"]) == (2, 0)
    assert (pro["dunning"]["runs_started"], pro["dunning"]["recovery_rate"]) == (0, None)
    # The plans' counts add up to the whole.
    assert whole["payments"]["invoices_attempted"] == 4
    assert whole["payments"]["attempts"] == basic["payments"]["attempts"] + pro["payments"]["attempts"]
    assert whole["dunning"]["runs_started"] == 2

    # By country: the Dutch customer is Bob alone; the Americans carry both runs.
    dutch = await february(country="NL")
    assert (dutch["payments"]["invoices_attempted"], dutch["payments"]["failed_attempts"]) == (1, 0)
    assert dutch["dunning"]["runs_started"] == 0
    american = await february(country="US")
    assert (american["payments"]["invoices_attempted"], american["payments"]["failed_attempts"]) == (3, 3)
    assert (american["dunning"]["runs_started"], american["dunning"]["recovered_revenue"]) == (2, 1_800)
    # Plan and country together: America's Pro invoices are Cas's proration alone.
    us_pro = await february(plan="pro", country="US")
    assert (us_pro["payments"]["invoices_attempted"], us_pro["payments"]["failed_attempts"]) == (1, 0)

    # The dashboard reads its months at once (`live_parts`): February's is the API's answer above, and
    # January holds the three first invoices, each paid at once.
    months = [datetime(2027, m, 1, tzinfo=UTC) for m in (1, 2, 3, 4)]
    churn = [0, whole["movements"]["churn"]["amount"], 0]
    async with kit.db.unit_of_work() as session:
        parts = await live_parts(session, Scope("USD", clock), list(itertools.pairwise(months)), churn)
    assert parts[1] == {"payments": whole["payments"], "dunning": whole["dunning"]}
    assert (parts[0]["payments"]["invoices_attempted"], parts[0]["payments"]["succeeded"]) == (3, 3)
    assert parts[2]["payments"]["invoices_attempted"] == 0 and parts[2]["dunning"]["runs_started"] == 0


def test_a_window_is_found_by_its_half_open_bounds() -> None:
    day = [datetime(2027, 1, d, tzinfo=UTC) for d in (1, 2, 3, 5, 6)]
    windows = [(day[0], day[1]), (day[1], day[2]), (day[3], day[4])]  # a gap from the 3rd to the 5th
    assert [window_of(windows, d) for d in day] == [0, 1, None, 2, None]
    assert window_of(windows, datetime(2026, 12, 31, tzinfo=UTC)) is None
