"""/v1/coupons and /v1/promotion_codes through the HTTP API: happy paths, and every 422 / 404 / 409."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gateway.kernel.clock import FrozenClock
from tests.conftest import Api


async def events(api: Api, aggregate: str | None = None) -> list[Any]:
    """Every event (or one aggregate's), oldest first."""
    params: dict[str, Any] = {"limit": 100, **({"aggregate": aggregate} if aggregate else {})}
    found: list[Any] = []
    while True:
        page = await api.get("/v1/events", params=params)
        found += page["data"]
        if not page["has_more"]:
            return found
        params["starting_after"] = page["next_cursor"]


async def test_create_retrieve_update_and_delete_a_coupon(api: Api, demo: Any) -> None:
    created = await api.post(
        "/v1/coupons",
        {
            "id": "SUMMER20",
            "name": "Summer sale",
            "percent_off": "20",
            "duration": "repeating",
            "duration_in_months": 3,
            "max_redemptions": 100,
            "redeem_by": "2026-09-01T00:00:00+02:00",
            "applies_to": {"plans": ["pro", "enterprise"]},
            "metadata": {"campaign": "summer"},
        },
    )
    assert created == {
        "id": "SUMMER20",
        "object": "coupon",
        "name": "Summer sale",
        "percent_off": "20",
        "amount_off": None,
        "currency": None,
        "currency_options": {},
        "duration": "repeating",
        "duration_in_months": 3,
        "max_redemptions": 100,
        "times_redeemed": 0,
        "redeem_by": "2026-08-31T22:00:00Z",
        "applies_to": {"plans": ["pro", "enterprise"]},
        "active": True,
        "valid": True,
        "metadata": {"campaign": "summer"},
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    assert await api.get("/v1/coupons/SUMMER20") == created

    renamed = await api.patch("/v1/coupons/SUMMER20", {"name": "Summer!", "metadata": {}})
    assert (renamed["name"], renamed["metadata"], renamed["percent_off"]) == ("Summer!", {}, "20")

    deleted = await api.delete("/v1/coupons/SUMMER20")
    assert (deleted["id"], deleted["active"], deleted["valid"]) == ("SUMMER20", False, False)
    assert (await api.delete("/v1/coupons/SUMMER20"))["active"] is False  # idempotent
    assert (await api.get("/v1/coupons/SUMMER20"))["active"] is False  # kept for existing discounts
    types = [e["type"] for e in await events(api, "SUMMER20")]
    assert types == ["coupon.created", "coupon.updated", "coupon.deleted"]


async def test_amount_off_coupon_in_several_currencies(api: Api) -> None:
    created = await api.post(
        "/v1/coupons",
        {
            "amount_off": 1000,
            "currency": "usd",
            "currency_options": {"EUR": {"amount_off": 900}, "jpy": {"amount_off": 1500}},
            "duration": "forever",
        },
    )
    assert created["id"].startswith("cpn_")
    assert (created["amount_off"], created["currency"], created["percent_off"]) == (1000, "USD", None)
    assert created["currency_options"] == {"EUR": {"amount_off": 900}, "JPY": {"amount_off": 1500}}
    assert (created["duration"], created["duration_in_months"], created["applies_to"]) == (
        "forever",
        None,
        None,
    )


async def test_list_coupons_with_cursor_pagination_and_active_filter(api: Api) -> None:
    ids = [(await api.post("/v1/coupons", {"percent_off": 5 + i}))["id"] for i in range(5)]
    await api.delete(f"/v1/coupons/{ids[1]}")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"starting_after": cursor} if cursor else {})}
        page = await api.get("/v1/coupons", params=params)
        seen += [c["id"] for c in page["data"]]
        assert page["has_more"] == (page["next_cursor"] is not None)
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == ids
    active = await api.get("/v1/coupons", params={"active": "true"})
    assert [c["id"] for c in active["data"]] == [i for i in ids if i != ids[1]]
    assert [c["id"] for c in (await api.get("/v1/coupons", params={"active": "false"}))["data"]] == [ids[1]]


