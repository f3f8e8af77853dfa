"""Portal sign-in by an e-mailed one-time code, through HTTP: the pages, the outbox, the relay's `email`
consumer, the `mail` job and a real SMTP server (aiosmtpd) whose mailbox the tests read.

Exact values throughout; the clock is frozen, so the code's 10 minutes and the hour's throttle are tested to
the second.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from httpx import Response
from litestar import Litestar
from sqlalchemy import select

from gateway.config import Settings
from gateway.db.outbox import OutboxEvent
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.notifications.email_models import EmailMessage
from gateway.portal.login_models import PortalLoginCode
from tests.conftest import Api
from tests.notifications.smtp import Arrived, Mailbox, SmtpServer, html_part, text_part
from tests.portal.test_portal_sessions_and_configuration import csrf_of
from tests.provisioning.helpers import manual_settings, settle

JANSEN = "boekhouding@jansen.example"
SENT = "If {email} belongs to a customer, we sent a 6-digit code to it. It works for 10 minutes."
WRONG = "That code is not right or has expired."


@pytest.fixture
def settings(smtp: SmtpServer) -> Settings:
    return manual_settings(
        mail_transport="smtp",
        smtp_port=smtp.port,
        mail_link_base_url="https://billing.acme.example",
        mail_from="billing@acme.example",
        issuer_name="Acme Cloud",
    )


async def customer(api: Api, name: str, email: str, *, dutch: bool = False, **extra: Any) -> str:
    made = await api.post("/v1/customers", {"name": name, "email": email, "currency": "EUR", **extra})
    if dutch:
        await api.patch(f"/v1/customers/{made['id']}", {"preferred_locale": "nl"})
    return str(made["id"])


class Browser:
    """A customer's browser: no API key, the portal's cookies, English pages."""

    def __init__(self, api: Api, app: Litestar, mailbox: Mailbox) -> None:
        self.api = api
        self.app = app
        self.mailbox = mailbox
        self.client = api.client
        self.client.headers.pop("Authorization", None)
        self.client.headers["Accept-Language"] = "en"
        self.csrf = ""

    async def open_login(self, next_path: str | None = None) -> Response:
        page = await self.client.get("/portal/login", params={"next": next_path} if next_path else None)
        assert page.status_code == 200, page.text
        self.csrf = csrf_of(page.text)
        return page

    async def ask(self, email: str, next_path: str = "/portal", expect: int = 200) -> Response:
        if not self.csrf:
            await self.open_login()
        answer = await self.client.post(
            "/portal/login", data={"_csrf_token": self.csrf, "email": email, "next": next_path}
        )
        assert answer.status_code == expect, answer.text
        return answer

    async def verify(self, email: str, code: str, next_path: str = "/portal") -> Response:
        return await self.client.post(
            "/portal/login/verify",
            data={"_csrf_token": self.csrf, "email": email, "code": code, "next": next_path},
            follow_redirects=False,
        )

    async def mails(self) -> list[Arrived]:
        """Every mail the real SMTP server got so far, after a relay and mail pass."""
        await settle(self.api, self.app)
        return list(self.mailbox.arrived)


def code_in(mail: Arrived) -> str:
    text = text_part(mail.message)
    found = re.findall(r"^    ([0-9]{6})$", text, flags=re.MULTILINE)
    assert len(found) == 1, text
    return str(found[0])


def signed_in(response: Response) -> str:
    assert response.status_code == 303, response.text
    cookie = response.cookies.get("tg_portal")
    assert cookie and cookie.startswith("tgps_")
    return str(response.headers["location"])


async def browser(api: Api, app: Litestar, mailbox: Mailbox) -> Browser:
    return Browser(api, app, mailbox)


async def test_a_code_for_a_known_address_arrives_in_dutch_and_opens_that_customers_portal_once(
    api: Api, app: Litestar, mailbox: Mailbox, db: Database
) -> None:
    jansen = await customer(api, "Bakkerij Jansen", "Boekhouding@Jansen.example", dutch=True)
    b = await browser(api, app, mailbox)
    await b.open_login()

    # Typed with capitals and spaces: the same address.
    page = await b.ask("  BoekHouding@jansen.EXAMPLE ")
    assert SENT.format(email=JANSEN) in page.text
    assert 'action="/portal/login/verify"' in page.text and f'name="email" value="{JANSEN}"' in page.text

    [mail] = await b.mails()
    assert (mail.sender, mail.recipients) == ("billing@acme.example", [JANSEN])
    message = mail.message
    assert message["Subject"] == "Je inlogcode voor Acme Cloud"
    assert message["Content-Language"] == "nl"
    code = code_in(mail)
    text = text_part(message)
    assert "Vul deze code in om in te loggen op het facturatieportaal:" in text
    assert "Hij werkt één keer, 10 minuten lang." in text
    html = html_part(message)
    assert '<html lang="nl">' in html
    assert f'<p id="code" style="font-size:28px;font-weight:bold;letter-spacing:6px">{code}</p>' in html

    # The code itself is nowhere at rest: an HMAC in its row, sealed in the outbox, and the sent mail's
    # stored copy blanked.
    async with db.unit_of_work() as session:
        [row] = (await session.scalars(select(PortalLoginCode))).all()
        event = await session.scalar(
            select(OutboxEvent).where(OutboxEvent.type == "portal_login.code_requested")
        )
        [stored] = (await session.scalars(select(EmailMessage))).all()
    assert (row.email, row.tries, row.used_at) == (JANSEN, 0, None)
    assert row.expires_at - row.created_at == timedelta(minutes=10)
    assert code not in row.code_hash and len(row.code_hash) == 64
    assert event is not None and event.tenant_id == jansen and code not in str(event.data)
    assert (stored.status, stored.template, stored.locale, stored.raw) == (
        "sent",
        "portal_login_code",
        "nl",
        "",
    )
    # Support cannot resend it either: there is nothing left to send, and the code is single-use.
    resend = await api.post(f"/v1/email_messages/{stored.id}/resend", expect=409)
    assert resend["code"] == "email_not_resendable"

    landed = await b.verify(JANSEN, code)
    assert signed_in(landed) == "/portal"
    overview = await b.client.get("/portal")
    assert overview.status_code == 200
    assert "Facturering voor Bakkerij Jansen" in overview.text  # the customer's own language
    async with db.unit_of_work() as session:
        opened = await session.scalar(
            select(OutboxEvent).where(OutboxEvent.type == "portal_session.opened_by_email_code")
        )
    assert opened is not None and (opened.tenant_id, opened.data) == (jansen, {"login_code": row.id})

    # The page's language links after a posted step lead back to the first step, in that language.
    switched = await b.client.get("/portal/login/verify", params={"lang": "nl"}, follow_redirects=False)
    assert (switched.status_code, switched.headers["location"]) == (303, "/portal/login?lang=nl")

    # Once only.
    again = await b.verify(JANSEN, code)
    assert again.status_code == 422 and WRONG in again.text and "tg_portal" not in again.cookies
    assert 'id="e-code"' in again.text


async def test_five_wrong_codes_kill_it_and_ten_minutes_expire_it(
    api: Api, app: Litestar, mailbox: Mailbox, db: Database, clock: FrozenClock
) -> None:
    await customer(api, "Bakkerij Jansen", JANSEN)
    b = await browser(api, app, mailbox)
    await b.ask(JANSEN)
    [mail] = await b.mails()
    code = code_in(mail)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for attempt in range(5):
        refused = await b.verify(JANSEN, wrong)
        assert refused.status_code == 422, attempt
        assert WRONG in refused.text and 'aria-invalid="true"' in refused.text
    dead = await b.verify(JANSEN, code)
    assert dead.status_code == 422 and WRONG in dead.text
    async with db.unit_of_work() as session:
        [row] = (await session.scalars(select(PortalLoginCode))).all()
    assert (row.tries, row.used_at) == (5, None)

    # A new code, then 10 minutes: refused, tried or not.
    await b.ask(JANSEN)
    [_, fresh] = await b.mails()
    clock.advance(timedelta(minutes=10))
    late = await b.verify(JANSEN, code_in(fresh))
    assert late.status_code == 422 and WRONG in late.text


async def test_unknown_address_gets_the_same_page_and_no_mail_and_bad_input_is_refused(
    api: Api, app: Litestar, mailbox: Mailbox, db: Database
) -> None:
    await customer(api, "Bakkerij Jansen", JANSEN)
    b = await browser(api, app, mailbox)
    known = await b.ask(JANSEN)
    unknown = await b.ask("nobody@elsewhere.example")
    assert unknown.status_code == 200
    # The same page, word for word, but for the address typed.
    assert unknown.text.replace("nobody@elsewhere.example", JANSEN) == known.text
    assert len(await b.mails()) == 1  # Jansen's only

    for typed, words in [
        ("", "Enter your billing e-mail address."),
        ("   ", "Enter your billing e-mail address."),
        ("not an address", "This is not an e-mail address."),
        ("jansen@example", "This is not an e-mail address."),
        ("a" * 310 + "@jansen.example", "This address is longer than 320 characters."),
    ]:
        bad = await b.ask(typed, expect=422)
        assert f'<small id="e-email" class="field-error" role="alert">{words}</small>' in bad.text, typed
        assert 'action="/portal/login"' in bad.text
    assert len(await b.mails()) == 1
    async with db.unit_of_work() as session:
        assert len((await session.scalars(select(PortalLoginCode))).all()) == 1

    # Without the CSRF token nothing happens at all.
    forged = await b.client.post("/portal/login", data={"email": JANSEN})
    assert forged.status_code == 403


async def test_five_codes_an_hour_and_the_newest_code_is_the_one_that_works(
    api: Api, app: Litestar, mailbox: Mailbox, clock: FrozenClock
) -> None:
    await customer(api, "Bakkerij Jansen", JANSEN)
    b = await browser(api, app, mailbox)
    codes = []
    for sent in range(1, 6):
        await b.ask(JANSEN)
        mails = await b.mails()  # one relay and mail pass per request: the codes in the order asked
        assert len(mails) == sent
        codes.append(code_in(mails[-1]))
        clock.advance(timedelta(minutes=1))
    # The 6th within the hour: the same page, no mail.
    sixth = await b.ask(JANSEN)
    assert SENT.format(email=JANSEN) in sixth.text
    assert len(await b.mails()) == 5

    # Each request ended the code before it: an older code is refused (and counts as a try). (Two
    # random codes are equal once in a million: then there is no older code to try.)
    if codes[3] != codes[4]:
        older = await b.verify(JANSEN, codes[3])
        assert older.status_code == 422 and WRONG in older.text
    assert signed_in(await b.verify(JANSEN, codes[4])) == "/portal"

    # An hour after the first request, one more may go.
    clock.advance(timedelta(minutes=56))
    await b.ask(JANSEN)
    assert len(await b.mails()) == 6


async def test_next_keeps_a_portal_page_and_nothing_else(api: Api, app: Litestar, mailbox: Mailbox) -> None:
    await customer(api, "Bakkerij Jansen", JANSEN)
    b = await browser(api, app, mailbox)

    # The 401 page of a portal page without a session offers the e-mailed code, back to that page.
    missing = await b.client.get("/portal/billing_details")
    assert missing.status_code == 401
    assert 'href="/portal/login?next=/portal/billing_details"' in missing.text
    assert "Sign in with an e-mailed code" in missing.text and 'href="/portal/sso"' in missing.text

    page = await b.open_login("/portal/billing_details")
    assert '<input type="hidden" name="next" value="/portal/billing_details">' in page.text
    evil = await b.open_login("https://evil.example/")
    assert '<input type="hidden" name="next" value="/portal">' in evil.text

    await b.ask(JANSEN, next_path="/portal/billing_details")
    [first] = await b.mails()
    assert signed_in(await b.verify(JANSEN, code_in(first), "/portal/billing_details")) == (
        "/portal/billing_details"
    )
    for crafted in ["https://evil.example/", "//evil.example/portal", "/\\evil.example", "/portal/login"]:
        await b.ask(JANSEN, next_path=crafted)
        mail = (await b.mails())[-1]
        assert signed_in(await b.verify(JANSEN, code_in(mail), crafted)) == "/portal", crafted


async def test_an_address_of_two_customers_chooses_one_bound_to_the_code(
    api: Api, app: Litestar, mailbox: Mailbox, db: Database
) -> None:
    first = await customer(api, "Bakkerij Jansen", JANSEN)
    second = await customer(api, "Jansen Catering", JANSEN.upper())
    stranger = await customer(api, "Someone Else", "else@else.example")
    # A customer on a test clock with the same address is not offered.
    test_clock = (await api.post("/v1/test_clocks", {"frozen_time": "2026-02-28T12:00:00Z"}))["id"]
    await customer(api, "Jansen Simulation", JANSEN, test_clock=test_clock)

    b = await browser(api, app, mailbox)
    await b.ask(JANSEN)
    [mail] = await b.mails()
    choice_page = await b.verify(JANSEN, code_in(mail))
    assert choice_page.status_code == 200 and "tg_portal" not in choice_page.cookies
    html = choice_page.text
    assert "This address belongs to more than one customer." in html
    offered = re.findall(r'name="customer" value="([^"]+)"[^>]*> ([^<]+)</label>', html)
    assert offered == [(first, "Bakkerij Jansen"), (second, "Jansen Catering")]
    token = re.search(r'name="choice" value="(tgplc_[^"]+)"', html)
    assert token is not None
    choice = token.group(1)

    async def choose(customer_id: str, with_token: str = choice) -> Response:
        return await b.client.post(
            "/portal/login/choose",
            data={"_csrf_token": b.csrf, "choice": with_token, "customer": customer_id, "next": "/portal"},
            follow_redirects=False,
        )

    # A customer id that is not one of the address's, or a made-up token: the sign-in page again.
    refused = await choose(stranger)
    assert refused.status_code == 422 and "That choice has expired. Ask for a new code." in refused.text
    assert (await choose(second, "tgplc_made_up")).status_code == 422

    assert signed_in(await choose(second)) == "/portal"
    overview = await b.client.get("/portal")
    assert "Billing for Jansen Catering" in overview.text
    # One session per code: the token is spent.
    assert (await choose(first)).status_code == 422
