"""Customer e-mails end to end: HTTP API → outbox → relay consumer `email` → job `mail` → a real SMTP
server (aiosmtpd) whose mailbox the tests read."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import select

from gateway.config import Settings
from gateway.db.outbox import record_event
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.kernel.events import DomainEvent
from gateway.notifications.email_models import EmailMessage
from gateway.notifications.email_service import EmailSender
from tests.billing.test_render import pdf_words
from tests.conftest import Api
from tests.notifications.smtp import Mailbox, SmtpServer, html_part, text_part
from tests.provisioning.helpers import manual_settings, settle

EURO_35_09 = "€\xa035,09"  # Babel's Dutch format: a no-break space after the sign


@pytest.fixture
def settings(smtp: SmtpServer) -> Settings:
    return manual_settings(
        mail_transport="smtp",
        smtp_port=smtp.port,
        mail_backoff_seconds=60.0,
        mail_max_attempts=4,
        mail_link_base_url="https://billing.acme.example",
        mail_from="billing@acme.example",
        issuer_name="Acme Cloud",
    )


async def speaks_dutch(api: Api, customer_id: str) -> None:
    """The customer chooses Dutch through the API (`nl-NL` is stored as `nl_NL`)."""
    updated = await api.patch(f"/v1/customers/{customer_id}", {"preferred_locale": "nl-NL"})
    assert updated["preferred_locale"] == "nl_NL"


async def customer(api: Api, email: str | None, currency: str = "EUR", name: str = "Bakkerij Jansen") -> str:
    body = {"name": name, "email": email, "currency": currency, "country": "NL"}
    return str((await api.post("/v1/customers", body))["id"])


async def finalised_invoice(api: Api, customer_id: str, amount: int = 3509) -> dict[str, Any]:
    await api.post(
        "/v1/invoice_items",
        {"customer": customer_id, "amount": amount, "currency": "EUR", "description": "Broodjes"},
    )
    invoice: dict[str, Any] = await api.post(
        "/v1/invoices", {"customer": customer_id, "auto_advance": True, "collection_method": "send_invoice"}
    )
    assert (invoice["status"], invoice["total"]) == ("open", amount)
    return invoice


async def messages(db: Database) -> list[EmailMessage]:
    async with db.unit_of_work() as session:
        rows = await session.scalars(select(EmailMessage).order_by(EmailMessage.recipient))
        return list(rows.all())


async def test_an_invoice_finalised_for_a_dutch_customer_is_one_dutch_mail_with_its_pdf(
    api: Api, app: Litestar, mailbox: Mailbox, db: Database
) -> None:
    jansen = await customer(api, "Boekhouding@Jansen.example")
    await speaks_dutch(api, jansen)
    invoice = await finalised_invoice(api, jansen)
    number = invoice["number"]

    await settle(api, app)
    [mail] = mailbox.arrived
    assert (mail.sender, mail.recipients) == ("billing@acme.example", ["boekhouding@jansen.example"])
    message = mail.message
    assert message["Subject"] == f"Factuur {number} van Acme Cloud"
    assert message["From"] == "Acme Cloud <billing@acme.example>"
    assert message["Content-Language"] == "nl"
    text = text_part(message)
    assert f"Je factuur {number} van {EURO_35_09} staat klaar. De pdf zit in de bijlage." in text
    assert f"Te betalen: {EURO_35_09}" in text
    assert "Bekijk je facturen: https://billing.acme.example/portal#invoices-heading" in text
    html = html_part(message)
    assert '<html lang="nl">' in html and f"<p>Te betalen: {EURO_35_09}</p>" in html
    [pdf] = list(message.iter_attachments())
    assert (pdf.get_filename(), pdf.get_content_type()) == (f"{number}.pdf", "application/pdf")
    # The attached PDF is the Dutch invoice, as GET /v1/invoices/{id}/pdf serves it.
    attached = pdf_words(pdf.get_content())
    for expected in [f"Factuur {number}", "Omschrijving Aantal Stukprijs", "Broodjes", "Te betalen € 35,09"]:
        assert expected in attached, f"{expected!r} not in {attached}"
    served = await api.client.get(f"/v1/invoices/{invoice['id']}/pdf", headers=api._headers(None))
    assert served.status_code == 200
    assert pdf_words(served.content) == attached

    await settle(api, app)  # nothing new: a sent message is not sent again
    [row] = await messages(db)
    assert (row.status, row.attempts, row.template, row.locale) == ("sent", 1, "invoice_finalized", "nl_NL")
    assert len(mailbox.arrived) == 1

    # The message log says what went to whom, filtered by customer and status.
    listed = await api.get("/v1/email_messages", params={"customer": jansen, "status": "sent"})
    [logged] = listed["data"]
    assert (logged["id"], logged["customer"], logged["recipient"], logged["template"]) == (
        row.id,
        jansen,
        "boekhouding@jansen.example",
        "invoice_finalized",
    )
    assert (logged["status"], logged["attempts"], logged["locale"], logged["subject"]) == (
        "sent",
        1,
        "nl_NL",
        f"Factuur {number} van Acme Cloud",
    )
    assert (await api.get(f"/v1/email_messages/{row.id}")) == logged
    failed = await api.get("/v1/email_messages", params={"customer": jansen, "status": "failed"})
    assert failed["data"] == []
    await api.get("/v1/email_messages/emsg_nope", expect=404)


async def test_billing_members_get_it_too_and_a_suppressed_address_gets_nothing(
    api: Api, app: Litestar, mailbox: Mailbox, db: Database, demo: Any
) -> None:
    tenant = await customer(api, "ap@tiny.example", currency="USD", name="Tiny")
    await api.post(f"/v1/customers/{tenant}/members", {"email": "Owner@Tiny.example", "role": "owner"})
    await api.post(f"/v1/customers/{tenant}/members", {"email": "viewer@tiny.example", "role": "viewer"})
    reported = await api.post("/v1/email_suppressions", {"address": "AP@tiny.example", "reason": "bounce"})
    assert (reported["address"], reported["reason"], reported["customer"]) == (
        "ap@tiny.example",
        "bounce",
        None,
    )

    await api.post("/v1/subscriptions", {"customer": tenant, "price": "basic_monthly"})
    await settle(api, app)
    assert [m.recipients for m in mailbox.arrived] == [["owner@tiny.example"]]
    rows = {(r.recipient, r.status, r.last_error) for r in await messages(db)}
    assert rows == {
        ("ap@tiny.example", "suppressed", "suppressed:bounce"),
        ("owner@tiny.example", "sent", None),
    }
    listed = await api.get("/v1/email_suppressions")
    assert [s["address"] for s in listed["data"]] == ["ap@tiny.example"]
    cleared = await api.delete("/v1/email_suppressions/ap@tiny.example")
    assert cleared["address"] == "ap@tiny.example"
    assert (await api.get("/v1/email_suppressions"))["data"] == []
    await api.delete("/v1/email_suppressions/ap@tiny.example", expect=404)


async def test_a_refusing_smtp_server_is_retried_with_back_off_then_delivered_once(
    api: Api, app: Litestar, mailbox: Mailbox, clock: FrozenClock, db: Database
) -> None:
    mailbox.refuse_first = 2
    await finalised_invoice(api, await customer(api, "ap@slow.example"))

    await settle(api, app)  # attempt 1: 451
    [row] = await messages(db)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "smtp_4xx")
    assert row.next_attempt_at == clock.now() + timedelta(seconds=60)
    await settle(api, app)  # not due yet
    assert mailbox.refused == 1

    clock.advance(timedelta(seconds=60))
    await settle(api, app)  # attempt 2: 451, next after 120 s
    [row] = await messages(db)
    assert (row.attempts, row.next_attempt_at) == (2, clock.now() + timedelta(seconds=120))

    clock.advance(timedelta(seconds=120))
    await settle(api, app)  # attempt 3: accepted
    [row] = await messages(db)
    assert (row.status, row.attempts, row.last_error, row.sent_at) == ("sent", 3, None, clock.now())
    clock.advance(timedelta(hours=1))
    await settle(api, app)
    assert (mailbox.refused, len(mailbox.arrived)) == (2, 1)


async def test_a_crash_between_send_and_record_or_a_re_relay_never_sends_twice(
    api: Api,
    app: Litestar,
    mailbox: Mailbox,
    clock: FrozenClock,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await finalised_invoice(api, await customer(api, "ap@crash.example"))
    real_record = EmailSender.record

    async def crash(*_: Any) -> None:
        raise RuntimeError("the process dies after the SMTP server accepted the message")

    monkeypatch.setattr(EmailSender, "record", crash)
    with pytest.raises(RuntimeError, match="process dies"):
        await settle(api, app)
    assert len(mailbox.arrived) == 1
    monkeypatch.setattr(EmailSender, "record", real_record)

    await settle(api, app)  # still leased: nothing happens
    clock.advance(timedelta(minutes=5))
    await settle(api, app)  # lease over, outcome unknown: not sent again
    [row] = await messages(db)
    assert (row.status, row.last_error) == ("unknown", "outcome_unknown")

    # The relay offers the same event again (a replay): the (event, recipient) row exists, nothing new.
    from gateway.db.outbox import OutboxEvent
    from gateway.notifications.email_service import EmailQueuer, MailConfig

    async with db.unit_of_work() as session:
        event = (await session.scalars(select(OutboxEvent).where(OutboxEvent.event_id == row.event_id))).one()
        await EmailQueuer(clock, MailConfig()).handle(session, event)
    clock.advance(timedelta(hours=1))
    await settle(api, app)
    assert len(await messages(db)) == 1 and len(mailbox.arrived) == 1


async def test_dunning_requests_use_their_template_and_an_unknown_one_is_skipped(
    api: Api, app: Litestar, mailbox: Mailbox, clock: FrozenClock, db: Database
) -> None:
    tenant = await customer(api, "ap@dun.example", name="Dun")
    payload = {
        "customer_id": tenant,
        "subscription_id": None,
        "invoice_id": None,
        "attempt": 4,
        "next_attempt_at": "2026-01-08T00:00:00Z",
        "amount_due": 3509,
        "currency": "EUR",
        "hosted_url": "https://billing.acme.example/pay/inv_1",
    }
    async with db.unit_of_work() as session:
        for template in ("no_such_template", "dunning_final_notice"):
            await record_event(
                session,
                DomainEvent(
                    "dunning.email_requested",
                    "dunning",
                    tenant,
                    clock.now(),
                    {**payload, "template": template},
                    tenant,
                ),
            )
    await settle(api, app)
    [mail] = mailbox.arrived
    assert mail.message["Subject"] == "Final notice: your payment to Acme Cloud is overdue"
    text = text_part(mail.message)
    assert "This is the last reminder: €35.09 is still unpaid." in text
    assert "We will make a final attempt on January 8, 2026; after that your subscription ends." in text
    assert "Update payment method: https://billing.acme.example/pay/inv_1" in text


async def test_preview_in_both_languages_with_the_tenant_branding(api: Api) -> None:
    names = [t["name"] for t in (await api.get("/v1/email_templates"))["data"]]
    assert len(names) == 13 and "invoice_finalized" in names and "portal_login_code" in names
    branding = await api.call(
        "PUT",
        "/v1/email_branding",
        json={
            "name": "Acme Shop",
            "color": "#ff6600",
            "logo_url": "https://acme.example/logo.png",
            "reply_to": "help@acme.example",
        },
    )
    assert (branding["name"], branding["color"], branding["reply_to"]) == (
        "Acme Shop",
        "#ff6600",
        "help@acme.example",
    )
    nl = await api.get("/v1/email_templates/payment_failed/preview", params={"locale": "nl"})
    assert (nl["locale"], nl["subject"]) == ("nl", "Je betaling aan Acme Shop is mislukt")
    assert f"We konden je betaling van {EURO_35_09} niet innen." in nl["text"]
    assert "We proberen het opnieuw op 2 december 2026." in nl["text"]
    assert '<img src="https://acme.example/logo.png" alt="Acme Shop"' in nl["html"]
    assert "border-top:4px solid #ff6600" in nl["html"]
    en = await api.get("/v1/email_templates/payment_failed/preview", params={"locale": "en"})
    assert en["subject"] == "Your payment to Acme Shop failed"
    assert "We could not collect your payment of €35.09." in en["text"]
    assert "We will try again on December 2, 2026." in en["text"]


async def test_bad_input_is_a_4xx_problem_and_sends_nothing(
    api: Api, app: Litestar, mailbox: Mailbox
) -> None:
    unknown = await api.get("/v1/email_templates/nope/preview", expect=404)
    assert unknown["code"] == "email_template_not_found"
    for locale in ("xx", "fr", "nl-ZZZZ", "e" * 20):
        bad = await api.get(
            "/v1/email_templates/payment_failed/preview", params={"locale": locale}, expect=422
        )
        assert bad["code"] == "validation_failed"
    await api.post("/v1/email_suppressions", {"address": "not-an-address"}, expect=422)
    await api.post("/v1/email_suppressions", {"address": "a@b.example", "reason": "spite"}, expect=422)
    await api.call("PUT", "/v1/email_branding", json={"color": "red"}, expect=422)
    await api.call("PUT", "/v1/email_branding", json={"logo_url": "javascript:alert(1)"}, expect=422)
    tenant = await customer(api, "ap@prefs.example")
    essential = await api.call(
        "PUT",
        f"/v1/customers/{tenant}/email_preferences",
        json={"opted_out": ["payment_receipt"]},
        expect=422,
    )
    assert essential["code"] == "validation_failed"
    await api.call("PUT", "/v1/customers/cus_nope/email_preferences", json={"opted_out": []}, expect=404)
    await settle(api, app)
    assert mailbox.arrived == []


async def test_an_opted_out_customer_misses_optional_mails_but_not_invoices(
    api: Api, app: Litestar, mailbox: Mailbox, db: Database, demo: Any
) -> None:
    tenant = await customer(api, "ap@quiet.example", currency="USD", name="Quiet")
    prefs = await api.call(
        "PUT", f"/v1/customers/{tenant}/email_preferences", json={"opted_out": ["subscription_paused"]}
    )
    assert prefs == {"object": "email_preferences", "customer": tenant, "opted_out": ["subscription_paused"]}
    assert (await api.get(f"/v1/customers/{tenant}/email_preferences"))["opted_out"] == [
        "subscription_paused"
    ]
    sub = await api.post("/v1/subscriptions", {"customer": tenant, "price": "basic_monthly"})
    await api.post(f"/v1/subscriptions/{sub['id']}/pause", {})
    await api.post(f"/v1/subscriptions/{sub['id']}/resume", {})
    await settle(api, app)
    subjects = sorted(m.message["Subject"] for m in mailbox.arrived)
    assert subjects[1:] == ["Your subscription has been resumed"]
    assert subjects[0].startswith("Invoice ") and subjects[0].endswith(" from Acme Cloud")
    skipped = [(r.template, r.status, r.last_error) for r in await messages(db) if r.status == "skipped"]
    assert skipped == [("subscription_paused", "skipped", "opted_out")]


async def test_resend_a_sent_invoice_mail_once_more_with_a_new_message_id(
    api: Api, app: Litestar, mailbox: Mailbox, db: Database
) -> None:
    jansen = await customer(api, "boekhouding@jansen.example")
    await finalised_invoice(api, jansen)
    await settle(api, app)
    [first] = mailbox.arrived
    [row] = await messages(db)
    # Another tenant's key cannot see it, so cannot resend it either.
    other = await customer(api, "x@other.example", name="Other")
    other_key = await api.post(
        "/v1/api_keys", {"name": "other", "customer": other, "scopes": ["email:write"]}
    )
    await api.as_key(other_key["secret"]).post(f"/v1/email_messages/{row.id}/resend", expect=404)

    copy = await api.post(f"/v1/email_messages/{row.id}/resend")
    assert copy["id"] != row.id
    assert (copy["status"], copy["recipient"], copy["template"], copy["subject"]) == (
        "pending",
        "boekhouding@jansen.example",
        "invoice_finalized",
        row.subject,
    )
    await settle(api, app)
    assert len(mailbox.arrived) == 2
    second = mailbox.arrived[1].message
    assert second["Message-ID"] == f"<{copy['id']}@tiergate.mail>" != first.message["Message-ID"]
    assert second["Subject"] == first.message["Subject"]
    assert text_part(second) == text_part(first.message)
    assert [a.get_filename() for a in second.iter_attachments()] == [
        a.get_filename() for a in first.message.iter_attachments()
    ]
    assert (await api.get(f"/v1/email_messages/{copy['id']}"))["status"] == "sent"
    await settle(api, app)
    assert len(mailbox.arrived) == 2  # the copy, like the original, goes once

    # A suppressed address gets nothing: the resend is refused and queues nothing.
    await api.post("/v1/email_suppressions", {"address": "boekhouding@jansen.example", "reason": "bounce"})
    refused = await api.post(f"/v1/email_messages/{row.id}/resend", expect=409)
    assert refused["code"] == "email_suppressed"
    assert len(await messages(db)) == 2
    await api.post("/v1/email_messages/em_nope/resend", expect=404)
