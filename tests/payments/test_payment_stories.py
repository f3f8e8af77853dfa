"""Issue #10's payment stories through Tiergate's HTTP API with the real sandbox on its own port (the
fixtures of `test_sandbox_stories`): a year of monthly charges on a good card on a test clock, a 3-D
Secure challenge completed in Chromium, and an asynchronous SEPA debit later charged back."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from tests.payments.test_sandbox_stories import World, eventually, world_on
from tests.sso.peers import need

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


@pytest.fixture
async def story(db: Database, clock: FrozenClock, settings: Settings) -> AsyncIterator[World]:
    from gateway.demo import seed_catalog

    async with db.unit_of_work() as session:
        await seed_catalog(session, clock)
    async with world_on(db, clock, settings) as w:
        yield w


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def on_clock(world: World, start: datetime, currency: str) -> tuple[str, str]:
    clock = await world.api.post("/v1/test_clocks", {"frozen_time": iso(start), "name": "payment story"})
    customer = await world.api.post(
        "/v1/customers",
        {"name": "Clocked Co", "currency": currency, "country": "NL", "test_clock": clock["id"]},
    )
    return str(clock["id"]), str(customer["id"])


async def sepa_method(world: World, customer: str, test_method: str) -> dict[str, Any]:
    """The customer saves a SEPA mandate on the sandbox's hosted setup page; it arrives by webhook."""
    session = await world.api.post(
        f"/v1/customers/{customer}/setup_sessions",
        {"return_url": "https://shop.example/back", "method_types": ["sepa_debit"]},
    )
    async with httpx.AsyncClient() as browser:
        page = await browser.get(session["url"])
        assert page.status_code == 200 and test_method in page.text
        submitted = await browser.post(session["url"], data={"test_method": test_method})
        assert submitted.status_code == 303
    [method] = await eventually(lambda: world.methods(customer), lambda rows: len(rows) == 1)
    return dict(method)


async def advance(world: World, clock: str, to: datetime) -> None:
    await world.api.post(f"/v1/test_clocks/{clock}/advance", {"frozen_time": iso(to)}, expect=201)


async def invoices_of(world: World, customer: str) -> list[dict[str, Any]]:
    page = await world.api.get("/v1/invoices", params={"customer": customer, "limit": 100})
    return list(page["data"])


async def all_paid(world: World, customer: str, count: int) -> list[dict[str, Any]]:
    return list(
        await eventually(
            lambda: invoices_of(world, customer),
            lambda rows: len(rows) == count and all(r["status"] == "paid" for r in rows),
            seconds=30.0,
        )
    )


async def test_a_year_of_monthly_charges_on_a_good_card_on_a_test_clock(story: World) -> None:
    clock, customer = await on_clock(story, datetime(2026, 1, 1, 9, 0, tzinfo=UTC), "USD")
    method = await story.method(customer, "card_ok")
    subscription = await story.api.post(
        "/v1/subscriptions",
        {"customer": customer, "price": "basic_monthly", "collection_method": "charge_automatically"},
    )
    assert subscription["collection_method"] == "charge_automatically"
    await all_paid(story, customer, 1)
    for month in range(2, 14):  # Feb 2026 ... Jan 2027: twelve renewals, one month at a time
        year, m = (2026, month) if month <= 12 else (2027, month - 12)
        await advance(story, clock, datetime(year, m, 1, 9, 0, tzinfo=UTC))
        await all_paid(story, customer, month)
    invoices = await invoices_of(story, customer)
    assert [i["billing_reason"] for i in invoices] == ["subscription_create"] + ["subscription_cycle"] * 12
    assert [(i["total"], i["amount_paid"], i["amount_remaining"]) for i in invoices] == [(900, 900, 0)] * 13
    payments: list[dict[str, Any]] = []
    for invoice in invoices:
        [payment] = await story.payments(invoice["id"])  # one payment per invoice, no retry, no failure
        payments.append(payment)
    assert [(p["status"], p["amount"], p["currency"], p["attempt"]) for p in payments] == [
        ("succeeded", 900, "USD", 1)
    ] * 13
    assert {p["payment_method"] for p in payments} == {method["id"]}
    assert sum(p["amount"] for p in payments) == 11_700
    charges = (await story.sandbox.get("/v1/payments")).json()["data"]
    assert sorted((c["status"], c["amount"]) for c in charges) == [("succeeded", 900)] * 13


