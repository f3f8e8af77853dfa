"""Bad input gets a clear 4xx problem+json and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/customers", {"name": 12}),
        ("/v1/customers", {"name": "A", "currency": "XXX"}),
        ("/v1/customers", {"name": "A", "unknown": 1}),
        ("/v1/products", {}),
        ("/v1/features", {"key": "Bad Key", "name": "x", "kind": "boolean"}),
        ("/v1/features", {"key": "ok", "name": "x", "kind": "sometimes"}),
        ("/v1/prices", {"plan": "basic", "model": "flat", "interval": "month", "currency_options": {}}),
        (
            "/v1/prices",
            {
                "plan": "basic",
                "model": "graduated",
                "interval": "month",
                "currency_options": {"USD": {"tiers": [{"up_to": 10, "unit_amount": 5}]}},
            },
        ),
        (
            "/v1/prices",
            {
                "plan": "basic",
                "model": "flat",
                "interval": "week",
                "currency_options": {"USD": {"unit_amount": 5}},
            },
        ),
        ("/v1/subscriptions", {"customer": "cus_missing", "price": "basic_monthly"}),
        ("/v1/test_clocks", {"frozen_time": "2026-01-01T00:00:00"}),
    ],
)
async def test_bad_input_is_a_4xx_problem(api: Api, demo: Any, path: str, body: dict[str, Any]) -> None:
    before = await api.get("/v1/events", params={"limit": 100})
    response = await api.client.post(path, json=body, headers=api._headers(None))
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == response.status_code and problem["code"] and problem["detail"]
    after = await api.get("/v1/events", params={"limit": 100})
    assert after["data"] == before["data"], "a refused request wrote an event"


async def test_malformed_json_is_422(api: Api) -> None:
    response = await api.client.post(
        "/v1/customers",
        content=b"{not json",
        headers={**api._headers(None), "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "malformed_json"
    assert response.json()["detail"] == "malformed JSON at byte 1: object keys must be strings"


async def test_unknown_route_is_a_404_problem(api: Api) -> None:
    problem = await api.get("/v1/nothing-here", expect=404)
    assert problem["code"] == "not_found"


async def test_bad_cursor_and_limit_are_422(api: Api) -> None:
    await api.get("/v1/customers", params={"starting_after": "%%%"}, expect=422)
    await api.get("/v1/customers", params={"limit": 0}, expect=422)
    await api.get("/v1/customers", params={"limit": 1000}, expect=422)


async def test_cursor_pagination_is_stable_and_complete(api: Api) -> None:
    created = [(await api.post("/v1/customers", {"name": f"C{i}"}))["id"] for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"starting_after": cursor} if cursor else {})}
        page = await api.get("/v1/customers", params=params)
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == sorted(created)


async def test_catalog_conflicts(api: Api, demo: Any) -> None:
    problem = await api.post("/v1/features", {"key": "projects", "name": "dup", "kind": "gauge"}, expect=409)
    assert problem["code"] == "key_already_exists"
    problem = await api.post(
        "/v1/prices",
        {
            "plan": "basic",
            "model": "flat",
            "interval": "month",
            "currency_options": {"USD": {"unit_amount": 1}},
            "lookup_key": "basic_monthly",
        },
        expect=409,
    )
    assert problem["code"] == "key_already_exists"
    # An archived price cannot be subscribed to.
    await api.patch("/v1/prices/basic_monthly", {"active": False})
    customer = await api.post("/v1/customers", {"name": "Late", "currency": "USD"})
    problem = await api.post(
        "/v1/subscriptions", {"customer": customer["id"], "price": "basic_monthly"}, expect=409
    )
    assert problem["code"] == "price_inactive"
    # A second live subscription for one tenant is refused.
    await api.post("/v1/subscriptions", {"customer": customer["id"], "price": "pro_monthly", "trial_days": 0})
    problem = await api.post(
        "/v1/subscriptions", {"customer": customer["id"], "price": "basic_yearly"}, expect=409
    )
    assert problem["code"] == "subscription_exists"
