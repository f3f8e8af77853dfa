"""The e-mailed sign-in code's rules below the pages: where `next` may lead, the hour's throttle under
concurrent requests (on PostgreSQL the requests take turns on the address's customers), and a code that
ran out before the relay reached it mails nothing."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from gateway.customers.models import Customer
from gateway.db.outbox import OutboxEvent
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.notifications.email_models import EmailMessage
from gateway.notifications.email_service import EmailQueuer, MailConfig
from gateway.portal.login import REQUESTS_PER_HOUR, PortalLoginService, safe_next
from gateway.portal.login_models import PortalLoginCode
from gateway.security.secretbox import SecretBox

BOX = SecretBox(keys=(("k1", os.urandom(32)),))
ADDRESS = "boekhouding@jansen.example"


@pytest.mark.parametrize(
    ("asked", "landed"),
    [
        (None, "/portal"),
        ("", "/portal"),
        ("/portal", "/portal"),
        ("/portal#methods-heading", "/portal#methods-heading"),
        ("/portal/billing_details", "/portal/billing_details"),
        ("/portal?done=paid", "/portal?done=paid"),
        ("https://evil.example/", "/portal"),
        ("//evil.example/portal", "/portal"),
        ("/\\evil.example", "/portal"),
        ("/portal/\\\\evil.example", "/portal"),
        ("/portalevil", "/portal"),
        ("/admin", "/portal"),
        ("/portal/login?next=https://evil.example/", "/portal"),
        ("/portal/x\r\nSet-Cookie: a=b", "/portal"),
        ("/portal/" + "a" * 500, "/portal"),
    ],
)
def test_next_is_a_local_portal_path_or_the_portal(asked: str | None, landed: str) -> None:
    assert safe_next(asked) == landed


async def _jansen(db: Database, clock: FrozenClock) -> None:
    async with db.unit_of_work() as session:
        now = clock.now()
        session.add(
            Customer(
                id="cus_jansen",
                name="Jansen",
                email="Boekhouding@Jansen.example",
                created_at=now,
                updated_at=now,
            )
        )


async def test_ten_requests_at_once_make_five_codes(db: Database, clock: FrozenClock) -> None:
    await _jansen(db, clock)

    async def ask() -> bool:
        async with db.unit_of_work() as session:
            return await PortalLoginService(session, clock, BOX).request_code(ADDRESS)

    made = await asyncio.gather(*(ask() for _ in range(10)))
    assert sorted(made) == [False] * 5 + [True] * 5
    async with db.unit_of_work() as session:
        codes = (await session.scalars(select(PortalLoginCode))).all()
        events = await session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.type == "portal_login.code_requested")
        )
    assert (len(codes), events) == (REQUESTS_PER_HOUR, REQUESTS_PER_HOUR)
    # One code works: the newest; the others were ended by the ones after them.
    assert sum(1 for c in codes if c.expires_at > clock.now()) == 1


async def test_a_code_that_expired_before_the_relay_got_to_it_is_not_mailed(
    db: Database, clock: FrozenClock
) -> None:
    await _jansen(db, clock)
    async with db.unit_of_work() as session:
        assert await PortalLoginService(session, clock, BOX).request_code(ADDRESS)
    clock.advance(timedelta(minutes=10))
    async with db.unit_of_work() as session:
        event = await session.scalar(
            select(OutboxEvent).where(OutboxEvent.type == "portal_login.code_requested")
        )
        assert event is not None
        await EmailQueuer(clock, MailConfig(), BOX).handle(session, event)
        assert (await session.scalars(select(EmailMessage))).all() == []
    # A minute earlier it would have been queued, once, to the address asked for only.
    clock.advance(timedelta(minutes=-1))
    async with db.unit_of_work() as session:
        event = await session.scalar(
            select(OutboxEvent).where(OutboxEvent.type == "portal_login.code_requested")
        )
        assert event is not None
        queuer = EmailQueuer(clock, MailConfig(), BOX)
        await queuer.handle(session, event)
        await queuer.handle(session, event)
        [queued] = (await session.scalars(select(EmailMessage))).all()
    assert (queued.recipient, queued.template, queued.status) == (ADDRESS, "portal_login_code", "pending")


async def test_the_right_code_twice_at_once_opens_once_and_wrong_tries_stop_at_five(
    db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _jansen(db, clock)
    monkeypatch.setattr("gateway.portal.login.secrets.randbelow", lambda _n: 42)
    async with db.unit_of_work() as session:
        assert await PortalLoginService(session, clock, BOX).request_code(ADDRESS)

    async def verify(code: str) -> bool:
        async with db.unit_of_work() as session:
            return await PortalLoginService(session, clock, BOX).verify(ADDRESS, code) is not None

    assert sorted(await asyncio.gather(verify("000042"), verify("000042"))) == [False, True]

    async with db.unit_of_work() as session:
        assert await PortalLoginService(session, clock, BOX).request_code(ADDRESS)
    assert await asyncio.gather(*(verify("999999") for _ in range(8))) == [False] * 8
    assert await verify("000042") is False  # dead after five wrong tries
    async with db.unit_of_work() as session:
        newest = await session.scalar(
            select(PortalLoginCode).order_by(PortalLoginCode.created_at.desc(), PortalLoginCode.id.desc())
        )
    assert newest is not None and (newest.tries, newest.used_at) == (5, None)
