"""Portal sign-in by an e-mailed one-time code (as Stripe's customer portal login link, with a code): a
customer without a portal session or SSO types the billing e-mail address, gets a 6-digit code by mail
and types it back.

- A code is asked for an address; if wall-clock customers (not test-clock ones) have it as their billing
  e-mail (case-insensitive), a random code (`secrets`) is made, kept only as an HMAC keyed by a secret
  derived from the server's key and bound to its row id, and mailed through the outbox (event
  `portal_login.code_requested`, the code sealed by the secret box inside it, see
  gateway/notifications/email_service.py). Whether the address is known never shows: the caller answers
  the same page either way.
- A code lives 10 minutes, takes at most 5 wrong tries (then it is dead, even for the right code), opens
  one portal session, and a newer request for the address ends it. At most 5 codes per address per hour.
- An address shared by several customers: the right code buys a one-time choice token (stored hashed,
  10 minutes) that names which customers may be chosen; the form's customer id is checked against it.

Wrong codes are answers, not exceptions: the request's transaction must commit to count the try.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.customers.models import Customer
from gateway.db.outbox import record_change
from gateway.kernel.clock import Clock
from gateway.kernel.ids import new_id
from gateway.notifications.email_service import LOGIN_CODE_EVENT, login_code_context
from gateway.portal.login_models import PortalLoginCode
from gateway.security.secretbox import SecretBox

CODE_TTL = timedelta(minutes=10)
MAX_TRIES = 5
REQUESTS_PER_HOUR = 5
CHOICE_TTL = timedelta(minutes=10)
CHOICE_PREFIX = "tgplc_"
EMAIL_MAX_LENGTH = 320  # RFC 5321's limit, and the customers' column
# Enough to refuse what cannot be an address (no @, spaces, no dot in the domain); deliverability is the
# mail's business.
EMAIL_SHAPE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
CODE_SHAPE = re.compile(r"[0-9]{6}")


class EmailRefused(ValueError):
    """The address field cannot be used; `code` says why (`email_missing`, `email_too_long`,
    `email_invalid`), the page words it beside the field."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def normalize_email(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise EmailRefused("email_missing")
    if len(value) > EMAIL_MAX_LENGTH:
        raise EmailRefused("email_too_long")
    if not EMAIL_SHAPE.fullmatch(value):
        raise EmailRefused("email_invalid")
    return value.lower()


def safe_next(value: str | None) -> str:
    """Where to land after signing in: a local portal path (`/portal`, `/portal/...`, `/portal?...`),
    anything else (another site, `//host`, a backslash trick, control characters) is `/portal`."""
    if not value or len(value) > 500:
        return "/portal"
    if any(ch in value for ch in "\\\r\n\t") or not value.isprintable():
        return "/portal"
    portal = value == "/portal" or value.startswith(("/portal/", "/portal?", "/portal#"))
    # Back to the sign-in page would be a loop.
    return value if portal and not value.startswith("/portal/login") else "/portal"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Verified:
    """The right code: the customers the address belongs to, and when there are several, the token that
    lets the choice page open one of them."""

    login_id: str
    customers: list[Customer]
    choice_token: str | None


