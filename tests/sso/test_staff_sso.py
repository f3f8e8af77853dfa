"""Staff sign in to the console with the platform's single sign-on (issue #14 "Access"), against the real
test IdP: a platform connection serves the vendor's domain; an active staff member gets a console session
(the `tg_staff` cookie), anyone else the IdP vouches for gets `not_staff` and no session; a tenant's own
IdP cannot sign staff in; a staff sign-in's state is refused at the members' callback."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from gateway.admin.staff import StaffService
from gateway.db.session import Database
from gateway.kernel.clock import SystemClock
from gateway.web.cookies import STAFF_COOKIE
from tests.sso.conftest import Stack
from tests.sso.peers import Browser

STAFF_CALLBACK = "/admin/sso/callback"


def add_staff(stack: Stack, email: str, role: str) -> None:
    async def add() -> None:
        db = Database(stack.tiergate.db_url)
        try:
            async with db.unit_of_work(actor="system:test") as session:
                await StaffService(session, SystemClock(), session_ttl=timedelta(hours=1)).add(email, role)
        finally:
            await db.dispose()

    asyncio.run(add())


def start(browser: Browser, email: str) -> str:
    response = browser.get("/admin/sso", params={"email": email})
    assert response.status_code == 302, (response.status_code, response.text[:300])
    return str(response.headers["location"])


def test_an_active_staff_member_signs_in_with_the_platform_idp_and_reaches_the_console(
    sso_stack: Stack, browser: Browser, domain: str
) -> None:
    sso_stack.admin.connection(None, sso_stack.idp.issuer, [domain])  # the vendor's own IdP
    email = f"olga@{domain}"
    add_staff(sso_stack, email, "finance")

    page = browser.get("/admin/sign-in")
    assert page.status_code == 200 and 'action="/admin/sso"' in page.text
    browser.forget_idp_session()
    callback = browser.authorize(start(browser, email), email, callback_path=STAFF_CALLBACK)
    done = browser.client.get(callback)
    assert (done.status_code, done.headers["location"]) == (303, "/admin")
    token = browser.client.cookies.get(STAFF_COOKIE)
    assert token is not None and token.startswith("tgstaff_")
    assert browser.get("/admin/dashboard").status_code == 200  # the finance role reads the dashboard
    signed_in = sso_stack.rows(
        "SELECT data FROM outbox WHERE type = 'staff.signed_in' ORDER BY seq DESC LIMIT 1"
    )
    assert '"method": "sso"' in signed_in[0][0]


def test_someone_the_idp_vouches_for_who_is_not_staff_gets_no_session(
    sso_stack: Stack, browser: Browser, domain: str
) -> None:
    sso_stack.admin.connection(None, sso_stack.idp.issuer, [domain])
    before = sso_stack.rows("SELECT count(*) FROM staff_sessions")[0][0]
    browser.forget_idp_session()
    stranger = f"sam@{domain}"
    callback = browser.authorize(start(browser, stranger), stranger, callback_path=STAFF_CALLBACK)
    refused = browser.client.get(callback, headers={"Accept": "text/html"})
    assert refused.status_code == 403 and "not_staff" in refused.text
    assert browser.client.cookies.get(STAFF_COOKIE) is None
    assert sso_stack.rows("SELECT count(*) FROM staff_sessions")[0][0] == before


def test_a_tenants_own_idp_cannot_sign_staff_in_and_states_do_not_cross_callbacks(
    sso_stack: Stack, browser: Browser, domain: str
) -> None:
    tenant = sso_stack.admin.tenant("enterprise_monthly")
    sso_stack.admin.connection(tenant, sso_stack.idp.issuer, [domain])
    email = f"eve@{domain}"
    add_staff(sso_stack, email, "owner")  # staff by address, but this domain is a tenant's IdP
    refused = browser.get("/admin/sso", params={"email": email}, headers={"Accept": "text/html"})
    assert refused.status_code == 404 and "sso_no_connection" in refused.text

    other = f"v{domain}"
    sso_stack.admin.connection(None, sso_stack.idp.issuer, [other])
    browser.forget_idp_session()
    staff_email = f"ops@{other}"
    add_staff(sso_stack, staff_email, "admin")
    staff_callback = browser.authorize(start(browser, staff_email), staff_email, callback_path=STAFF_CALLBACK)
    # The same code and state at the members' callback: refused, and the state is spent.
    crossed = browser.client.get(
        staff_callback.replace(STAFF_CALLBACK, "/sso/callback"), headers={"Accept": "application/json"}
    )
    assert (crossed.status_code, crossed.json()["code"]) == (401, "state_mismatch")
    assert browser.client.cookies.get(STAFF_COOKIE) is None
