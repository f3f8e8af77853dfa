"""Member invitations: a signed-up admin invites an e-mail address to a tenant with a role; the
invitee's app calls accept with the link token and becomes a member, if a seat is free.

The link token is `<invite id>.<verifier>`: 256 random bits, stored only as SHA-256 (like API keys),
so the token cannot be forged or altered (any change misses the stored hash), expires (`expires_at`,
TTL setting), is single use (`accepted_at`) and can be looked up without a shared signing secret
across replicas. Everything about the tenant (does it exist in the caller's scope, seats, which roles
its tier hands out, adding the member) comes through `MemberDirectory`, which the composition root
provides: customers sit above identity in the import layers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base
from gateway.db.outbox import record_event
from gateway.kernel.clock import Clock, format_timestamp
from gateway.kernel.errors import Conflict, ValidationFailed
from gateway.kernel.events import DomainEvent
from gateway.kernel.ids import new_id
from gateway.kernel.pagination import Page


class Invite(Base):
    __tablename__ = "invites"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(60))
    verifier_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    accepted_user_id: Mapped[str | None] = mapped_column(String(40))
    membership_id: Mapped[str | None] = mapped_column(String(40))


class InvalidInvite(ValidationFailed):
    """Unknown, altered or malformed token. Deliberately one answer for all three."""

    code = "invite_invalid"
    title = "Invitation is not valid"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="token")


class InviteExpired(Conflict):
    code = "invite_expired"
    title = "Invitation has expired"


class InviteUsed(Conflict):
    code = "invite_already_accepted"


class SeatLimitReached(Conflict):
    code = "seat_limit_reached"


class RoleNotAllowed(ValidationFailed):
    code = "role_not_allowed"


@dataclass(frozen=True, slots=True)
class Seats:
    used: int
    limit: int | None  # None: unlimited (no seats quota in the plan)


class MemberDirectory(Protocol):
    """What invites need from customers and the tier (provided by the composition root)."""

    async def default_role(self, tenant_id: str, *, scope: str | None) -> str:
        """The tenant's default role; raises NotFound (404) outside `scope` or when missing."""
        ...

    async def role_allowed(self, tenant_id: str, role: str) -> bool: ...

    async def seats(self, tenant_id: str) -> Seats: ...

    async def take_seat(self, tenant_id: str) -> Seats:
        """The one seat check: serialises on the tenant until the transaction ends, then raises
        `SeatLimitReached` when no seat is free."""
        ...

    async def is_member(self, tenant_id: str, email: str) -> bool: ...

    async def access_revoked(self, tenant_id: str) -> bool: ...

    async def add_member(self, tenant_id: str, *, email: str, name: str | None, role: str) -> tuple[str, str]:
        """Adds (or re-activates) the membership; returns (membership id, user id)."""
        ...


def _hash(verifier: str) -> str:
    return hashlib.sha256(verifier.encode()).hexdigest()


class InviteService:
    def __init__(
        self, session: AsyncSession, clock: Clock, directory: MemberDirectory, ttl: timedelta
    ) -> None:
        self.session = session
        self.clock = clock
        self.directory = directory
        self.ttl = ttl

    async def create(
        self, tenant_id: str, *, email: str, role: str | None, actor: str, scope: str | None
    ) -> tuple[Invite, str]:
        default_role = await self.directory.default_role(tenant_id, scope=scope)
        email = email.strip().lower()
        role = role or default_role
        if not await self.directory.role_allowed(tenant_id, role):
            raise RoleNotAllowed(f"the tenant's tier does not hand out the role {role!r}", field="role")
        if await self.directory.is_member(tenant_id, email):
            raise Conflict(f"{email} is already a member", code="already_member")
        now = self.clock.now()
        verifier = secrets.token_urlsafe(32)
        invite = Invite(
            id=new_id("inv"),
            tenant_id=tenant_id,
            email=email,
            role=role,
            verifier_hash=_hash(verifier),
            created_by=actor,
            created_at=now,
            expires_at=now + self.ttl,
        )
        self.session.add(invite)
        await self.session.flush()
        await record_event(
            self.session,
            DomainEvent(
                "invite.created",
                "invite",
                invite.id,
                now,
                data={
                    "email": email,
                    "role": role,
                    "expires_at": format_timestamp(invite.expires_at),
                    "actor": actor,
                },
                tenant_id=tenant_id,
            ),
        )
        return invite, f"{invite.id}.{verifier}"

    async def _by_token(self, token: str) -> Invite:
        invite_id, dot, verifier = token.partition(".")
        if not dot or not invite_id.startswith("inv_") or not verifier or len(token) > 200:
            raise InvalidInvite("the invitation token is malformed")
        invite = await self.session.get(Invite, invite_id)
        if invite is None or not hmac.compare_digest(invite.verifier_hash, _hash(verifier)):
            raise InvalidInvite("the invitation token is not valid")
        return invite

    async def accept(self, token: str, *, name: str | None, scope: str | None) -> Invite:
        invite = await self._by_token(token)
        if scope is not None and invite.tenant_id != scope:
            raise InvalidInvite("the invitation token is not valid")
        if invite.accepted_at is not None:
            raise InviteUsed("the invitation was already accepted")
        now = self.clock.now()
        if now >= invite.expires_at:
            raise InviteExpired(f"the invitation expired at {format_timestamp(invite.expires_at)}")
        if await self.directory.access_revoked(invite.tenant_id):
            raise Conflict("the organisation's access is revoked", code="access_revoked")
        if not await self.directory.role_allowed(invite.tenant_id, invite.role):
            raise Conflict(f"the tier no longer hands out the role {invite.role!r}", code="role_not_allowed")
        await self.directory.take_seat(invite.tenant_id)
        membership_id, user_id = await self.directory.add_member(
            invite.tenant_id, email=invite.email, name=name, role=invite.role
        )
        invite.accepted_at, invite.accepted_user_id, invite.membership_id = now, user_id, membership_id
        await self.session.flush()
        await record_event(
            self.session,
            DomainEvent(
                "invite.accepted",
                "invite",
                invite.id,
                now,
                data={
                    "user": user_id,
                    "membership": membership_id,
                    "role": invite.role,
                    "actor": f"user:{user_id}",
                },
                tenant_id=invite.tenant_id,
            ),
        )
        return invite

    async def list(self, tenant_id: str, *, scope: str | None, after: str | None, limit: int) -> Page[Invite]:
        await self.directory.default_role(tenant_id, scope=scope)
        query = select(Invite).where(Invite.tenant_id == tenant_id).order_by(Invite.id).limit(limit + 1)
        if after is not None:
            query = query.where(Invite.id > after)
        return Page.from_overfetch((await self.session.scalars(query)).all(), limit)


__all__ = [
    "InvalidInvite",
    "Invite",
    "InviteExpired",
    "InviteService",
    "InviteUsed",
    "MemberDirectory",
    "RoleNotAllowed",
    "SeatLimitReached",
    "Seats",
]
