"""The admin KPI dashboard (issue #14) in Chromium: a staff member signs in with a one-time login link,
the dashboard over two months of a test clock shows exactly the MRR the story gives, every number on the
page is `GET /v1/metrics`'s for the same month, the charts draw from the page's JSON under the strict
CSP, each chart's CSV is those numbers, and the page passes axe in English and Dutch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from gateway.admin.staff import StaffService
from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.web.cookies import STAFF_COOKIE
from tests.conftest import Api
from tests.provisioning.helpers import manual_settings
from tests.web.conftest import axe_check, console_errors, screenshot, staff_session


@pytest.fixture
def settings() -> Settings:
    """The relay runs only when a test settles (no background pass racing it on SQLite)."""
    return manual_settings()


FEB, MAR, APR = "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"
NOW = "2026-04-02T00:00:00Z"


async def settle(api: Api) -> None:
    """Relay every pending event (the metrics recorder is a relay consumer) on the app's own loop."""
    relay = api.app.state.relay  # type: ignore[attr-defined]
    while await relay.tick():
        pass


async def subscribe(api: Api, clock: str, name: str, price: str, **extra: Any) -> dict[str, Any]:
    customer = await api.post("/v1/customers", {"name": name, "currency": "USD", "test_clock": clock})
    sub: dict[str, Any] = await api.post(
        "/v1/subscriptions", {"customer": customer["id"], "price": price, **extra}
    )
    return sub


async def advance(api: Api, clock: str, to: str) -> None:
    await api.post(f"/v1/test_clocks/{clock}/advance", {"frozen_time": to}, expect=201)
    await settle(api)


async def small_saas(api: Api) -> str:
    """On a test clock from Feb 28 12:00: A basic monthly ($9), B pro monthly ($29, no trial), C basic
    yearly ($7.20 a month) — February's new MRR is $45.20. On Mar 10 A upgrades to pro (+$20) and C
    cancels (-$7.20): March ends at $58.00. April 2 is now."""
    clock: str = (await api.post("/v1/test_clocks", {"frozen_time": "2026-02-28T12:00:00Z"}))["id"]
    a = await subscribe(api, clock, "A", "basic_monthly")
    await subscribe(api, clock, "B", "pro_monthly", trial_days=0)
    c = await subscribe(api, clock, "C", "basic_yearly")
    await settle(api)
    await advance(api, clock, "2026-03-10T00:00:00Z")
    await api.post(f"/v1/subscriptions/{a['id']}/plan_change", {"price": "pro_monthly"}, expect=201)
    await api.post(f"/v1/subscriptions/{c['id']}/cancel", {"at_period_end": False}, expect=201)
    await settle(api)
    await advance(api, clock, NOW)
    return clock


async def sign_in(page: Any, url: str, db: Database, clock: FrozenClock, email: str, role: str) -> None:
    """The way staff sign in: the one-time link `tiergate admin-login` prints, opened in the browser."""
    async with db.unit_of_work(actor="system:test") as session:
        staff = StaffService(session, clock, session_ttl=timedelta(hours=12))
        member = await staff.by_email(email) or await staff.add(email, role)
        link = await staff.issue_login_link(member)
    await page.goto(f"{url}/admin/login/{link}")


async def row_values(page: Any, month: str) -> dict[str, str]:
    row = page.locator(f'#monthly-table tr[data-month="{month}"] td')
    fields = await row.evaluate_all("cells => cells.map(c => [c.dataset.field, c.dataset.value])")
    return {field: value for field, value in fields}