class PortalLoginService:
    def __init__(self, session: AsyncSession, clock: Clock, box: SecretBox) -> None:
        self.session = session
        self.clock = clock
        self.box = box
        self._key = box.derive("portal_login_code").encode()

    def _hash(self, login_id: str, code: str) -> str:
        # Keyed and bound to the row: a million guesses against a copied table find nothing without the key.
        return hmac.new(self._key, f"{login_id}:{code}".encode(), hashlib.sha256).hexdigest()

    async def customers_of(self, email: str, *, lock: bool = False) -> list[Customer]:
        """Wall-clock customers whose billing e-mail is `email` (already normalized), oldest first."""
        query = (
            select(Customer)
            .where(func.lower(func.trim(Customer.email)) == email, Customer.test_clock_id.is_(None))
            .order_by(Customer.created_at, Customer.id)
        )
        rows = await self.session.scalars(query.with_for_update() if lock else query)
        return list(rows.all())

    async def request_code(self, email: str) -> bool:
        """Make and mail a code for `email` when it is a customer's billing address and the hour's
        allowance is not used up; True when a mail was queued (the page must not tell)."""
        # Locked: concurrent requests for one address take turns, so the hour's count cannot be read by
        # two at once and exceeded (PostgreSQL; SQLite has one writer anyway).
        customers = await self.customers_of(email, lock=True)
        if not customers:
            return False
        now = self.clock.now()
        recent = await self.session.scalar(
            select(func.count())
            .select_from(PortalLoginCode)
            .where(PortalLoginCode.email == email, PortalLoginCode.created_at > now - timedelta(hours=1))
        )
        if (recent or 0) >= REQUESTS_PER_HOUR:
            return False
        # The newest code is the only one that works: earlier live ones end now.
        await self.session.execute(
            update(PortalLoginCode)
            .where(
                PortalLoginCode.email == email,
                PortalLoginCode.used_at.is_(None),
                PortalLoginCode.expires_at > now,
            )
            .values(expires_at=now)
        )
        code = f"{secrets.randbelow(1_000_000):06d}"
        row = PortalLoginCode(
            id=new_id("plc"),
            email=email,
            code_hash="",
            created_at=now,
            expires_at=now + CODE_TTL,
            tries=0,
            used_at=None,
            choice_hash=None,
        )
        row.code_hash = self._hash(row.id, code)
        self.session.add(row)
        await self.session.flush()
        # The mail speaks the language of the first customer with this address.
        await record_change(
            self.session,
            LOGIN_CODE_EVENT,
            "portal_login_code",
            row.id,
            now,
            tenant_id=customers[0].id,
            email=email,
            code=self.box.seal(code, context=login_code_context(row.id)),
            expires_at=row.expires_at.isoformat(),
            minutes=int(CODE_TTL.total_seconds() // 60),
        )
        return True

    async def verify(self, email: str, code: str) -> Verified | None:
        """The address's live code checked against `code`: None when there is none or it is wrong (a
        wrong one counts a try), else the code is used up and the customers are answered."""
        now = self.clock.now()
        row = await self.session.scalar(
            select(PortalLoginCode)
            .where(
                PortalLoginCode.email == email,
                PortalLoginCode.used_at.is_(None),
                PortalLoginCode.expires_at > now,
                PortalLoginCode.tries < MAX_TRIES,
            )
            .order_by(PortalLoginCode.created_at.desc(), PortalLoginCode.id.desc())
            .limit(1)
            .with_for_update()
        )
        if row is None:
            return None
        if not CODE_SHAPE.fullmatch(code) or not hmac.compare_digest(row.code_hash, self._hash(row.id, code)):
            row.tries += 1
            await self.session.flush()
            return None
        row.used_at = now
        customers = await self.customers_of(email)
        if not customers:  # the address was changed since the code was sent
            await self.session.flush()
            return None
        choice = None
        if len(customers) > 1:
            choice = CHOICE_PREFIX + secrets.token_urlsafe(32)
            row.choice_hash = _digest(choice)
        await self.session.flush()
        return Verified(row.id, customers, choice)

    async def choose(self, choice_token: str, customer_id: str) -> tuple[str, Customer] | None:
        """The customer picked on the choice page, if the token is live and the customer is one of the
        verified address's; the token is then spent (one session per code)."""
        now = self.clock.now()
        row = await self.session.scalar(
            select(PortalLoginCode)
            .where(PortalLoginCode.choice_hash == _digest(choice_token))
            .with_for_update()
        )
        if row is None or row.used_at is None or row.used_at + CHOICE_TTL <= now:
            return None
        chosen = next((c for c in await self.customers_of(row.email) if c.id == customer_id), None)
        if chosen is None:
            return None
        row.choice_hash = None
        await self.session.flush()
        return row.id, chosen