async def test_promotion_codes_create_find_and_deactivate(api: Api, demo: Any) -> None:
    await api.post("/v1/coupons", {"id": "HALF", "percent_off": 50})
    await api.post("/v1/coupons", {"id": "OTHER", "percent_off": 10})
    customer = await api.post("/v1/customers", {"name": "Acme", "currency": "USD"})
    code = await api.post(
        "/v1/promotion_codes",
        {
            "coupon": "HALF",
            "code": "half-off",
            "max_redemptions": 5,
            "expires_at": "2026-06-01T00:00:00Z",
            "customer": customer["id"],
            "restrictions": {
                "first_time_transaction": True,
                "minimum_amount": 2000,
                "minimum_amount_currency": "usd",
            },
            "metadata": {"channel": "newsletter"},
        },
    )
    assert code["id"].startswith("promo_")
    assert code["object"] == "promotion_code" and code["code"] == "HALF-OFF"
    assert code["coupon"]["id"] == "HALF" and code["coupon"]["percent_off"] == "50"
    assert (code["active"], code["max_redemptions"], code["times_redeemed"]) == (True, 5, 0)
    assert (code["expires_at"], code["customer"]) == ("2026-06-01T00:00:00Z", customer["id"])
    assert code["restrictions"] == {
        "first_time_transaction": True,
        "minimum_amount": 2000,
        "minimum_amount_currency": "USD",
    }
    generated = await api.post("/v1/promotion_codes", {"coupon": "OTHER"})
    assert len(generated["code"]) == 8 and generated["restrictions"]["minimum_amount"] is None

    assert (await api.get(f"/v1/promotion_codes/{code['id']}"))["code"] == "HALF-OFF"
    assert (await api.get("/v1/promotion_codes/half-OFF"))["id"] == code["id"]  # by code, any case
    by_code = await api.get("/v1/promotion_codes", params={"code": "Half-Off"})
    assert [c["id"] for c in by_code["data"]] == [code["id"]]
    by_coupon = await api.get("/v1/promotion_codes", params={"coupon": "OTHER"})
    assert [c["id"] for c in by_coupon["data"]] == [generated["id"]]

    off = await api.patch(f"/v1/promotion_codes/{code['id']}", {"active": False, "metadata": {"x": "y"}})
    assert (off["active"], off["metadata"]) == (False, {"x": "y"})
    inactive = await api.get("/v1/promotion_codes", params={"active": "false"})
    assert [c["id"] for c in inactive["data"]] == [code["id"]]
    assert (await api.patch("/v1/promotion_codes/HALF-OFF", {"active": True}))["active"] is True


async def test_validate_a_code_for_a_checkout(api: Api, demo: Any) -> None:
    await api.post("/v1/coupons", {"id": "PRO20", "percent_off": 20, "applies_to": {"plans": ["pro"]}})
    await api.post(
        "/v1/promotion_codes",
        {
            "coupon": "PRO20",
            "code": "PRO-LAUNCH",
            "restrictions": {"minimum_amount": 2000, "minimum_amount_currency": "USD"},
        },
    )
    before = await events(api)

    ok = await api.post(
        "/v1/promotion_codes/validate",
        {"code": "pro-launch", "price": "pro_monthly", "currency": "USD"},
        expect=200,
    )
    assert (ok["valid"], ok["reason"], ok["refusals"], ok["unchecked"]) == (True, None, [], [])
    assert ok["object"] == "promotion_code_validation" and ok["code"] == "PRO-LAUNCH"
    assert ok["coupon"]["id"] == "PRO20" and ok["promotion_code"].startswith("promo_")

    wrong_plan = await api.post(
        "/v1/promotion_codes/validate",
        {"code": "PRO-LAUNCH", "price": "basic_monthly", "currency": "USD"},
        expect=200,
    )
    assert wrong_plan["valid"] is False
    # basic_monthly is $9.00: below the $20.00 minimum too; every reason is listed, the first is `reason`.
    assert [r["code"] for r in wrong_plan["refusals"]] == ["minimum_amount_not_met", "coupon_not_applicable"]
    assert wrong_plan["reason"] == "minimum_amount_not_met"

    in_euros = await api.post(
        "/v1/promotion_codes/validate", {"code": "PRO-LAUNCH", "plan": "pro", "currency": "EUR"}, expect=200
    )
    assert [r["code"] for r in in_euros["refusals"]] == ["minimum_amount_not_met"]

    unknown_amount = await api.post(
        "/v1/promotion_codes/validate", {"code": "PRO-LAUNCH", "plan": "pro"}, expect=200
    )
    assert (unknown_amount["valid"], unknown_amount["unchecked"]) == (True, ["minimum_amount"])

    assert await events(api) == before  # validating redeems nothing


