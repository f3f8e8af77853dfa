"""Coupons and promotion codes in the admin console (issue #14, Catalog): an admin creates a coupon
("$5.00 off, for 3 months") and a code for it; the API sees both exactly as `POST /v1/coupons` and
`POST /v1/promotion_codes` would have made them, and the code takes a redemption through the API. Bad
terms and a taken code are refused beside their field and create nothing. A support member reads the page
but gets 403 on every form post. axe in English and Dutch."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.web.cookies import STAFF_COOKIE
from tests.conftest import Api
from tests.web.conftest import axe_check, console_errors, screenshot, staff_session


async def _signed_in(page: Any, api: Api, db: Database, clock: FrozenClock, role: str = "admin") -> None:
    token = await staff_session(db, clock, f"{role}@vendor.example", role)
    await page.context.add_cookies([{"name": STAFF_COOKIE, "value": token, "url": api.url}])  # type: ignore[attr-defined]


async def test_an_admin_creates_a_coupon_and_a_promotion_code_the_api_sees_both(
    web_server: Api, page: Any, db: Database, clock: FrozenClock
) -> None:
    api, url = web_server, web_server.url  # type: ignore[attr-defined]
    errors = console_errors(page)
    await _signed_in(page, api, db, clock)
    await page.goto(f"{url}/admin?lang=en")
    await page.get_by_role("link", name="Coupons").first.click()
    assert page.url == f"{url}/admin/coupons"
    assert await page.locator("#coupons tbody").inner_text() == "No coupons yet."

    # An amount off with more decimals than the dollar has: refused beside the field, nothing made.
    await page.fill("#f-name", "Spring")
    await page.select_option("#f-kind", "amount")
    await page.fill("#f-amount_off", "5.001")
    await page.select_option("#f-duration", "repeating")
    await page.fill("#f-months", "3")
    await page.click("#create-coupon")
    assert await page.inner_text("#e-amount_off") == (
        "enter a positive amount with at most the currency's decimals"
    )
    assert await page.input_value("#f-name") == "Spring"  # what was typed stays
    await axe_check(page)
    assert (await api.get("/v1/coupons"))["data"] == []

    await page.fill("#f-amount_off", "5.00")
    await page.click("#create-coupon")
    assert await page.get_by_role("status").inner_text() == "The coupon has been created."
    [coupon] = (await api.get("/v1/coupons"))["data"]
    assert (coupon["name"], coupon["amount_off"], coupon["currency"], coupon["percent_off"]) == (
        "Spring",
        500,
        "USD",
        None,
    )
    assert (coupon["duration"], coupon["duration_in_months"]) == ("repeating", 3)
    row = page.locator(f"#coupon-{coupon['id']}")
    assert " ".join((await row.inner_text()).split()) == (
        f"Spring {coupon['id']} $5.00 off, for 3 months 0 Valid Deactivate"
    )

    await page.select_option("#f-coupon", coupon["id"])
    await page.fill("#f-code", "spring5")
    await page.fill("#f-code_max", "100")
    await page.click("#create-code")
    assert await page.get_by_role("status").inner_text() == "The promotion code has been created."
    [code] = (await api.get("/v1/promotion_codes"))["data"]
    assert (code["code"], code["coupon"]["id"], code["max_redemptions"]) == ("SPRING5", coupon["id"], 100)
    # The same code again: refused beside the field; still one code.
    await page.select_option("#f-coupon", coupon["id"])
    await page.fill("#f-code", "SPRING5")
    await page.click("#create-code")
    assert "exists" in await page.inner_text("#e-code")
    assert len((await api.get("/v1/promotion_codes"))["data"]) == 1
    await axe_check(page)
    await screenshot(page, "admin-coupons-en")

    # The code works through the API as any other: a customer's checkout would apply it.
    customer = await api.post("/v1/customers", {"name": "Buyer", "currency": "USD"})
    answer = await api.post(
        "/v1/promotion_codes/validate",
        {"code": "spring5", "customer": customer["id"], "price": "basic_monthly"},
        expect=200,
    )
    assert answer["valid"] is True

    await page.goto(f"{url}/admin/coupons")
    await page.get_by_role("button", name="Deactivate Spring").click()
    assert (await api.get(f"/v1/coupons/{coupon['id']}"))["active"] is False
    assert [e for e in errors if "status of 422" not in e] == [], errors


async def test_a_support_member_reads_coupons_but_cannot_create_or_deactivate(
    web_server: Api, db: Database, clock: FrozenClock
) -> None:
    coupon = await web_server.post("/v1/coupons", {"name": "Kept", "percent_off": 10})
    token = await staff_session(db, clock, "sam@vendor.example", "support")
    async with httpx.AsyncClient(base_url=web_server.url) as client:  # type: ignore[attr-defined]
        client.cookies.set(STAFF_COOKIE, token)
        assert (await client.get("/admin/coupons")).status_code == 200
        csrf = client.cookies.get("tg_csrf") or ""
        for path, form in (
            ("/admin/coupons", {"name": "Sneaky", "kind": "percent", "percent_off": "90"}),
            ("/admin/coupons/promotion_codes", {"coupon": coupon["id"], "code": "FREE"}),
            (f"/admin/coupons/{coupon['id']}/deactivate", {}),
        ):
            refused = await client.post(path, data={**form, "_csrf_token": csrf})
            assert refused.status_code == 403 and 'data-code="staff_role_forbidden"' in refused.text, path
    assert [c["name"] for c in (await web_server.get("/v1/coupons"))["data"]] == ["Kept"]
    assert (await web_server.get("/v1/promotion_codes"))["data"] == []


@pytest.mark.parametrize("language", ["en", "nl"])
async def test_the_coupons_page_is_accessible_in_both_languages(
    web_server: Api, page: Any, db: Database, clock: FrozenClock, language: str
) -> None:
    coupon = await web_server.post("/v1/coupons", {"name": "Loyal", "percent_off": 25, "duration": "forever"})
    await web_server.post("/v1/promotion_codes", {"coupon": coupon["id"], "code": "LOYAL25"})
    await _signed_in(page, web_server, db, clock)
    await page.goto(f"{web_server.url}/admin/coupons?lang={language}")  # type: ignore[attr-defined]
    assert await page.get_attribute("html", "lang") == language
    terms = {"en": "25% off, forever", "nl": "25% korting, altijd"}[language]
    assert terms in await page.locator(f"#coupon-{coupon['id']}").inner_text()
    await axe_check(page)
    await screenshot(page, f"admin-coupons-{language}")
