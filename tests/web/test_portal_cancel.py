"""The customer portal in Chromium: a portal link opens the overview, the cancel flow asks why and
records the answer, and undo keeps the subscription; every page passes axe in English and Dutch and is
screenshotted; a link used twice shows a clear page."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import Api
from tests.web.conftest import axe_check, console_errors, screenshot

pytestmark = pytest.mark.browser


async def portal_link(api: Api, customer: str, **extra: Any) -> str:
    made = await api.post("/v1/portal_sessions", {"customer": customer, **extra})
    return f"{api.url}{urlsplit(made['url']).path}"  # type: ignore[attr-defined]


async def test_cancel_with_a_reason_then_undo_in_the_browser(web_server: Api, page: Any) -> None:
    api = web_server
    customer = await api.post("/v1/customers", {"name": "Acme", "currency": "USD"})
    sub = await api.post(
        "/v1/subscriptions", {"customer": customer["id"], "price": "pro_monthly", "trial_days": 0}
    )
    errors = console_errors(page)
    link = await portal_link(api, customer["id"], return_url="https://app.example/account")

    await page.goto(link)
    assert urlsplit(page.url).path == "/portal"
    assert await page.text_content("#plan-name") == "Pro"
    assert (await page.text_content("#plan-price")).strip().startswith("$29.00")
    await axe_check(page)
    await screenshot(page, "portal-overview-en")
    for language, heading in (("nl", "Facturering voor Acme"), ("en", "Billing for Acme")):
        await page.goto(f"{api.url}/portal?lang={language}")  # type: ignore[attr-defined]
        assert await page.text_content("h1") == heading
        await axe_check(page)
        await screenshot(page, f"portal-overview-{language}")

    await page.click("#cancel-link")
    assert urlsplit(page.url).path == "/portal/cancel"
    await axe_check(page)
    await screenshot(page, "portal-cancel-en")
    # Submitting without a reason: the error beside the question, nothing canceled.
    await page.click("#confirm-cancel")
    assert (await page.text_content("#e-feedback")).strip() == "Choose a reason."
    await axe_check(page)
    await screenshot(page, "portal-cancel-error-en")
    assert (await api.get(f"/v1/subscriptions/{sub['id']}"))["cancel_at_period_end"] is False

    await page.check("#r-too_expensive")
    await page.fill("#f-comment", "Half the price and I stay")
    await page.click("#confirm-cancel")
    assert urlsplit(page.url).path == "/portal"
    assert await page.is_visible("#undo-cancel")
    await axe_check(page)
    await screenshot(page, "portal-cancel-scheduled-en")
    canceled = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert (canceled["cancel_at_period_end"], canceled["cancellation_details"]) == (
        True,
        {"reason": None, "feedback": "too_expensive", "comment": "Half the price and I stay"},
    )

    await page.goto(f"{api.url}/portal/cancel?lang=nl")  # type: ignore[attr-defined]
    await axe_check(page)
    await screenshot(page, "portal-cancel-nl")
    await page.goto(f"{api.url}/portal?lang=en")  # type: ignore[attr-defined]
    await page.click("#undo-cancel")
    assert await page.is_visible("#cancel-link")
    kept = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert (kept["cancel_at_period_end"], kept["cancellation_details"]) == (False, None)
    # No CSP refusal or script error (the form's intended 422 is the only failed load).
    assert [e for e in errors if "422" not in e] == []

    # The link a second time: a clear page, not the portal.
    await page.goto(link)
    assert await page.get_attribute("#problem", "data-code") == "portal_link_invalid"
    await axe_check(page)
    await screenshot(page, "portal-link-used-en")
