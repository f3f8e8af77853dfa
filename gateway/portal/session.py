"""Portal sessions, as Stripe's billing portal sessions: the app asks for a link for one customer
(`POST /v1/portal_sessions`), sends the customer's browser to it, and the link becomes a browser session.

- The link token (`tgportal_…`) is random, stored only as its SHA-256, opens once, within 5 minutes.
- Opening it starts a server-side session (cookie `tg_portal`, token `tgps_…`, also stored hashed)
  that lasts an hour; every portal page looks the customer up through it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.customers import CustomerService
from gateway.customers.repository import CustomerRepository
from gateway.db.outbox import record_change
from gateway.kernel.clock import Clock
from gateway.kernel.errors import DomainError
from gateway.kernel.ids import new_id
from gateway.portal.session_models import PortalSession

LINK_PREFIX = "tgportal_"
SESSION_PREFIX = "tgps_"
LINK_TTL = timedelta(minutes=5)
SESSION_TTL = timedelta(hours=1)
COOKIE = "tg_portal"


class PortalLinkInvalid(DomainError):
    code = "portal_link_invalid"
    status = 401
    title = "Portal link unknown, already used or expired"


class PortalUnauthenticated(DomainError):
    code = "portal_session_invalid"
    status = 401
    title = "Portal session missing or expired"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedLink:
    row: PortalSession
    token: str  # shown once, inside the URL


@dataclass(frozen=True, slots=True)
class Opened:
    row: PortalSession
    token: str  # the session cookie's value


class PortalSessionService:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    async def issue(
        self, customer_id: str, *, scope: str | None, return_url: str | None, locale: str | None
    ) -> IssuedLink:
        customer = await CustomerService(CustomerRepository(self.session), self.clock).get(
            customer_id, scope=scope
        )
        token = LINK_PREFIX + secrets.token_urlsafe(32)
        now = self.clock.now()
        row = PortalSession(
            id=new_id("bps"),
            tenant_id=customer.id,
            link_hash=digest(token),
            session_hash=None,
            return_url=return_url,
            locale=locale,
            created_at=now,
            link_expires_at=now + LINK_TTL,
            opened_at=None,
            expires_at=None,
        )
        self.session.add(row)
        await self.session.flush()
        await record_change(
            self.session, "portal_session.created", "portal_session", row.id, now, tenant_id=customer.id
        )
        return IssuedLink(row, token)

    async def open(self, link_token: str) -> Opened:
        """Exchange the link for a browser session: once, before the link expires."""
        now = self.clock.now()
        row = await self.session.scalar(
            select(PortalSession).where(PortalSession.link_hash == digest(link_token)).with_for_update()
        )
        if row is None or row.opened_at is not None or row.link_expires_at <= now:
            raise PortalLinkInvalid("this portal link is unknown, already used or expired")
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        row.opened_at = now
        row.session_hash = digest(token)
        row.expires_at = now + SESSION_TTL
        await self.session.flush()
        await record_change(
            self.session, "portal_session.opened", "portal_session", row.id, now, tenant_id=row.tenant_id
        )
        return Opened(row, token)

    async def open_for_member(self, customer_id: str, *, user_id: str, locale: str | None) -> Opened:
        """A portal session for a member who signed in with SSO and may manage billing (the caller asked
        the decision engine): as a link issued and opened at once, with no link to leak."""
        issued = await self.issue(customer_id, scope=customer_id, return_url=None, locale=locale)
        opened = await self.open(issued.token)
        await record_change(
            self.session,
            "portal_session.opened_by_sso",
            "portal_session",
            opened.row.id,
            self.clock.now(),
            tenant_id=customer_id,
            user_id=user_id,
        )
        return opened

    async def open_by_email_code(self, customer_id: str, *, login_id: str, locale: str | None) -> Opened:
        """A portal session for whoever typed the right e-mailed code for the customer's billing address
        (gateway/portal/login.py checked it): as a link issued and opened at once, with no link to leak."""
        issued = await self.issue(customer_id, scope=customer_id, return_url=None, locale=locale)
        opened = await self.open(issued.token)
        await record_change(
            self.session,
            "portal_session.opened_by_email_code",
            "portal_session",
            opened.row.id,
            self.clock.now(),
            tenant_id=customer_id,
            login_code=login_id,
        )
        return opened

    async def authenticate(self, token: str) -> PortalSession:
        """The session a `tg_portal` cookie names, while it lasts."""
        now = self.clock.now()
        row = await self.session.scalar(
            select(PortalSession).where(PortalSession.session_hash == digest(token))
        )
        if row is None or row.expires_at is None or row.expires_at <= now:
            raise PortalUnauthenticated(
                "your portal session is missing or has expired; open the portal from the app again"
            )
        return row
