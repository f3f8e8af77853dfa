"""Features and usage prices point at a meter: the catalog's validation through the API, and the
usage-credit endpoint's refusals (422s that change nothing, 404 across tenants)."""

from __future__ import annotations

from typing import Any

from litestar import Litestar

from tests.conftest import Api
from tests.metering.story_helpers import meter


async def test_features_and_prices_name_an_existing_meter(api: Api, app: Litestar) -> None:
    await meter(api, "tokens")
    refused = await api.post(
        "/v1/features", {"key": "t1", "name": "T", "kind": "metered", "meter": "nope"}, expect=422
    )
    assert (refused["code"], refused["field"]) == ("meter_not_found", "meter")
    refused = await api.post(
        "/v1/features", {"key": "t1", "name": "T", "kind": "gauge", "meter": "tokens"}, expect=422
    )
    assert refused["field"] == "meter"
    refused = await api.post(
        "/v1/features",
        {"key": "t1", "name": "T", "kind": "metered", "alert_thresholds": [80, 80]},
        expect=422,
    )
    assert refused["field"] == "alert_thresholds"
    feature = await api.post(
        "/v1/features",
        {"key": "t1", "name": "T", "kind": "metered", "meter": "tokens", "alert_thresholds": [90, 50]},
    )
    assert (feature["meter"], feature["alert_thresholds"]) == ("tokens", [50, 90])

    product = (await api.post("/v1/products", {"name": "Tokens"}))["id"]
    await api.post("/v1/plans", {"product": product, "key": "tok", "name": "Tok"})
    base: dict[str, Any] = {
        "plan": "tok",
        "model": "usage",
        "interval": "month",
        "currency_options": {"USD": {"unit_amount": 1}},
    }
    price = await api.post("/v1/prices", {**base, "metered_feature": "t1"})
    assert price["meter"] == "tokens"  # from the metered feature
    other = await meter(api, "other")
    refused = await api.post("/v1/prices", {**base, "metered_feature": "t1", "meter": other}, expect=422)
    assert refused["field"] == "meter"
    flat = {**base, "model": "flat", "meter": "tokens"}
    assert (await api.post("/v1/prices", flat, expect=422))["field"] == "meter"
    grouped = await api.post(
        "/v1/prices", {**base, "metered_feature": "t1", "usage_group_by": ["region", "model"]}
    )
    assert grouped["usage_group_by"] == ["region", "model"]
    refused = await api.post(
        "/v1/prices", {**base, "metered_feature": "t1", "usage_group_by": ["a", "a"]}, expect=422
    )
    assert refused["field"] == "usage_group_by"


async def test_usage_credits_refuse_bad_input_and_other_tenants(api: Api, app: Litestar, demo: Any) -> None:
    customer = (await api.post("/v1/customers", {"name": "A", "currency": "USD"}))["id"]
    other = (await api.post("/v1/customers", {"name": "B", "currency": "USD"}))["id"]
    path = f"/v1/customers/{customer}/usage_credits"
    assert (await api.post(path, {"feature": "projects", "units": 5}, expect=422))["field"] == "feature"
    assert (await api.post(path, {"feature": "api_calls", "units": 0}, expect=422))["status"] == 422
    past = {
        "feature": "api_calls",
        "units": 5,
        "effective_at": "2026-05-01T00:00:00Z",
        "expires_at": "2026-04-01T00:00:00Z",
    }
    assert (await api.post(path, past, expect=422))["field"] == "expires_at"
    assert (await api.get(path))["data"] == []
    await api.post(path, {"feature": "api_calls", "units": 5})

    key = await api.post(
        "/v1/api_keys", {"name": "b", "scopes": ["billing:read", "entitlements:read"], "customer": other}
    )
    theirs = api.as_key(key["secret"])
    await theirs.get(path, expect=404)
    await theirs.get("/v1/usage_reconciliation", params={"customer": customer}, expect=404)
    await theirs.post(
        f"/v1/customers/{other}/usage_credits", {"feature": "api_calls", "units": 5}, expect=403
    )


async def test_a_meters_definition_is_immutable_only_its_name_changes(api: Api) -> None:
    """Issue 12: roll-ups already hold what the old definition counted, so changing the aggregation,
    value path, filters or groups of a meter is refused; a new definition is a new meter."""
    created = await api.post(
        "/v1/meters", {"key": "calls_imm", "event_type": "call_imm", "aggregation": "count"}
    )
    refused = await api.patch(
        f"/v1/meters/{created['id']}", {"aggregation": "sum", "value_property": "n"}, expect=422
    )
    assert refused["detail"] == "Object contains unknown field `aggregation`"
    renamed = await api.patch(f"/v1/meters/{created['id']}", {"name": "Calls"}, expect=200)
    assert (renamed["name"], renamed["aggregation"], renamed["value_property"]) == ("Calls", "count", None)
    assert (await api.get("/v1/meters/calls_imm"))["aggregation"] == "count"
