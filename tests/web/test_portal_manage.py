"""The customer portal's self-service actions in Chromium (issue #13): each change shows exactly what it
will charge or credit (the API's own preview) before it is confirmed; refusals (a downgrade the
configuration does not offer, an expired promotion code, a bad VAT number) show beside their field and
change nothing; the invoice's PDF downloads. axe on every page, English and Dutch; a screenshot of each.

The served app runs on the test's frozen clock, so every prorated amount is exact."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.kernel.clock import FrozenClock
from tests.conftest import Api
from tests.web.conftest import axe_check, console_errors, screenshot
from tests.web.test_portal_cancel import portal_link

pytestmark = pytest.mark.browser


async def _customer_on(api: Api, price: str, **extra: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    customer = await api.post("/v1/customers", {"name": "Acme", "currency": "USD", "country": "US"})
    sub = await api.post(
        "/v1/subscriptions", {"customer": customer["id"], "price": price, "trial_days": 0, **extra}
    )
    return customer, sub


async def _price(api: Api, lookup_key: str) -> str:
    return str((await api.get(f"/v1/prices/{lookup_key}"))["id"])


async def _text(page: Any, selector: str) -> str:
    return " ".join((await page.text_content(selector) or "").split())


async def test_upgrade_and_yearly_switch_with_previews_then_the_invoice_pdf(
    web_server: Api, page: Any
) -> None:
    api = web_server
    customer, sub = await _customer_on(api, "basic_monthly")
    errors = console_errors(page)
    await page.goto(await portal_link(api, customer["id"]))
    assert await _text(page, "#plan-name") == "Basic"
    await page.click("#change-plan-link")
    assert urlsplit(page.url).path == "/portal/plan"
    # Offered: both Pro prices (upgrades) and Basic yearly (an interval switch, its saving shown);
    # Enterprise is sales-priced and the current price is not offered.
    options = await page.locator("fieldset label").all_inner_texts()
    assert [" ".join(o.split()) for o in options] == [
        "Basic: $86.40 / year switch how often you pay · save 20%",
        "Pro: $29.00 / month upgrade, starts now",
        "Pro: $278.40 / year upgrade, starts now · save 20%",
    ]
    await axe_check(page)
    await screenshot(page, "portal-plan-en")

    await page.check("#p-pro_monthly")
    await page.click("#preview-plan")
    api_preview = await api.post(
        f"/v1/subscriptions/{sub['id']}/preview_change", {"price": "pro_monthly"}, expect=200
    )
    # The clock has not moved since the subscription started: the whole Basic month is credited and the
    # whole Pro month charged, $29.00 − $9.00, on the next invoice.
    assert api_preview["outcome"] == "pending"
    assert [i["amount"] for i in api_preview["pending_items"]] == [2_000]
    assert await _text(page, "#preview-summary") == "$20.00 is added to your next invoice."
    await axe_check(page)
    await screenshot(page, "portal-plan-preview-en")
    assert (await api.get(f"/v1/subscriptions/{sub['id']}"))["price"] == await _price(api, "basic_monthly")

    await page.click("#confirm-plan")
    assert urlsplit(page.url).path == "/portal"
    assert await _text(page, "[role=status]") == "Your plan has been changed."
    assert await _text(page, "#plan-name") == "Pro"
    changed = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert changed["price"] == await _price(api, "pro_monthly")
    invoices = (await api.get("/v1/invoices", params={"customer": customer["id"]}))["data"]
    assert [i["total"] for i in invoices] == [900]

    # The yearly switch, in Dutch: the saving beside it, then the preview in euro-less dollars.
    await page.goto(f"{api.url}/portal/plan?lang=nl")  # type: ignore[attr-defined]
    await axe_check(page)
    await screenshot(page, "portal-plan-nl")
    assert "bespaar 20%" in await _text(page, "label[for=p-pro_yearly]")
    await page.check("#p-pro_yearly")
    await page.click("#preview-plan")
    yearly = await api.post(
        f"/v1/subscriptions/{sub['id']}/preview_change", {"price": "pro_yearly"}, expect=200
    )
    # A year of Pro, less the unused Pro month, plus the upgrade's $20.00 waiting for the next invoice.
    assert (yearly["outcome"], yearly["invoice"]["total"]) == ("invoice", 27_840 - 2_900 + 2_000)
    assert await _text(page, "#preview-summary") == "Je betaalt nu US$ 269,40."
    await page.click("#confirm-plan")
    assert (await api.get(f"/v1/subscriptions/{sub['id']}"))["price"] == await _price(api, "pro_yearly")

    # The invoices, newest first, each with its PDF.
    await page.goto(f"{api.url}/portal?lang=en")  # type: ignore[attr-defined]
    rows = page.locator("#invoices tbody tr")
    assert await rows.count() == 2
    assert "$269.40" in await _text(page, "#invoices tbody tr:first-child")
    await axe_check(page)
    await screenshot(page, "portal-overview-invoices-en")
    href = await page.locator("#invoices tbody tr:first-child .invoice-pdf").get_attribute("href")
    async with page.expect_download() as download_info:
        await page.click("#invoices tbody tr:first-child .invoice-pdf")
    download = await download_info.value
    pdf = Path(await download.path()).read_bytes()  # noqa: ASYNC240 (a small temporary file)
    assert pdf.startswith(b"%PDF")
    # Another customer's invoice through this portal session: not found, never shown.
    other, _ = await _customer_on(api, "pro_monthly")
    [foreign] = (await api.get("/v1/invoices", params={"customer": other["id"]}))["data"]
    response = await page.request.get(f"{api.url}/portal/invoices/{foreign['id']}/pdf")  # type: ignore[attr-defined]
    assert response.status == 404
    assert href.endswith("/pdf")
    assert errors == []


async def test_a_downgrade_the_configuration_does_not_offer_is_refused_and_changes_nothing(
    web_server: Api, page: Any
) -> None:
    api = web_server
    customer, sub = await _customer_on(api, "pro_monthly")
    await api.call(
        "PUT",
        "/v1/portal_configuration",
        json={"actions": ["upgrade", "switch_interval", "cancel"]},
        params={"customer": customer["id"]},
    )
    await page.goto(await portal_link(api, customer["id"]))
    await page.click("#change-plan-link")
    labels = [" ".join(t.split()) for t in await page.locator("fieldset label").all_inner_texts()]
    assert labels == ["Pro: $278.40 / year switch how often you pay · save 20%"]
    # Asked for anyway (an old link, a hand-made URL): the refusal on the page, nothing changed.
    await page.goto(f"{api.url}/portal/plan?price=basic_monthly")  # type: ignore[attr-defined]
    assert await _text(page, "#e-price") == "This portal does not offer that change."
    await axe_check(page)
    await screenshot(page, "portal-plan-refused-en")
    assert not await page.is_visible("#confirm-plan")
    after = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert (after["price"], after["scheduled_change"]) == (await _price(api, "pro_monthly"), None)
    # A seat change is not offered either: the portal's 403 page.
    await page.goto(f"{api.url}/portal/seats")  # type: ignore[attr-defined]
    assert await page.get_attribute("#problem", "data-code") == "portal_action_not_offered"


async def _until(page: Any, selector: str, text: str) -> None:
    """Reload until `selector` reads `text`: the decision index follows a commit within its bound."""
    for _ in range(50):
        if await page.locator(selector).count() and await _text(page, selector) == text:
            return
        await asyncio.sleep(0.1)
        await page.reload()
    assert await _text(page, selector) == text


async def test_a_downgrade_waits_for_the_period_end(web_server: Api, page: Any) -> None:
    api = web_server
    customer, sub = await _customer_on(api, "pro_monthly")
    link = await portal_link(api, customer["id"])
    # The app counts 250 API calls through the check endpoint; the portal shows them against the limit.
    for _ in range(50):
        check = await api.post(
            "/v1/check",
            {"customer": customer["id"], "feature": "api_calls", "quantity": 250, "consume": True},
            expect=None,
        )
        if check.get("allowed"):
            break
        await asyncio.sleep(0.1)
    await page.goto(link)
    await _until(page, '[data-feature="api_calls"] .usage', "250 / 100,000")
    assert await _text(page, '[data-feature="projects"] td') == "Unlimited"
    assert await _text(page, '[data-feature="support_priority"] td') == "Included"
    assert await page.get_attribute('[data-feature="api_calls"] progress', "value") == "250"
    await axe_check(page)
    await page.goto(f"{api.url}/portal/plan?price=basic_monthly")  # type: ignore[attr-defined]
    assert await _text(page, "#preview-summary") == (
        "Nothing is charged now: the change takes effect on February 1, 2026."
    )
    await page.click("#confirm-plan")
    assert await _text(page, "[role=status]") == "Your plan changes at the end of this period."
    assert await _text(page, "#scheduled-change") == "To Basic on February 1, 2026"
    await axe_check(page)
    scheduled = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert scheduled["price"] == await _price(api, "pro_monthly")
    assert scheduled["scheduled_change"]["price"] == await _price(api, "basic_monthly")


async def test_seats_and_an_add_on_with_previews(web_server: Api, page: Any, clock: FrozenClock) -> None:
    api = web_server
    product = (await api.get("/v1/products"))["data"][0]["id"]
    plan = await api.post("/v1/plans", {"product": product, "key": "team", "name": "Team", "rank": 2})
    await api.post(
        "/v1/prices",
        {
            "plan": plan["id"],
            "model": "per_seat",
            "interval": "month",
            "lookup_key": "team_monthly",
            "currency_options": {"USD": {"unit_amount": 1_000}},
        },
    )
    customer, sub = await _customer_on(api, "team_monthly", quantity=2)
    clock.advance(timedelta(days=15, hours=12))  # half of January's 31 days are left
    await page.goto(await portal_link(api, customer["id"]))
    assert await _text(page, "#plan-seats") == "2"
    await page.click("#change-seats-link")
    await axe_check(page)
    await screenshot(page, "portal-seats-en")
    # The form's own check stops 0 in the browser; a hand-made URL gets the message beside the field.
    await page.goto(f"{api.url}/portal/seats?quantity=0")  # type: ignore[attr-defined]
    assert await _text(page, "#e-quantity") == "Choose between 1 and 1,000,000 seats."
    await page.fill("#f-quantity", "4")
    await page.click("#preview-seats")
    api_preview = await api.post(f"/v1/subscriptions/{sub['id']}/preview_change", {"quantity": 4}, expect=200)
    pending = sum(i["amount"] for i in api_preview["pending_items"])
    # Two more seats for the half month that is left: 2 × $10.00 × ½.
    assert (api_preview["outcome"], pending) == ("pending", 1_000)
    assert await _text(page, "#preview-summary") == "$10.00 is added to your next invoice."
    await axe_check(page)
    await screenshot(page, "portal-seats-preview-en")
    await page.click("#confirm-seats")
    assert await _text(page, "#plan-seats") == "4"
    assert (await api.get(f"/v1/subscriptions/{sub['id']}"))["quantity"] == 4

    await page.goto(f"{api.url}/portal/seats?lang=nl")  # type: ignore[attr-defined]
    await axe_check(page)
    await page.goto(f"{api.url}/portal/addons?lang=en")  # type: ignore[attr-defined]
    # The demo's extra seats are for Pro only: nothing to add to Team.
    assert (await _text(page, "main")).count("No other add-on is available for your plan.") == 1
    await axe_check(page)
    await screenshot(page, "portal-addons-en")


async def test_promotion_code_billing_details_and_pause(
    web_server: Api, page: Any, clock: FrozenClock
) -> None:
    api = web_server
    coupon = await api.post("/v1/coupons", {"percent_off": "25", "duration": "forever"})
    expires = (clock.now() + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    await api.post("/v1/promotion_codes", {"coupon": coupon["id"], "code": "SOON", "expires_at": expires})
    await api.post("/v1/promotion_codes", {"coupon": coupon["id"], "code": "LOYAL25"})
    customer, sub = await _customer_on(api, "pro_monthly")
    clock.advance(timedelta(days=2))
    await page.goto(await portal_link(api, customer["id"]))

    await page.fill("#f-code", "soon")
    await page.click("#apply-code")
    assert await _text(page, "#e-code") == "This promotion code has expired."
    await axe_check(page)
    await screenshot(page, "portal-promotion-expired-en")
    assert (await api.get(f"/v1/subscriptions/{sub['id']}/discounts"))["data"] == []
    await page.fill("#f-code", "loyal25")
    await page.click("#apply-code")
    assert await _text(page, "[role=status]") == "The promotion code has been applied."
    assert await _text(page, "#plan-discounts") == f"25% ({coupon['id']})"
    [discount] = (await api.get(f"/v1/subscriptions/{sub['id']}/discounts"))["data"]
    assert discount["coupon"] == coupon["id"]

    await page.click("#details-link")
    await axe_check(page)
    await screenshot(page, "portal-details-en")
    await page.fill("#f-tax_id", "NL123")
    await page.fill("#f-city", "Amsterdam")
    await page.click("#save-details")
    assert await _text(page, "#e-tax_id") == "This is not a valid EU VAT number."
    assert await page.input_value("#f-city") == "Amsterdam"  # what was typed stays in the form
    await axe_check(page)
    unchanged = await api.get(f"/v1/customers/{customer['id']}")
    assert (unchanged["tax_ids"], unchanged["address"]) == ([], None)
    await page.fill("#f-tax_id", "nl 0044.95.445.B01")
    await page.fill("#f-country", "nl")
    await page.click("#save-details")
    assert await _text(page, "[role=status]") == "Your billing details have been saved."
    saved = await api.get(f"/v1/customers/{customer['id']}")
    assert (saved["country"], saved["address"]["city"]) == ("NL", "Amsterdam")
    assert saved["tax_ids"] == [
        {"type": "eu_vat", "value": "NL004495445B01", "country": "NL", "verified": True}
    ]
    await page.goto(f"{api.url}/portal/billing_details?lang=nl")  # type: ignore[attr-defined]
    await axe_check(page)
    await screenshot(page, "portal-details-nl")
    # A Swiss company: the type chosen from the list, a wrong check digit refused beside the field in
    # Dutch (the choice kept), then the right number saved in its written form.
    await page.select_option("#f-tax_id_type", "ch_vat")
    await page.fill("#f-tax_id", "CHE-116.281.711 MWST")
    await page.click("#save-details")
    assert await _text(page, "#e-tax_id") == "Dit is geen geldig Zwitsers btw-nummer."
    assert await page.input_value("#f-tax_id_type") == "ch_vat"
    await axe_check(page)
    assert (await api.get(f"/v1/customers/{customer['id']}"))["tax_ids"][0]["type"] == "eu_vat"
    await page.fill("#f-tax_id", "CHE116281710MWST")
    await page.click("#save-details")
    assert (await api.get(f"/v1/customers/{customer['id']}"))["tax_ids"] == [
        {"type": "ch_vat", "value": "CHE-116.281.710 MWST", "country": "CH", "verified": True}
    ]

    await page.goto(f"{api.url}/portal?lang=en")  # type: ignore[attr-defined]
    await page.click("#pause")
    assert await _text(page, "#plan-status") == "Paused"
    assert (await api.get(f"/v1/subscriptions/{sub['id']}"))["status"] == "paused"
    await page.click("#resume")
    assert await _text(page, "#plan-status") == "Active"
    assert (await api.get(f"/v1/subscriptions/{sub['id']}"))["status"] == "active"


async def test_add_then_remove_an_add_on_with_previews(
    web_server: Api, page: Any, clock: FrozenClock
) -> None:
    api = web_server
    customer, sub = await _customer_on(api, "pro_monthly")
    clock.advance(timedelta(days=15, hours=12))  # half of January is left
    await page.goto(await portal_link(api, customer["id"]))
    await page.click("#addons-link")
    assert await _text(page, "#addable-addons") == "5 extra seats: $10.00 / period Add 5 extra seats"
    await page.click("#add-extra_seats_monthly")
    api_preview = await api.post(
        f"/v1/subscriptions/{sub['id']}/preview_change", {"add_addon": "extra_seats_monthly"}, expect=200
    )
    assert [i["amount"] for i in api_preview["pending_items"]] == [500]  # half a month of $10.00
    assert await _text(page, "#preview-summary") == "$5.00 is added to your next invoice."
    await axe_check(page)
    await screenshot(page, "portal-addon-preview-en")
    await page.click("#confirm-addon")
    assert await _text(page, "[role=status]") == "The add-on has been added."
    assert await _text(page, "#plan-addons") == "5 extra seats"
    [addon] = (await api.get(f"/v1/subscriptions/{sub['id']}"))["addons"]
    assert addon["price"] == await _price(api, "extra_seats_monthly")

    await page.click("#addons-link")
    await page.click("#remove-extra_seats_monthly")
    assert await _text(page, "#preview-summary") == "$5.00 is credited on your next invoice."
    await page.click("#confirm-addon")
    assert await _text(page, "[role=status]") == "The add-on has been removed."
    assert (await api.get(f"/v1/subscriptions/{sub['id']}"))["addons"] == []
