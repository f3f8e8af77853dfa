"""The portal's money pages against the real embedded sandbox provider, over HTTP as a browser would
(cookies, CSRF token, redirects): a customer adds a card through the provider's setup page, makes it the
default, and pays an open invoice with "pay now"; a declined card comes back with the failure shown and
the invoice still open. Another customer's invoice cannot be paid from this portal."""

from __future__ import annotations

import re
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx

from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from tests.conftest import ADMIN_KEY, Api
from tests.payments.test_embedded_account import served
from tests.payments.test_sandbox_stories import eventually


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _settings() -> Settings:
    return Settings(
        database_url="unused-db-is-injected",
        migrate_on_start=False,
        scheduler_enabled=False,
        bootstrap_api_key=ADMIN_KEY,
        port=_port(),
        payments_embedded_account=True,
        payments_sandbox_store=":memory:",
        relay_interval_seconds=0.2,
    )


async def _csrf(browser: httpx.AsyncClient, path: str) -> str:
    page = await browser.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


async def _open_invoice(api: Api, customer: str, amount: int) -> dict[str, Any]:
    await api.post(
        "/v1/invoice_items",
        {"customer": customer, "amount": amount, "currency": "EUR", "description": "Consulting"},
    )
    invoice: dict[str, Any] = await api.post(
        "/v1/invoices",
        {"customer": customer, "auto_advance": True, "collection_method": "send_invoice"},
    )
    assert (invoice["status"], invoice["amount_remaining"]) == ("open", amount)
    return invoice


async def test_add_a_card_then_pay_an_open_invoice_from_the_portal(clock: FrozenClock, db: Database) -> None:
    settings = _settings()
    base = f"http://127.0.0.1:{settings.port}"
    async with served(settings, clock, db) as api, httpx.AsyncClient(base_url=base) as browser:
        customer = (await api.post("/v1/customers", {"name": "Payer BV", "currency": "EUR"}))["id"]
        other = (await api.post("/v1/customers", {"name": "Other BV", "currency": "EUR"}))["id"]
        link = await api.post("/v1/portal_sessions", {"customer": customer})
        opened = await browser.get(urlsplit(link["url"]).path)
        assert (opened.status_code, opened.headers["location"]) == (303, "/portal")

        # A declined card first, then a good one: both through the provider's own setup page.
        for test_method in ("card_insufficient_funds", "card_ok"):
            token = await _csrf(browser, "/portal")
            started = await browser.post("/portal/payment_methods", data={"_csrf_token": token})
            assert started.status_code == 303
            setup_url = started.headers["location"]
            assert setup_url.startswith(f"{base}/sandbox/setup/")
            back = await browser.post(setup_url, data={"test_method": test_method})
            assert back.status_code == 303
            assert back.headers["location"].startswith(f"{base}/portal?done=method_added&")

        async def methods() -> Any:
            return (await api.get(f"/v1/customers/{customer}/payment_methods"))["data"]

        declined, good = await eventually(methods, lambda rows: len(rows) == 2)
        assert declined["is_default"] is True  # the first one added
        invoice = await _open_invoice(api, customer, 4_250)

        # Pay now with the default (declining) card: the failure is shown, the invoice stays open.
        token = await _csrf(browser, "/portal")
        paid = await browser.post(f"/portal/invoices/{invoice['id']}/pay", data={"_csrf_token": token})
        assert (paid.status_code, paid.headers["location"]) == (303, "/portal?failed=payment_failed")
        page = await browser.get(paid.headers["location"])
        assert "The payment did not go through." in page.text
        assert (await api.get(f"/v1/invoices/{invoice['id']}"))["status"] == "open"

        # Make the good card the default, then pay now again.
        token = await _csrf(browser, "/portal")
        made = await browser.post(
            f"/portal/payment_methods/{good['id']}/default", data={"_csrf_token": token}
        )
        assert (made.status_code, made.headers["location"]) == (303, "/portal?done=method_default")
        assert [m["id"] for m in await methods() if m["is_default"]] == [good["id"]]
        token = await _csrf(browser, "/portal")
        paid = await browser.post(f"/portal/invoices/{invoice['id']}/pay", data={"_csrf_token": token})
        assert (paid.status_code, paid.headers["location"]) == (303, "/portal?done=paid")
        settled = await api.get(f"/v1/invoices/{invoice['id']}")
        assert (settled["status"], settled["amount_paid"], settled["amount_remaining"]) == ("paid", 4_250, 0)
        page = await browser.get("/portal?done=paid")
        assert "Thank you: the invoice is paid." in page.text

        # Another customer's invoice, from this portal session: refused, nothing charged.
        foreign = await _open_invoice(api, other, 1_000)
        token = await _csrf(browser, "/portal")
        refused = await browser.post(f"/portal/invoices/{foreign['id']}/pay", data={"_csrf_token": token})
        assert (refused.status_code, refused.headers["location"]) == (303, "/portal?failed=invoice_not_found")
        assert (await api.get(f"/v1/invoices/{foreign['id']}"))["status"] == "open"
        assert (await api.get("/v1/payments", params={"invoice": foreign["id"]}))["data"] == []


