"""Bulk read model for the decision index: who is on which plan, with which grants and members.

This is the one place that reads other domains' tables directly (read-only, in bulk): building the index
for 10k tenants through each domain's service would be thousands of queries. It never writes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.authz.domain import ACCESS_STATUSES, Assignments, Membership, TenantStanding, TenantStatus
from gateway.catalog.domain import FeatureKind
from gateway.catalog.models import Feature, Plan, PlanGrant, PlanVersion
from gateway.customers.models import Membership as MembershipRow
from gateway.metering.allowance import DEFAULT_THRESHOLDS, CreditLot, live_at_close
from gateway.metering.allowance_models import UsageCredit, UsagePeriod
from gateway.subscriptions.domain import LIVE_STATUSES
from gateway.subscriptions.models import Subscription, SubscriptionAddon


@dataclass(frozen=True, slots=True)
class FeatureLimit:
    """A tenant's effective entitlement to one feature: base plan grant plus add-on grants.

    `limit` None = unlimited (gauge/metered) or not applicable (boolean)."""

    key: str
    kind: FeatureKind
    limit: int | None
    soft: bool


@dataclass(frozen=True, slots=True)
class MeteredAllowance:
    """A metered feature's period balance inputs beyond the grant (gateway/metering/allowance.py):
    `credits` = prepaid units live at the period's close; `metered` = the meter's usage of the period
    as last reconciled (the hot path adds its own counter of check-time consumption on top)."""

    meter: str | None
    credits: int
    metered: int
    thresholds: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TenantEntitlements:
    tenant_id: str
    plan_key: str
    plan_version: int
    plan_node: str  # the versioned plan node in the tier graph, e.g. "basic.v2"
    status: TenantStatus
    subscription_id: str
    period_start: datetime
    period_end: datetime
    features: dict[str, FeatureLimit] = field(default_factory=dict)
    # When the subscription stopped granting access (ended, paused, went past due); None while it grants
    # access. Reported with `subscription_inactive` so an app can tell "ended" from "never existed".
    inactive_since: datetime | None = None
    # Metered features with a meter or usage credits; absent = the grant alone.
    metered: dict[str, MeteredAllowance] = field(default_factory=dict)
    # A renewal in dunning (gateway/dunning) may narrow access while past due: `access` False is the
    # campaign's "revoke"; `read_only_role` its "read_only" (members act with that role alone); features
    # it switched off are `revoked_features`. Checks report these as `payment_past_due`.
    access: bool = True
    read_only_role: str | None = None
    revoked_features: frozenset[str] = frozenset()

    # Built once, with the entitlements: every feature check asks whether the standing grants access.
    standing: TenantStanding = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "standing", TenantStanding(self.tenant_id, self.plan_node, self.status, self.access)
        )

    @property
    def in_dunning(self) -> bool:
        """Past due with access narrowed by its campaign, or unpaid: a refusal is dunning's doing."""
        return self.status is TenantStatus.UNPAID or (
            self.status is TenantStatus.PAST_DUE
            and (not self.access or self.read_only_role is not None or bool(self.revoked_features))
        )


@dataclass(frozen=True, slots=True)
class LoadedTenants:
    tenants: dict[str, TenantEntitlements]
    memberships: dict[str, tuple[Membership, ...]]
    # version node → (plan key, boolean features of that version): becomes tier-graph edges.
    plan_nodes: dict[str, tuple[str, frozenset[str]]]

    def standings(self) -> list[TenantStanding]:
        return [t.standing for t in self.tenants.values()]

    def all_memberships(self) -> Iterable[Membership]:
        for members in self.memberships.values():
            yield from members


_LIVE = frozenset(status.value for status in LIVE_STATUSES)
_SubRow = tuple[Subscription, str, int]


def _current_subscriptions(rows: Sequence[Row[Subscription, str, int]]) -> list[_SubRow]:
    """Per tenant, its live subscription, else its newest one (`rows` come oldest first)."""
    current: dict[str, _SubRow] = {}
    for sub, key, version in rows:
        held = current.get(sub.tenant_id)
        if held is None or held[0].status not in _LIVE or sub.status in _LIVE:
            current[sub.tenant_id] = (sub, key, version)
    return list(current.values())


def _tenant_status(status: str) -> TenantStatus:
    try:
        return TenantStatus(status)
    except ValueError:
        # A status the policy layer does not know yet (a newer subscriptions domain) grants nothing.
        return TenantStatus.INCOMPLETE


