"""The console's customer pages on both databases (the browser stories are in
tests/web/test_admin_customers.py, SQLite only): the search answers with htmx's fragment, a credit grant
posted from the page is the API's credit (bad input: 422 beside the field, nothing granted), audited
with the staff member; the roles the staff policy refuses get 403."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from gateway.admin.staff import StaffService
from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.web.cookies import STAFF_COOKIE
from tests.conftest import Api
from tests.provisioning.helpers import manual_settings


@pytest.fixture
def settings() -> Settings:
    return manual_settings()


async def staff_cookie(db: Database, clock: FrozenClock, email: str, role: str) -> str:
    async with db.unit_of_work(actor="system:test") as session:
        staff = StaffService(session, clock, session_ttl=timedelta(hours=12))
        link = await staff.issue_login_link(await staff.add(email, role))
    async with db.unit_of_work(actor="system:test") as session:
        return (await StaffService(session, clock, session_ttl=timedelta(hours=12)).redeem(link)).token


async def as_staff(api: Api, token: str) -> tuple[Any, str]:
    """The test client as a browser with the staff cookie, and the CSRF token a page gave it."""
    client = api.client
    client.cookies.clear()
    client.cookies.set(STAFF_COOKIE, token)
    assert (await client.get("/admin/customers")).status_code == 200
    return client, client.cookies.get("tg_csrf") or ""


async def test_search_then_grant_credit_from_the_page(
    api: Api, db: Database, clock: FrozenClock, demo: Any
) -> None:
    customer = (await api.post("/v1/customers", {"name": "Pagebound BV", "currency": "EUR"}))["id"]
    await api.post("/v1/customers", {"name": "Elsewhere", "currency": "EUR"})
    client, csrf = await as_staff(api, await staff_cookie(db, clock, "fin@ops.example", "finance"))

    fragment = await client.get("/admin/customers", params={"q": "pagebound"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert f'href="/admin/customers/{customer}"' in fragment.text and "Elsewhere" not in fragment.text
    assert (await client.get("/admin/customers", params={"q": "x" * 201})).status_code == 422

    bad = await client.post(f"/admin/customers/{customer}/credit", data={"amount": "-5", "_csrf_token": csrf})
    assert bad.status_code == 422 and 'id="e-amount"' in bad.text
    assert (await api.get(f"/v1/customers/{customer}/balance"))["available"] == {}

    posted = await client.post(
        f"/admin/customers/{customer}/credit",
        data={"amount": "12.5", "_csrf_token": csrf},
        follow_redirects=False,
    )
    assert posted.status_code == 303 and posted.headers["location"].startswith(
        f"/admin/customers/{customer}?"
    )
    assert (await api.get(f"/v1/customers/{customer}/balance"))["available"] == {"EUR": 1250}
    log = (await api.get("/v1/audit_log", params={"customer": customer, "limit": 100}))["data"]
    [entry] = [e for e in log if e["action"] == "admin.credit_granted"]
    assert entry["data"] == {"amount": 1250, "currency": "EUR"} and entry["actor"].startswith("staff:")
    assert (await client.get("/admin/customers/nobody")).status_code == 404


async def test_support_may_read_but_not_grant(api: Api, db: Database, clock: FrozenClock, demo: Any) -> None:
    customer = (await api.post("/v1/customers", {"name": "Helped", "currency": "USD"}))["id"]
    client, csrf = await as_staff(api, await staff_cookie(db, clock, "sam@ops.example", "support"))
    await api.post(f"/v1/customers/{customer}/members", {"email": "kim@helped.example", "role": "viewer"})
    await api.post(f"/v1/customers/{customer}/scim_tokens", {"name": "okta"})
    page = await client.get(f"/admin/customers/{customer}")
    assert page.status_code == 200 and "Grant credit" not in page.text
    assert "kim@helped.example" in page.text
    assert "No SSO connection." in page.text and "1 active SCIM token." in page.text
    refused = await client.post(
        f"/admin/customers/{customer}/credit", data={"amount": "10", "_csrf_token": csrf}
    )
    assert refused.status_code == 403
    assert (await api.get(f"/v1/customers/{customer}/balance"))["available"] == {}


async def test_a_credit_note_from_the_page_credits_the_open_invoice(
    api: Api, db: Database, clock: FrozenClock, demo: Any
) -> None:
    customer = (await api.post("/v1/customers", {"name": "Noted", "currency": "USD"}))["id"]
    await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    [invoice] = (await api.get("/v1/invoices", params={"customer": customer}))["data"]
    assert (invoice["status"], invoice["amount_remaining"]) == ("open", 900)
    support, csrf = await as_staff(api, await staff_cookie(db, clock, "sam@ops.example", "support"))
    path = f"/admin/customers/{customer}/invoices/{invoice['id']}/credit_note"
    field = f"note_{invoice['id']}"
    assert (await support.post(path, data={field: "3", "_csrf_token": csrf})).status_code == 403

    client, csrf = await as_staff(api, await staff_cookie(db, clock, "fin@ops.example", "finance"))
    page = await client.get(f"/admin/customers/{customer}")
    assert f'action="{path}"' in page.text
    # More than the invoice: refused beside the field, nothing issued.
    too_much = await client.post(path, data={field: "10", "_csrf_token": csrf})
    assert too_much.status_code == 422 and f'id="e-{field}"' in too_much.text
    assert (await api.get("/v1/credit_notes", params={"invoice": invoice["id"]}))["data"] == []

    done = await client.post(path, data={field: "3", "_csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303
    [note] = (await api.get("/v1/credit_notes", params={"invoice": invoice["id"]}))["data"]
    assert (note["total"], note["credit_to_invoice"], note["credit_to_balance"]) == (300, 300, 0)
    assert (await api.get(f"/v1/invoices/{invoice['id']}"))["amount_remaining"] == 600
    log = (await api.get("/v1/audit_log", params={"customer": customer, "limit": 100}))["data"]
    [entry] = [e for e in log if e["action"] == "admin.credit_note_issued"]
    assert entry["target"] == note["id"] and entry["data"]["amount"] == 300


async def test_an_admin_opens_a_portal_session_and_the_link_opens_the_portal(
    api: Api, db: Database, clock: FrozenClock, demo: Any
) -> None:
    customer = (await api.post("/v1/customers", {"name": "Portalled", "currency": "USD"}))["id"]
    client, csrf = await as_staff(api, await staff_cookie(db, clock, "ada@ops.example", "admin"))
    shown = await client.post(f"/admin/customers/{customer}/portal_session", data={"_csrf_token": csrf})
    assert shown.status_code == 200
    link = re.search(r'id="portal-link" href="[^"]*(/portal/session/[^"]+)"', shown.text)
    assert link is not None
    log = (await api.get("/v1/audit_log", params={"customer": customer, "limit": 100}))["data"]
    [entry] = [e for e in log if e["action"] == "admin.portal_session_opened"]
    assert entry["actor"].startswith("staff:") and link.group(1).rsplit("/", 1)[1] not in str(entry)
    client.cookies.clear()
    opened = await client.get(link.group(1), follow_redirects=False)
    assert opened.status_code in (302, 303) and opened.headers["location"].startswith("/portal")
    again = await client.get(link.group(1), follow_redirects=False)
    assert again.status_code >= 400  # single use

    finance, csrf = await as_staff(api, await staff_cookie(db, clock, "fin@ops.example", "finance"))
    refused = await finance.post(f"/admin/customers/{customer}/portal_session", data={"_csrf_token": csrf})
    assert refused.status_code == 403


async def test_change_plan_shows_the_preview_then_changes_it(
    api: Api, db: Database, clock: FrozenClock, demo: Any
) -> None:
    customer = (await api.post("/v1/customers", {"name": "Upgrader", "currency": "USD"}))["id"]
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    client, csrf = await as_staff(api, await staff_cookie(db, clock, "fin@ops.example", "finance"))
    path = f"/admin/customers/{customer}/subscriptions/{sub['id']}/plan_change"
    assert f'href="{path}"' in (await client.get(f"/admin/customers/{customer}")).text
    expected = await api.post(
        f"/v1/subscriptions/{sub['id']}/preview_change", {"price": "pro_monthly"}, expect=200
    )
    shown = await client.get(path, params={"price": "pro_monthly"})
    assert shown.status_code == 200 and 'id="preview"' in shown.text
    assert expected["outcome"] == "pending"
    for item in expected["pending_items"]:
        assert item["description"] in shown.text
    # The preview changed nothing.
    assert (await api.get(f"/v1/subscriptions/{sub['id']}"))["plan"] == sub["plan"]
    unknown = await client.get(path, params={"price": "nope"})
    assert unknown.status_code == 422 and 'id="e-price"' in unknown.text  # beside the choice

    done = await client.post(path, data={"price": "pro_monthly", "_csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303
    pro = (await api.get("/v1/plans/pro"))["id"]
    assert (await api.get(f"/v1/subscriptions/{sub['id']}"))["plan"] == pro != sub["plan"]
    log = (await api.get("/v1/audit_log", params={"customer": customer, "limit": 100}))["data"]
    [entry] = [e for e in log if e["action"] == "admin.plan_changed"]
    assert entry["target"] == sub["id"] and entry["actor"].startswith("staff:")


async def test_extend_a_trial_from_the_page(api: Api, db: Database, clock: FrozenClock, demo: Any) -> None:
    customer = (await api.post("/v1/customers", {"name": "Trialist", "currency": "USD"}))["id"]
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "pro_monthly"})
    assert (sub["status"], sub["trial_end"]) == ("trialing", "2026-01-15T00:00:00Z")
    client, csrf = await as_staff(api, await staff_cookie(db, clock, "sup@ops.example", "finance"))
    path = f"/admin/customers/{customer}/subscriptions/{sub['id']}/extend_trial"
    assert f'action="{path}"' in (await client.get(f"/admin/customers/{customer}")).text
    for bad in ("0", "366", "ten"):
        refused = await client.post(path, data={"days": bad, "_csrf_token": csrf})
        assert refused.status_code == 422 and 'id="e-days"' in refused.text
    assert (await api.get(f"/v1/subscriptions/{sub['id']}"))["trial_end"] == "2026-01-15T00:00:00Z"
    done = await client.post(path, data={"days": "10", "_csrf_token": csrf}, follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (
        303,
        f"/admin/customers/{customer}?done=trial_extended",
    )
    extended = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert (extended["trial_end"], extended["current_period_end"]) == ("2026-01-25T00:00:00Z",) * 2
    log = (await api.get("/v1/audit_log", params={"customer": customer, "limit": 100}))["data"]
    [entry] = [e for e in log if e["action"] == "admin.trial_extended"]
    assert entry["data"] == {"days": 10, "trial_end": "2026-01-25T00:00:00Z"}
    # Support may read the customer but not change subscriptions: no form, and the post is refused.
    support, csrf = await as_staff(api, await staff_cookie(db, clock, "sam@ops.example", "support"))
    assert f'action="{path}"' not in (await support.get(f"/admin/customers/{customer}")).text
    assert (await support.post(path, data={"days": "5", "_csrf_token": csrf})).status_code == 403


async def test_the_page_shows_entitlements_and_resends_an_email(
    api: Api, db: Database, clock: FrozenClock, demo: Any
) -> None:
    from gateway.kernel.ids import new_id
    from gateway.notifications.email_models import EmailMessage
    from tests.entitlements.test_check_api import synced

    customer = (await api.post("/v1/customers", {"name": "Mailed BV", "currency": "EUR"}))["id"]
    await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly", "trial_days": 0})
    original = new_id("em")
    raw = (
        f"Subject: Your invoice\r\nMessage-ID: <{original}@tiergate.mail>\r\n"
        "To: ap@mailed.example\r\n\r\nHello\r\n"
    )
    async with db.unit_of_work() as session:
        session.add(
            EmailMessage(
                id=original,
                tenant_id=customer,
                event_id="ev_1",
                event_type="invoice.finalized",
                template="invoice_finalized",
                recipient="ap@mailed.example",
                locale="en",
                subject="Your invoice",
                raw=raw,
                status="sent",
                attempts=1,
                created_at=clock.now(),
            )
        )
    await synced(api)
    client, csrf = await as_staff(api, await staff_cookie(db, clock, "ada@ops.example", "admin"))
    page = (await client.get(f"/admin/customers/{customer}")).text
    # Basic's grants, as GET /v1/entitlements/{customer} has them.
    assert re.search(r'data-feature="projects"><th scope="row">projects</th>\s*<td>5</td>', page)
    assert f'data-email="{original}"' in page
    path = f"/admin/customers/{customer}/emails/{original}/resend"
    done = await client.post(path, data={"_csrf_token": csrf}, follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (
        303,
        f"/admin/customers/{customer}?done=email_resent",
    )
    # The copy is queued (its delivery over real SMTP: tests/notifications/test_email.py).
    listed = (await api.get("/v1/email_messages", params={"customer": customer}))["data"]
    assert [(m["id"] == original, m["status"], m["subject"]) for m in listed] == [
        (False, "pending", "Your invoice"),
        (True, "sent", "Your invoice"),
    ]
    log = (await api.get("/v1/audit_log", params={"customer": customer, "limit": 100}))["data"]
    [entry] = [e for e in log if e["action"] == "admin.email_resent"]
    assert entry["data"] == {"original": original, "template": "invoice_finalized"}
    # Another customer's e-mail through this customer's path: not found, nothing queued.
    other = (await api.post("/v1/customers", {"name": "Other", "currency": "EUR"}))["id"]
    assert (
        await client.post(f"/admin/customers/{other}/emails/{original}/resend", data={"_csrf_token": csrf})
    ).status_code == 404
    # Finance may not read e-mails: no section, and the resend is refused.
    finance, csrf = await as_staff(api, await staff_cookie(db, clock, "fin@ops.example", "finance"))
    assert f'data-email="{original}"' not in (await finance.get(f"/admin/customers/{customer}")).text
    assert (await finance.post(path, data={"_csrf_token": csrf})).status_code == 403
    assert len((await api.get("/v1/email_messages", params={"customer": customer}))["data"]) == 2
