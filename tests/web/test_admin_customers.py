"""The console's customer pages (issue #14): an operator finds a customer by a piece of the name (htmx
results), opens the page (subscription, invoices, timeline), grants $10 of credit, and the next invoice of
the customer's test clock applies exactly 1000 cents; the grant is in the audit log under the staff
member. Support may read the page but is refused the credit grant (403 on the page, the post and the
API); read-only sees no action form. The pages pass axe in English and Dutch."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.web.cookies import STAFF_COOKIE
from tests.conftest import Api
from tests.web.conftest import axe_check, console_errors, screenshot, staff_session


async def customer_on_clock(api: Api, name: str = "Quill Ltd") -> tuple[str, str]:
    """A customer on a test clock (1 Jan 2026) with a Pro monthly subscription: its first invoice."""
    clock = await api.post("/v1/test_clocks", {"frozen_time": "2026-01-01T09:00:00Z", "name": "console"})
    customer = await api.post(
        "/v1/customers",
        {
            "name": name,
            "email": "billing@quill.example",
            "currency": "USD",
            "country": "NL",
            "test_clock": clock["id"],
        },
    )
    await api.post("/v1/subscriptions", {"customer": customer["id"], "price": "pro_monthly"})
    return clock["id"], customer["id"]


async def test_search_open_grant_ten_dollars_and_the_next_invoice_applies_it(
    web_server: Api, page: Any, db: Database, clock: FrozenClock
) -> None:
    api, url = web_server, web_server.url  # type: ignore[attr-defined]
    errors = console_errors(page)
    clock_id, customer = await customer_on_clock(api)
    token = await staff_session(db, clock, "fin@vendor.example", "finance")
    await page.context.add_cookies([{"name": STAFF_COOKIE, "value": token, "url": url}])

    await page.goto(f"{url}/admin/customers")
    await page.get_by_label("Search by name, e-mail, id or domain").fill("quill")
    await page.get_by_role("link", name="Quill Ltd").click()  # htmx put the result in the page
    await page.wait_for_url(f"**/admin/customers/{customer}")
    assert await page.get_by_role("heading", level=1).inner_text() == "Quill Ltd"
    assert await page.locator("#credit-balance").inner_text() == "$0.00"
    timeline = await page.locator("#timeline li").evaluate_all("els => els.map(e => e.dataset.type)")
    assert "customer.created" in timeline and "subscription.created" in timeline

    # A bad amount: the error beside the field, and no credit granted.
    await page.get_by_label("Amount (USD)").fill("ten")
    await page.get_by_role("button", name="Grant credit").click()
    assert await page.locator("#e-amount").inner_text() == "An amount such as 10 or 10.50."
    assert (await api.get(f"/v1/customers/{customer}/balance"))["available"] == {}

    await page.get_by_label("Amount (USD)").fill("10")
    await page.get_by_label("Reason").fill("Outage on 1 January")
    await page.get_by_role("button", name="Grant credit").click()
    await page.wait_for_url(f"**/admin/customers/{customer}?granted=*")
    assert await page.locator("#credit-balance").inner_text() == "$10.00"
    assert (await api.get(f"/v1/customers/{customer}/balance"))["available"] == {"USD": 1000}
    await screenshot(page, "admin-customer-credit-granted")

    # Pro starts with a trial, so nothing is invoiced yet; the next invoice (the first paid one, when the
    # trial ends) applies exactly the 1000 cents: $29 charges $19.
    assert (await api.get("/v1/invoices", params={"customer": customer}))["data"] == []
    await api.post(f"/v1/test_clocks/{clock_id}/advance", {"frozen_time": "2026-02-01T09:00:00Z"}, expect=201)
    invoices = (await api.get("/v1/invoices", params={"customer": customer, "limit": 10}))["data"]
    summary = [
        (i["billing_reason"], i["status"], i["total"], i["credit_applied"], i["amount_due"]) for i in invoices
    ]
    assert summary == [("subscription_create", "open", 2900, 1000, 1900)]
    assert (await api.get(f"/v1/customers/{customer}/balance"))["available"] == {}

    # The audit log names the staff member who granted it.
    staff_id = (await api.get("/v1/audit_log", params={"customer": customer, "limit": 100}))["data"]
    granted = [e for e in staff_id if e["action"] == "admin.credit_granted"]
    assert len(granted) == 1 and granted[0]["actor"].startswith("staff:")
    assert granted[0]["data"] == {"amount": 1000, "currency": "USD"}
    # The refused form's 422 is the only thing the console noted (no CSP refusal, no script error).
    assert [e for e in errors if "status of 422" not in e] == [], errors


async def test_finance_cancels_at_period_end_and_the_audit_log_names_them(
    web_server: Api, page: Any, db: Database, clock: FrozenClock
) -> None:
    api, url = web_server, web_server.url  # type: ignore[attr-defined]
    _clock_id, customer = await customer_on_clock(api)
    [sub] = (await api.get("/v1/subscriptions", params={"customer": customer}))["data"]
    token = await staff_session(db, clock, "fin@vendor.example", "finance")
    await page.context.add_cookies([{"name": STAFF_COOKIE, "value": token, "url": url}])
    await page.goto(f"{url}/admin/customers/{customer}")
    await page.get_by_role("button", name="Cancel Pro at period end").click()
    await page.wait_for_url(f"**/admin/customers/{customer}?done=cancel")
    assert await page.get_by_role("status").inner_text() == "The subscription ends at the end of its period."
    assert await page.get_by_role("button", name="Cancel Pro at period end").count() == 0
    after = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert (after["status"], after["cancel_at_period_end"]) == (sub["status"], True)
    log = (await api.get("/v1/audit_log", params={"customer": customer, "limit": 100}))["data"]
    [entry] = [e for e in log if e["action"] == "admin.subscription_canceled"]
    assert entry["target"] == sub["id"] and entry["actor"].startswith("staff:")


async def test_support_reads_but_cannot_grant_credit_and_read_only_sees_no_actions(
    web_server: Api, db: Database, clock: FrozenClock
) -> None:
    _clock_id, customer = await customer_on_clock(web_server)
    for role in ("support", "read_only"):
        token = await staff_session(db, clock, f"{role}@vendor.example", role)
        async with httpx.AsyncClient(base_url=web_server.url) as client:  # type: ignore[attr-defined]
            client.cookies.set(STAFF_COOKIE, token)
            shown = await client.get(f"/admin/customers/{customer}")
            assert shown.status_code == 200 and "Quill Ltd" in shown.text
            assert 'id="timeline"' in shown.text and "Grant credit" not in shown.text
            for action in ("Issue credit note", "Change plan of", "Open a portal session", "Pause Pro"):
                assert action not in shown.text, (role, action)
            csrf = client.cookies.get("tg_csrf") or ""
            posted = await client.post(
                f"/admin/customers/{customer}/credit", data={"amount": "10", "_csrf_token": csrf}
            )
            assert posted.status_code == 403 and 'data-code="staff_role_forbidden"' in posted.text
            api = await client.post(
                f"/v1/customers/{customer}/credit_grants",
                json={"amount": 1000, "currency": "USD"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert api.status_code == 403 and api.json()["code"] == "staff_role_forbidden"
            # Neither may cancel (subscriptions:write is finance's): no button, and a 403 on the post.
            assert "at period end" not in shown.text
            [sub] = (await web_server.get("/v1/subscriptions", params={"customer": customer}))["data"]
            cancel = await client.post(
                f"/admin/customers/{customer}/subscriptions/{sub['id']}/cancel", data={"_csrf_token": csrf}
            )
            assert cancel.status_code == 403 and 'data-code="staff_role_forbidden"' in cancel.text
    assert (await web_server.get(f"/v1/customers/{customer}/balance"))["available"] == {}
    assert (await web_server.get(f"/v1/subscriptions/{sub['id']}"))["cancel_at_period_end"] is False


@pytest.mark.parametrize("language", ["en", "nl"])
async def test_the_customer_pages_are_accessible_in_both_languages(
    web_server: Api, page: Any, db: Database, clock: FrozenClock, language: str
) -> None:
    _clock_id, customer = await customer_on_clock(web_server)
    [sub] = [
        s["id"] for s in (await web_server.get("/v1/subscriptions", params={"customer": customer}))["data"]
    ]
    token = await staff_session(db, clock, "ada@vendor.example", "admin")
    await page.context.add_cookies([{"name": STAFF_COOKIE, "value": token, "url": web_server.url}])  # type: ignore[attr-defined]
    for name, path in (
        ("customers", "/admin/customers?q=quill"),
        ("plan-change", f"/admin/customers/{customer}/subscriptions/{sub}/plan_change?price=basic_monthly"),
        ("customer", f"/admin/customers/{customer}"),
    ):
        await page.goto(
            f"{web_server.url}{path}&lang={language}"
            if "?" in path
            else f"{web_server.url}{path}?lang={language}"
        )  # type: ignore[attr-defined]
        assert await page.get_attribute("html", "lang") == language
        await axe_check(page)
        await screenshot(page, f"admin-{name}-{language}")
    title = {"en": "Grant credit", "nl": "Tegoed toekennen"}[language]
    assert await page.get_by_role("button", name=title).count() == 1
