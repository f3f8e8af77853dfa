"""The catalog overview of the admin console (issue #14, Catalog): products, plans and add-ons with every
price in every currency; an admin adds a quarterly Pro price in euros, which the API then lists exactly as
`POST /v1/prices` would have made it and a subscription can use; a taken lookup key and a bad amount are
refused beside their field and create nothing; a support member reads but cannot post. axe en/nl."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.web.cookies import STAFF_COOKIE
from tests.conftest import Api
from tests.web.conftest import axe_check, console_errors, screenshot, staff_session


def _words(text: str) -> str:
    return " ".join(text.split())


async def _pro_prices(api: Api, lookup_key: str) -> list[dict[str, Any]]:
    listed = (await api.get("/v1/prices", params={"plan": "pro", "limit": 100}))["data"]
    return [p for p in listed if p["lookup_key"] == lookup_key]


async def test_an_admin_adds_a_quarterly_euro_price_and_the_api_sells_it(
    web_server: Api, page: Any, db: Database, clock: FrozenClock
) -> None:
    api, url = web_server, web_server.url  # type: ignore[attr-defined]
    errors = console_errors(page)
    token = await staff_session(db, clock, "ada@vendor.example", "admin")
    await page.context.add_cookies([{"name": STAFF_COOKIE, "value": token, "url": url}])
    await page.goto(f"{url}/admin?lang=en")
    await page.get_by_role("link", name="Catalog", exact=True).click()
    assert page.url == f"{url}/admin/catalog"
    pro = page.locator('tr[data-plan="pro"]')
    assert _words(await pro.locator("th").inner_text()) == "Pro pro"
    assert _words(await pro.locator('li[data-price="pro_monthly"]').inner_text()) == (
        "Pro monthly: $29.00 · €27.00 per month"
    )
    seats = page.locator('tr[data-plan="extra_seats"] li[data-price="extra_seats_monthly"]')
    assert _words(await seats.inner_text()) == "5 extra seats: $10.00 · €9.00 per month per seat"

    await page.select_option("#f-plan", "pro")
    await page.select_option("#f-interval", "quarter")
    await page.fill("#f-currency", "eur")
    await page.fill("#f-amount", "79,5")
    await page.fill("#f-lookup_key", "pro_monthly")  # taken
    await page.click("#create-price")
    assert "pro_monthly" in await page.inner_text("#e-lookup_key")
    assert await page.input_value("#f-amount") == "79,5"  # what was typed stays
    await axe_check(page)
    await page.fill("#f-lookup_key", "pro_quarterly_eur")
    await page.fill("#f-amount", "79.505")  # more decimals than the euro has
    await page.click("#create-price")
    assert await page.inner_text("#e-amount") == (
        "enter a positive amount with at most the currency's decimals"
    )
    assert await _pro_prices(api, "pro_quarterly_eur") == []

    await page.fill("#f-amount", "79.50")
    await page.click("#create-price")
    assert await page.get_by_role("status").inner_text() == "The price has been created."
    created = page.locator('li[data-price="pro_quarterly_eur"]')
    assert _words(await created.inner_text()) == "pro_quarterly_eur: €79.50 per quarter"
    await screenshot(page, "admin-catalog-en")

    [price] = await _pro_prices(api, "pro_quarterly_eur")
    assert (price["interval"], price["model"], price["currency_options"]["EUR"]["unit_amount"]) == (
        "quarter",
        "flat",
        7950,
    )
    customer = await api.post("/v1/customers", {"name": "Quarterly BV", "currency": "EUR"})
    sub = await api.post(
        "/v1/subscriptions", {"customer": customer["id"], "price": "pro_quarterly_eur", "trial_days": 0}
    )
    assert (sub["interval"], sub["currency"]) == ("quarter", "EUR")
    assert [e for e in errors if "status of 422" not in e] == [], errors


async def test_a_support_member_reads_the_catalog_but_cannot_add_a_price(
    web_server: Api, db: Database, clock: FrozenClock
) -> None:
    token = await staff_session(db, clock, "sam@vendor.example", "support")
    async with httpx.AsyncClient(base_url=web_server.url) as client:  # type: ignore[attr-defined]
        client.cookies.set(STAFF_COOKIE, token)
        assert (await client.get("/admin/catalog")).status_code == 200
        csrf = client.cookies.get("tg_csrf") or ""
        form = {"plan": "pro", "model": "flat", "interval": "month", "currency": "USD", "amount": "1"}
        refused = await client.post("/admin/catalog/prices", data={**form, "_csrf_token": csrf})
        assert refused.status_code == 403 and 'data-code="staff_role_forbidden"' in refused.text
    prices = (await web_server.get("/v1/prices", params={"limit": 100}))["data"]
    assert len(prices) == 7  # the demo's, nothing added


@pytest.mark.parametrize("language", ["en", "nl"])
async def test_the_catalog_page_is_accessible_in_both_languages(
    web_server: Api, page: Any, db: Database, clock: FrozenClock, language: str
) -> None:
    token = await staff_session(db, clock, "ada@vendor.example", "admin")
    await page.context.add_cookies([{"name": STAFF_COOKIE, "value": token, "url": web_server.url}])  # type: ignore[attr-defined]
    await page.goto(f"{web_server.url}/admin/catalog?lang={language}")  # type: ignore[attr-defined]
    assert await page.get_attribute("html", "lang") == language
    per_month = {"en": "per month", "nl": "per maand"}[language]
    assert per_month in await page.locator('li[data-price="basic_monthly"]').inner_text()
    await axe_check(page)
    await screenshot(page, f"admin-catalog-{language}")
