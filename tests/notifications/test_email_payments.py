"""A declined card through the sandbox provider: the customer gets the invoice, then a "payment failed"
mail with the link to update the payment method, over a real SMTP server."""

from __future__ import annotations

from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from tests.notifications.smtp import Mailbox, SmtpServer, mailing_to, text_part
from tests.payments.test_sandbox_stories import eventually, world_on


async def test_a_declined_card_mails_payment_failed_with_the_update_link(
    db: Database, clock: FrozenClock, settings: Settings
) -> None:
    mailbox = Mailbox()
    with SmtpServer(mailbox) as smtp:
        async with world_on(db, clock, mailing_to(settings, smtp)) as world:
            short = await world.api.post(
                "/v1/customers",
                {"name": "Short", "email": "ap@short.example", "currency": "EUR", "country": "NL"},
            )
            await world.method(short["id"], "card_insufficient_funds")
            invoice = await world.invoice(short["id"], 1_250)
            await eventually(
                lambda: world.payments(invoice["id"]), lambda rows: [r["status"] for r in rows] == ["failed"]
            )

            async def subjects() -> list[str]:
                return sorted(str(a.message["Subject"]) for a in mailbox.arrived)

            arrived = await eventually(subjects, lambda s: len(s) == 2)
    assert arrived == [f"Invoice {invoice['number']} from Acme Cloud", "Your payment to Acme Cloud failed"]
    [failed] = [a for a in mailbox.arrived if a.message["Subject"] == "Your payment to Acme Cloud failed"]
    assert failed.recipients == ["ap@short.example"]
    text = text_part(failed.message)
    assert "We could not collect your payment of €12.50." in text
    assert "Update payment method: https://billing.acme.example/portal#methods-heading" in text