async def test_validate_reports_every_refusal_reason_of_the_code(
    api: Api, demo: Any, clock: FrozenClock
) -> None:
    await api.post("/v1/coupons", {"id": "FIRST", "amount_off": 500, "currency": "USD", "max_redemptions": 1})
    customer = await api.post("/v1/customers", {"name": "Acme", "currency": "USD"})
    other = await api.post("/v1/customers", {"name": "Other", "currency": "USD"})
    await api.post(
        "/v1/promotion_codes",
        {
            "coupon": "FIRST",
            "code": "WELCOME",
            "customer": customer["id"],
            "expires_at": "2026-01-02T00:00:00Z",
            "restrictions": {"first_time_transaction": True},
        },
    )
    body = {"code": "WELCOME", "customer": other["id"], "plan": "basic", "currency": "GBP"}
    result = await api.post(
        "/v1/promotion_codes/validate", {**body, "first_time_transaction": False}, expect=200
    )
    assert [r["code"] for r in result["refusals"]] == [
        "promotion_code_not_for_customer",
        "not_first_time_customer",
        "coupon_currency_mismatch",
    ]
    await api.patch("/v1/promotion_codes/WELCOME", {"active": False})
    clock.advance(timedelta(days=2))
    later = await api.post("/v1/promotion_codes/validate", body, expect=200)
    assert [r["code"] for r in later["refusals"]][:2] == ["promotion_code_inactive", "promotion_code_expired"]
    assert later["unchecked"] == ["first_time_transaction"]
    await api.delete("/v1/coupons/FIRST")
    gone = await api.post("/v1/promotion_codes/validate", {"code": "WELCOME"}, expect=200)
    assert "coupon_inactive" in [r["code"] for r in gone["refusals"]] and gone["coupon"]["valid"] is False


async def test_a_tenant_key_sees_only_codes_open_to_it(api: Api, demo: Any) -> None:
    mine = await api.post("/v1/customers", {"name": "Mine", "currency": "USD"})
    theirs = await api.post("/v1/customers", {"name": "Theirs", "currency": "USD"})
    await api.post("/v1/coupons", {"id": "VIP", "percent_off": 30})
    open_code = await api.post("/v1/promotion_codes", {"coupon": "VIP", "code": "EVERYONE"})
    my_code = await api.post(
        "/v1/promotion_codes", {"coupon": "VIP", "code": "MINE-ONLY", "customer": mine["id"]}
    )
    their_code = await api.post(
        "/v1/promotion_codes", {"coupon": "VIP", "code": "THEIRS", "customer": theirs["id"]}
    )
    key = await api.post(
        "/v1/api_keys", {"name": "tenant", "scopes": ["catalog:read"], "customer": mine["id"]}
    )
    tenant = api.as_key(key["secret"])

    # Listing and reading promotion codes is the platform's (the permission matrix): a tenant key sees
    # none of them, its own included; it may only ask whether a code applies to its own checkout.
    for code in ("", f"/{their_code['id']}", "/THEIRS", f"/{my_code['id']}", f"/{open_code['id']}"):
        problem = await tenant.get(f"/v1/promotion_codes{code}", expect=403)
        assert problem["code"] == "platform_key_required"
    problem = await tenant.post("/v1/promotion_codes/validate", {"code": "THEIRS"}, expect=404)
    assert problem["code"] == "promotion_code_not_found"
    await tenant.post(
        "/v1/promotion_codes/validate", {"code": "EVERYONE", "customer": theirs["id"]}, expect=404
    )
    mine_ok = await tenant.post("/v1/promotion_codes/validate", {"code": "MINE-ONLY"}, expect=200)
    assert mine_ok["valid"] is True  # the key's own customer is the checkout's customer
    await tenant.post("/v1/coupons", {"percent_off": 10}, expect=403)
    await tenant.patch("/v1/promotion_codes/EVERYONE", {"active": False}, expect=403)


