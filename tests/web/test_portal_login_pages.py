"""Portal sign-in by an e-mailed code in Chromium, English and Dutch (WEB.md: roles and labels, axe on every
page and state, a screenshot of each): the address asked, the code page, a wrong code refused beside the
field, the right one asking which of the address's two customers, then landing on the portal page the
visitor was going to. The code comes from a real SMTP
server (aiosmtpd) that the served Tiergate's own background relay mails it to."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from tests.conftest import ADMIN_KEY
from tests.notifications.smtp import Mailbox, SmtpServer
from tests.payments.test_embedded_account import served
from tests.payments.test_sandbox_stories import eventually
from tests.portal.test_portal_login_code import code_in
from tests.web.conftest import axe_check, console_errors, screenshot

pytestmark = pytest.mark.browser

ADDRESS = "boekhouding@jansen.example"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer(Mailbox()) as server:
        yield server


def _settings(smtp_port: int) -> Settings:
    from tests.portal.test_portal_payments import _port

    return Settings(
        database_url="unused-db-is-injected",
        migrate_on_start=False,
        scheduler_enabled=False,
        bootstrap_api_key=ADMIN_KEY,
        port=_port(),
        payments_sandbox_store=":memory:",
        relay_interval_seconds=0.2,
        mail_transport="smtp",
        smtp_port=smtp_port,
        mail_from="billing@acme.example",
    )


async def _text(page: Any, selector: str) -> str:
    return " ".join((await page.inner_text(selector)).split())


async def test_sign_in_with_an_emailed_code_in_english_and_dutch(
    clock: FrozenClock, db: Database, page: Any, smtp: SmtpServer
) -> None:
    mailbox = smtp.mailbox
    settings = _settings(smtp.port)
    base = f"http://127.0.0.1:{settings.port}"
    errors = console_errors(page)
    async with served(settings, clock, db) as api:
        # Two customers share the address: after the code, the page asks which one.
        await api.post("/v1/customers", {"name": "Bakkerij Jansen", "email": ADDRESS, "currency": "EUR"})
        await api.post("/v1/customers", {"name": "Jansen Catering", "email": ADDRESS, "currency": "EUR"})

        # English: from a page that needed a session, so the sign-in returns there.
        await page.goto(f"{base}/portal/login?next=/portal/billing_details")
        assert await page.get_by_role("heading", level=1).inner_text() == "Sign in to billing"
        await axe_check(page)
        await screenshot(page, "portal-login-en")
        await page.get_by_label("Billing e-mail").fill(ADDRESS)
        await page.get_by_role("button", name="E-mail me a code").click()
        assert page.url == f"{base}/portal/login"
        assert await _text(page, "#code-sent") == (
            f"If {ADDRESS} belongs to a customer, we sent a 6-digit code to it. "
            "It works for 10 minutes. Enter it below."
        )
        await axe_check(page)
        await screenshot(page, "portal-login-code-en")

        mails = await eventually(lambda: _arrived(mailbox), lambda found: len(found) == 1)
        code = code_in(mails[0])
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        await page.get_by_label("Code").fill(wrong)
        await page.get_by_role("button", name="Sign in").click()
        assert await _text(page, "#e-code") == "That code is not right or has expired."
        await axe_check(page)
        await screenshot(page, "portal-login-code-wrong-en")
        await page.get_by_label("Code").fill(code)
        await page.get_by_role("button", name="Sign in").click()
        assert await page.get_by_role("group", name="Customer").is_visible()
        await axe_check(page)
        await screenshot(page, "portal-login-choose-en")
        await page.get_by_label("Jansen Catering").check()
        await page.get_by_role("button", name="Open billing").click()
        assert page.url == f"{base}/portal/billing_details"
        assert await page.get_by_label("Name or company").input_value() == "Jansen Catering"
        assert await page.get_by_role("heading", level=1).inner_text() == "Billing details"

        # Dutch, picked on the page.
        await page.goto(f"{base}/portal/login?lang=nl")
        assert await page.get_by_role("heading", level=1).inner_text() == "Inloggen bij facturatie"
        await axe_check(page)
        await screenshot(page, "portal-login-nl")
        await page.get_by_label("Factuur-e-mailadres").fill("nietbekend@elders.example")
        await page.get_by_role("button", name="Mail mij een code").click()
        assert await _text(page, "#code-sent") == (
            "Als nietbekend@elders.example bij een klant hoort, hebben we er een code van 6 cijfers "
            "naartoe gestuurd. Hij werkt 10 minuten. Vul hem hieronder in."
        )
        await axe_check(page)
        await screenshot(page, "portal-login-code-nl")
        await page.get_by_label("Code").fill("123456")
        await page.get_by_role("button", name="Inloggen").click()
        assert await _text(page, "#e-code") == "Die code klopt niet of is verlopen."
        await axe_check(page)
        await screenshot(page, "portal-login-code-wrong-nl")
    assert len(mailbox.arrived) == 1  # nothing for the unknown address
    # No script error or CSP refusal; Chromium reports the two wrong-code pages' 422 as a failed load.
    assert [e for e in errors if "status of 422" not in e] == []
    assert len(errors) == 2


async def _arrived(mailbox: Mailbox) -> list[Any]:
    return list(mailbox.arrived)
