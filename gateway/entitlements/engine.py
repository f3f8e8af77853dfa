"""The per-replica decision engine: an immutable decision index kept current by tailing the outbox.

Design (ARCHITECTURE.md §4, with one change, argued in README.md): the outbox *is* the change stream.
Every state change already writes an event with a database-assigned `seq` in its own transaction, so a
replica catches up by reading `outbox.seq > watermark` — from PostgreSQL, not from Redis. Redis pub/sub
only carries a "something changed" nudge so replicas look immediately instead of at the next poll. A lost
nudge therefore costs at most one poll interval, and Redis being down costs nothing but that latency.

Events are applied as "reload this tenant" (or "reload the policy"), never as increments, so reading an
event twice is harmless; that is what lets the reader re-scan a window below the watermark to pick up
transactions that committed out of `seq` order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.authz.domain import (
    NodeKind,
    PolicySnapshot,
    TenantStanding,
    TierGrant,
    policy_snapshot,
)
from gateway.catalog.domain import FeatureKind
from gateway.db.outbox import OutboxEvent
from gateway.db.session import Database
from gateway.entitlements.index import Decision, DecisionIndex, IndexDelta, MemberRoles
from gateway.entitlements.loader import LoadedTenants, TenantEntitlements, load_tenants
from gateway.entitlements.quotas import QuotaResult, QuotaStore
from gateway.entitlements.seats import SEATS_FEATURE
from gateway.kernel.clock import Clock
from gateway.kernel.waiting import wait_for_nudge

log = logging.getLogger("tiergate.entitlements")

PolicyLoader = Callable[[AsyncSession], Awaitable[PolicySnapshot]]
# Events whose commit may trail a higher seq are re-read this far below the watermark.
REORDER_WINDOW = 2_000


@dataclass(frozen=True, slots=True)
class EngineSettings:
    poll_interval_seconds: float = 1.0
    # Past this age without a successful catch-up, the index is too stale to trust: checks fail closed,
    # except features listed in `fail_open_features`.
    max_staleness_seconds: float = 30.0
    fail_open_features: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class FeatureVerdict:
    allowed: bool
    reason: str
    feature: str
    kind: str | None
    limit: int | None
    used: int | None
    remaining: int | None
    resets_at: datetime | None
    soft: bool = False
    overage: int = 0


@dataclass
class _State:
    index: DecisionIndex
    tenants: dict[str, TenantEntitlements]
    members: dict[str, frozenset[str]]  # tenant → user ids, to turn "reload tenant" into removals
    plan_nodes: dict[str, tuple[str, frozenset[str]]]
    policy: PolicySnapshot  # the stored policy, without generated plan-version edges
    watermark: int
    seen: set[int] = field(default_factory=set)


def _generated_edges(plan_nodes: dict[str, tuple[str, frozenset[str]]]) -> list[TierGrant]:
    """Each subscribed plan version becomes a node that includes its plan's policy node and unlocks the
    boolean features that version grants, so grandfathered tenants keep exactly what they bought."""
    edges: list[TierGrant] = []
    for node, (plan_key, features) in sorted(plan_nodes.items()):
        edges.append(TierGrant(plan=node, kind=NodeKind.PLAN, key=plan_key))
        edges.extend(TierGrant(plan=node, kind=NodeKind.FEATURE, key=f) for f in sorted(features))
    return edges


def _effective_policy(
    stored: PolicySnapshot, plan_nodes: dict[str, tuple[str, frozenset[str]]]
) -> PolicySnapshot:
    return policy_snapshot([*stored.rules, *_generated_edges(plan_nodes)], stored.version)


class Engine:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        quotas: QuotaStore,
        load_policy: PolicyLoader,
        settings: EngineSettings | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.quotas = quotas
        self.load_policy = load_policy
        self.settings = settings or EngineSettings()
        self._state: _State | None = None
        self._last_ok = 0.0
        self._nudged = asyncio.Event()
        self._lock = asyncio.Lock()
        self.on_synced: list[Callable[[int], None]] = []

    # -- state -----------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._state is not None

    @property
    def version(self) -> int:
        """The outbox position this replica's index reflects: comparable across replicas."""
        return self._state.watermark if self._state else 0

    @property
    def stale(self) -> bool:
        return time.monotonic() - self._last_ok > self.settings.max_staleness_seconds

    @property
    def staleness_seconds(self) -> float:
        return time.monotonic() - self._last_ok

    def _require(self) -> _State:
        if self._state is None:
            raise RuntimeError("the decision engine has not loaded yet")
        return self._state

    # -- loading ---------------------------------------------------------------------------------
    async def rebuild(self) -> None:
        """Full load. At start-up, after a policy change, and whenever incremental catch-up fails."""
        async with self._lock, self.db.unit_of_work() as session:
            watermark = int(await session.scalar(select(func.coalesce(func.max(OutboxEvent.seq), 0))) or 0)
            stored = await self.load_policy(session)
            loaded = await load_tenants(session)
            self._install(stored, loaded, watermark)
        self._last_ok = time.monotonic()
        for callback in self.on_synced:
            callback(watermark)

    def _install(self, stored: PolicySnapshot, loaded: LoadedTenants, watermark: int) -> None:
        index = DecisionIndex.build(
            _effective_policy(stored, loaded.plan_nodes),
            tenants=loaded.standings(),
            memberships=loaded.all_memberships(),
            version=0,
        )
        self._state = _State(
            index=index,
            tenants=dict(loaded.tenants),
            members={t: frozenset(m.user_id for m in ms) for t, ms in loaded.memberships.items()},
            plan_nodes=dict(loaded.plan_nodes),
            policy=stored,
            watermark=watermark,
        )

    async def sync(self) -> int:
        """Catch up with the outbox; returns the number of new events applied."""
        state = self._require()
        async with self._lock:
            async with self.db.unit_of_work() as session:
                low = max(0, state.watermark - REORDER_WINDOW)
                rows = (
                    await session.execute(
                        select(OutboxEvent.seq, OutboxEvent.type, OutboxEvent.tenant_id)
                        .where(OutboxEvent.seq > low)
                        .order_by(OutboxEvent.seq)
                        .limit(50_000)
                    )
                ).all()
                fresh = [(seq, type_, tenant) for seq, type_, tenant in rows if seq not in state.seen]
                if not fresh:
                    self._last_ok = time.monotonic()
                    return 0
                policy_changed = any(type_.startswith("policy.") for _, type_, _ in fresh)
                tenants = {tenant for _, _, tenant in fresh if tenant}
                if policy_changed:
                    stored = await self.load_policy(session)
                    loaded = await load_tenants(session)
                    self._install(stored, loaded, max(seq for seq, _, _ in fresh))
                    state = self._require()
                elif tenants:
                    loaded = await load_tenants(session, tenants)
                    self._apply_tenants(state, tenants, loaded)
            state.watermark = max(state.watermark, *(seq for seq, _, _ in fresh))
            state.seen.update(seq for seq, _, _ in fresh)
            # Forget seqs that fell out of the re-read window (they can never be returned again).
            floor = state.watermark - REORDER_WINDOW
            state.seen = {s for s in state.seen if s > floor}
        self._last_ok = time.monotonic()
        for callback in self.on_synced:
            callback(state.watermark)
        return len(fresh)

    def _apply_tenants(self, state: _State, tenant_ids: Iterable[str], loaded: LoadedTenants) -> None:
        new_nodes = {n: v for n, v in loaded.plan_nodes.items() if n not in state.plan_nodes}
        policy = None
        if new_nodes:
            state.plan_nodes.update(new_nodes)
            policy = _effective_policy(state.policy, state.plan_nodes)
        tenants: dict[str, TenantStanding | None] = {}
        member_roles: dict[tuple[str, str], frozenset[str]] = {}
        for tenant_id in tenant_ids:
            entitlements = loaded.tenants.get(tenant_id)
            if entitlements is None:
                tenants[tenant_id] = None
                state.tenants.pop(tenant_id, None)
            else:
                tenants[tenant_id] = TenantStanding(tenant_id, entitlements.plan_node, entitlements.status)
                state.tenants[tenant_id] = entitlements
            roles: dict[str, set[str]] = {}
            for m in loaded.memberships.get(tenant_id, ()):
                roles.setdefault(m.user_id, set()).add(m.role)
            for user in state.members.get(tenant_id, frozenset()) - roles.keys():
                member_roles[(user, tenant_id)] = frozenset()
            for user, held in roles.items():
                member_roles[(user, tenant_id)] = frozenset(held)
            state.members[tenant_id] = frozenset(roles)
        delta = IndexDelta(
            version=state.index.version + 1, tenants=tenants, member_roles=member_roles, policy=policy
        )
        state.index = state.index.apply(delta)

    # -- the sync loop ---------------------------------------------------------------------------
    def nudge(self) -> None:
        """Something committed: look now instead of at the next poll."""
        self._nudged.set()

    async def run(self) -> None:
        while True:
            await wait_for_nudge(self._nudged, self.settings.poll_interval_seconds)
            self._nudged.clear()
            try:
                if self._state is None:
                    await self.rebuild()
                else:
                    await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database is unreachable or the delta failed: keep answering from the current
                # index (staleness is tracked by _last_ok) and rebuild on the next successful pass.
                log.warning(
                    "entitlement sync failed; answering from the index at %s", self.version, exc_info=True
                )
                await asyncio.sleep(self.settings.poll_interval_seconds)

    # -- deciding --------------------------------------------------------------------------------
    def decide(self, user_id: str, tenant_id: str, resource: str, action: str) -> Decision:
        return self._require().index.decide(user_id, tenant_id, resource, action)

    def roles_of(self, user_id: str, tenant_id: str) -> MemberRoles:
        return self._require().index.roles_of(user_id, tenant_id)

    def tenant(self, tenant_id: str) -> TenantEntitlements | None:
        return self._require().tenants.get(tenant_id)

    def has_access(self, tenant_id: str) -> bool:
        entitlements = self.tenant(tenant_id)
        if entitlements is None:
            return False
        return TenantStanding(tenant_id, entitlements.plan_node, entitlements.status).grants_access

    async def check_feature(
        self, tenant_id: str, feature: str, *, quantity: int = 1, consume: bool = False
    ) -> FeatureVerdict:
        """Is `feature` available to the tenant for `quantity` more units; with `consume`, take them
        (atomically: reserve a gauge, or count metered usage for the current period).

        If the quota store (Redis) is unreachable the answer fails closed, or open for the features the
        admin listed in `fail_open_features`; either way the caller gets a decision, never an error."""
        try:
            return await self._check_feature(tenant_id, feature, quantity=quantity, consume=consume)
        except (ConnectionError, OSError, TimeoutError) as exc:
            return self._quota_unavailable(feature, exc)
        except Exception as exc:
            if type(exc).__module__.startswith("redis"):
                return self._quota_unavailable(feature, exc)
            raise

    def _quota_unavailable(self, feature: str, exc: BaseException) -> FeatureVerdict:
        log.warning("quota store unavailable for %s: %s", feature, exc)
        allowed = feature in self.settings.fail_open_features
        return FeatureVerdict(
            allowed,
            "allowed_fail_open" if allowed else "quota_unavailable",
            feature,
            None,
            None,
            None,
            None,
            None,
        )

    async def _check_feature(
        self, tenant_id: str, feature: str, *, quantity: int = 1, consume: bool = False
    ) -> FeatureVerdict:
        """Is `feature` available to the tenant for `quantity` more units; with `consume`, take them
        (atomically: reserve a gauge, or count metered usage for the current period)."""
        entitlements = self.tenant(tenant_id)
        if entitlements is None:
            return FeatureVerdict(False, "unknown_tenant", feature, None, None, None, None, None)
        grant = entitlements.features.get(feature)
        if not self.has_access(tenant_id):
            return FeatureVerdict(
                False,
                "subscription_inactive",
                feature,
                grant.kind.value if grant else None,
                grant.limit if grant else None,
                None,
                None,
                None,
            )
        if grant is None:
            return FeatureVerdict(False, "feature_not_in_plan", feature, None, None, None, None, None)
        if grant.kind is FeatureKind.BOOLEAN:
            return FeatureVerdict(True, "allowed", feature, grant.kind.value, None, None, None, None)
        if grant.kind is FeatureKind.GAUGE and feature == SEATS_FEATURE:
            # Members take seats (through the one seat check), so `used` is the active members the index
            # holds; `consume` reserves nothing here: a seat is taken by adding the member.
            used = self.seats_used(tenant_id)
            return _verdict(
                feature, grant.kind, grant.soft, _peek(used, quantity, grant.limit, grant.soft, None)
            )
        if grant.kind is FeatureKind.GAUGE:
            if consume:
                result = await self.quotas.reserve(tenant_id, feature, quantity, grant.limit, soft=grant.soft)
            else:
                used = await self.quotas.gauge(tenant_id, feature)
                result = _peek(used, quantity, grant.limit, grant.soft, None)
            return _verdict(feature, grant.kind, grant.soft, result)
        period_start, period_end = entitlements.period_start, entitlements.period_end
        if consume:
            result = await self.quotas.consume(
                tenant_id,
                feature,
                quantity,
                grant.limit,
                period_start=period_start,
                period_end=period_end,
                soft=grant.soft,
            )
        else:
            used = await self.quotas.usage(tenant_id, feature, period_start)
            result = _peek(used, quantity, grant.limit, grant.soft, period_end)
        return _verdict(feature, grant.kind, grant.soft, result)

    async def release(self, tenant_id: str, feature: str, quantity: int) -> FeatureVerdict:
        entitlements = self.tenant(tenant_id)
        grant = entitlements.features.get(feature) if entitlements else None
        if entitlements is None or grant is None or grant.kind is not FeatureKind.GAUGE:
            return FeatureVerdict(False, "feature_not_in_plan", feature, None, None, None, None, None)
        # A seat is freed by removing the member; releasing it here would only desynchronise a counter.
        used = (
            self.seats_used(tenant_id)
            if feature == SEATS_FEATURE
            else (await self.quotas.release(tenant_id, feature, quantity)).used
        )
        limit = grant.limit
        remaining = None if limit is None else max(0, limit - used)
        return FeatureVerdict(
            True, "allowed", feature, grant.kind.value, limit, used, remaining, None, grant.soft
        )

    def seats_used(self, tenant_id: str) -> int:
        """Active members of the tenant, as the index knows them (each holds one seat)."""
        return len(self._require().members.get(tenant_id, frozenset()))


def _peek(used: int, quantity: int, limit: int | None, soft: bool, resets_at: datetime | None) -> QuotaResult:
    fits = limit is None or soft or used + quantity <= limit
    remaining = None if limit is None else max(0, limit - used)
    return QuotaResult(
        allowed=fits,
        used=used,
        limit=limit,
        remaining=remaining,
        overage=0 if limit is None else max(0, used - limit),
        resets_at=resets_at,
        reason="ok" if fits else "quota_exceeded",
    )


def _verdict(feature: str, kind: FeatureKind, soft: bool, result: QuotaResult) -> FeatureVerdict:
    return FeatureVerdict(
        allowed=result.allowed,
        reason="allowed" if result.allowed else "quota_exceeded",
        feature=feature,
        kind=kind.value,
        limit=result.limit,
        used=result.used,
        remaining=result.remaining,
        resets_at=result.resets_at,
        soft=soft,
        overage=result.overage,
    )
