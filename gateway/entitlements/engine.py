"""The per-replica decision engine: an immutable decision index kept current by tailing the outbox.

Design (ARCHITECTURE.md §4, with one change, argued in README.md): the outbox *is* the change stream.
Every state change already writes an event in its own transaction, so a replica catches up by tailing the
outbox through `gateway.db.stream` (the one reader every outbox consumer shares), from the database, not
from Redis. That reader cannot skip a committed event, also one whose transaction commits long after
events with higher seqs (see its docstring). Redis pub/sub only carries a "something changed" nudge so
replicas look immediately instead of at the next poll. A lost nudge therefore costs at most one poll
interval, and Redis being down costs nothing but that latency.

Events are applied as "reload this tenant" (or "reload the policy"), never as increments, so reading an
event twice is harmless.

Defence in depth: every `anti_entropy_seconds` the engine compares each tenant's decision inputs (plan
version, status, grants and seats, members' roles; and the policy version) with the database and reloads
the tenants that differ, counting them (`anti_entropy_repairs`). With a sound stream the count stays 0;
anything else is a bug worth a warning, and the replica heals itself meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.authz.domain import PolicySnapshot, TenantStanding, catalog_policy
from gateway.catalog.domain import FeatureKind
from gateway.db.outbox import OutboxEvent
from gateway.db.session import Database
from gateway.db.stream import DEFAULT_WARN_AFTER_SECONDS, OutboxTail, horizon_watch
from gateway.entitlements.breaker import QuotaStoreUnavailable, is_outage
from gateway.entitlements.feed import ChangeFeed
from gateway.entitlements.index import Decision, DecisionIndex, IndexDelta, MemberRoles
from gateway.entitlements.loader import LoadedTenants, TenantEntitlements, load_tenants
from gateway.entitlements.quotas import QuotaResult, QuotaStore
from gateway.entitlements.seats import SEATS_FEATURE
from gateway.kernel.clock import Clock
from gateway.kernel.waiting import wait_for_nudge

log = logging.getLogger("tiergate.entitlements")

PolicyLoader = Callable[[AsyncSession], Awaitable[PolicySnapshot]]
# At most this many events per catch-up transaction (a pass loops until it has read them all), and this
# many tenants per reload query (bind parameters are limited: 32,767 per statement on asyncpg).
SYNC_BATCH = 20_000
RELOAD_CHUNK = 1_000


@dataclass(frozen=True, slots=True)
class EngineSettings:
    poll_interval_seconds: float = 1.0
    # Past this age without a successful catch-up, the index is too stale to trust: checks fail closed,
    # except features listed in `fail_open_features`.
    max_staleness_seconds: float = 30.0
    fail_open_features: frozenset[str] = frozenset()
    # Warn when the outbox horizon is held back this long (gateway.db.stream).
    horizon_warn_seconds: float = DEFAULT_WARN_AFTER_SECONDS
    # How often the anti-entropy check compares the index with the database; 0 turns it off.
    anti_entropy_seconds: float = 300.0


# A feature kind's name without the enum's `value` descriptor (~0.3 µs a read on Python 3.11; a batch of
# on/off features reads it once per item).
_KIND_NAMES = {kind: kind.value for kind in FeatureKind}


class FeatureVerdict(msgspec.Struct, frozen=True, gc=False):
    """A feature's answer (a msgspec Struct, not a frozen dataclass: built per check, and a frozen
    dataclass costs ~1.8 µs to build against ~0.15 µs for a frozen Struct)."""

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


class EngineView:
    """One consistent reference to what a replica knows: the index, the tenants' entitlements and the
    outbox position they reflect, taken together. Nothing in a view changes after it is published (a
    change builds new tables and publishes a new view), so a caller that holds one (a batch of checks
    awaiting Redis between items) answers every item from the same version while the engine moves on."""

    __slots__ = ("_engine", "index", "tenants", "version")

    def __init__(
        self, engine: Engine, index: DecisionIndex, tenants: Mapping[str, TenantEntitlements], version: int
    ) -> None:
        self._engine = engine
        self.index = index
        self.tenants = tenants
        self.version = version

    @property
    def stale(self) -> bool:
        return self._engine.stale

    @property
    def settings(self) -> EngineSettings:
        return self._engine.settings

    def decide(self, user_id: str, tenant_id: str, resource: str, action: str) -> Decision:
        decision = self.index.decide(user_id, tenant_id, resource, action)
        # A plain dict increment (~50 ns) on the hot path; /metrics reads the totals (observability).
        self._engine.decisions[decision.reason] += 1
        return decision

    def roles_of(self, user_id: str, tenant_id: str) -> MemberRoles:
        return self.index.roles_of(user_id, tenant_id)

    def tenant(self, tenant_id: str) -> TenantEntitlements | None:
        return self.tenants.get(tenant_id)

    def has_access(self, tenant_id: str) -> bool:
        entitlements = self.tenants.get(tenant_id)
        if entitlements is None:
            return False
        return entitlements.standing.grants_access

    def seats_used(self, tenant_id: str) -> int:
        """Active members of the tenant, as the index knows them (each holds one seat)."""
        return self.index.member_count(tenant_id)

    def token_claims(self, user_id: str, tenant_id: str) -> dict[str, object]:
        """The claims of an end user's access token: who, where, with which active roles, on which plan
        version, with which boolean features on (from the version's grants, as every check decides)."""
        tenant = self.tenants.get(tenant_id)
        return {
            "sub": user_id,
            "tid": tenant_id,
            "roles": list(self.roles_of(user_id, tenant_id).active),
            "plan": tenant.plan_key if tenant else None,
            "pv": tenant.plan_version if tenant else None,
            "features": self.boolean_features(tenant_id),
            "iv": self.version,
        }

    def boolean_features(self, tenant_id: str) -> list[str]:
        """The on/off features that are on for the tenant now (none without access)."""
        tenant = self.tenants.get(tenant_id)
        if tenant is None or not self.has_access(tenant_id):
            return []
        return sorted(k for k, f in tenant.features.items() if f.kind is FeatureKind.BOOLEAN)

    async def check_feature(
        self, tenant_id: str, feature: str, *, quantity: int = 1, consume: bool = False
    ) -> FeatureVerdict:
        """Is `feature` available to the tenant for `quantity` more units; with `consume`, take them
        (atomically: reserve a gauge, or count metered usage for the current period).

        If the quota store (Redis) is unreachable the answer fails closed, or open for the features the
        admin listed in `fail_open_features`; either way the caller gets a decision, never an error."""
        try:
            verdict = await self._check_feature(tenant_id, feature, quantity=quantity, consume=consume)
        except (ConnectionError, OSError, TimeoutError) as exc:
            verdict = self._quota_unavailable(feature, exc)
        except Exception as exc:
            if not type(exc).__module__.startswith("redis"):
                raise
            verdict = self._quota_unavailable(feature, exc)
        self._engine.feature_verdicts[verdict.reason] += 1
        return verdict

    def _quota_unavailable(self, feature: str, exc: BaseException) -> FeatureVerdict:
        self._engine.quota_errors += 1
        # An open breaker logged its own state change: one line per refused check would flood the log.
        level = logging.DEBUG if isinstance(exc, QuotaStoreUnavailable) else logging.WARNING
        log.log(level, "quota store unavailable for %s: %r", feature, exc)
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

    def check_feature_now(self, tenant_id: str, feature: str, *, quantity: int = 1) -> FeatureVerdict | None:
        """`check_feature`'s answer when the index alone gives it (unknown tenant, no access, not in the
        plan, an on/off feature, seats), counted like any verdict; None when the quota store must be
        asked (a gauge or a metered balance). Lets a batch skip a coroutine per item."""
        verdict = self._feature_from_index(tenant_id, feature, quantity)
        if verdict is not None:
            self._engine.feature_verdicts[verdict.reason] += 1
        return verdict

    def _feature_from_index(self, tenant_id: str, feature: str, quantity: int) -> FeatureVerdict | None:
        entitlements = self.tenants.get(tenant_id)
        if entitlements is None:
            return FeatureVerdict(False, "unknown_tenant", feature, None, None, None, None, None)
        grant = entitlements.features.get(feature)
        if not entitlements.standing.grants_access:
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
            return FeatureVerdict(True, "allowed", feature, _KIND_NAMES[grant.kind], None, None, None, None)
        if grant.kind is FeatureKind.GAUGE and feature == SEATS_FEATURE:
            # Members take seats (through the one seat check), so `used` is the active members the index
            # holds; `consume` reserves nothing here: a seat is taken by adding the member.
            used = self.seats_used(tenant_id)
            return _verdict(
                feature, grant.kind, grant.soft, _peek(used, quantity, grant.limit, grant.soft, None)
            )
        return None

    async def _check_feature(
        self, tenant_id: str, feature: str, *, quantity: int = 1, consume: bool = False
    ) -> FeatureVerdict:
        """Is `feature` available to the tenant for `quantity` more units; with `consume`, take them
        (atomically: reserve a gauge, or count metered usage for the current period)."""
        from_index = self._feature_from_index(tenant_id, feature, quantity)
        if from_index is not None:
            return from_index
        entitlements = self.tenant(tenant_id)
        assert entitlements is not None  # the index answered for an unknown tenant
        grant = entitlements.features[feature]
        quotas = self._engine.quotas
        if grant.kind is FeatureKind.GAUGE:
            if consume:
                result = await quotas.reserve(tenant_id, feature, quantity, grant.limit, soft=grant.soft)
            else:
                used = await quotas.gauge(tenant_id, feature)
                result = _peek(used, quantity, grant.limit, grant.soft, None)
            return _verdict(feature, grant.kind, grant.soft, result)
        period_start, period_end = entitlements.period_start, entitlements.period_end
        # A metered balance (gateway/metering/allowance.py): the allowance is the grant plus usage
        # credits; the meter's usage as last reconciled stands before the counter, which holds only
        # what checks consumed. The counter is asked with what is left of the allowance, so its atomic
        # limit check stays the one place a hard limit is enforced.
        balance = entitlements.metered.get(feature)
        limit = grant.limit
        base = 0
        if balance is not None:
            limit = None if grant.limit is None else grant.limit + balance.credits
            base = balance.metered
        if consume:
            counted = await quotas.consume(
                tenant_id,
                feature,
                quantity,
                None if limit is None else max(0, limit - base),
                period_start=period_start,
                period_end=period_end,
                soft=grant.soft,
            )
            used = base + counted.used
            result = QuotaResult(
                allowed=counted.allowed,
                used=used,
                limit=limit,
                remaining=None if limit is None else max(0, limit - used),
                overage=0 if limit is None or not grant.soft else max(0, used - limit),
                resets_at=counted.resets_at,
                reason=counted.reason,
            )
        else:
            used = base + await quotas.usage(tenant_id, feature, period_start)
            result = _peek(used, quantity, limit, grant.soft, period_end)
        return _verdict(feature, grant.kind, grant.soft, result)

    async def release(self, tenant_id: str, feature: str, quantity: int) -> FeatureVerdict:
        entitlements = self.tenant(tenant_id)
        grant = entitlements.features.get(feature) if entitlements else None
        if entitlements is None or grant is None or grant.kind is not FeatureKind.GAUGE:
            return FeatureVerdict(False, "feature_not_in_plan", feature, None, None, None, None, None)
        if feature == SEATS_FEATURE:
            # A seat is freed by removing the member; releasing it here would only desynchronise a counter.
            used = self.seats_used(tenant_id)
            remaining = None if grant.limit is None else max(0, grant.limit - used)
            return FeatureVerdict(
                True, "allowed", feature, grant.kind.value, grant.limit, used, remaining, None, grant.soft
            )
        try:
            result = await self._engine.quotas.release(tenant_id, feature, quantity)
        except Exception as exc:
            # The units stay counted until the gauge is next set from its source of truth; the caller
            # gets a decision, never a 5xx.
            if not is_outage(exc):
                raise
            log.warning("quota store unavailable; %s not released: %r", feature, exc)
            return FeatureVerdict(
                False, "quota_unavailable", feature, grant.kind.value, grant.limit, None, None, None
            )
        limit = grant.limit
        remaining = None if limit is None else max(0, limit - result.used)
        return FeatureVerdict(
            True, "allowed", feature, grant.kind.value, limit, result.used, remaining, None, grant.soft
        )


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
        self._view: EngineView | None = None  # replaced whole, never changed: see EngineView
        self._last_ok = 0.0
        self._nudged = asyncio.Event()
        self._lock = asyncio.Lock()
        self.on_synced: list[Callable[[int], None]] = []
        # What this replica applied, in order: the SDK's local decision mode follows it (GET /v1/changes).
        self.feed = ChangeFeed()
        self._tail = self._new_tail()
        self._last_check = time.monotonic()
        # Anti-entropy counters (reported by /health and logged): checks run, tenants found to differ.
        self.anti_entropy_runs = 0
        self.anti_entropy_repairs = 0
        # Answers by reason since start (policy decisions, feature/quota verdicts), for /metrics.
        self.decisions: collections.Counter[str] = collections.Counter()
        self.feature_verdicts: collections.Counter[str] = collections.Counter()
        # Quota-store outages seen by the checks (timeouts, refused connections, an open breaker).
        self.quota_errors = 0

    def _new_tail(self) -> OutboxTail:
        return OutboxTail(
            "entitlements", watch=horizon_watch("entitlements", self.settings.horizon_warn_seconds)
        )

    # -- state -----------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._state is not None

    @property
    def version(self) -> int:
        """The outbox position this replica's index reflects: comparable across replicas."""
        return self._view.version if self._view else 0

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
        # Read-only (as every transaction of the engine: it only reads): on SQLite it does not take the
        # one write lock, so neither a start-up nor each second's catch-up queues behind a writer or
        # holds one up. A deferred transaction still reads one snapshot from its first statement on.
        async with self._lock, self.db.unit_of_work(read_only=True) as session:
            # Position the reader first: whatever commits after this is read again (harmless), nothing
            # committed before it is missing from the state loaded below.
            tail = self._new_tail()
            watermark = await tail.start(session)
            stored = await self.load_policy(session)
            loaded = await load_tenants(session)
            self._install(stored, loaded, watermark)
            self._tail = tail
            self.feed.reset(watermark)
        self._last_ok = time.monotonic()
        self._last_check = time.monotonic()
        for callback in self.on_synced:
            callback(watermark)

    def _install(self, stored: PolicySnapshot, loaded: LoadedTenants, watermark: int) -> None:
        index = DecisionIndex.build(
            catalog_policy(stored, loaded.plan_nodes),
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
        self._publish(self._state)

    def _publish(self, state: _State) -> None:
        # One assignment: a reader holds either the previous view or this one, never a mix.
        self._view = EngineView(self, state.index, state.tenants, state.watermark)

    async def sync(self) -> int:
        """Catch up with the outbox; returns the number of new events applied."""
        self._require()
        async with self._lock:
            applied = await self._sync_locked()
        self._last_ok = time.monotonic()
        state = self._require()
        for callback in self.on_synced:
            callback(state.watermark)
        return applied

    async def _sync_locked(self) -> int:
        applied = 0
        while True:
            async with self.db.unit_of_work(read_only=True) as session:
                batch = await self._tail.read(
                    session, OutboxEvent.type, OutboxEvent.tenant_id, limit=SYNC_BATCH
                )
                if batch.rows:
                    await self._apply_events(session, batch.rows)
            # Only once the events are applied: a failure above leaves them unread, to be read again.
            self._tail.acknowledge(batch)
            state = self._require()
            state.watermark = max(state.watermark, self._tail.top)
            self._publish(state)
            if batch.rows:
                self.feed.publish(
                    state.watermark,
                    {row.tenant_id for row in batch.rows if row.tenant_id},
                    policy=any(row.type.startswith("policy.") for row in batch.rows),
                )
            applied += len(batch.rows)
            if batch.complete:
                return applied

    async def _apply_events(self, session: AsyncSession, rows: Sequence[Any]) -> None:
        state = self._require()
        policy_changed = any(row.type.startswith("policy.") for row in rows)
        tenants = {row.tenant_id for row in rows if row.tenant_id}
        if policy_changed:
            stored = await self.load_policy(session)
            loaded = await load_tenants(session)
            self._install(stored, loaded, max(state.watermark, *(row.seq for row in rows)))
        elif tenants:
            self._apply_tenants(state, tenants, await _load_in_chunks(session, tenants))

    # -- anti-entropy ----------------------------------------------------------------------------
    async def check_consistency(self) -> int:
        """Compare every tenant's decision inputs in the index with the database; reload the ones that
        differ. Returns how many differed (also added to `anti_entropy_repairs`).

        Catches up first, and leaves out tenants named by events that committed while it loaded (the
        next sync applies those), so a tenant counts only if the index missed a change for good."""
        async with self._lock:
            await self._sync_locked()
            async with self.db.unit_of_work(read_only=True) as session:
                stored = await self.load_policy(session)
                loaded = await load_tenants(session)
                late = await self._tail.read(session, OutboxEvent.type, OutboxEvent.tenant_id)
            differing = self._repair(stored, loaded, late.rows)
        self.anti_entropy_runs += 1
        self.anti_entropy_repairs += len(differing)
        self._last_check = time.monotonic()
        if differing:
            log.warning(
                "anti-entropy: the index of this replica differed from the database for %d tenant(s) %s; "
                "reloaded (total repaired: %d)",
                len(differing),
                differing[:10],
                self.anti_entropy_repairs,
            )
        else:
            log.info(
                "anti-entropy: the index matches the database (repaired so far: %d)",
                self.anti_entropy_repairs,
            )
        return len(differing)

    def _repair(self, stored: PolicySnapshot, loaded: LoadedTenants, late: Sequence[Any]) -> list[str]:
        state = self._require()
        if stored.version != state.policy.version:
            self._install(stored, loaded, state.watermark)
            self.feed.publish(state.watermark, (), policy=True)
            return ["<policy>"]
        if any(row.type.startswith("policy.") for row in late):
            return []  # a policy change is on its way: the next sync rebuilds everything anyway
        in_flight = {row.tenant_id for row in late if row.tenant_id}
        known = state.index.tenant_ids() | set(loaded.tenants) | set(loaded.memberships)
        differing = sorted(t for t in known - in_flight if _index_inputs(state, t) != _db_inputs(loaded, t))
        for tenant_id in differing:
            # Users only the (wrong) index knows must be removed too: let the reload see them.
            _, index_members = state.index.inputs_of(tenant_id)
            state.members[tenant_id] = state.members.get(tenant_id, frozenset()) | frozenset(index_members)
        if differing:
            self._apply_tenants(state, differing, loaded)
            self._publish(state)
            self.feed.publish(state.watermark, differing)
        return differing

    @property
    def anti_entropy_due(self) -> bool:
        interval = self.settings.anti_entropy_seconds
        return interval > 0 and time.monotonic() - self._last_check >= interval

    def _apply_tenants(self, state: _State, tenant_ids: Iterable[str], loaded: LoadedTenants) -> None:
        new_nodes = {n: v for n, v in loaded.plan_nodes.items() if n not in state.plan_nodes}
        policy = None
        if new_nodes:
            state.plan_nodes.update(new_nodes)
            policy = catalog_policy(state.policy, state.plan_nodes)
        # A fresh table, not an update in place: the published view still reads the old one.
        state.tenants = dict(state.tenants)
        tenants: dict[str, TenantStanding | None] = {}
        member_roles: dict[tuple[str, str], frozenset[str]] = {}
        for tenant_id in tenant_ids:
            entitlements = loaded.tenants.get(tenant_id)
            if entitlements is None:
                tenants[tenant_id] = None
                state.tenants.pop(tenant_id, None)
            else:
                tenants[tenant_id] = entitlements.standing
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
                    if self.anti_entropy_due:
                        await self.check_consistency()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database is unreachable or the delta failed: keep answering from the current
                # index (staleness is tracked by _last_ok) and rebuild on the next successful pass.
                log.warning(
                    "entitlement sync failed; answering from the index at %s", self.version, exc_info=True
                )
                await asyncio.sleep(self.settings.poll_interval_seconds)

    # -- deciding (each call on the current view; hold `view()` to answer several from one) ---------
    def view(self) -> EngineView:
        view = self._view
        if view is None:
            raise RuntimeError("the decision engine has not loaded yet")
        return view

    def decide(self, user_id: str, tenant_id: str, resource: str, action: str) -> Decision:
        return self.view().decide(user_id, tenant_id, resource, action)

    def roles_of(self, user_id: str, tenant_id: str) -> MemberRoles:
        return self.view().roles_of(user_id, tenant_id)

    def tenant(self, tenant_id: str) -> TenantEntitlements | None:
        return self.view().tenant(tenant_id)

    def has_access(self, tenant_id: str) -> bool:
        return self.view().has_access(tenant_id)

    async def check_feature(
        self, tenant_id: str, feature: str, *, quantity: int = 1, consume: bool = False
    ) -> FeatureVerdict:
        return await self.view().check_feature(tenant_id, feature, quantity=quantity, consume=consume)

    async def release(self, tenant_id: str, feature: str, quantity: int) -> FeatureVerdict:
        return await self.view().release(tenant_id, feature, quantity)

    def seats_used(self, tenant_id: str) -> int:
        return self.view().seats_used(tenant_id)


async def _load_in_chunks(session: AsyncSession, tenant_ids: Iterable[str]) -> LoadedTenants:
    ids = sorted(tenant_ids)
    parts = [await load_tenants(session, ids[i : i + RELOAD_CHUNK]) for i in range(0, len(ids), RELOAD_CHUNK)]
    if len(parts) == 1:
        return parts[0]
    return LoadedTenants(
        tenants={k: v for part in parts for k, v in part.tenants.items()},
        memberships={k: v for part in parts for k, v in part.memberships.items()},
        plan_nodes={k: v for part in parts for k, v in part.plan_nodes.items()},
    )


def _features_digest(entitlements: TenantEntitlements | None) -> tuple[Any, ...] | None:
    if entitlements is None:
        return None
    e = entitlements
    features = tuple(sorted((f.key, f.kind.value, f.limit, f.soft) for f in e.features.values()))
    return (e.plan_node, e.status, e.subscription_id, e.period_start, e.period_end, features)


def _index_inputs(state: _State, tenant_id: str) -> tuple[Any, ...]:
    """A tenant's decision inputs as this replica holds them: standing and roles from the index itself
    (what decides), grants and seats from the entitlements beside it."""
    standing, members = state.index.inputs_of(tenant_id)
    standing_key = (standing.plan, standing.status) if standing is not None else None
    roles = tuple(sorted(members.items()))
    return (standing_key, _features_digest(state.tenants.get(tenant_id)), roles)


def _db_inputs(loaded: LoadedTenants, tenant_id: str) -> tuple[Any, ...]:
    entitlements = loaded.tenants.get(tenant_id)
    standing_key = (entitlements.plan_node, entitlements.status) if entitlements is not None else None
    held: dict[str, set[str]] = {}
    for m in loaded.memberships.get(tenant_id, ()):
        held.setdefault(m.user_id, set()).add(m.role)
    roles = tuple(sorted((user, tuple(sorted(r))) for user, r in held.items()))
    return (standing_key, _features_digest(entitlements), roles)


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
