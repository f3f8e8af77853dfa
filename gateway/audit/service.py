"""Recording and reading the audit log.

`record()` is the one way in: SSO calls it for sign-ins, invites and provisioning call it for what they
do, and `handle_event` (an outbox relay consumer) derives entries from domain events — role changes,
member changes, provisioning, access revocation, policy edits — so nothing that changes state can skip
the log. Entries derived from an event carry its id, which is unique: a relayed event is logged once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import column, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit.models import AuditEntry
from gateway.db.outbox import SYSTEM as SYSTEM  # re-exported: the actor of what no one asked for
from gateway.db.outbox import OutboxEvent, actor_of
from gateway.kernel.clock import Clock
from gateway.kernel.ids import new_id
from gateway.kernel.pagination import Page


def key_actor(key_id: str) -> str:
    return f"key:{key_id}"


def user_actor(user_id: str) -> str:
    return f"user:{user_id}"


async def record(
    session: AsyncSession,
    *,
    action: str,
    at: datetime,
    actor: str | None = None,
    tenant_id: str | None = None,
    target: str | None = None,
    user_id: str | None = None,
    data: dict[str, Any] | None = None,
    source_event_id: str | None = None,
) -> AuditEntry:
    """Add an entry in the caller's transaction (so it commits, or not, with the action itself).

    `user_id` is the person the entry is about (for sign-ins: who signed in), used by privacy export.
    `actor` defaults to whom the unit of work acts for (`gateway.db.outbox.actor_of`)."""
    entry = AuditEntry(
        id=new_id("aud"),
        tenant_id=tenant_id,
        actor=(actor or actor_of(session))[:60],
        action=action,
        target=target,
        subject_user_id=user_id,
        data=data or {},
        at=at,
        source_event_id=source_event_id,
    )
    session.add(entry)
    await session.flush()
    return entry


# Outbox event type → audit action. Events not listed are not audited (usage, invoices, renewals…).
AUDITED_EVENTS = {
    "member.added": "member.added",
    "member.removed": "member.removed",
    "member.updated": "member.role_changed",
    "member.role_changed": "member.role_changed",
    "customer.provisioned": "customer.provisioned",
    "customer.data_purged": "customer.data_purged",
    "access.revoked": "access.revoked",
    "access.restored": "access.restored",
    "user.tokens_revoked": "user.tokens_revoked",
    "user.erased": "user.erased",
    "invite.created": "invite.created",
    "invite.accepted": "invite.accepted",
    # Credentials and configuration, audited by default (security-relevant).
    "api_key.created": "api_key.created",
    "api_key.revoked": "api_key.revoked",
    "scim_token.created": "scim_token.created",
    "scim_token.revoked": "scim_token.revoked",
    "webhook_endpoint.created": "webhook_endpoint.created",
    "webhook_endpoint.updated": "webhook_endpoint.updated",
    "webhook_endpoint.deleted": "webhook_endpoint.deleted",
    "sso_connection.created": "sso_connection.created",
    "sso_connection.updated": "sso_connection.updated",
    "sso_connection.deleted": "sso_connection.deleted",
    "user.exported": "user.exported",
    # Staff (gateway/admin): who operates Tiergate, with which role, and their sign-ins.
    "staff.created": "staff.created",
    "staff.role_changed": "staff.role_changed",
    "staff.deactivated": "staff.deactivated",
    "staff.reactivated": "staff.reactivated",
    "staff.login_link_issued": "staff.login_link_issued",
    "staff.signed_in": "staff.signed_in",
    "staff.signed_out": "staff.signed_out",
    "invoice.reopened": "invoice.reopened",  # a paid invoice due again (chargeback)
    # Dunning's decisions about a customer's access and subscription (gateway/dunning).
    "dunning.started": "dunning.started",
    "dunning.exhausted": "dunning.exhausted",
    "dunning.recovered": "dunning.recovered",
    "dunning.stopped": "dunning.stopped",
}
# Entries name people by id: an address an event carries (invite.created) is left out of the entry.
_PERSONAL_KEYS = ("email",)


def audited(event_type: str) -> bool:
    return event_type in AUDITED_EVENTS or event_type.startswith("policy.")


async def handle_event(session: AsyncSession, event: OutboxEvent) -> None:
    """Relay consumer: one audit entry per audited event, at most once (unique source event id)."""
    action = AUDITED_EVENTS.get(event.type) or (event.type if event.type.startswith("policy.") else None)
    if action is None:
        return
    if await session.scalar(select(AuditEntry.id).where(AuditEntry.source_event_id == event.event_id)):
        return
    data = {k: v for k, v in (event.data or {}).items() if k not in _PERSONAL_KEYS}
    if event.type == "member.updated" and data.get("role") == data.get("previous_role"):
        return  # not a role change
    user = data.get("user") if isinstance(data.get("user"), str) else None
    if user is None and event.aggregate_type == "membership":
        # customers sits above this layer: read the bare table (as identity reads `customers`).
        memberships = table("memberships", column("id"), column("user_id"))
        user = await session.scalar(
            select(memberships.c.user_id).where(memberships.c.id == event.aggregate_id)
        )
    # Who: an actor the event names itself (an invite accepted by its user through the app's key), else
    # whom the unit of work that recorded the event acted for (its `actor` column).
    actor = data.get("actor") or event.actor or SYSTEM
    await record(
        session,
        action=action,
        at=event.occurred_at,
        actor=str(actor),
        tenant_id=event.tenant_id,
        target=f"{event.aggregate_type}:{event.aggregate_id}"[:80],
        user_id=user,
        data=data,
        source_event_id=event.event_id,
    )


class AuditService:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    async def list(
        self,
        *,
        scope: str | None,
        after: str | None,
        limit: int,
        tenant_id: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        user_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        newest_first: bool = False,
    ) -> Page[AuditEntry]:
        """Oldest first by id (ids are time-ordered), or newest first (the console), `after` then being
        the last id of the previous page either way. A tenant-scoped caller sees only its tenant."""
        order = AuditEntry.id.desc() if newest_first else AuditEntry.id
        query = select(AuditEntry).order_by(order).limit(limit + 1)
        if scope is not None:
            query = query.where(AuditEntry.tenant_id == scope)
        if tenant_id is not None:
            query = query.where(AuditEntry.tenant_id == tenant_id)
        if actor is not None:
            query = query.where(AuditEntry.actor == actor)
        if action is not None:
            query = query.where(AuditEntry.action.startswith(action, autoescape=True))
        if target is not None:
            query = query.where(AuditEntry.target == target)
        if user_id is not None:
            query = query.where(AuditEntry.subject_user_id == user_id)
        if since is not None:
            query = query.where(AuditEntry.at >= since)
        if until is not None:
            query = query.where(AuditEntry.at < until)
        if after is not None:
            query = query.where(AuditEntry.id < after if newest_first else AuditEntry.id > after)
        return Page.from_overfetch((await self.session.scalars(query)).all(), limit)

    async def about_user(self, user_id: str) -> Sequence[AuditEntry]:
        query = select(AuditEntry).where(AuditEntry.subject_user_id == user_id).order_by(AuditEntry.id)
        return (await self.session.scalars(query)).all()
