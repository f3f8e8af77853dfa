"""GDPR: export a user's personal data, and erase a user.

Erasure pseudonymises rather than deletes: the `users` row stays (invoices, audit entries and
memberships' history point at its id) with `email` → `erased+<hash>@erased.invalid` and `name` → NULL;
every active membership is removed (member.removed events, webhooks), the user's sessions end and their
tokens are refused (`user.tokens_revoked`), pending invitations to the address are pseudonymised too.
Invoices and audit entries are kept for their legal period. Erasing twice is harmless.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit import AuditService
from gateway.audit.models import AuditEntry
from gateway.customers import CustomerService
from gateway.customers.repository import CustomerRepository
from gateway.db.outbox import record_change, record_event
from gateway.identity.invites import Invite
from gateway.identity.revocation import RevocationService
from gateway.kernel.clock import Clock, format_timestamp
from gateway.kernel.errors import NotFound
from gateway.kernel.events import DomainEvent
from gateway.provisioning import erasure
from gateway.provisioning.hooks import SessionsHook
from gateway.provisioning.repository import PrivacyRepository

ERASED_DOMAIN = "erased.invalid"


class UserNotFound(NotFound):
    code = "user_not_found"


def pseudonym(user_id: str) -> str:
    return f"erased+{hashlib.sha256(user_id.encode()).hexdigest()[:16]}@{ERASED_DOMAIN}"


def _iso(value: Any) -> Any:
    """ISO 8601 UTC. Rows read through bare table statements come back from SQLite as naive strings
    (the UTC column type is not applied there); they are UTC by construction."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return format_timestamp(value if value.tzinfo else value.replace(tzinfo=UTC))
    return value


def _tenants_of(memberships: list[dict[str, Any]]) -> list[str | None]:
    """The tenants an entry about this user belongs to; [None] (platform-wide) if they had none."""
    return [*sorted({str(m["tenant_id"]) for m in memberships})] or [None]


class PrivacyService:
    def __init__(self, session: AsyncSession, clock: Clock, sessions: Any | None = None) -> None:
        self.session = session
        self.clock = clock
        self.repo = PrivacyRepository(session)
        self.sessions = sessions

    async def _user(self, user_id: str, scope: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        user = await self.repo.user(user_id)
        memberships = await self.repo.memberships(user_id) if user else []
        if scope is not None:
            memberships = [m for m in memberships if m["tenant_id"] == scope]
        if user is None or (scope is not None and not memberships):
            raise UserNotFound(f"no user {user_id!r}")
        return user, memberships

    async def member_elsewhere(self, user_id: str, tenant_id: str) -> bool:
        """Whether the user holds an active membership in a tenant other than this one."""
        return any(
            m["status"] == "active" and m["tenant_id"] != tenant_id
            for m in await self.repo.memberships(user_id)
        )

    async def export(self, user_id: str, *, scope: str | None) -> dict[str, Any]:
        user, memberships = await self._user(user_id, scope)
        # Audited: reading someone's personal data is itself something to account for (per tenant).
        exported_at = self.clock.now()
        for tenant_id in _tenants_of(memberships):
            await record_change(
                self.session, "user.exported", "user", user_id, exported_at, tenant_id=tenant_id, user=user_id
            )
        entries = await AuditService(self.session, self.clock).about_user(user_id)
        acted = (
            await self.session.scalars(
                select(AuditEntry).where(AuditEntry.actor == f"user:{user_id}").order_by(AuditEntry.id)
            )
        ).all()
        seen: set[str] = set()
        audit = []
        for e in sorted([*entries, *acted], key=lambda e: e.id):
            if e.id in seen or (scope is not None and e.tenant_id != scope):
                continue
            seen.add(e.id)
            audit.append(
                {
                    "id": e.id,
                    "customer": e.tenant_id,
                    "actor": e.actor,
                    "action": e.action,
                    "target": e.target,
                    "data": e.data,
                    "at": format_timestamp(e.at),
                }
            )
        invites = (
            await self.session.scalars(
                select(Invite).where(Invite.email == user["email"]).order_by(Invite.id)
            )
        ).all()
        sessions = None
        lister = getattr(self.sessions, "list_for_user", None)
        if lister is not None:
            sessions = [
                {"customer": s.tenant_id, "created_at": _iso(s.created_at), "expires_at": _iso(s.expires_at)}
                for s in await lister(user_id)
                if scope is None or s.tenant_id == scope
            ]
        return {
            "object": "user_export",
            "generated_at": format_timestamp(self.clock.now()),
            "user": {k: _iso(v) if k.endswith("_at") else v for k, v in user.items()},
            "memberships": [
                {
                    "id": m["id"],
                    "customer": m["tenant_id"],
                    "role": m["role"],
                    "status": m["status"],
                    "created_at": _iso(m["created_at"]),
                    "removed_at": _iso(m["removed_at"]),
                }
                for m in memberships
            ],
            "sessions": sessions,
            "invites": [
                {
                    "id": i.id,
                    "customer": i.tenant_id,
                    "role": i.role,
                    "created_at": format_timestamp(i.created_at),
                    "accepted_at": _iso(i.accepted_at),
                }
                for i in invites
                if scope is None or i.tenant_id == scope
            ],
            "audit_entries": audit,
        }

    async def erase(self, user_id: str) -> dict[str, Any]:
        """Erase the user everywhere their data is kept (`erasure.py`; the list is in the README).
        Acts for whoever the unit of work acts for (`gateway.db.outbox.actor_of`)."""
        user, memberships = await self._user(user_id, None)
        now = self.clock.now()
        customers = CustomerService(CustomerRepository(self.session), self.clock)
        membership_ids = [str(m["id"]) for m in memberships]
        profiles = await erasure.scim_profiles(self.session, membership_ids)
        email = pseudonym(user_id)
        already = user["email"] == email
        person = erasure.personal_data(
            str(user["email"]),
            email,
            [user.get("name"), *(n for p in profiles for n in erasure.scim_names(p))],
        )
        # Addresses the IdP sent that differ from the account's own are scrubbed too.
        other_emails = {e.lower() for p in profiles for e in erasure.scim_emails(p)} - {person.email}
        removed = 0
        for m in memberships:
            if m["status"] == "active":
                await customers.remove_member(str(m["tenant_id"]), str(m["id"]))
                removed += 1
        for invite in (await self.session.scalars(select(Invite).where(Invite.email == user["email"]))).all():
            invite.email = email
        await self.repo.pseudonymise(user_id, email, now)
        await erasure.erase_scim(self.session, membership_ids)
        ended = 0
        if self.sessions is not None and hasattr(self.sessions, "end_for_user"):
            ended = await SessionsHook(self.sessions).end_for_user(user_id)
        await RevocationService(self.session, self.clock).revoke_user(user_id, reason="erased")
        await self.session.flush()
        if not already:
            await erasure.scrub_copies(self.session, person)
            for address in sorted(other_emails):
                await erasure.scrub_copies(self.session, erasure.personal_data(address, email, []))
        result = {
            "object": "user_erasure",
            "user": user_id,
            "email": email,
            "erased_at": format_timestamp(now),
            "memberships_removed": removed,
            "sessions_ended": ended,
            "already_erased": already,
        }
        # One event per tenant the user belonged to, so each tenant's audit log and webhooks see it; a
        # user who belonged to none gets one platform event.
        for tenant_id in _tenants_of(memberships):
            await record_event(
                self.session,
                DomainEvent(
                    "user.erased",
                    "user",
                    user_id,
                    now,
                    data={"user": user_id, "memberships_removed": removed},
                    tenant_id=tenant_id,
                ),
            )
        return result
