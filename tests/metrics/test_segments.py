"""Metrics by segment (plan, interval, country, customer metadata) and the moves between plans, through
the public API, on one test clock, every figure by hand.

Four USD customers from 2026-02-28T12:00Z, so all of them pay when March begins:
- A (NL, channel ads): basic monthly $9, upgraded to pro monthly ($29) on Mar 10;
- B (US, channel seo): pro monthly $29, downgraded to basic monthly on Mar 12;
- C (US, channel ads): basic yearly ($86.40 = $7.20 a month), unchanged;
- D (NL, channel seo): basic monthly $9, upgraded to pro monthly on Mar 20.
"""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar

from gateway.config import Settings
from tests.conftest import Api
from tests.metrics.test_metrics_api import advance
from tests.provisioning.helpers import manual_settings, settle

START, END = "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"


@pytest.fixture
def settings() -> Settings:
    return manual_settings()


def moved(new: int = 0, expansion: int = 0, contraction: int = 0, churn: int = 0) -> dict[str, int]:
    return {"new": new, "expansion": expansion, "contraction": contraction, "churn": churn}


async def test_segments_narrow_every_figure_and_plan_changes_show_the_upgrade_patterns(
    api: Api, app: Litestar, demo: Any
) -> None:
    clock = (await api.post("/v1/test_clocks", {"frozen_time": "2026-02-28T12:00:00Z"}))["id"]
    subs = {}
    for name, country, channel, price in [
        ("A", "NL", "ads", "basic_monthly"),
        ("B", "US", "seo", "pro_monthly"),
        ("C", "US", "ads", "basic_yearly"),
        ("D", "NL", "seo", "basic_monthly"),
    ]:
        customer = await api.post(
            "/v1/customers",
            {
                "name": name,
                "currency": "USD",
                "country": country,
                "metadata": {"channel": channel},
                "test_clock": clock,
            },
        )
        subs[name] = await api.post(
            "/v1/subscriptions", {"customer": customer["id"], "price": price, "trial_days": 0}
        )
    await settle(api, app)
    await advance(api, app, clock, "2026-03-10T00:00:00Z")
    await api.post(f"/v1/subscriptions/{subs['A']['id']}/plan_change", {"price": "pro_monthly"}, expect=201)
    await advance(api, app, clock, "2026-03-12T00:00:00Z")
    await api.post(
        f"/v1/subscriptions/{subs['B']['id']}/plan_change",
        {"price": "basic_monthly", "timing": "now"},
        expect=201,
    )
    await advance(api, app, clock, "2026-03-20T00:00:00Z")
    await api.post(f"/v1/subscriptions/{subs['D']['id']}/plan_change", {"price": "pro_monthly"}, expect=201)
    await advance(api, app, clock, END)
    basic, pro = (await api.get("/v1/plans/basic"))["id"], (await api.get("/v1/plans/pro"))["id"]

    async def march(**segment: Any) -> dict[str, Any]:
        params = {"test_clock": clock, "start": START, "end": END, **segment}
        report: dict[str, Any] = await api.get("/v1/metrics", params=params)
        return report

    whole = await march()
    assert whole["mrr"] == {"start": 900 + 2900 + 720 + 900, "end": 2900 + 900 + 720 + 2900}
    assert whole["segment"] == {"plan": None, "interval": None, "country": None, "metadata": {}}
    assert whole["plan_changes"] == [
        {"from": basic, "to": pro, "moves": 2, "upgrades": 2, "downgrades": 0, "mrr": 4000},
        {"from": pro, "to": basic, "moves": 1, "upgrades": 0, "downgrades": 1, "mrr": -2000},
    ]
    assert "payments" in whole and "dunning" in whole

    # Pro: B's $29 at the start; A and D arrive (new in Pro), B leaves (churn in Pro).
    on_pro = await march(plan="pro")
    assert on_pro["segment"]["plan"] == pro
    assert on_pro["mrr"] == {"start": 2900, "end": 5800}
    assert on_pro["customers"] == {"start": 1, "end": 2, "churned": 1}
    assert {k: on_pro["movements"][k]["amount"] for k in moved()} == moved(new=5800, churn=2900)
    assert [(f["from"], f["to"]) for f in on_pro["plan_changes"]] == [(basic, pro), (pro, basic)]
    # Payments and dunning count the segment's invoices (figures: tests/dunning/test_segmented_metrics.py).
    assert "payments" in on_pro and "dunning" in on_pro
    # Basic is the mirror image: A and D leave, B arrives; C stays.
    on_basic = await march(plan=basic)
    assert on_basic["mrr"] == {"start": 900 + 720 + 900, "end": 900 + 720}
    assert {k: on_basic["movements"][k]["amount"] for k in moved()} == moved(new=900, churn=1800)
    # The two plans' MRR add up to the whole at both ends.
    for end in ("start", "end"):
        assert on_pro["mrr"][end] + on_basic["mrr"][end] == whole["mrr"][end]

    yearly = await march(interval="year")
    assert (yearly["mrr"], yearly["plan_changes"]) == ({"start": 720, "end": 720}, [])
    dutch = await march(country="nl")
    assert dutch["mrr"] == {"start": 1800, "end": 5800}
    assert {k: dutch["movements"][k]["amount"] for k in moved()} == moved(expansion=4000)
    assert [(f["from"], f["moves"]) for f in dutch["plan_changes"]] == [(basic, 2)]
    ads = await march(metadata="channel:ads")
    assert ads["mrr"] == {"start": 900 + 720, "end": 2900 + 720}
    assert ads["segment"]["metadata"] == {"channel": "ads"}
    us_ads = await api.get(
        "/v1/metrics",
        params=[
            ("test_clock", clock), ("start", START), ("end", END), ("country", "US"),
            ("metadata", "channel:ads"), ("metadata", "channel:ads"),
        ],
    )  # fmt: skip
    assert us_ads["mrr"] == {"start": 720, "end": 720}
    # An instant and the cohorts take the same segment.
    at_end = await api.get("/v1/metrics/mrr", params={"test_clock": clock, "at": END, "plan": "pro"})
    assert (at_end["mrr"], at_end["customers"]) == (5800, 2)
    cohorts = await api.get(
        "/v1/metrics/cohorts",
        params={"test_clock": clock, "start": "2026-02-01T00:00:00Z", "months": 2, "country": "NL"},
    )
    assert cohorts["data"][0]["customers"] == 2


async def test_a_segment_that_names_nothing_real_is_a_422_on_its_field(api: Api, demo: Any) -> None:
    for params, field in [
        ({"plan": "no_such_plan"}, "plan"),
        ({"interval": "week"}, "interval"),
        ({"country": "N1"}, "country"),
        ({"metadata": "no-separator"}, "metadata"),
        ({"metadata": ":value"}, "metadata"),
    ]:
        problem = await api.get("/v1/metrics", params=params, expect=422)
        assert problem["field"] == field, (params, problem)
