"""Price experiments through the API: sticky assignment, targeting, start/stop, results, promotion of a
winner into the catalog (a new plan version; the old price archived, not changed); checkout sessions."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.portal.experiment_domain import BUCKETS, Variant, assign, bucket
from gateway.portal.experiment_stats import p_value, wilson_interval
from tests.conftest import Api

SUCCESS = "https://app.example/welcome"


async def pro_35(api: Api) -> str:
    """An alternative Pro monthly price ($35 / €33), without a lookup key: only the experiment shows it."""
    plan = await api.get("/v1/plans/pro")
    price = await api.post(
        "/v1/prices",
        {
            "plan": plan["id"],
            "model": "flat",
            "interval": "month",
            "nickname": "Pro monthly at $35",
            "currency_options": {"USD": {"unit_amount": 3500}, "EUR": {"unit_amount": 3300}},
        },
    )
    return str(price["id"])


async def experiment(api: Api, **targeting: Any) -> dict[str, Any]:
    product = (await api.get("/v1/products"))["data"][0]["id"]
    pro = await api.get("/v1/prices/pro_monthly")
    alternative = await pro_35(api)
    body: dict[str, Any] = {
        "name": "Pro at $29 vs $35",
        "product": product,
        "variants": [
            {"key": "control", "weight": 1},
            {"key": "pro_35", "weight": 1, "prices": {pro["id"]: alternative}, "trial_days": 30},
        ],
    }
    if targeting:
        body["targeting"] = targeting
    created = await api.post("/v1/experiments", body)
    created["_alternative"], created["_pro"] = alternative, pro["id"]
    return created


def test_the_same_key_always_gets_the_same_variant_and_weights_split_traffic() -> None:
    variants = [Variant("a", 1), Variant("b", 3)]
    counts = Counter(assign("exp_1", f"visitor-{i}", variants).key for i in range(20_000))
    # 1:3 within 2 percentage points over 20,000 keys (sha256 buckets are uniform).
    assert abs(counts["b"] / 20_000 - 0.75) < 0.02
    assert assign("exp_1", "visitor-7", variants) == assign("exp_1", "visitor-7", variants)


@settings(max_examples=200, deadline=None)
@given(
    key=st.text(min_size=1, max_size=50),
    weights=st.lists(st.integers(min_value=1, max_value=100), min_size=2, max_size=6),
)
def test_assignment_is_a_pure_function_of_the_key_and_follows_the_bucket_ranges(
    key: str, weights: list[int]
) -> None:
    variants = [Variant(f"v{i}", w) for i, w in enumerate(weights)]
    chosen = assign("exp_prop", key, variants)
    assert chosen == assign("exp_prop", key, variants)
    # The bucket falls in the chosen variant's share of the 10,000 buckets.
    total = sum(weights)
    index = variants.index(chosen)
    low = sum(weights[:index]) * BUCKETS
    high = low + weights[index] * BUCKETS
    assert low <= bucket("exp_prop", key) * total < high


def test_statistics_come_from_scipy_with_exact_values() -> None:
    low, high = wilson_interval(10, 100)
    assert (round(low, 4), round(high, 4)) == (0.0552, 0.1744)
    assert wilson_interval(0, 0) == (0.0, 0.0)
    assert round(p_value((10, 100), (25, 100)) or 0, 4) == 0.0085
    assert p_value((0, 0), (1, 10)) is None


async def test_an_experiment_assigns_stickily_once_running_and_respects_targeting(
    api: Api, demo: dict[str, Any]
) -> None:
    exp = await experiment(api, countries=["NL"], new_visitors_only=True)
    assert exp["status"] == "draft"
    body = {"visitor_key": "visitor-1", "country": "NL"}
    not_yet = await api.post(f"/v1/experiments/{exp['id']}/assignments", body, expect=200)
    assert not_yet["variant"] is None  # a draft assigns nobody
    started = await api.post(f"/v1/experiments/{exp['id']}/start", expect=200)
    assert started["status"] == "running"
    first = await api.post(f"/v1/experiments/{exp['id']}/assignments", body, expect=200)
    again = await api.post(f"/v1/experiments/{exp['id']}/assignments", body, expect=200)
    expected = assign(exp["id"], "visitor-1", [Variant("control", 1), Variant("pro_35", 1)]).key
    assert first["variant"] == again["variant"] == expected
    outside = await api.post(
        f"/v1/experiments/{exp['id']}/assignments", {"visitor_key": "v-de", "country": "DE"}, expect=200
    )
    assert outside["variant"] is None
    returning = await api.post(
        f"/v1/experiments/{exp['id']}/assignments",
        {"visitor_key": "v-back", "country": "NL", "new_visitor": False},
        expect=200,
    )
    assert returning["variant"] is None
    results = await api.get(f"/v1/experiments/{exp['id']}/results")
    assert [(v["variant"], v["visitors"]) for v in results["variants"]] == [
        ("control", 1 if expected == "control" else 0),
        ("pro_35", 1 if expected == "pro_35" else 0),
    ]
    # Running experiments cannot be promoted; a stopped one can, once.
    refused = await api.post(f"/v1/experiments/{exp['id']}/promote", {"variant": "pro_35"}, expect=409)
    assert refused["code"] == "invalid_transition"


async def test_promoting_a_winner_moves_the_lookup_key_and_publishes_a_plan_version(
    api: Api, demo: dict[str, Any]
) -> None:
    exp = await experiment(api)
    await api.post(f"/v1/experiments/{exp['id']}/start", expect=200)
    await api.post(f"/v1/experiments/{exp['id']}/stop", expect=200)
    promoted = await api.post(f"/v1/experiments/{exp['id']}/promote", {"variant": "pro_35"}, expect=200)
    assert (promoted["status"], promoted["winner"]) == ("promoted", "pro_35")
    now_shown = await api.get("/v1/prices/pro_monthly")
    assert now_shown["id"] == exp["_alternative"]
    assert now_shown["currency_options"]["USD"]["unit_amount"] == 3500
    old = await api.get(f"/v1/prices/{exp['_pro']}")
    assert (old["active"], old["lookup_key"], old["currency_options"]["USD"]["unit_amount"]) == (
        False,
        None,
        2900,
    )
    plan = await api.get("/v1/plans/pro")
    assert (plan["trial_days"], plan["current_version"]) == (30, 2)


async def test_bad_experiments_and_checkout_sessions_are_refused(api: Api, demo: dict[str, Any]) -> None:
    product = (await api.get("/v1/products"))["data"][0]["id"]
    basic = await api.get("/v1/prices/basic_monthly")
    pro_yearly = await api.get("/v1/prices/pro_yearly")
    crossed = await api.post(
        "/v1/experiments",
        {
            "name": "x",
            "product": product,
            "variants": [
                {"key": "a", "weight": 1},
                {"key": "b", "weight": 1, "prices": {basic["id"]: pro_yearly["id"]}},
            ],
        },
        expect=422,
    )
    assert crossed["code"] == "validation_failed"
    bad_url = await api.post(
        "/v1/checkout_sessions", {"price": "basic_monthly", "success_url": "javascript:alert(1)"}, expect=422
    )
    assert bad_url["code"] == "validation_failed"
    assert (await api.get("/v1/experiments"))["data"] == []


async def test_a_checkout_session_answers_its_link_once(api: Api, demo: dict[str, Any]) -> None:
    opened = await api.post(
        "/v1/checkout_sessions", {"price": "pro_monthly", "currency": "EUR", "success_url": SUCCESS}
    )
    assert opened["status"] == "open" and opened["currency"] == "EUR"
    assert opened["url"].startswith("http") and "/checkout/cs_live_" in opened["url"]
    again = await api.get(f"/v1/checkout_sessions/{opened['id']}")
    assert again["url"] is None and again["price"] == opened["price"]
