"""Staff identity: members with a role, one-time login links, server-side sessions, and the staff gate
that admits a staff session to an operation when the staff policy (Casbin, policies/staff_model.conf)
grants the member's role the operation's scope.

Secrets: a login link token (`tglink_…`, 15 minutes, single use) and a session token (`tgstaff_…`,
`staff_session_ttl_seconds`) are random; only their SHA-256 is stored. Every change a staff member
makes is recorded with the actor `staff:<id>` (the audit log names them).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

import casbin
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.models import StaffLoginLink, StaffMember, StaffSession
from gateway.db.outbox import record_change
from gateway.db.session import Database
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed
from gateway.kernel.ids import new_id

ROLES = ("owner", "admin", "support", "finance", "read_only")
LINK_PREFIX = "tglink_"
SESSION_PREFIX = "tgstaff_"
LINK_TTL = timedelta(minutes=15)
POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"


class StaffUnauthenticated(DomainError):
    code = "staff_session_invalid"
    status = 401
    title = "Staff session missing, expired or revoked"


class LoginLinkInvalid(DomainError):
    code = "login_link_invalid"
    status = 401
    title = "Login link unknown, used or expired"


class NotStaff(Forbidden):
    code = "not_staff"
    title = "Not a staff member"


class StaffForbidden(Forbidden):
    code = "staff_role_forbidden"


class StaffNotFound(NotFound):
    code = "staff_member_not_found"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@lru_cache(maxsize=1)
def staff_enforcer() -> casbin.Enforcer:
    return casbin.Enforcer(str(POLICY_DIR / "staff_model.conf"), str(POLICY_DIR / "staff_policy.csv"))


def role_allows(role: str, resource: str, action: str) -> bool:
    """The staff policy's answer: may a member with `role` do `action` on `resource`?"""
    return role in ROLES and bool(staff_enforcer().enforce(f"staff:{role}", resource, action))


def scope_allows(role: str, scope: str | None) -> bool:
    """An operation's API scope (`billing:write`) for a staff role. Operations with no scope (their route
    checks another credential) are for owners and admins only."""
    if scope is None:
        return role_allows(role, "*", "write")
    resource, _, action = scope.partition(":")
    return role_allows(role, resource, action or "read")


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str
    session: StaffSession
    staff: StaffMember


