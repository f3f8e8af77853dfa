"""The card-expiring mail, end to end: a card the account updater cannot renew is saved on the sandbox's
hosted page by a customer on a test clock; moving the clock to 30 days before the card expires makes the
sandbox announce it (`payment_method.expiring`), and the customer gets one mail over a real SMTP server,
in their language, with the link to update the method. Not a second early, and never twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from tests.notifications.smtp import Mailbox, SmtpServer, mailing_to, text_part
from tests.payments.test_sandbox_stories import World, eventually, world_on

SAVED = datetime(2027, 1, 10, tzinfo=UTC)
# The sandbox's "card_expiring" saved in January is valid through 04/2027: it expires on May 1st and
# is announced 30 days before.
NOTICE = datetime(2027, 4, 1, tzinfo=UTC)
# The relay runs every 0.2 s here (world_on) and mails within a pass or two: after this long without a
# mail, none is coming.
QUIET = 2.0


async def advance(world: World, clock: str, to: datetime) -> None:
    await world.api.post(f"/v1/test_clocks/{clock}/advance", {"frozen_time": to.isoformat()})


async def test_a_card_that_cannot_be_renewed_is_announced_once_thirty_days_ahead(
    db: Database, clock: FrozenClock, settings: Settings
) -> None:
    mailbox = Mailbox()
    with SmtpServer(mailbox) as smtp:
        async with world_on(db, clock, mailing_to(settings, smtp)) as world:
            test_clock = (await world.api.post("/v1/test_clocks", {"frozen_time": SAVED.isoformat()}))["id"]
            customers: dict[str, Any] = {}
            for name, email, locale in [
                ("Ada", "ada@ada.example", "en"),
                ("Bram", "bram@bram.example", "nl"),
            ]:
                customers[name] = await world.api.post(
                    "/v1/customers",
                    {
                        "name": name,
                        "email": email,
                        "currency": "EUR",
                        "country": "NL",
                        "preferred_locale": locale,
                        "test_clock": test_clock,
                    },
                )
                method = await world.method(customers[name]["id"], "card_expiring")
                assert (method["last4"], method["exp_month"], method["exp_year"]) == ("4449", 4, 2027)

            await advance(world, test_clock, NOTICE - timedelta(seconds=1))
            await asyncio.sleep(QUIET)  # ample for the webhook, the relay and the mailer to act
            assert mailbox.arrived == []  # not a second early

            await advance(world, test_clock, NOTICE)

            async def arrived() -> list[Any]:
                return list(mailbox.arrived)

            mails = await eventually(arrived, lambda rows: len(rows) == 2)
            # The card expires on May 1st: the clock passing it sends nothing more.
            await advance(world, test_clock, NOTICE + timedelta(days=40))
            await asyncio.sleep(QUIET)

    assert len(mailbox.arrived) == 2
    by_recipient = {tuple(m.recipients): m.message for m in mails}
    english = by_recipient[("ada@ada.example",)]
    assert english["Subject"] == "Your card is about to expire"
    text = text_part(english)
    assert "Your card ending in 4449 expires at the end of 4/2027." in text
    assert "Update payment method: https://billing.acme.example/portal#methods-heading" in text
    dutch = by_recipient[("bram@bram.example",)]
    assert dutch["Subject"] == "Je kaart verloopt binnenkort"
    assert "Je kaart eindigend op 4449 verloopt eind 4/2027." in text_part(dutch)