def _inactive_since(sub: Subscription, status: TenantStatus) -> datetime | None:
    if status in ACCESS_STATUSES:
        return None
    stamps = {
        TenantStatus.PAUSED: sub.paused_at,
        TenantStatus.CANCELED: sub.ended_at or sub.canceled_at,
        TenantStatus.EXPIRED: sub.ended_at,
    }
    return stamps.get(status) or sub.updated_at


def plan_node(plan_key: str, version: int) -> str:
    return f"{plan_key}.v{version}"


def _merge(
    current: FeatureLimit | None, key: str, kind: FeatureKind, limit: int | None, soft: bool, times: int
) -> FeatureLimit:
    """Add-ons stack: limits add up (× the add-on's quantity); unlimited anywhere stays unlimited."""
    scaled = None if limit is None else limit * times
    if current is None:
        return FeatureLimit(key, kind, scaled, soft)
    if kind is FeatureKind.BOOLEAN or current.limit is None or scaled is None:
        return FeatureLimit(key, kind, None, current.soft or soft)
    return FeatureLimit(key, kind, current.limit + scaled, current.soft or soft)


async def load_tenants(session: AsyncSession, tenant_ids: Iterable[str] | None = None) -> LoadedTenants:
    """Everything the index needs for the given tenants (all tenants when None).

    Each tenant stands on its current subscription: the live one, or else the newest one that ended (or
    never started: incomplete), which keeps the tenant known with no access (`subscription_inactive`).
    Only a tenant that never subscribed is absent (-> `unknown_tenant`)."""
    only = list(tenant_ids) if tenant_ids is not None else None
    subs_q = (
        select(Subscription, Plan.key, PlanVersion.version)
        .join(Plan, Plan.id == Subscription.plan_id)
        .join(PlanVersion, PlanVersion.id == Subscription.plan_version_id)
        .order_by(Subscription.created_at, Subscription.id)
    )
    if only is not None:
        subs_q = subs_q.where(Subscription.tenant_id.in_(only))
    rows = _current_subscriptions((await session.execute(subs_q)).all())

    version_ids = {sub.plan_version_id for sub, _, _ in rows}
    addons_q = (
        select(SubscriptionAddon)
        .where(SubscriptionAddon.subscription_id.in_([sub.id for sub, _, _ in rows]))
        .where(SubscriptionAddon.removed_at.is_(None))
    )
    addons = (await session.scalars(addons_q)).all() if rows else []
    version_ids |= {a.plan_version_id for a in addons}
    metered_inputs = await _metered_inputs(session, [sub for sub, _, _ in rows])
    grants_q = (
        select(PlanGrant.plan_version_id, Feature.key, Feature.kind, PlanGrant.limit, PlanGrant.soft)
        .join(Feature, Feature.id == PlanGrant.feature_id)
        .where(PlanGrant.plan_version_id.in_(version_ids))
    )
    grants: dict[str, list[tuple[str, FeatureKind, int | None, bool]]] = defaultdict(list)
    for version_id, key, kind, limit, soft in (await session.execute(grants_q)).all() if version_ids else []:
        grants[version_id].append((key, FeatureKind(kind), limit, soft))
    addons_by_sub: dict[str, list[SubscriptionAddon]] = defaultdict(list)
    for addon in addons:
        addons_by_sub[addon.subscription_id].append(addon)

    tenants: dict[str, TenantEntitlements] = {}
    nodes: dict[str, tuple[str, frozenset[str]]] = {}
    for sub, key, version in rows:
        features: dict[str, FeatureLimit] = {}
        for fkey, kind, limit, soft in grants[sub.plan_version_id]:
            features[fkey] = _merge(features.get(fkey), fkey, kind, limit, soft, 1)
        for addon in addons_by_sub[sub.id]:
            for fkey, kind, limit, soft in grants[addon.plan_version_id]:
                features[fkey] = _merge(features.get(fkey), fkey, kind, limit, soft, addon.quantity)
        node = plan_node(key, version)
        nodes[node] = (key, frozenset(k for k, f in features.items() if f.kind is FeatureKind.BOOLEAN))
        status = _tenant_status(sub.status)
        narrowing = sub.dunning_access if status is TenantStatus.PAST_DUE else None
        revoked = (
            frozenset(sub.dunning_revoked_features or ()) if status is TenantStatus.PAST_DUE else frozenset()
        )
        for feature in revoked:
            features.pop(feature, None)  # this tenant's copy only: the plan node above keeps its features
        tenants[sub.tenant_id] = TenantEntitlements(
            tenant_id=sub.tenant_id,
            plan_key=key,
            plan_version=version,
            plan_node=node,
            status=status,
            subscription_id=sub.id,
            period_start=sub.current_period_start,
            period_end=sub.current_period_end,
            features=features,
            inactive_since=sub.past_due_at if narrowing == "revoke" else _inactive_since(sub, status),
            metered=_allowances(sub, features, metered_inputs),
            access=narrowing != "revoke",
            read_only_role=narrowing.partition(":")[2] or None if narrowing else None,
            revoked_features=revoked,
        )

    members_q = select(MembershipRow.user_id, MembershipRow.tenant_id, MembershipRow.role).where(
        MembershipRow.status == "active"
    )
    if only is not None:
        members_q = members_q.where(MembershipRow.tenant_id.in_(only))
    memberships: dict[str, list[Membership]] = defaultdict(list)
    for user_id, tenant_id, role in (await session.execute(members_q)).all():
        tenant = tenants.get(tenant_id)
        if tenant is not None and tenant.read_only_role is not None:
            role = tenant.read_only_role  # read-only while past due: every member acts with that role alone
        memberships[tenant_id].append(Membership(user_id=user_id, tenant_id=tenant_id, role=role))
    return LoadedTenants(
        tenants=tenants,
        memberships={t: tuple(m) for t, m in memberships.items()},
        plan_nodes=nodes,
    )