def api_row(report: dict[str, Any]) -> dict[str, str]:
    """A month of GET /v1/metrics as the page's table carries it (raw values, empty for undefined)."""
    m = report["movements"]

    def text(v: Any) -> str:
        return "" if v is None else str(v)

    return {
        "mrr": text(report["mrr"]["end"]),
        **{
            kind: text(m[kind]["amount"])
            for kind in ("new", "expansion", "contraction", "churn", "reactivation")
        },
        "net_new": text(m["net_new"]),
        "customers": text(report["customers"]["end"]),
        "customer_churn": text(report["churn"]["customer"]),
        "nrr": text(report["retention"]["net"]),
        "grr": text(report["retention"]["gross"]),
        "arpa": text(report["arpa"]),
        "ltv": text(report["ltv"]),
        "trial_conversion": text(report["trials"]["conversion"]),
    }


async def test_the_dashboard_shows_v1_metrics_numbers_draws_its_charts_and_exports_them(
    web_server: Api, page: Any, db: Database, clock: FrozenClock
) -> None:
    api = web_server
    test_clock = await small_saas(api)
    errors = console_errors(page)
    await sign_in(page, api.url, db, clock, "fin@vendor.example", "finance")  # type: ignore[attr-defined]
    # The login link lands on the console's front door; the dashboard is one of its sections.
    assert page.url == f"{api.url}/admin"  # type: ignore[attr-defined]
    await page.get_by_role("link", name="Dashboard").first.click()
    await page.wait_for_url("**/admin/dashboard")
    await page.get_by_label("Test clock").fill(test_clock)
    await page.get_by_label("Months").select_option("3")
    await page.get_by_role("button", name="Apply").click()
    await page.wait_for_url(f"**/admin/dashboard?currency=USD&test_clock={test_clock}&months=3&*")
    await page.locator('#charts[data-ready="true"]').wait_for()

    # The story's numbers, exactly.
    assert await page.locator('[data-metric="mrr"]').get_attribute("data-value") == "5800"
    assert await page.locator('[data-metric="mrr"]').inner_text() == "$58.00"
    assert await page.locator('[data-metric="arr"]').inner_text() == "$696.00"
    march = await row_values(page, "2026-03")
    assert (march["mrr"], march["expansion"], march["churn"], march["net_new"]) == (
        "5800",
        "2000",
        "720",
        "1280",
    )
    assert (await row_values(page, "2026-02"))["new"] == "4520"
    # Every month's every number is GET /v1/metrics's for that month (the month in progress ends now).
    for month, start, end in (("2026-02", FEB, MAR), ("2026-03", MAR, APR), ("2026-04", APR, NOW)):
        report = await api.get("/v1/metrics", params={"test_clock": test_clock, "start": start, "end": end})
        assert await row_values(page, month) == api_row(report), month
    april = await api.get("/v1/metrics", params={"test_clock": test_clock, "start": APR, "end": NOW})
    for key, value in (("nrr", april["retention"]["net"]), ("customers", str(april["customers"]["end"]))):
        assert await page.locator(f'[data-metric="{key}"]').get_attribute("data-value") == (value or "")

    # Churn by reason over the months shown: C canceled through the API without a reason ($7.20).
    reasons = page.locator("#churn-reasons tbody tr")
    assert await reasons.count() == 1
    assert await reasons.first.get_attribute("data-reason") == "unspecified"
    assert await reasons.first.locator('[data-field="mrr"]').get_attribute("data-value") == "720"
    # Payments and dunning (no payment in this story: no rate yet, no involuntary churn).
    for key, value in (
        ("first_attempt_success_rate", april["payments"]["first_attempt_success_rate"]),
        ("dunning_recovery_rate", april["dunning"]["recovery_rate"]),
        ("involuntary_churn", str(april["dunning"]["involuntary_churn"]["mrr"])),
    ):
        assert await page.locator(f'[data-metric="{key}"]').get_attribute("data-value") == (value or "")
    assert await page.locator('[data-metric="involuntary_churn"]').inner_text() == "$0.00"

    # uPlot drew every chart (a canvas each), with no CSP refusal or script error.
    assert await page.locator(".chart canvas").count() == 9
    assert errors == [], errors

    # The MRR chart's CSV, through the browser's own session: the same numbers.
    async with httpx.AsyncClient(base_url=api.url) as client:  # type: ignore[attr-defined]
        cookie = next(c for c in await page.context.cookies() if c["name"] == STAFF_COOKIE)
        client.cookies.set(STAFF_COOKIE, cookie["value"])
        query = {"test_clock": test_clock, "months": "3"}
        mrr_csv = await client.get("/admin/dashboard/csv/mrr", params=query)
        assert mrr_csv.status_code == 200 and mrr_csv.headers["content-type"].startswith("text/csv")
        assert mrr_csv.text == (
            "month,mrr,arr\n"
            "2026-02-01T00:00:00Z,4520,54240\n"
            "2026-03-01T00:00:00Z,5800,69600\n"
            "2026-04-01T00:00:00Z,5800,69600\n"
        )
        movements = await client.get("/admin/dashboard/csv/movements", params=query)
        assert movements.text.splitlines()[2] == "2026-03-01T00:00:00Z,0,2000,0,720,0,1280"
        cohorts = await client.get("/admin/dashboard/csv/cohorts", params=query)
        assert "2026-02-01T00:00:00Z,3,1,2,5800" in cohorts.text.splitlines()
        link = page.get_by_role("link", name="CSV: MRR and ARR")
        assert (
            await link.get_attribute("href")
            == f"/admin/dashboard/csv/mrr?currency=USD&test_clock={test_clock}&months=3"
        )
        # Bad filters are a 4xx page, never a 500.
        assert (await client.get("/admin/dashboard", params={"months": "5"})).status_code == 422
        assert (await client.get("/admin/dashboard/csv/nope")).status_code == 422
        assert (await client.get("/admin/dashboard", params={"test_clock": "clock_nope"})).status_code == 404


