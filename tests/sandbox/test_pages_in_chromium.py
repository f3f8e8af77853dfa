"""The sandbox's hosted pages in headless Chromium (Debian's, driven by Playwright): the 3-D Secure
challenge completed (and failed) by a customer, the setup page choosing a method, each checked by axe-core
with no serious or critical violation. The browser may reach loopback only."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.payments.port import ChargeRequest, ChargeStatus, DeclineCode, MethodType, ProviderEventType
from tests.sandbox.harness import Sandbox
from tests.sso.peers import need

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--proxy-server=http://127.0.0.1:9"]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    need("chromium", os.access(CHROMIUM, os.X_OK), "apt-get install chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def new_page(browser: Any) -> Any:
    page = await browser.new_page()

    async def loopback_only(route: Any) -> None:
        if urlsplit(route.request.url).hostname in {"127.0.0.1", "localhost"}:
            await route.continue_()
        else:
            await route.abort()

    await page.route("**/*", loopback_only)
    return page


async def serious_violations(page: Any) -> list[str]:
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']}"
        for v in results.response["violations"]
        if v.get("impact") in {"serious", "critical"}
    ]


async def three_ds_payment(sandbox: Sandbox, key: str) -> tuple[str, Any]:
    customer = await sandbox.customer()
    method = await sandbox.method(customer, "card_3ds")
    result = await sandbox.provider.charge(
        ChargeRequest(
            idempotency_key=key,
            provider_customer_id=customer,
            provider_method_id=method,
            amount=12_345,
            currency="GBP",
            description="Enterprise plan, annual",
            off_session=False,
            return_url=f"{sandbox.receiver.url}/return?invoice=in_1",
        )
    )
    assert result.status is ChargeStatus.REQUIRES_ACTION and result.action_url
    return customer, result


async def test_a_customer_completes_3d_secure_in_chromium(sandbox: Sandbox, browser: Any) -> None:
    _, payment = await three_ds_payment(sandbox, "invoice:in_1:attempt:1")
    page = await new_page(browser)
    await page.goto(payment.action_url)
    assert await page.title() == "Confirm your payment · Tiergate payment sandbox"
    assert await page.get_attribute("html", "lang") == "en"
    assert await page.locator("h1").inner_text() == "Confirm your payment"
    assert "123.45 GBP" in await page.locator("main").inner_text()
    assert await serious_violations(page) == []

    await page.get_by_role("button", name="Complete authentication").click()
    await page.wait_for_url(f"{sandbox.receiver.url}/return**")
    query = parse_qs(urlsplit(page.url).query)
    assert query == {"invoice": ["in_1"], "payment": [payment.provider_payment_id], "status": ["succeeded"]}
    await page.close()

    settled = await sandbox.provider.retrieve_payment(payment.provider_payment_id)
    assert (settled.status, settled.version, settled.action_url) == (ChargeStatus.SUCCEEDED, 2, None)
    received = await sandbox.receiver.wait_for(2)
    events = [sandbox.provider.parse_webhook(r.body, r.headers) for r in received]
    assert [e.type for e in events] == [
        ProviderEventType.PAYMENT_REQUIRES_ACTION,
        ProviderEventType.PAYMENT_SUCCEEDED,
    ]
    # The page cannot be answered twice.
    again = await sandbox.http.post(
        f"/challenge/{payment.provider_payment_id}",
        content="outcome=fail",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert again.status_code == 409
    assert (
        await sandbox.provider.retrieve_payment(payment.provider_payment_id)
    ).status is ChargeStatus.SUCCEEDED


async def test_a_failed_challenge_declines_the_payment(sandbox: Sandbox, browser: Any) -> None:
    _, payment = await three_ds_payment(sandbox, "invoice:in_2:attempt:1")
    page = await new_page(browser)
    await page.goto(payment.action_url)
    await page.get_by_role("button", name="Fail authentication").click()
    await page.wait_for_url(f"{sandbox.receiver.url}/return**")
    assert parse_qs(urlsplit(page.url).query)["status"] == ["failed"]
    await page.close()
    failed = await sandbox.provider.retrieve_payment(payment.provider_payment_id)
    assert (failed.status, failed.decline_code) == (ChargeStatus.FAILED, DeclineCode.AUTHENTICATION_REQUIRED)


async def test_the_setup_page_saves_the_chosen_method(sandbox: Sandbox, browser: Any) -> None:
    customer = await sandbox.customer()
    session = await sandbox.provider.create_setup_session(
        provider_customer_id=customer,
        return_url=f"{sandbox.receiver.url}/return",
        method_types=(MethodType.SEPA_DEBIT,),
        idempotency_key="setup:browser",
    )
    page = await new_page(browser)
    await page.goto(session.url)
    assert await page.locator("h1").inner_text() == "Save a payment method"
    assert await page.get_by_role("radio").count() == 2  # the SEPA methods only
    assert await serious_violations(page) == []
    await page.get_by_label("SEPA Direct Debit, settles, then charged back after 7 days").check()
    await page.get_by_role("button", name="Save payment method").click()
    await page.wait_for_url(f"{sandbox.receiver.url}/return**")
    await page.close()
    [webhook] = await sandbox.receiver.wait_for(1)
    event = sandbox.provider.parse_webhook(webhook.body, webhook.headers)
    assert event.type is ProviderEventType.METHOD_ATTACHED and event.method is not None
    assert (event.method.type, event.method.last4) == (MethodType.SEPA_DEBIT, "1000")
