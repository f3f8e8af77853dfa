"""The revocation list: end-user access tokens refused before their expiry.

Tokens are verified offline (no database per request), so refusing one early needs state each replica
holds in memory. Two kinds of entry, each a `revoked_after` time:

* per tenant: a deprovisioned tenant (canceled, expired, unpaid past grace, paused). While the entry is
  `active` every token of the tenant is refused; after a restore, tokens issued at or before
  `revoked_after` stay refused and new ones are accepted;
* per user: every token of the user issued at or before `revoked_after` is refused (erasure, sign-out
  everywhere).

Writes go to `access_revocations` (one row per subject, the current state) and to the outbox
(`access.revoked`, `access.restored`, `user.tokens_revoked`) in one transaction. Each replica's
`RevocationList` loads the table at start and then tails the outbox for those events through the shared
change stream (`gateway.db.stream`, which cannot skip a late-committing event), re-reading the row of
each subject named, the way the decision engine follows the outbox; staleness is bounded by the poll
interval. Comparison is in whole seconds (`iat` is an integer) and fails closed: a token issued in
the same second as the revocation is refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base
from gateway.db.outbox import OutboxEvent, record_event
from gateway.db.session import Database
from gateway.db.stream import DEFAULT_WARN_AFTER_SECONDS, OutboxTail, horizon_watch
from gateway.identity.tokens import InvalidToken
from gateway.kernel.clock import Clock, format_timestamp
from gateway.kernel.events import DomainEvent
from gateway.kernel.waiting import wait_for_nudge

log = logging.getLogger("tiergate.revocation")

TENANT = "tenant"
USER = "user"
# A tenant API key revoked by hand: not a token, but every replica's key cache must drop it within the
# bound too (it would otherwise be served for up to the cache's TTL on the replicas that did not revoke it).
KEY_REVOKED = "api_key.revoked"
EVENT_TYPES = frozenset({"access.revoked", "access.restored", "user.tokens_revoked", KEY_REVOKED})


class TokenRevoked(InvalidToken):
    code = "token_revoked"


class AccessRevocation(Base):
    __tablename__ = "access_revocations"

    subject_type: Mapped[str] = mapped_column(String(10), primary_key=True)  # "tenant" | "user"
    subject_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # The tenant for tenant entries; NULL for user entries (a user spans tenants).
    tenant_id: Mapped[str | None] = mapped_column(String(40), index=True)
    revoked_after: Mapped[datetime]
    active: Mapped[bool]
    reason: Mapped[str] = mapped_column(String(40))
    updated_at: Mapped[datetime]


class RevocationService:
    """Writes revocations (in the caller's unit of work, with their outbox events)."""

    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    async def _row(self, subject_type: str, subject_id: str) -> AccessRevocation | None:
        return await self.session.get(AccessRevocation, (subject_type, subject_id))

    async def revoke_tenant(
        self, tenant_id: str, *, reason: str, at: datetime | None = None, data: dict[str, Any] | None = None
    ) -> AccessRevocation:
        """Refuse every token of the tenant from now on. A tenant already revoked keeps its first
        `revoked_after` (so no token slips in between) and no second event is written."""
        now = self.clock.now()
        row = await self._row(TENANT, tenant_id)
        if row is not None and row.active:
            return row
        if row is None:
            row = AccessRevocation(subject_type=TENANT, subject_id=tenant_id, tenant_id=tenant_id)
            self.session.add(row)
        row.revoked_after, row.active, row.reason, row.updated_at = now, True, reason, now
        await self.session.flush()
        payload = {
            "customer": tenant_id,
            "reason": reason,
            "revoked_after": format_timestamp(now),
            **(data or {}),
        }
        await record_event(
            self.session,
            DomainEvent(
                "access.revoked", "customer", tenant_id, at or now, data=payload, tenant_id=tenant_id
            ),
        )
        return row

    async def restore_tenant(
        self, tenant_id: str, *, reason: str, at: datetime | None = None, data: dict[str, Any] | None = None
    ) -> AccessRevocation | None:
        """Accept new tokens again; tokens issued before the revocation stay refused."""
        now = self.clock.now()
        row = await self._row(TENANT, tenant_id)
        if row is None or not row.active:
            return row
        row.active, row.reason, row.updated_at = False, reason, now
        await self.session.flush()
        payload = {
            "customer": tenant_id,
            "reason": reason,
            "revoked_after": format_timestamp(row.revoked_after),
        }
        await record_event(
            self.session,
            DomainEvent(
                "access.restored",
                "customer",
                tenant_id,
                at or now,
                data={**payload, **(data or {})},
                tenant_id=tenant_id,
            ),
        )
        return row

    async def revoke_user(self, user_id: str, *, reason: str) -> AccessRevocation:
        """Refuse every token of the user issued until now (in every tenant)."""
        now = self.clock.now()
        row = await self._row(USER, user_id)
        if row is None:
            row = AccessRevocation(subject_type=USER, subject_id=user_id, tenant_id=None)
            self.session.add(row)
        row.revoked_after, row.active, row.reason, row.updated_at = now, False, reason, now
        await self.session.flush()
        await record_event(
            self.session,
            DomainEvent(
                "user.tokens_revoked",
                "user",
                user_id,
                now,
                data={"user": user_id, "reason": reason, "revoked_after": format_timestamp(now)},
            ),
        )
        return row

    async def tenant_state(self, tenant_id: str) -> AccessRevocation | None:
        return await self._row(TENANT, tenant_id)


@dataclass(frozen=True, slots=True)
class _Entry:
    revoked_after: int  # epoch seconds
    active: bool


class RevocationList:
    """The per-replica, in-memory view. `refusal()` is a couple of dict lookups: safe on the hot path."""

    def __init__(
        self,
        db: Database,
        *,
        poll_interval_seconds: float = 1.0,
        horizon_warn_seconds: float = DEFAULT_WARN_AFTER_SECONDS,
    ) -> None:
        self.db = db
        self.poll_interval_seconds = poll_interval_seconds
        self.horizon_warn_seconds = horizon_warn_seconds
        self._tenants: dict[str, _Entry] = {}
        self._users: dict[str, _Entry] = {}
        self._watermark = 0
        self._tail = self._new_tail()
        self._loaded = False
        self._nudged = asyncio.Event()
        self._lock = asyncio.Lock()
        self.last_sync = 0.0
        # Called with a tenant id for each `access.revoked` read (e.g. to drop its cached API keys).
        self.on_tenant_revoked: list[Callable[[str], None]] = []
        # Called with the ids of API keys revoked by hand (each replica's key cache drops them).
        self.on_keys_revoked: list[Callable[[list[str]], None]] = []

    @property
    def version(self) -> int:
        """How far the list has read: the outbox top at load, then the newest revocation event applied."""
        return self._watermark

    # -- the hot path ----------------------------------------------------------------------------
    def refusal(self, tenant_id: str | None, user_id: str | None, issued_at: Any) -> str | None:
        """Why a token with these claims must be refused, or None. `issued_at` is the `iat` claim."""
        iat = issued_at if isinstance(issued_at, int) else None
        if tenant_id is not None:
            entry = self._tenants.get(tenant_id)
            if entry is not None and (entry.active or iat is None or iat <= entry.revoked_after):
                return "the tenant's access was revoked"
        if user_id is not None:
            entry = self._users.get(user_id)
            if entry is not None and (entry.active or iat is None or iat <= entry.revoked_after):
                return "the user's tokens were revoked"
        return None

    def check(self, claims: dict[str, Any]) -> None:
        """Raise `TokenRevoked` (401) for verified claims the list refuses."""
        reason = self.refusal(claims.get("tid"), claims.get("sub"), claims.get("iat"))
        if reason is not None:
            raise TokenRevoked(f"access token refused: {reason}")

    def tenant_revoked(self, tenant_id: str) -> bool:
        entry = self._tenants.get(tenant_id)
        return entry is not None and entry.active

    # -- loading ---------------------------------------------------------------------------------
    @staticmethod
    def _entry(row: AccessRevocation) -> _Entry:
        return _Entry(int(row.revoked_after.timestamp()), bool(row.active))

    def _put(self, row: AccessRevocation) -> None:
        target = self._tenants if row.subject_type == TENANT else self._users
        target[row.subject_id] = self._entry(row)

    def _new_tail(self) -> OutboxTail:
        return OutboxTail(
            "revocations",
            where=(OutboxEvent.type.in_(sorted(EVENT_TYPES)),),
            watch=horizon_watch("revocations", self.horizon_warn_seconds),
        )

    async def load(self) -> None:
        async with self._lock, self.db.unit_of_work(read_only=True) as session:
            tail = self._new_tail()
            watermark = await tail.start(session)  # before the rows: later changes are read again
            rows = (await session.scalars(select(AccessRevocation))).all()
            self._tenants, self._users = {}, {}
            for row in rows:
                self._put(row)
            self._watermark, self._tail, self._loaded = watermark, tail, True
        self.last_sync = time.monotonic()

    async def sync(self) -> int:
        """Catch up with the outbox; returns the number of revocation events applied."""
        if not self._loaded:
            await self.load()
            return 0
        async with self._lock:
            async with self.db.unit_of_work(read_only=True) as session:
                batch = await self._tail.read(session, OutboxEvent.type, OutboxEvent.aggregate_id)
                subjects = {
                    (USER if r.type == "user.tokens_revoked" else TENANT, r.aggregate_id)
                    for r in batch.rows
                    if r.type != KEY_REVOKED
                }
                for subject in subjects:
                    row = await session.get(AccessRevocation, subject)
                    if row is not None:
                        self._put(row)
            # No max(seq) query for a version: the idle poll is one query (the tail's snapshot), every
            # second on every replica, on the loop that answers checks.
            self._tail.acknowledge(batch)
            revoked_tenants = sorted({r.aggregate_id for r in batch.rows if r.type == "access.revoked"})
            revoked_keys = sorted({r.aggregate_id for r in batch.rows if r.type == KEY_REVOKED})
            self._watermark = max(self._watermark, self._tail.top)
        self.last_sync = time.monotonic()
        # Other replicas' key caches hold a canceled tenant's keys: each replica drops them when its list
        # reads the revocation (this replica's own write already dropped them after commit).
        for tenant_id in revoked_tenants:
            for callback in self.on_tenant_revoked:
                callback(tenant_id)
        if revoked_keys:
            for forget in self.on_keys_revoked:
                forget(revoked_keys)
        return len(batch.rows)

    def nudge(self, *_: Any) -> None:
        self._nudged.set()

    async def run(self) -> None:
        while True:
            await wait_for_nudge(self._nudged, self.poll_interval_seconds)
            self._nudged.clear()
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Keep refusing what we already know; the next pass retries.
                log.warning("revocation list sync failed", exc_info=True)
                await asyncio.sleep(self.poll_interval_seconds)