async def test_a_plan_segment_shows_v1_metrics_for_that_plan_and_the_moves_between_plans(
    web_server: Api, page: Any, db: Database, clock: FrozenClock
) -> None:
    api = web_server
    test_clock = await small_saas(api)
    basic, pro = (await api.get("/v1/plans/basic"))["id"], (await api.get("/v1/plans/pro"))["id"]
    await sign_in(page, api.url, db, clock, "fin@vendor.example", "finance")  # type: ignore[attr-defined]
    await page.goto(f"{api.url}/admin/dashboard?test_clock={test_clock}&months=3")  # type: ignore[attr-defined]
    # All plans: A's move from Basic to Pro in March (+$20), C's cancel is no move.
    moves = page.locator("#plan-changes tbody tr")
    assert await moves.count() == 1
    row = moves.first
    assert (await row.get_attribute("data-month"), await row.get_attribute("data-from")) == ("2026-03", basic)
    assert await row.get_attribute("data-to") == pro
    assert await row.locator('[data-field="mrr"]').inner_text() == "$20.00"
    assert await row.locator("td").nth(0).inner_text() == "Basic"

    await page.locator("#f-plan").select_option(label="Pro")
    await page.get_by_role("button", name="Apply").click()
    await page.wait_for_url(f"**/admin/dashboard?*plan={pro}*")
    await page.locator('#charts[data-ready="true"]').wait_for()
    # Pro alone: B from February ($29), A arriving in March; every month is GET /v1/metrics?plan=….
    assert await page.locator('[data-metric="mrr"]').get_attribute("data-value") == "5800"
    assert (await row_values(page, "2026-02"))["mrr"] == "2900"
    # Payments and dunning are the segment's too, as the API counts them.
    pro_now = await api.get(
        "/v1/metrics", params={"test_clock": test_clock, "plan": pro, "start": APR, "end": NOW}
    )
    recovery = page.locator('[data-metric="dunning_recovery_rate"]')
    assert await recovery.get_attribute("data-value") == (pro_now["dunning"]["recovery_rate"] or "")
    for month, start, end in (("2026-02", FEB, MAR), ("2026-03", MAR, APR), ("2026-04", APR, NOW)):
        params = {"test_clock": test_clock, "start": start, "end": end, "plan": pro}
        assert await row_values(page, month) == api_row(await api.get("/v1/metrics", params=params)), month
    csv_link = await page.get_by_role("link", name="CSV: MRR and ARR").get_attribute("href")
    assert csv_link is not None and f"plan={pro}" in csv_link
    # A country no customer has: nothing to show, and a bad one is a 422 page beside nothing changed.
    await page.goto(f"{api.url}/admin/dashboard?test_clock={test_clock}&months=3&country=BE")  # type: ignore[attr-defined]
    assert await page.locator('[data-metric="mrr"]').get_attribute("data-value") == "0"
    bad = await page.goto(f"{api.url}/admin/dashboard?test_clock={test_clock}&country=B1")  # type: ignore[attr-defined]
    assert bad.status == 422
    await axe_check(page)