class StaffService:
    def __init__(self, session: AsyncSession, clock: Clock, *, session_ttl: timedelta) -> None:
        self.session = session
        self.clock = clock
        self.session_ttl = session_ttl

    async def by_email(self, email: str) -> StaffMember | None:
        query = select(StaffMember).where(func.lower(StaffMember.email) == email.strip().lower())
        return await self.session.scalar(query)

    async def add(self, email: str, role: str, *, name: str | None = None) -> StaffMember:
        if role not in ROLES:
            raise ValidationFailed(f"unknown staff role {role!r}; choose from {list(ROLES)}", field="role")
        if "@" not in email or len(email) > 320:
            raise ValidationFailed("not an e-mail address", field="email")
        if await self.by_email(email) is not None:
            raise Conflict(f"a staff member with e-mail {email!r} exists", code="staff_member_exists")
        now = self.clock.now()
        row = StaffMember(
            id=new_id("stf"),
            email=email.strip().lower(),
            name=name,
            role=role,
            locale="en",
            active=True,
            created_at=now,
            updated_at=now,
        )
        self.session.add(row)
        await self.session.flush()
        await record_change(
            self.session, "staff.created", "staff_member", row.id, now, tenant_id=None, role=role
        )
        return row

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(StaffMember)) or 0)

    async def issue_login_link(self, staff: StaffMember) -> str:
        """A one-time login token for `staff` (the caller prints it as a link)."""
        if not staff.active:
            raise StaffForbidden(f"staff member {staff.email!r} is deactivated")
        token = LINK_PREFIX + secrets.token_urlsafe(32)
        now = self.clock.now()
        self.session.add(
            StaffLoginLink(
                id=new_id("sll"),
                staff_id=staff.id,
                token_hash=digest(token),
                created_at=now,
                expires_at=now + LINK_TTL,
                used_at=None,
            )
        )
        await self.session.flush()
        await record_change(
            self.session, "staff.login_link_issued", "staff_member", staff.id, now, tenant_id=None
        )
        return token

    async def redeem(self, token: str) -> SignedIn:
        """Exchange a login link for a session: once, before it expires."""
        now = self.clock.now()
        link = await self.session.scalar(
            select(StaffLoginLink).where(StaffLoginLink.token_hash == digest(token)).with_for_update()
        )
        if link is None or link.used_at is not None or link.expires_at <= now:
            raise LoginLinkInvalid("this login link is unknown, already used or expired")
        staff = await self.session.get(StaffMember, link.staff_id)
        if staff is None or not staff.active:
            raise LoginLinkInvalid("this login link is unknown, already used or expired")
        link.used_at = now
        return await self._open(staff, now, "link")

    async def sign_in_verified(self, email: str) -> SignedIn:
        """A session for the staff member whose address the platform's IdP has just vouched for (staff
        SSO). Only existing, active staff: the IdP proves who someone is, the staff list says who may
        operate Tiergate (nobody becomes staff by signing in)."""
        staff = await self.by_email(email)
        if staff is None or not staff.active:
            raise NotStaff(f"{email} is not a staff member of this Tiergate")
        return await self._open(staff, self.clock.now(), "sso")

    async def _open(self, staff: StaffMember, now: datetime, method: str) -> SignedIn:
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        row = StaffSession(
            id=new_id("sts"),
            staff_id=staff.id,
            token_hash=digest(token),
            created_at=now,
            expires_at=now + self.session_ttl,
            revoked_at=None,
        )
        self.session.add(row)
        await self.session.flush()
        await record_change(
            self.session, "staff.signed_in", "staff_member", staff.id, now, tenant_id=None, method=method
        )
        return SignedIn(token, row, staff)

    async def authenticate(self, token: str) -> tuple[StaffSession, StaffMember]:
        now = self.clock.now()
        row = await self.session.scalar(select(StaffSession).where(StaffSession.token_hash == digest(token)))
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            raise StaffUnauthenticated("staff session missing, expired or revoked")
        staff = await self.session.get(StaffMember, row.staff_id)
        if staff is None or not staff.active:
            raise StaffUnauthenticated("staff session missing, expired or revoked")
        return row, staff

    async def sign_out(self, token: str) -> None:
        row, staff = await self.authenticate(token)
        row.revoked_at = self.clock.now()
        await record_change(
            self.session, "staff.signed_out", "staff_member", staff.id, row.revoked_at, tenant_id=None
        )


class StaffGate:
    """What the app's one guard asks when a request carries a staff session token (Bearer tgstaff_…)
    for an operation the matrix opens to staff: authenticate, then ask the staff policy."""

    def __init__(self, db: Database, clock: Clock, *, session_ttl: timedelta) -> None:
        self.db = db
        self.clock = clock
        self.session_ttl = session_ttl

    @staticmethod
    def is_staff_token(authorization: str) -> bool:
        scheme, _, secret = authorization.partition(" ")
        return scheme.lower() == "bearer" and secret.strip().startswith(SESSION_PREFIX)

    async def admit(self, authorization: str, scope: str | None) -> Principal:
        token = authorization.partition(" ")[2].strip()
        async with self.db.unit_of_work() as session:
            _, staff = await StaffService(session, self.clock, session_ttl=self.session_ttl).authenticate(
                token
            )
            staff_id, role = staff.id, staff.role
        if not scope_allows(role, scope):
            raise StaffForbidden(f"the staff role {role!r} may not call this operation ({scope or 'admin'})")
        # The scope the matrix asked for, and nothing more: the services check no other scope.
        return Principal(f"staff:{staff_id}", frozenset({scope} if scope else {"*"}), None)
