"""The proof of issue #13's pricing and checkout part, in Chromium: pricing page → checkout with a
promotion code → the subscription is active (trialing) in the API; an expired code shows its message
beside the field and creates nothing; a visitor in an experiment sees the same variant twice and the
results page counts the conversion. axe on every page, in English and Dutch; screenshots."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.portal.experiment_domain import Variant, assign
from gateway.web.cookies import STAFF_COOKIE
from tests.conftest import Api
from tests.web.conftest import axe_check, console_errors, screenshot, staff_session

pytestmark = pytest.mark.browser


async def product_id(api: Api) -> str:
    return str((await api.get("/v1/products"))["data"][0]["id"])


async def test_pricing_to_checkout_with_a_promotion_code_makes_an_active_subscription(
    web_server: Api, page: Any
) -> None:
    api = web_server
    product = await product_id(api)
    coupon = await api.post("/v1/coupons", {"percent_off": "20", "duration": "once"})
    await api.post("/v1/promotion_codes", {"coupon": coupon["id"], "code": "WELCOME20"})
    errors = console_errors(page)
    for language in ("nl", "en"):
        await page.goto(f"{api.url}/pricing/{product}?lang={language}")  # type: ignore[attr-defined]
        await axe_check(page)
        await screenshot(page, f"pricing-{language}")
    assert await page.locator('[data-plan="pro"] strong').inner_text() == "$29.00"
    await page.get_by_role("link", name="Yearly").click()
    assert await page.locator('[data-plan="pro"] strong').inner_text() == "$278.40"
    assert await page.get_by_text("You save $69.60 a year").count() == 1
    await page.get_by_role("button", name="Choose Pro").click()
    await page.get_by_label("Name").wait_for()
    await axe_check(page)
    await screenshot(page, "checkout-en")
    await page.get_by_label("Name").fill("Ada Labs")
    await page.get_by_label("E-mail").fill("ada@labs.example")
    # A code that does not exist: the message is beside the field, and nothing was created.
    await page.get_by_label("Promotion code").fill("NOPE")
    await page.get_by_role("button", name="Subscribe").click()
    assert await page.locator("#e-promotion_code").inner_text() == "This promotion code does not exist."
    await axe_check(page)
    await screenshot(page, "checkout-bad-code-en")
    assert (await api.get("/v1/customers"))["data"] == []
    await page.get_by_label("Promotion code").fill("welcome20")
    await page.get_by_role("button", name="Subscribe").click()
    await page.get_by_role("heading", name="Thank you").wait_for()
    await axe_check(page)
    customers = (await api.get("/v1/customers"))["data"]
    assert [c["name"] for c in customers] == ["Ada Labs"]
    subs = (await api.get("/v1/subscriptions", params={"customer": customers[0]["id"]}))["data"]
    assert [(s["status"], s["currency"]) for s in subs] == [("trialing", "USD")]
    # The refused code's form answered 422 (the browser logs it); nothing else went wrong (no CSP refusal).
    assert errors == [
        "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    ]


async def test_a_visitor_in_an_experiment_sees_the_same_variant_twice_and_the_results_count_it(
    web_server: Api, page: Any, db: Any, clock: Any
) -> None:
    api = web_server
    product = await product_id(api)
    plan = await api.get("/v1/plans/pro")
    pro = await api.get("/v1/prices/pro_monthly")
    alt = await api.post(
        "/v1/prices",
        {
            "plan": plan["id"],
            "model": "flat",
            "interval": "month",
            "currency_options": {"USD": {"unit_amount": 3500}},
        },
    )
    variants = [
        {"key": "control", "weight": 1},
        {"key": "pro_35", "weight": 1, "prices": {pro["id"]: alt["id"]}},
    ]
    exp = await api.post("/v1/experiments", {"name": "Pro price", "product": product, "variants": variants})
    await api.post(f"/v1/experiments/{exp['id']}/start", expect=200)
    await page.goto(f"{api.url}/pricing/{product}")  # type: ignore[attr-defined]
    first = await page.locator('[data-plan="pro"] strong').inner_text()
    await page.reload()
    assert await page.locator('[data-plan="pro"] strong').inner_text() == first
    visitor = next(c["value"] for c in await page.context.cookies() if c["name"] == "tg_visitor")
    expected = assign(exp["id"], visitor, [Variant("control", 1), Variant("pro_35", 1)]).key
    assert first == {"control": "$29.00", "pro_35": "$35.00"}[expected]
    await page.get_by_role("button", name="Choose Pro").click()
    await page.get_by_label("Name").fill("Bea Works")
    await page.get_by_label("E-mail").fill("bea@works.example")
    await page.get_by_role("button", name="Subscribe").click()
    await page.get_by_role("heading", name="Thank you").wait_for()
    results = await api.get(f"/v1/experiments/{exp['id']}/results")
    counted = {
        v["variant"]: (v["visitors"], v["checkouts_started"], v["checkouts_completed"])
        for v in results["variants"]
    }
    assert counted[expected] == (1, 1, 1)
    token = await staff_session(db, clock, "olga@vendor.example", "read_only")
    await page.context.add_cookies([{"name": STAFF_COOKIE, "value": token, "url": api.url}])  # type: ignore[attr-defined]
    for language in ("en", "nl"):
        await page.goto(f"{api.url}/experiments/{exp['id']}?lang={language}")  # type: ignore[attr-defined]
        assert await page.locator(f'tr[data-variant="{expected}"] .completed').inner_text() == "1"
        await axe_check(page)
        await screenshot(page, f"experiment-results-{language}")
