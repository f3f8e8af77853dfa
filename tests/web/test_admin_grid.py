"""The tier grid of the admin console (issue #14): an admin gives Basic 10 projects in the grid, which
publishes Basic's next version exactly as `POST /v1/plans/basic/versions` would, and the API sees it;
a bad limit publishes nothing; a support member gets 403 on the edit page, the form post and the API
operation alike; the pages pass axe in English and Dutch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from gateway.admin.staff import StaffService
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.web.cookies import STAFF_COOKIE
from tests.conftest import Api
from tests.web.conftest import axe_check, console_errors, screenshot, staff_session


def projects(plan: dict[str, Any]) -> dict[str, Any]:
    return next(g for g in plan["grants"] if g["feature"] == "projects")


async def test_an_admin_gives_basic_10_projects_in_the_grid_and_the_api_sees_it(
    web_server: Api, page: Any, db: Database, clock: FrozenClock
) -> None:
    api, url = web_server, web_server.url  # type: ignore[attr-defined]
    errors = console_errors(page)
    async with db.unit_of_work(actor="system:test") as session:
        staff = StaffService(session, clock, session_ttl=timedelta(hours=12))
        link = await staff.issue_login_link(await staff.add("ada@vendor.example", "admin"))
    await page.goto(f"{url}/admin/login/{link}")  # the one-time link signs in and lands on /admin
    assert page.url == f"{url}/admin"
    await page.get_by_role("link", name="Tier grid").first.click()
    cell = page.locator('#tier-grid tr[data-feature="projects"] td[data-plan="basic"]')
    assert await cell.inner_text() == "5"
    assert (
        await page.locator('#tier-grid tr[data-feature="sso"] td[data-plan="enterprise"]').inner_text()
        == "Included"
    )
    assert (
        await page.locator('#tier-grid tr[data-feature="projects"] td[data-plan="pro"]').inner_text()
        == "Unlimited"
    )

    await page.get_by_role("link", name="Edit Basic").click()
    # A bad limit: the form again with the error beside the field, and nothing published.
    await page.get_by_label("Projects limit").fill("ten")
    await page.get_by_role("button", name="Publish version 2").click()
    assert await page.locator("#e-f_projects").inner_text() == "A whole number, unlimited, or empty."
    assert (await api.get("/v1/plans/basic"))["current_version"] == 1

    await page.get_by_label("Projects limit").fill("10")
    await page.get_by_role("button", name="Publish version 2").click()
    await page.wait_for_url("**/admin/catalog/grid?published=basic%20v2")
    assert await page.get_by_role("status").inner_text() == (
        "Published basic v2. Existing subscribers keep their version."
    )
    assert await cell.inner_text() == "10"
    # The API sees it: Basic's version 2 grants 10 projects and keeps every other grant as it was.
    basic = await api.get("/v1/plans/basic")
    assert basic["current_version"] == 2
    assert projects(basic) == {
        "feature": "projects",
        "kind": "gauge",
        "limit": 10,
        "unlimited": False,
        "soft": False,
    }
    versions = await api.get("/v1/plans/basic/versions")
    v1, v2 = versions["data"][0], versions["data"][1]
    assert [g["feature"] for g in v1["grants"]] == [g["feature"] for g in v2["grants"]]
    # The refused form's 422 is the only thing the console noted (no CSP refusal, no script error).
    assert [e for e in errors if "status of 422" not in e] == [], errors


async def test_a_support_member_cannot_edit_the_grid_on_the_page_or_the_api(
    web_server: Api, db: Database, clock: FrozenClock
) -> None:
    token = await staff_session(db, clock, "sam@vendor.example", "support")
    async with httpx.AsyncClient(base_url=web_server.url) as client:  # type: ignore[attr-defined]
        client.cookies.set(STAFF_COOKIE, token)
        assert (await client.get("/admin/catalog/grid")).status_code == 200  # reading is allowed
        refused = await client.get("/admin/catalog/grid/basic")
        assert refused.status_code == 403 and 'data-code="staff_role_forbidden"' in refused.text
        csrf = client.cookies.get("tg_csrf") or ""
        posted = await client.post(
            "/admin/catalog/grid/basic", data={"f_projects": "10", "_csrf_token": csrf}
        )
        assert posted.status_code == 403
        api = await client.post(
            "/v1/plans/basic/versions",
            json={"grants": [{"feature": "projects", "limit": 10}]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert api.status_code == 403 and api.json()["code"] == "staff_role_forbidden"
    assert (await web_server.get("/v1/plans/basic"))["current_version"] == 1


@pytest.mark.parametrize("language", ["en", "nl"])
async def test_the_console_pages_are_accessible_in_both_languages(
    web_server: Api, page: Any, db: Database, clock: FrozenClock, language: str
) -> None:
    token = await staff_session(db, clock, "ada@vendor.example", "admin")
    await page.context.add_cookies([{"name": STAFF_COOKIE, "value": token, "url": web_server.url}])  # type: ignore[attr-defined]
    for name, path in (
        ("home", "/admin"),
        ("grid", "/admin/catalog/grid"),
        ("grid-basic", "/admin/catalog/grid/basic"),
    ):
        await page.goto(f"{web_server.url}{path}?lang={language}")  # type: ignore[attr-defined]
        assert await page.get_attribute("html", "lang") == language
        await axe_check(page)
        await screenshot(page, f"admin-{name}-{language}")
    label = {"en": "Projects limit", "nl": "Limiet voor Projects"}[language]
    assert await page.get_by_label(label).input_value() == "5"