@dataclass(frozen=True, slots=True)
class _MeteredInputs:
    features: dict[str, tuple[str | None, tuple[int, ...]]]  # key → (meter, alert thresholds)
    credits: dict[tuple[str, str], list[CreditLot]]
    periods: dict[tuple[str, str, datetime], int]  # (subscription, feature, period start) → metered


async def _metered_inputs(session: AsyncSession, subs: Sequence[Subscription]) -> _MeteredInputs:
    """Meters, credits and reconciled usage of the given subscriptions' current periods: three queries."""
    features_q = select(Feature.key, Feature.meter, Feature.alert_thresholds).where(
        Feature.kind == FeatureKind.METERED.value
    )
    features = {
        key: (meter, tuple(thresholds) if thresholds else DEFAULT_THRESHOLDS)
        for key, meter, thresholds in (await session.execute(features_q)).all()
    }
    tenants = [sub.tenant_id for sub in subs]
    if not subs or not features:
        return _MeteredInputs(features, {}, {})
    credits_q = select(UsageCredit).where(UsageCredit.tenant_id.in_(tenants), UsageCredit.remaining > 0)
    credits: dict[tuple[str, str], list[CreditLot]] = defaultdict(list)
    for row in (await session.scalars(credits_q)).all():
        credits[(row.tenant_id, row.feature_key)].append(
            CreditLot(row.id, row.remaining, row.effective_at, row.expires_at)
        )
    periods_q = (
        select(
            UsagePeriod.subscription_id,
            UsagePeriod.feature_key,
            UsagePeriod.period_start,
            UsagePeriod.metered,
        )
        .join(  # only the current period of each subscription
            Subscription,
            (Subscription.id == UsagePeriod.subscription_id)
            & (Subscription.current_period_start == UsagePeriod.period_start),
        )
        .where(UsagePeriod.subscription_id.in_([sub.id for sub in subs]))
    )
    periods = {
        (sid, key, start): metered for sid, key, start, metered in (await session.execute(periods_q)).all()
    }
    return _MeteredInputs(features, dict(credits), periods)


def _allowances(
    sub: Subscription, features: dict[str, FeatureLimit], inputs: _MeteredInputs
) -> dict[str, MeteredAllowance]:
    allowances: dict[str, MeteredAllowance] = {}
    for key, grant in features.items():
        if grant.kind is not FeatureKind.METERED or key not in inputs.features:
            continue
        meter, thresholds = inputs.features[key]
        lots = live_at_close(inputs.credits.get((sub.tenant_id, key), ()), sub.current_period_end)
        credits = sum(lot.remaining for lot in lots)
        metered = inputs.periods.get((sub.id, key, sub.current_period_start), 0)
        allowances[key] = MeteredAllowance(meter, credits, metered, thresholds)
    return allowances


async def what_if_assignments(session: AsyncSession, tenant_ids: Iterable[str]) -> Assignments:
    """The assignments of `tenant_ids` exactly as the decision engine loads them (each tenant on its plan
    version's node, with that version's grants), for the policy what-if tool: its Casbin and index
    answers then agree with `/v1/check` for grandfathered and ended subscriptions alike."""
    wanted = set(tenant_ids)
    if not wanted:
        return Assignments(tenants=(), memberships=())
    loaded = await load_tenants(session, wanted)
    return Assignments(
        tenants=tuple(loaded.standings()),
        memberships=tuple(loaded.all_memberships()),
        plan_nodes=dict(loaded.plan_nodes),
    )
