"""The console's audit log and jobs pages in Chromium (issue #14): a member added through the API shows
in the audit log (the relay writes it), filters narrow it (a bad date is refused beside its field), and
the jobs page shows this replica's readiness, every background job, the relay's consumers and the work
waiting by status. axe in English and Dutch; screenshots."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.web.cookies import STAFF_COOKIE
from tests.conftest import Api
from tests.web.conftest import axe_check, console_errors, screenshot, staff_session

pytestmark = pytest.mark.browser


async def _text(page: Any, selector: str) -> str:
    return " ".join((await page.text_content(selector) or "").split())


async def test_the_audit_log_with_filters_and_the_jobs_page(
    web_server: Api, page: Any, db: Any, clock: Any
) -> None:
    api = web_server
    url: str = api.url  # type: ignore[attr-defined]
    customer = await api.post("/v1/customers", {"name": "Audit Co", "currency": "EUR"})
    await api.post(
        f"/v1/customers/{customer['id']}/members", {"email": "ann@audit.example", "role": "viewer"}
    )
    token = await staff_session(db, clock, "olga@vendor.example", "read_only")
    await page.context.add_cookies([{"name": STAFF_COOKIE, "value": token, "url": url}])
    errors = console_errors(page)

    await page.goto(f"{url}/admin/audit?lang=en&customer={customer['id']}")
    for _ in range(50):  # the relay writes the audit entry after the commit
        if await page.locator("#audit tbody tr").count():
            break
        await asyncio.sleep(0.1)
        await page.reload()
    actions = await page.locator("#audit tbody th").all_inner_texts()
    assert actions == ["member.added"]
    assert await _text(page, "#audit tbody td:nth-child(4)") == customer["id"]
    await axe_check(page)
    await screenshot(page, "admin-audit-en")

    await page.fill("#f-action", "admin.")
    await page.click("#filter-audit")
    assert await _text(page, ".empty-state") == "No entry matches."
    await page.fill("#f-since", "yesterday")
    await page.click("#filter-audit")
    assert "since" in await _text(page, "#e-since")
    await axe_check(page)
    await page.goto(f"{url}/admin/audit?lang=nl")
    await axe_check(page)
    await screenshot(page, "admin-audit-nl")

    await page.goto(f"{url}/admin/jobs?lang=en")
    assert await _text(page, "#readiness") == "Ready: every dependency answers."
    jobs = await page.locator("#jobs tbody th").all_inner_texts()
    assert jobs == [
        "relay",
        "past_due_sweep",
        "retention_purge",
        "webhooks",
        "collection",
        "dunning",
        "mail",
        "billing_run",
    ]
    consumers = await page.locator("#consumers tbody th").all_inner_texts()
    assert "audit" in consumers
    assert await _text(page, '[data-queue="dunning"]') == "none"
    await axe_check(page)
    await screenshot(page, "admin-jobs-en")
    await page.goto(f"{url}/admin/jobs?lang=nl")
    assert await _text(page, "#jobs-heading") == "Achtergrondtaken"
    await axe_check(page)
    assert [e for e in errors if "422" not in e] == []  # the bad date's page is the one intended 422
