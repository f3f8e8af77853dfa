"""A plan's versions in the admin console (issue #14): an admin opens Basic's versions from the tier grid,
sees who is on which version, previews moving the USD subscribers to version 2 (nothing moves), confirms,
and the API sees exactly that subscriber moved; an older target shows its error beside the field; a
support member reads the page but cannot migrate; the page passes axe in English and Dutch."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.web.cookies import STAFF_COOKIE
from tests.conftest import Api
from tests.web.conftest import axe_check, console_errors, screenshot, staff_session

VERSION_2 = {
    "grants": [{"feature": "projects", "limit": 10}, {"feature": "seats", "limit": 1}],
    "note": "more",
}


async def basic_subscribers(api: Api) -> dict[str, tuple[str, str]]:
    """A USD and a EUR customer on Basic version 1, then Basic's version 2: {currency: (customer, sub)}."""
    found = {}
    for name, currency in (("Tiny Studio", "USD"), ("Bright Agency", "EUR")):
        customer = await api.post("/v1/customers", {"name": name, "currency": currency})
        sub = await api.post("/v1/subscriptions", {"customer": customer["id"], "price": "basic_monthly"})
        found[currency] = (customer["id"], sub["id"])
    await api.post("/v1/plans/basic/versions", VERSION_2)
    return found


def row(page: Any, version: int) -> Any:
    return page.locator(f'#plan-versions tr[data-version="{version}"]')


async def test_an_admin_previews_and_moves_the_usd_subscribers_of_basic_to_version_2(
    web_server: Api, page: Any, db: Database, clock: FrozenClock
) -> None:
    api, url = web_server, web_server.url  # type: ignore[attr-defined]
    subs = await basic_subscribers(api)
    (usd, usd_sub), (_, eur_sub) = subs["USD"], subs["EUR"]
    v1 = (await api.get(f"/v1/subscriptions/{usd_sub}"))["plan_version"]
    errors = console_errors(page)
    token = await staff_session(db, clock, "ada@vendor.example", "admin")
    await page.context.add_cookies([{"name": STAFF_COOKIE, "value": token, "url": url}])

    await page.goto(f"{url}/admin/catalog/grid")
    await page.get_by_role("link", name="Versions of Basic").click()
    await page.wait_for_url("**/admin/catalog/plans/basic/versions")
    assert await page.get_by_role("heading", level=1).inner_text() == "Versions of Basic"
    assert await row(page, 1).locator("td[data-subscribers]").inner_text() == "2"
    assert await row(page, 2).locator("td[data-subscribers]").inner_text() == "0"
    assert await row(page, 2).locator("th").inner_text() == "v2 (current)\nmore"
    assert "Projects: 10" in await row(page, 2).locator("td").nth(1).inner_text()
    assert "Projects: 5" in await row(page, 1).locator("td").nth(1).inner_text()

    # An older target: the error beside "Move from", and nothing moves.
    await page.get_by_label("Move to version").select_option("1")
    await page.get_by_role("group", name="Move from").get_by_label("v2").check()
    await page.get_by_role("button", name="Preview").click()
    assert await page.locator("#e-from").inner_text() == "Subscribers are never moved to an older version."

    # The rule: version 1 to version 2, USD only. The preview moves nothing.
    await page.get_by_label("Move to version").select_option("2")
    sources = page.get_by_role("group", name="Move from")
    assert await sources.get_by_label("v2").is_checked()  # the refused form kept what was ticked
    await sources.get_by_label("v2").uncheck()
    await sources.get_by_label("v1").check()
    await page.get_by_label("Currency").select_option("USD")
    await page.get_by_role("button", name="Preview").click()
    assert await page.locator("#preview-count").inner_text() == (
        "Subscriptions that would move to version 2: 1."
    )
    listed = page.locator("#preview-subscriptions tbody tr")
    assert await listed.count() == 1
    assert await listed.first.get_attribute("data-subscription") == usd_sub
    assert await listed.first.locator("td").nth(0).inner_text() == "Tiny Studio"
    assert (await api.get(f"/v1/subscriptions/{usd_sub}"))["plan_version"] == v1
    await screenshot(page, "admin-plan-versions-preview")

    await page.get_by_role("button", name="Move them to version 2").click()
    await page.wait_for_url("**/admin/catalog/plans/basic/versions?migrated=1&remaining=0&moved_to=2")
    assert await page.get_by_role("status").inner_text() == "Subscriptions moved to version 2: 1."
    assert await row(page, 1).locator("td[data-subscribers]").inner_text() == "1"
    assert await row(page, 2).locator("td[data-subscribers]").inner_text() == "1"

    # The API sees the same: the USD subscription is on version 2, the EUR one still on version 1.
    moved = await api.get(f"/v1/subscriptions/{usd_sub}")
    assert moved["plan_version"] != v1
    assert (await api.get(f"/v1/subscriptions/{eur_sub}"))["plan_version"] == v1
    counts = {v["version"]: v["subscribers"] for v in (await api.get("/v1/plans/basic/versions"))["data"]}
    assert counts == {1: 1, 2: 1}
    [event] = (await api.get("/v1/events", params={"type": "subscription.plan_version_migrated"}))["data"]
    assert (event["customer"], event["data"]["plan_version"]["version"]) == (usd, 2)
    audit = await api.get("/v1/audit_log", params={"action": "admin.plan_version_migrated"})
    [entry] = audit["data"]
    assert (entry["target"], entry["data"]["migrated"], entry["data"]["currency"]) == ("basic", 1, "USD")
    assert entry["data"]["from_versions"] == [1]
    # The refused preview's 422 is the only thing the console noted (no CSP refusal, no script error).
    assert [e for e in errors if "status of 422" not in e] == [], errors


