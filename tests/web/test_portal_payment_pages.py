"""The portal's money pages in Chromium, with the embedded sandbox provider's own pages between them
(issue #13: every flow in a real browser, axe on every page, a screenshot of each): a customer adds a card
that asks for 3-D Secure through the provider's setup page, pays an open invoice with "pay now", fails
the bank's check once (the portal says so and nothing is paid), then completes it and comes back to the
invoice paid. The sandbox pages are Tiergate's own (gateway/sandbox/pages.py), so they are held to the
same accessibility bar."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from tests.payments.test_embedded_account import served
from tests.payments.test_sandbox_stories import eventually
from tests.portal.test_portal_payments import _open_invoice, _settings
from tests.web.conftest import axe_check, screenshot

pytestmark = pytest.mark.browser


async def _text(page: Any, selector: str) -> str:
    return " ".join((await page.inner_text(selector)).split())


async def test_add_a_3ds_card_then_pay_now_through_the_banks_check(
    clock: FrozenClock, db: Database, page: Any
) -> None:
    settings = _settings()
    base = f"http://127.0.0.1:{settings.port}"
    async with served(settings, clock, db) as api:
        customer = (await api.post("/v1/customers", {"name": "Secure BV", "currency": "EUR"}))["id"]
        link = await api.post("/v1/portal_sessions", {"customer": customer})
        await page.goto(link["url"])
        await page.click("#add-method")
        assert page.url.startswith(f"{base}/sandbox/setup/")
        await axe_check(page)
        await screenshot(page, "sandbox-setup-page")
        await page.check("#m-card_3ds")
        await page.click("button[type=submit]")
        assert page.url.startswith(f"{base}/portal?done=method_added")
        assert await _text(page, "[role=status]") == "Your payment method is being added."

        async def methods() -> Any:
            return (await api.get(f"/v1/customers/{customer}/payment_methods"))["data"]

        await eventually(methods, lambda rows: len(rows) == 1)
        invoice = await _open_invoice(api, customer, 3_509)
        await page.goto(f"{base}/portal")
        await axe_check(page)
        await screenshot(page, "portal-open-invoice-en")

        await page.click("button.pay-now")
        assert page.url.startswith(f"{base}/sandbox/challenge/")
        await axe_check(page)
        await screenshot(page, "sandbox-3ds-challenge")
        await page.click("button[value=fail]")
        assert page.url == f"{base}/portal?failed=authentication_failed"
        assert await _text(page, "[role=alert]") == (
            "Your bank's check was not completed, so nothing was paid. "
            "Try again or add another payment method."
        )
        await axe_check(page)
        await screenshot(page, "portal-3ds-failed-en")
        assert (await api.get(f"/v1/invoices/{invoice['id']}"))["status"] == "open"

        await page.click("button.pay-now")
        await page.click("button[value=complete]")
        assert page.url == f"{base}/portal?done=paid"
        assert await _text(page, "[role=status]") == "Thank you: the invoice is paid."
        settled = await api.get(f"/v1/invoices/{invoice['id']}")
        assert (settled["status"], settled["amount_paid"], settled["amount_remaining"]) == ("paid", 3_509, 0)
        await axe_check(page)
        await screenshot(page, "portal-3ds-paid-en")

        await page.goto(f"{base}/portal?failed=authentication_failed&lang=nl")
        assert await _text(page, "[role=alert]") == (
            "De controle van je bank is niet afgerond, dus er is niets betaald. "
            "Probeer het opnieuw of voeg een andere betaalmethode toe."
        )
        await axe_check(page)
        await screenshot(page, "portal-3ds-failed-nl")
