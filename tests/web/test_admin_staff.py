"""The console's staff page in Chromium (issue #14 "Access"): an owner invites a member and sees their
one-time login link once (it signs them in), a duplicate e-mail is refused beside the form, the owner
changes the member's role and deactivates them (their session ends); a refused change of one's own role
comes back beside the row, nothing changed. Admins see the list without the forms, support gets a 403
(and no nav link). axe in English and Dutch; screenshots."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.web.cookies import STAFF_COOKIE
from tests.conftest import Api
from tests.web.conftest import axe_check, console_errors, screenshot, staff_session

pytestmark = pytest.mark.browser


async def _text(page: Any, selector: str) -> str:
    return " ".join((await page.text_content(selector) or "").split())


def _row(page: Any, email: str) -> Any:
    return page.locator(f'#staff tr[data-email="{email}"]')


async def test_an_owner_invites_sees_the_link_once_changes_a_role_and_deactivates(
    web_server: Api, page: Any, db: Database, clock: FrozenClock
) -> None:
    api, url = web_server, web_server.url  # type: ignore[attr-defined]
    errors = console_errors(page)
    token = await staff_session(db, clock, "olga@vendor.example", "owner")
    await page.context.add_cookies([{"name": STAFF_COOKIE, "value": token, "url": url}])

    await page.goto(f"{url}/admin?lang=en")
    await page.get_by_role("link", name="Staff", exact=True).click()
    await page.wait_for_url("**/admin/staff")
    assert await page.get_by_role("heading", level=1).inner_text() == "Staff"
    own = _row(page, "olga@vendor.example")
    assert await own.locator('[data-role="owner"]').inner_text() == "Owner"
    assert await own.get_by_role("button").count() == 0  # one's own role is another owner's to change
    await axe_check(page)

    # Invite Ada as an admin: the link is shown on this page, once.
    await page.get_by_label("E-mail", exact=True).fill("Ada@Vendor.example")
    await page.get_by_label("Name (optional)").fill("Ada Lovelace")
    await page.locator("#invite #f-role").select_option("admin")
    await page.get_by_role("button", name="Invite and show the login link").click()
    link = await _text(page, "#login-link")
    assert "/admin/login/tglink_" in link
    assert "ada@vendor.example" in await _text(page, "#login-link-notice")
    ada = _row(page, "ada@vendor.example")
    assert await ada.locator('[data-role="admin"]').inner_text() == "Admin"
    assert await ada.locator("td").nth(0).inner_text() == "Ada Lovelace"
    await axe_check(page)
    await screenshot(page, "admin-staff-invited-en")
    await page.goto(f"{url}/admin/staff")
    assert await page.locator("#login-link").count() == 0  # shown once, never again
    staff = {m["email"]: m for m in (await api.get("/v1/staff"))["data"]}
    assert staff["ada@vendor.example"]["role"] == "admin"
    ada_id = staff["ada@vendor.example"]["id"]

    # The link signs Ada in (the login link's cookie), once.
    async with httpx.AsyncClient() as browser:
        landed = await browser.get(link.replace(link.split("/admin/")[0], url))
        assert landed.status_code == 303 and landed.headers["location"] == "/admin"
        ada_session = landed.cookies[STAFF_COOKIE]
    ada_api = api.as_key(ada_session)
    assert len((await ada_api.get("/v1/staff"))["data"]) == 2  # an admin may see the staff

    # The same address again: refused beside the field, nothing created.
    await page.get_by_label("E-mail", exact=True).fill("ADA@vendor.example")
    await page.get_by_role("button", name="Invite and show the login link").click()
    assert await _text(page, "#e-email") == "A staff member with this e-mail address exists."
    assert await page.locator("#login-link").count() == 0
    assert len((await api.get("/v1/staff"))["data"]) == 2
    await axe_check(page)

    # Ada becomes support: the page says so, the API agrees, and her session loses the staff list.
    await ada.get_by_label("Role of ada@vendor.example").select_option("support")
    await ada.get_by_role("button", name="Save role").click()
    await page.wait_for_url("**/admin/staff?done=role_changed")
    assert await _text(page, ".notice") == "The role is changed."
    assert await _row(page, "ada@vendor.example").locator('[data-role="support"]').inner_text() == "Support"
    assert (await ada_api.get("/v1/staff", expect=403))["code"] == "staff_role_forbidden"

    # One's own role, posted from a stale or hand-made form: refused beside the row, nothing changed.
    async with httpx.AsyncClient(base_url=url, timeout=STALL_TOLERANT) as client:
        client.cookies.set(STAFF_COOKIE, token)
        await client.get("/admin/staff")
        csrf = client.cookies.get("tg_csrf") or ""
        olga_id = next(m["id"] for m in (await api.get("/v1/staff"))["data"] if m["role"] == "owner")
        refused = await client.post(f"/admin/staff/{olga_id}", data={"role": "admin", "_csrf_token": csrf})
        assert refused.status_code == 409
        assert "You cannot change your own role or deactivate yourself" in refused.text
        assert f'id="e-row-{olga_id}"' in refused.text
    assert {m["email"]: m["role"] for m in (await api.get("/v1/staff"))["data"]}["olga@vendor.example"] == (
        "owner"
    )

    # Deactivate Ada: her session ends at once.
    await _row(page, "ada@vendor.example").get_by_role("button", name="Deactivate ada@vendor.example").click()
    await page.wait_for_url("**/admin/staff?done=deactivated")
    assert await _row(page, "ada@vendor.example").locator("[data-active]").inner_text() == "Deactivated"
    assert (await ada_api.get("/v1/customers", expect=401))["code"] == "staff_session_invalid"
    await screenshot(page, "admin-staff-en")

    # The audit log names the owner for each change.
    await page.goto(f"{url}/admin/audit?action=staff.&lang=en")
    for _ in range(50):  # the relay writes the entries after the commit
        if await page.locator('#audit tbody th:has-text("staff.deactivated")').count():
            break
        await page.wait_for_timeout(100)
        await page.reload()
    log = (await api.get("/v1/audit_log", params={"action": "staff.", "limit": 100}))["data"]
    mine = {(e["action"], e["target"]) for e in log if e["actor"] == f"staff:{olga_id}"}
    for action in ("staff.created", "staff.role_changed", "staff.deactivated"):
        assert (action, f"staff_member:{ada_id}") in mine, action

    # In Dutch.
    await page.goto(f"{url}/admin/staff?lang=nl")
    assert await page.get_by_role("heading", level=1).inner_text() == "Medewerkers"
    assert await _row(page, "ada@vendor.example").locator("[data-active]").inner_text() == "Gedeactiveerd"
    await axe_check(page)
    await screenshot(page, "admin-staff-nl")
    # The duplicate's 409 and the stale form's are the only statuses the console noted.
    assert [e for e in errors if "status of 409" not in e] == [], errors


# Once in a rehearsal of the whole suite (2 cores, 3 workers), a console page waited ~5 s on SQLite's write
# lock, held by a connection the server had dropped without closing until a garbage collection closed it
# ("Task was destroyed but it is pending: _terminate_graceful_close"); httpx's 5 s default ran out first.
# The test asserts who may see what, not how fast: the leak is noted as open in the stop's closing note.
STALL_TOLERANT = 30.0


async def test_admins_see_the_list_without_forms_and_support_is_refused(
    web_server: Api, page: Any, db: Database, clock: FrozenClock
) -> None:
    url = web_server.url  # type: ignore[attr-defined]
    await staff_session(db, clock, "olga@vendor.example", "owner")
    admin = await staff_session(db, clock, "ada@vendor.example", "admin")
    support = await staff_session(db, clock, "sam@vendor.example", "support")

    async with httpx.AsyncClient(base_url=url, timeout=STALL_TOLERANT) as client:
        client.cookies.set(STAFF_COOKIE, admin)
        shown = await client.get("/admin/staff")
        assert shown.status_code == 200 and "olga@vendor.example" in shown.text
        assert "Invite a staff member" not in shown.text and "Save role" not in shown.text
        csrf = client.cookies.get("tg_csrf") or ""
        posted = await client.post(
            "/admin/staff", data={"email": "eve@vendor.example", "role": "owner", "_csrf_token": csrf}
        )
        assert posted.status_code == 403 and 'data-code="staff_role_forbidden"' in posted.text

    async with httpx.AsyncClient(base_url=url, timeout=STALL_TOLERANT) as client:
        client.cookies.set(STAFF_COOKIE, support)
        home = await client.get("/admin/customers")
        assert home.status_code == 200 and 'href="/admin/staff"' not in home.text
        refused = await client.get("/admin/staff")
        assert refused.status_code == 403 and 'data-code="staff_role_forbidden"' in refused.text
    assert [m["email"] for m in (await web_server.get("/v1/staff"))["data"]] == [
        "olga@vendor.example",
        "ada@vendor.example",
        "sam@vendor.example",
    ]

    # The admin's page (the list, no forms) in both languages, and support's refusal page.
    await page.context.add_cookies([{"name": STAFF_COOKIE, "value": admin, "url": url}])
    for language in ("en", "nl"):
        await page.goto(f"{url}/admin/staff?lang={language}")
        assert await page.locator("#invite").count() == 0
        await axe_check(page)
        await screenshot(page, f"admin-staff-admin-{language}")
    await page.context.clear_cookies()
    await page.context.add_cookies([{"name": STAFF_COOKIE, "value": support, "url": url}])
    response = await page.goto(f"{url}/admin/staff?lang=en")
    assert response is not None and response.status == 403
    await axe_check(page)