async def test_a_support_member_reads_the_versions_but_cannot_migrate(
    web_server: Api, db: Database, clock: FrozenClock
) -> None:
    subs = await basic_subscribers(web_server)
    token = await staff_session(db, clock, "sam@vendor.example", "support")
    async with httpx.AsyncClient(base_url=web_server.url) as client:  # type: ignore[attr-defined]
        client.cookies.set(STAFF_COOKIE, token)
        page = await client.get("/admin/catalog/plans/basic/versions")
        assert page.status_code == 200 and "Versions of Basic" in page.text
        csrf = client.cookies.get("tg_csrf") or ""
        posted = await client.post(
            "/admin/catalog/plans/basic/versions", data={"to": "2", "_csrf_token": csrf}
        )
        assert posted.status_code == 403 and 'data-code="staff_role_forbidden"' in posted.text
        api = await client.post(
            "/v1/plans/basic/versions/2/migrations",
            json={"dry_run": True},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert api.status_code == 403 and api.json()["code"] == "staff_role_forbidden"
    v1 = (await web_server.get(f"/v1/subscriptions/{subs['USD'][1]}"))["plan_version"]
    assert (await web_server.get(f"/v1/subscriptions/{subs['EUR'][1]}"))["plan_version"] == v1


@pytest.mark.parametrize("language", ["en", "nl"])
async def test_the_versions_page_and_its_preview_are_accessible_in_both_languages(
    web_server: Api, page: Any, db: Database, clock: FrozenClock, language: str
) -> None:
    await basic_subscribers(web_server)
    token = await staff_session(db, clock, "ada@vendor.example", "admin")
    await page.context.add_cookies([{"name": STAFF_COOKIE, "value": token, "url": web_server.url}])  # type: ignore[attr-defined]
    base = f"{web_server.url}/admin/catalog/plans/basic/versions"  # type: ignore[attr-defined]
    for name, query in (("", ""), ("-preview", "preview=1&to=2&currency=USD&")):
        await page.goto(f"{base}?{query}lang={language}")
        assert await page.get_attribute("html", "lang") == language
        await axe_check(page)
        await screenshot(page, f"admin-plan-versions{name}-{language}")
    label = {"en": "Move them to version 2", "nl": "Naar versie 2 verplaatsen"}[language]
    assert await page.get_by_role("button", name=label).count() == 1
    count = {
        "en": "Subscriptions that would move to version 2: 1.",
        "nl": ("Abonnementen die naar versie 2 zouden worden verplaatst: 1."),
    }[language]
    assert await page.locator("#preview-count").inner_text() == count


async def test_subscribers_of_two_ticked_versions_move_to_the_third_and_a_bad_tick_is_refused(
    web_server: Api, db: Database, clock: FrozenClock
) -> None:
    """Tiny Studio stays on version 1, Bright Agency is moved to version 2, then version 3 is published:
    ticking versions 1 and 2 moves both to 3 (the confirm form carries both ticks)."""
    subs = await basic_subscribers(web_server)
    await web_server.post(
        "/v1/plans/basic/versions/2/migrations", {"customers": [subs["EUR"][0]]}, expect=200
    )
    await web_server.post("/v1/plans/basic/versions", {**VERSION_2, "note": "even more"})
    token = await staff_session(db, clock, "ada@vendor.example", "admin")
    base = "/admin/catalog/plans/basic/versions"
    async with httpx.AsyncClient(base_url=web_server.url) as client:  # type: ignore[attr-defined]
        client.cookies.set(STAFF_COOKIE, token)
        only_1 = await client.get(base, params=[("preview", "1"), ("to", "3"), ("from", "1")])
        assert "Subscriptions that would move to version 3: 1." in only_1.text
        both = await client.get(base, params=[("preview", "1"), ("to", "3"), ("from", "1"), ("from", "2")])
        assert "Subscriptions that would move to version 3: 2." in both.text
        assert both.text.count(" checked>") == 2  # both ticks shown as ticked
        assert '<input type="hidden" name="from" value="1,2">' in both.text
        bad = await client.get(base, params=[("preview", "1"), ("to", "3"), ("from", "x")])
        assert bad.status_code == 422 and 'id="e-from"' in bad.text
        csrf = client.cookies.get("tg_csrf") or ""
        moved = await client.post(base, data={"to": "3", "from": "1,2", "_csrf_token": csrf})
        assert moved.status_code == 303
        assert moved.headers["location"].endswith("?migrated=2&remaining=0&moved_to=3")
    versions = {
        v["version"]: v["subscribers"] for v in (await web_server.get("/v1/plans/basic/versions"))["data"]
    }
    assert versions == {1: 0, 2: 0, 3: 2}
    [entry] = (await web_server.get("/v1/audit_log", params={"action": "admin.plan_version_migrated"}))[
        "data"
    ]
    assert entry["data"]["from_versions"] == [1, 2]
