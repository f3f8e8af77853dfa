"""Staff identity: members with a role, one-time login links, server-side sessions, and the staff gate
that admits a staff session to an operation when the staff policy (Casbin, policies/staff_model.conf)
grants the member's role the operation's scope.

Staff management (`StaffService.invite`, `change`, `list_members`): owners invite members, change their
role, deactivate and reactivate them, for the API (`gateway/admin/http.py`, /v1/staff) and the console page
(`gateway/admin/pages_staff.py`) alike. The last active owner can never be demoted or deactivated
(`last_owner`), and nobody changes their own role or deactivates themself (`staff_self_change`).

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
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.models import StaffLoginLink, StaffMember, StaffSession
from gateway.config import Settings
from gateway.customers.service import check_email
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


class StaffInactive(Conflict):
    code = "staff_member_inactive"


class LastOwner(Conflict):
    code = "last_owner"


class SelfChange(Conflict):
    code = "staff_self_change"


# Managing staff (inviting, changing roles, deactivating) is the policy's `staff, manage`: owners only,
# although admins may `write` every other resource. Its API scope is `staff:write`.
STAFF_READ, STAFF_WRITE = "staff:read", "staff:write"


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
    if scope == STAFF_WRITE:
        return role_allows(role, "staff", "manage")
    resource, _, action = scope.partition(":")
    return role_allows(role, resource, action or "read")


def acting_staff(principal: Principal) -> str | None:
    """The staff member a request acts for (`staff:<id>`), or None for an API key."""
    return principal.key_id.removeprefix("staff:") if principal.key_id.startswith("staff:") else None


def login_url(settings: Settings, token: str) -> str:
    """The one-time login link as a browser opens it (what `tiergate admin-login` prints)."""
    base = (settings.sso_public_url or settings.served_url).rstrip("/")
    return f"{base}/admin/login/{token}"


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationFailed(f"unknown staff role {role[:40]!r}; choose from {list(ROLES)}", field="role")


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
        _check_role(role)
        email = check_email(email.strip()[:400])
        name = (name or "").strip() or None
        if name is not None and len(name) > 200:
            raise ValidationFailed("a name of at most 200 characters", field="name")
        if await self.by_email(email) is not None:
            raise Conflict(f"a staff member with e-mail {email!r} exists", code="staff_member_exists")
        now = self.clock.now()
        row = StaffMember(
            id=new_id("stf"),
            email=email,
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
            raise StaffInactive(f"staff member {staff.email!r} is deactivated; reactivate them first")
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

    async def get(self, staff_id: str) -> StaffMember:
        member = await self.session.get(StaffMember, staff_id[:40])
        if member is None:
            raise StaffNotFound(f"no staff member {staff_id[:40]!r}")
        return member

    async def list_members(self) -> list[tuple[StaffMember, datetime | None]]:
        """Every staff member, oldest first, with their latest sign-in (None: never signed in)."""
        last = (
            select(StaffSession.staff_id, func.max(StaffSession.created_at).label("at"))
            .group_by(StaffSession.staff_id)
            .subquery()
        )
        rows = await self.session.execute(
            select(StaffMember, last.c.at)
            .outerjoin(last, last.c.staff_id == StaffMember.id)
            .order_by(StaffMember.created_at, StaffMember.id)
        )
        return [(member, at) for member, at in rows.all()]

    async def last_sign_in(self, staff_id: str) -> datetime | None:
        at = await self.session.scalar(
            select(func.max(StaffSession.created_at)).where(StaffSession.staff_id == staff_id)
        )
        return at

    async def invite(self, email: str, role: str, *, name: str | None = None) -> tuple[StaffMember, str]:
        """A new staff member and their first one-time login token (shown once, by the caller)."""
        member = await self.add(email, role, name=name)
        return member, await self.issue_login_link(member)

    async def change(
        self,
        staff_id: str,
        *,
        role: str | None = None,
        active: bool | None = None,
        acting: str | None = None,
    ) -> StaffMember:
        """Change a member's role and/or whether they are active; `acting` is the id of the staff member
        asking (None for an API key). Every refusal comes before any write, so a refused change writes
        nothing. Deactivating ends the member's open sessions and expires their unused login links."""
        if role is not None:
            _check_role(role)
        member = await self.get(staff_id)
        new_role = member.role if role is None else role
        new_active = member.active if active is None else active
        if new_role == member.role and new_active == member.active:
            return member
        if acting is not None and acting == member.id:
            raise SelfChange("you cannot change your own role or deactivate yourself; ask another owner")
        if member.role == "owner" and member.active and (new_role != "owner" or not new_active):
            # Lock every active owner's row: two owners demoting each other at once wait for one another,
            # and the second finds only one owner left.
            owners = await self.session.scalars(
                select(StaffMember.id)
                .where(StaffMember.role == "owner", StaffMember.active.is_(True))
                .with_for_update()
            )
            if len(owners.all()) <= 1:
                raise LastOwner(
                    "this is the last active owner: make someone else an owner first", staff=member.id
                )
        now = self.clock.now()
        if new_role != member.role:
            previous, member.role = member.role, new_role
            await record_change(
                self.session,
                "staff.role_changed",
                "staff_member",
                member.id,
                now,
                tenant_id=None,
                role=new_role,
                previous_role=previous,
            )
        if new_active != member.active:
            member.active = new_active
            ended = 0
            if not new_active:
                ended = await self._end_sessions(member.id, now)
            await record_change(
                self.session,
                "staff.deactivated" if not new_active else "staff.reactivated",
                "staff_member",
                member.id,
                now,
                tenant_id=None,
                **({"sessions_ended": ended} if not new_active else {}),
            )
        member.updated_at = now
        await self.session.flush()
        return member

    async def _end_sessions(self, staff_id: str, now: datetime) -> int:
        """Revoke the member's open sessions and expire their unused login links; the sessions ended."""
        open_sessions = await self.session.execute(
            update(StaffSession)
            .where(
                StaffSession.staff_id == staff_id,
                StaffSession.revoked_at.is_(None),
                StaffSession.expires_at > now,
            )
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(
            update(StaffLoginLink)
            .where(
                StaffLoginLink.staff_id == staff_id,
                StaffLoginLink.used_at.is_(None),
                StaffLoginLink.expires_at > now,
            )
            .values(expires_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(open_sessions, "rowcount", 0) or 0)

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


def staff_may(principal: Principal | None, scope: str) -> bool:
    """Whether the request's caller is a staff session whose role the staff policy grants `scope`: what a
    console page (its nav, its forms) asks before offering something (a template global, `staff_may`)."""
    return principal is not None and principal.role is not None and scope_allows(principal.role, scope)


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
        return Principal(f"staff:{staff_id}", frozenset({scope} if scope else {"*"}), None, role=role)
