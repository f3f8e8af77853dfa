"""A refund from the console's customer page, against the real embedded sandbox provider: more than is
left is refused beside the field and nothing is refunded; a partial refund comes with its credit note and
is audited with the staff member; a role without payments:write sees no form and gets a 403."""

from __future__ import annotations

import httpx

from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.web.cookies import STAFF_COOKIE
from tests.admin.test_customer_pages import staff_cookie
from tests.payments.test_embedded_account import served
from tests.payments.test_sandbox_stories import eventually
from tests.portal.test_portal_payments import _open_invoice, _settings


async def test_refund_part_of_a_payment_from_the_customer_page(clock: FrozenClock, db: Database) -> None:
    settings = _settings()
    base = f"http://127.0.0.1:{settings.port}"
    async with served(settings, clock, db) as api, httpx.AsyncClient(base_url=base) as browser:
        customer = (await api.post("/v1/customers", {"name": "Refunded BV", "currency": "EUR"}))["id"]
        setup = await api.post(f"/v1/customers/{customer}/setup_sessions", {"return_url": f"{base}/done"})
        assert (await browser.post(setup["url"], data={"test_method": "card_ok"})).status_code == 303
        await eventually(
            lambda: api.get(f"/v1/customers/{customer}/payment_methods"), lambda page: len(page["data"]) == 1
        )
        invoice = await _open_invoice(api, customer, 4_250)
        paid = await api.post(f"/v1/invoices/{invoice['id']}/pay", {}, expect=200)
        assert paid["status"] == "paid"
        [payment] = (await api.get("/v1/payments", params={"invoice": invoice["id"]}))["data"]

        browser.cookies.set(STAFF_COOKIE, await staff_cookie(db, clock, "fin@ops.example", "finance"))
        page = await browser.get(f"/admin/customers/{customer}")
        assert f'data-payment="{payment["id"]}"' in page.text
        csrf = browser.cookies.get("tg_csrf") or ""
        path = f"/admin/customers/{customer}/payments/{payment['id']}/refund"
        over = await browser.post(path, data={"refund_amount": "50", "_csrf_token": csrf})
        assert over.status_code == 422 and f'id="e-refund-{payment["id"]}"' in over.text
        assert (await api.get(f"/v1/payments/{payment['id']}"))["amount_refunded"] == 0

        done = await browser.post(path, data={"refund_amount": "10.00", "_csrf_token": csrf})
        assert (done.status_code, done.headers["location"]) == (
            303,
            f"/admin/customers/{customer}?done=refunded",
        )
        assert (await api.get(f"/v1/payments/{payment['id']}"))["amount_refunded"] == 1_000
        notes = (await api.get("/v1/credit_notes", params={"invoice": invoice["id"]}))["data"]
        assert [n["total"] for n in notes] == [1_000]
        log = (await api.get("/v1/audit_log", params={"customer": customer, "limit": 100}))["data"]
        [entry] = [e for e in log if e["action"] == "admin.payment_refunded"]
        assert entry["data"] == {"payment": payment["id"], "amount": 1_000, "status": "succeeded"}
        assert entry["actor"].startswith("staff:")

        browser.cookies.set(STAFF_COOKIE, await staff_cookie(db, clock, "sam@ops.example", "support"))
        assert f'action="{path}"' not in (await browser.get(f"/admin/customers/{customer}")).text
        refused = await browser.post(
            path, data={"refund_amount": "1", "_csrf_token": browser.cookies.get("tg_csrf") or ""}
        )
        assert refused.status_code == 403
        assert (await api.get(f"/v1/payments/{payment['id']}"))["amount_refunded"] == 1_000