async def test_back_from_3d_secure_the_portal_says_at_once_whether_it_went_through(
    clock: FrozenClock, db: Database
) -> None:
    """A card that asks for 3-D Secure: "pay now" sends the customer to the provider's authentication page;
    coming back, the portal asks the provider where the payment stands before it answers, so a failed
    check says so (and the invoice stays open) and a completed one shows the invoice paid, without
    waiting for the provider's webhook."""
    settings = _settings()
    base = f"http://127.0.0.1:{settings.port}"
    async with served(settings, clock, db) as api, httpx.AsyncClient(base_url=base) as browser:
        customer = (await api.post("/v1/customers", {"name": "Secure BV", "currency": "EUR"}))["id"]
        other = (await api.post("/v1/customers", {"name": "Other BV", "currency": "EUR"}))["id"]
        link = await api.post("/v1/portal_sessions", {"customer": customer})
        await browser.get(urlsplit(link["url"]).path)
        token = await _csrf(browser, "/portal")
        started = await browser.post("/portal/payment_methods", data={"_csrf_token": token})
        await browser.post(started.headers["location"], data={"test_method": "card_3ds"})

        async def methods() -> Any:
            return (await api.get(f"/v1/customers/{customer}/payment_methods"))["data"]

        await eventually(methods, lambda rows: len(rows) == 1)
        invoice = await _open_invoice(api, customer, 3_509)
        back_path = f"/portal/invoices/{invoice['id']}/payment_return"

        async def pay_now_through_the_challenge(outcome: str) -> str:
            token = await _csrf(browser, "/portal")
            paid = await browser.post(f"/portal/invoices/{invoice['id']}/pay", data={"_csrf_token": token})
            assert paid.status_code == 303
            challenge = paid.headers["location"]
            assert challenge.startswith(f"{base}/sandbox/challenge/")
            answered = await browser.post(challenge, data={"outcome": outcome})
            assert answered.status_code == 303
            assert answered.headers["location"].startswith(f"{base}{back_path}?")
            back = await browser.get(answered.headers["location"])
            assert back.status_code == 303
            return str(back.headers["location"])

        assert await pay_now_through_the_challenge("fail") == "/portal?failed=authentication_failed"
        page = await browser.get("/portal?failed=authentication_failed")
        assert "check was not completed, so nothing was paid." in page.text
        assert (await api.get(f"/v1/invoices/{invoice['id']}"))["status"] == "open"

        assert await pay_now_through_the_challenge("complete") == "/portal?done=paid"
        settled = await api.get(f"/v1/invoices/{invoice['id']}")
        assert (settled["status"], settled["amount_paid"]) == ("paid", 3_509)
        attempts = (await api.get("/v1/payments", params={"invoice": invoice["id"]}))["data"]
        assert sorted(p["status"] for p in attempts) == ["failed", "succeeded"]

        # The way back names an invoice: another customer's is a 404 here, as everywhere in the portal.
        foreign = await _open_invoice(api, other, 1_000)
        assert (await browser.get(f"/portal/invoices/{foreign['id']}/payment_return")).status_code == 404