async def test_scopes(api: Api) -> None:
    await api.post("/v1/coupons", {"id": "SCOPED", "percent_off": 10})
    await api.post("/v1/promotion_codes", {"coupon": "SCOPED", "code": "SCOPED"})
    reader = api.as_key((await api.post("/v1/api_keys", {"name": "r", "scopes": ["catalog:read"]}))["secret"])
    await reader.get("/v1/coupons/SCOPED")
    await reader.post("/v1/promotion_codes/validate", {"code": "SCOPED"}, expect=200)
    for method, path, body in [
        ("POST", "/v1/coupons", {"percent_off": 10}),
        ("PATCH", "/v1/coupons/SCOPED", {"name": "x"}),
        ("DELETE", "/v1/coupons/SCOPED", None),
        ("POST", "/v1/promotion_codes", {"coupon": "SCOPED"}),
        ("PATCH", "/v1/promotion_codes/SCOPED", {"active": False}),
    ]:
        problem = await reader.call(method, path, json=body, expect=403)
        assert problem["required_scope"] == "catalog:write"
    nobody = api.as_key(
        (await api.post("/v1/api_keys", {"name": "n", "scopes": ["customers:read"]}))["secret"]
    )
    await nobody.get("/v1/coupons", expect=403)


MALFORMED_COUPONS = [
    {"percent_off": 12.5},  # a float: ask for "12.5"
    {"percent_off": "12.345"},
    {"percent_off": "0"},
    {"percent_off": "100.5"},
    {"percent_off": 10, "amount_off": 100, "currency": "USD"},
    {},
    {"amount_off": 100},
    {"amount_off": 0, "currency": "USD"},
    {"amount_off": 100, "currency": "XXX"},
    {"amount_off": 100, "currency": "USD", "currency_options": {"USD": {"amount_off": 90}}},
    {"amount_off": 100, "currency": "USD", "currency_options": {"EUR": {"amount_off": -1}}},
    {"percent_off": 10, "currency": "USD"},
    {"percent_off": 10, "duration": "repeating"},
    {"percent_off": 10, "duration": "forever", "duration_in_months": 3},
    {"percent_off": 10, "duration": "weekly"},
    {"percent_off": 10, "max_redemptions": 0},
    {"percent_off": 10, "redeem_by": "2026-09-01T00:00:00"},  # naive
    {"percent_off": 10, "redeem_by": "2025-12-31T00:00:00Z"},  # past
    {"percent_off": 10, "redeem_by": 1767225600},  # a number is not a timestamp here
    {"percent_off": 10, "applies_to": {"plans": ["platinum"]}},
    {"percent_off": 10, "applies_to": {"plans": []}},
    {"percent_off": 10, "id": "has space"},
    {"percent_off": 10, "id": "cpn_mine"},
    {"percent_off": 10, "times_redeemed": 5},  # not settable
    {"percent_off": 10, "metadata": {"a": 1}},
]


@pytest.mark.parametrize("body", MALFORMED_COUPONS)
async def test_malformed_coupons_are_422_and_change_nothing(
    api: Api, demo: Any, body: dict[str, Any]
) -> None:
    before = await events(api)
    response = await api.client.post("/v1/coupons", json=body, headers=api._headers(None))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] in ("validation_failed", "naive_datetime")
    assert await events(api) == before
    assert (await api.get("/v1/coupons"))["data"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"code": "X"},  # no coupon
        {"coupon": "C", "code": "no spaces"},
        {"coupon": "C", "code": "ab"},
        {"coupon": "C", "restrictions": {"minimum_amount": 100}},
        {"coupon": "C", "restrictions": {"minimum_amount": 0, "minimum_amount_currency": "USD"}},
        {"coupon": "C", "restrictions": {"minimum_amount_currency": "USD"}},
        {"coupon": "C", "restrictions": {"minimum_amount": 100, "minimum_amount_currency": "ZZZ"}},
        {"coupon": "C", "expires_at": "2025-01-01T00:00:00Z"},
        {"coupon": "C", "max_redemptions": 0},
        {"coupon": "C", "times_redeemed": 3},
    ],
)
async def test_malformed_promotion_codes_are_422(api: Api, body: dict[str, Any]) -> None:
    await api.post("/v1/coupons", {"id": "C", "percent_off": 10})
    problem = await api.post("/v1/promotion_codes", body, expect=422)
    assert problem["status"] == 422
    assert (await api.get("/v1/promotion_codes"))["data"] == []