@pytest.mark.parametrize("language", ["en", "nl"])
async def test_the_dashboard_is_accessible_in_both_languages(
    web_server: Api, page: Any, db: Database, clock: FrozenClock, language: str
) -> None:
    test_clock = await small_saas(web_server)
    token = await staff_session(db, clock, "ro@vendor.example", "read_only")
    await page.context.add_cookies([{"name": STAFF_COOKIE, "value": token, "url": web_server.url}])  # type: ignore[attr-defined]
    await page.goto(f"{web_server.url}/admin/dashboard?test_clock={test_clock}&months=3&lang={language}")  # type: ignore[attr-defined]
    await page.locator('#charts[data-ready="true"]').wait_for()
    heading = {"en": "Dashboard", "nl": "Dashboard"}[language]
    assert await page.get_by_role("heading", level=1).inner_text() == heading
    mrr = {"en": "$58.00", "nl": "US$ 58,00"}[language]
    assert (await page.locator('[data-metric="mrr"]').inner_text()).replace("\xa0", " ") == mrr
    await axe_check(page)
    await screenshot(page, f"admin-dashboard-{language}")


async def test_the_dashboard_needs_a_staff_session(web_server: Api) -> None:
    async with httpx.AsyncClient(base_url=web_server.url) as client:  # type: ignore[attr-defined]
        for path in ("/admin", "/admin/dashboard", "/admin/dashboard/data", "/admin/dashboard/csv/mrr"):
            assert (await client.get(path)).status_code == 401, path
        # The refusal page shows the way in.
        refused = await client.get("/admin", headers={"Accept": "text/html"})
        assert 'href="/admin/sign-in"' in refused.text


@pytest.mark.parametrize("language", ["en", "nl"])
async def test_the_staff_sign_in_page_offers_sso_and_the_login_link_and_is_accessible(
    web_server: Api, page: Any, language: str
) -> None:
    await page.goto(f"{web_server.url}/admin/sign-in?lang={language}")  # type: ignore[attr-defined]
    assert await page.locator('form[action="/admin/sso"] input[name="email"]').count() == 1
    assert "tiergate admin-login" in await page.locator("pre").inner_text()
    await axe_check(page)
    await screenshot(page, f"admin-sign-in-{language}")
    # No platform IdP serves this domain: a clear page, not a 500.
    answer = await page.goto(f"{web_server.url}/admin/sso?email=ops@nowhere.example&lang={language}")  # type: ignore[attr-defined]
    assert answer.status == 404


async def test_sign_out_in_the_browser_ends_the_console_session(
    web_server: Api, page: Any, db: Database, clock: FrozenClock
) -> None:
    await sign_in(page, web_server.url, db, clock, "ro@vendor.example", "read_only")  # type: ignore[attr-defined]
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/admin/sign-in")
    assert not [c for c in await page.context.cookies() if c["name"] == STAFF_COOKIE]
    again = await page.goto(f"{web_server.url}/admin")  # type: ignore[attr-defined]
    assert again.status == 401
