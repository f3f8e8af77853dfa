"""The issue's proof stories over a real SMTP server (aiosmtpd): what the customer receives during dunning,
and when access goes — at the exact instant the retries run out, not before."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar

from gateway.config import Settings
from tests.dunning.helpers import START, Subscriber, subscriber
from tests.entitlements.test_check_api import check, synced
from tests.notifications.smtp import Mailbox, SmtpServer, mailing_to, text_part
from tests.payments.conftest import PayKit

RENEWAL = START.replace(month=2)
FAILED = "Your payment to Acme Cloud failed"
RECEIPT = "Receipt for your payment to Acme Cloud"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, SmtpServer]]:
    mailbox = Mailbox()
    with SmtpServer(mailbox) as server:
        yield mailbox, server


@pytest.fixture
def settings(settings: Settings, smtp: tuple[Mailbox, SmtpServer]) -> Settings:
    return mailing_to(settings, smtp[1])


def subjects(mailbox: Mailbox) -> list[str]:
    return [str(a.message["Subject"]) for a in mailbox.arrived]


async def allowed(who: Subscriber) -> tuple[bool, str]:
    await synced(who.kit.api)
    answer = await check(who.kit.api, who.customer, feature="reporting_basic")
    return answer["allowed"], answer["reason"]


async def test_a_soft_decline_recovered_on_the_third_try_mails_twice_then_a_receipt_and_keeps_access(
    kit: PayKit, demo: Any, smtp: tuple[Mailbox, SmtpServer]
) -> None:
    mailbox, _ = smtp
    who = await subscriber(kit, "Softy", email="ap@softy.example")
    mailbox.arrived.clear()  # the first invoice and its receipt
    who.card("card_insufficient_funds")
    await who.advance(RENEWAL)  # try 1 fails
    assert await allowed(who) == (True, "allowed")
    await who.advance(RENEWAL + timedelta(days=1))  # try 2 fails
    assert await allowed(who) == (True, "allowed")
    who.card("card_ok")
    await who.advance(RENEWAL + timedelta(days=3))  # try 3 succeeds
    assert await allowed(who) == (True, "allowed")
    invoice = await who.renewal_invoice()
    assert sorted(p["status"] for p in await who.payments(invoice["id"])) == ["failed", "failed", "succeeded"]
    mails = [s for s in subjects(mailbox) if not s.startswith("Invoice ")]
    assert mails == [FAILED, FAILED, RECEIPT]
    assert all(a.recipients == ["ap@softy.example"] for a in mailbox.arrived)
    first = text_part(next(a.message for a in mailbox.arrived if a.message["Subject"] == FAILED))
    assert "We could not collect your payment of $9.00." in first
    assert await who.status() == "active"


async def test_exhausted_retries_take_the_final_action_at_the_scheduled_instant_and_not_before(
    kit: PayKit, demo: Any, smtp: tuple[Mailbox, SmtpServer]
) -> None:
    mailbox, _ = smtp
    await kit.api.post(
        "/v1/dunning_campaigns",
        {
            "name": "Keep, then unpaid",
            "final_action": "unpaid",
            "retry_offsets_hours": [24, 48],
            "is_default": True,
        },
    )
    who = await subscriber(kit, "Late", email="ap@late.example")
    mailbox.arrived.clear()
    who.card("card_insufficient_funds")
    await who.advance(RENEWAL)
    await who.advance(RENEWAL + timedelta(hours=48) - timedelta(seconds=1))
    assert await who.status() == "past_due"
    assert await allowed(who) == (True, "allowed")  # access kept until the last retry fails
    await who.advance(RENEWAL + timedelta(hours=48))
    assert await who.status() == "unpaid"
    assert await allowed(who) == (False, "subscription_unpaid")
    mails = [s for s in subjects(mailbox) if not s.startswith("Invoice ")]
    assert mails == [FAILED, "Final notice: your payment to Acme Cloud is overdue"]


async def test_cancel_during_dunning_sends_no_more_attempts_or_mails(
    kit: PayKit, demo: Any, smtp: tuple[Mailbox, SmtpServer]
) -> None:
    mailbox, _ = smtp
    who = await subscriber(kit, "Quitter", email="ap@quitter.example")
    who.card("card_insufficient_funds")
    await who.advance(RENEWAL)
    invoice = await who.renewal_invoice()
    await kit.api.post(f"/v1/subscriptions/{who.subscription['id']}/cancel", {"at_period_end": False})
    await who.settle()
    mailbox.arrived.clear()
    await who.advance(RENEWAL + timedelta(days=15))
    assert len(await who.payments(invoice["id"])) == 1
    assert [s for s in subjects(mailbox) if s == FAILED] == []


async def test_a_hard_decline_then_a_new_card_pays_at_once_and_access_returns(
    kit: PayKit, demo: Any, app: Litestar
) -> None:
    await kit.api.post(
        "/v1/dunning_campaigns",
        {"name": "Strict", "final_action": "cancel", "access": "revoke", "is_default": True},
    )
    who = await subscriber(kit, "Stolen again", email="ap@stolen.example")
    who.card("card_stolen")
    await who.advance(RENEWAL)
    assert await allowed(who) == (False, "payment_past_due")
    await kit.method(who.customer, "card_ok")
    await who.settle()
    invoice = await who.renewal_invoice()
    assert (await kit.api.get(f"/v1/invoices/{invoice['id']}"))["status"] == "paid"
    assert await allowed(who) == (True, "allowed")