async def test_updates_refuse_immutable_terms_with_422(api: Api) -> None:
    await api.post("/v1/coupons", {"id": "FIXED", "percent_off": 10})
    await api.post("/v1/promotion_codes", {"coupon": "FIXED", "code": "FIXED"})
    for body in ({"percent_off": "50"}, {"duration": "forever"}, {"max_redemptions": 3}, {"active": True}):
        await api.patch("/v1/coupons/FIXED", body, expect=422)
    for body in ({"code": "OTHER"}, {"coupon": "FIXED"}, {"max_redemptions": 3}):
        await api.patch("/v1/promotion_codes/FIXED", body, expect=422)
    await api.post("/v1/promotion_codes/validate", {"code": "FIXED", "extra": 1}, expect=422)
    await api.post("/v1/promotion_codes/validate", {}, expect=422)
    await api.get("/v1/promotion_codes", params={"stauts": "x"}, expect=422)
    assert (await api.get("/v1/coupons/FIXED"))["percent_off"] == "10"


async def test_unknown_resources_are_404(api: Api, demo: Any) -> None:
    await api.post("/v1/coupons", {"id": "REAL", "percent_off": 10})
    await api.post("/v1/promotion_codes", {"coupon": "REAL", "code": "REAL-CODE"})
    cases: list[tuple[str, str, Any, str]] = [
        ("GET", "/v1/coupons/NOPE", None, "coupon_not_found"),
        ("PATCH", "/v1/coupons/NOPE", {"name": "x"}, "coupon_not_found"),
        ("DELETE", "/v1/coupons/NOPE", None, "coupon_not_found"),
        ("POST", "/v1/promotion_codes", {"coupon": "NOPE"}, "coupon_not_found"),
        ("POST", "/v1/promotion_codes", {"coupon": "REAL", "customer": "cus_nobody"}, "customer_not_found"),
        ("GET", "/v1/promotion_codes/NOPE", None, "promotion_code_not_found"),
        ("GET", "/v1/promotion_codes/promo_nope", None, "promotion_code_not_found"),
        ("PATCH", "/v1/promotion_codes/NOPE", {"active": False}, "promotion_code_not_found"),
        ("POST", "/v1/promotion_codes/validate", {"code": "NOPE"}, "promotion_code_not_found"),
        ("POST", "/v1/promotion_codes/validate", {"code": "REAL-CODE", "plan": "platinum"}, "plan_not_found"),
        (
            "POST",
            "/v1/promotion_codes/validate",
            {"code": "REAL-CODE", "price": "nope_monthly"},
            "price_not_found",
        ),
    ]
    for method, path, body, code in cases:
        problem = await api.call(method, path, json=body, expect=404)
        assert problem["code"] == code, (method, path)


async def test_business_refusals_are_409(api: Api, demo: Any) -> None:
    await api.post("/v1/coupons", {"id": "ONCE", "percent_off": 10})
    problem = await api.post("/v1/coupons", {"id": "ONCE", "percent_off": 20}, expect=409)
    assert problem["code"] == "coupon_already_exists"
    await api.post("/v1/promotion_codes", {"coupon": "ONCE", "code": "SAME"})
    problem = await api.post("/v1/promotion_codes", {"coupon": "ONCE", "code": "same"}, expect=409)
    assert problem["code"] == "promotion_code_already_exists"
    await api.patch("/v1/promotion_codes/SAME", {"active": False})
    await api.delete("/v1/coupons/ONCE")
    problem = await api.post("/v1/promotion_codes", {"coupon": "ONCE"}, expect=409)
    assert problem["code"] == "coupon_inactive"
    problem = await api.patch("/v1/promotion_codes/SAME", {"active": True}, expect=409)
    assert problem["code"] == "coupon_inactive"
    assert (await api.get("/v1/promotion_codes/SAME"))["active"] is False


async def test_validate_with_a_price_in_a_currency_it_lacks_is_422(api: Api, demo: Any) -> None:
    await api.post("/v1/coupons", {"id": "V", "percent_off": 10})
    await api.post("/v1/promotion_codes", {"coupon": "V", "code": "VCODE"})
    await api.post(
        "/v1/promotion_codes/validate",
        {"code": "VCODE", "price": "pro_monthly", "currency": "GBP"},
        expect=422,
    )
    await api.post(
        "/v1/promotion_codes/validate", {"code": "VCODE", "price": "pro_monthly", "plan": "basic"}, expect=422
    )