async def test_3d_secure_completed_in_chromium_pays_the_invoice(story: World) -> None:
    need("chromium", os.access(CHROMIUM, os.X_OK), "apt-get install chromium")
    from playwright.async_api import async_playwright

    customer = await story.customer()
    await story.method(customer, "card_3ds")
    invoice = await story.invoice(customer, 4_250, auto=False)
    await story.api.post(
        f"/v1/invoices/{invoice['id']}/pay",
        {"off_session": False, "return_url": "https://shop.example/paid"},
        expect=200,
    )
    [payment] = await story.payments(invoice["id"])
    assert (payment["status"], payment["amount"]) == ("requires_action", 4_250)
    assert "/challenge/" in payment["action_url"]
    still_open = await story.api.get(f"/v1/invoices/{invoice['id']}")
    assert (still_open["status"], still_open["amount_remaining"]) == ("open", 4_250)

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = await chromium.new_page()
            # The sandbox redirects to the shop's return URL afterwards; the shop is not there: stop it.
            await page.route("https://shop.example/**", lambda route: route.fulfill(status=200, body="ok"))
            response = await page.goto(payment["action_url"])
            assert response is not None and response.status == 200
            await page.get_by_role("button", name="Complete authentication").click()
            await page.wait_for_url("https://shop.example/paid**")
            assert "status=succeeded" in page.url
        finally:
            await chromium.close()

    paid = await eventually(
        lambda: story.api.get(f"/v1/invoices/{invoice['id']}"), lambda i: i["status"] == "paid"
    )
    assert (paid["amount_paid"], paid["amount_remaining"]) == (4_250, 0)
    settled = await story.api.get(f"/v1/payments/{payment['id']}")
    assert (settled["status"], settled["amount"], settled["decline_code"]) == ("succeeded", 4_250, None)


async def test_sepa_settles_after_two_days_then_is_charged_back_seven_days_later(story: World) -> None:
    start = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    clock, customer = await on_clock(story, start, "EUR")
    method = await sepa_method(story, customer, "sepa_chargeback")
    assert method["type"] == "sepa_debit"
    invoice = await story.invoice(customer, 12_345, auto=False)
    await story.api.post(f"/v1/invoices/{invoice['id']}/pay", {}, expect=200)
    [payment] = await story.payments(invoice["id"])
    assert (payment["status"], payment["amount"], payment["currency"]) == ("processing", 12_345, "EUR")
    pending = await story.api.get(f"/v1/invoices/{invoice['id']}")
    assert (pending["status"], pending["amount_remaining"]) == ("open", 12_345)

    await advance(story, clock, datetime(2026, 3, 4, 10, 0, tzinfo=UTC))  # + 2 days: settled
    paid = await eventually(
        lambda: story.api.get(f"/v1/invoices/{invoice['id']}"), lambda i: i["status"] == "paid"
    )
    assert (paid["amount_paid"], paid["amount_remaining"]) == (12_345, 0)
    assert (await story.api.get(f"/v1/payments/{payment['id']}"))["status"] == "succeeded"

    async def charged_back() -> list[dict[str, Any]]:
        page = await story.api.get("/v1/events", params={"type": "payment.charged_back", "limit": 100})
        return list(page["data"])

    assert await charged_back() == []
    await advance(story, clock, datetime(2026, 3, 11, 10, 0, tzinfo=UTC))  # + 7 more days: charged back
    [event] = await eventually(charged_back, lambda rows: len(rows) == 1)
    assert (event["type"], event["aggregate_type"], event["aggregate_id"]) == (
        "payment.charged_back",
        "payment",
        payment["id"],
    )
    assert event["customer"] == customer
    snapshot = event["data"]["payment"]
    assert (snapshot["id"], snapshot["invoice"], snapshot["amount"], snapshot["currency"]) == (
        payment["id"],
        invoice["id"],
        12_345,
        "EUR",
    )
    assert (snapshot["status"], snapshot["decline_code"]) == ("failed", "charged_back")
    after = await story.api.get(f"/v1/payments/{payment['id']}")
    assert (after["status"], after["amount"], after["decline_code"]) == ("failed", 12_345, "charged_back")
    # The chargeback reopened the invoice: all of it is due again, once, and dunning can collect it.
    reopened = await story.api.get(f"/v1/invoices/{invoice['id']}")
    assert (reopened["status"], reopened["amount_paid"], reopened["amount_remaining"]) == ("open", 0, 12_345)
    events = (await story.api.get("/v1/events", params={"type": "invoice.reopened", "limit": 100}))["data"]
    assert [
        (e["aggregate_id"], e["data"]["amount"], e["data"]["reason"], e["data"]["payment"]) for e in events
    ] == [(invoice["id"], 12_345, "charged_back", payment["id"])]
