"""The decision index: a policy snapshot and assignments compiled into lookups that answer in microseconds.

It answers exactly what Casbin's `enforce()` answers for `policies/model.conf` (the differential test in
tests/entitlements proves it), and also says why. A decision is, in order:

1. unknown tenant, or a user with no role in it      -> unknown_tenant / unknown_subject
2. subscription without access                       -> subscription_inactive
3. a role the tier allows grants the request         -> allowed, unless a feature gate is closed for the
                                                        plan (feature_not_in_plan)
4. only a role the tier does not allow would grant   -> role_not_allowed
5. nothing grants it                                 -> no_permission

Membership is checked before the subscription so that a stranger learns nothing about a tenant's billing.

An index never changes. `apply(delta)` returns the next version, sharing every table the delta does not
touch, so a replica can swap one reference atomically and keep answering from the old index meanwhile.
Compiled grants are memoized per tier and role set on first use; the memo is a cache of a pure function,
so sharing it between versions is safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from gateway.authz.domain import (
    ANY,
    Membership,
    PlanUnlocks,
    PolicySnapshot,
    TenantStanding,
    plan_unlocks,
)


class Reason(StrEnum):
    ALLOWED = "allowed"
    FEATURE_NOT_IN_PLAN = "feature_not_in_plan"
    ROLE_NOT_ALLOWED = "role_not_allowed"
    NO_PERMISSION = "no_permission"
    SUBSCRIPTION_INACTIVE = "subscription_inactive"
    UNKNOWN_SUBJECT = "unknown_subject"
    UNKNOWN_TENANT = "unknown_tenant"


@dataclass(frozen=True, slots=True)
class Decision:
    """`role` is the role that granted (or, when denied, would have granted); `version` the index's."""

    allowed: bool
    reason: str
    version: int
    role: str | None = None
    plan: str | None = None


class MemberRoles(NamedTuple):
    """Roles the tier allows are active; the others stay assigned but inactive until the tier changes."""

    active: tuple[str, ...]
    inactive: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TenantRules:
    """Everything the index decides one tenant's (user, resource, action) requests from, as plain values.

    The client SDK's local decision mode (`clients/python`) evaluates exactly this with the same algorithm
    as `DecisionIndex.decide` (a differential test against the live server proves they agree). Lists keep
    the index's order, because the first matching line names the granting role.
    """

    tenant_id: str
    plan: str
    access: bool
    members: Mapping[str, tuple[str, ...]]  # user -> sorted roles
    allowed_roles: frozenset[str]
    custom_roles: bool  # the tier lets the tenant's own role lines count
    # role -> (resource pattern, action) lines, only for roles some member holds
    permissions: Mapping[str, tuple[tuple[str, str], ...]]
    custom_permissions: Mapping[str, tuple[tuple[str, str], ...]]
    closed_gates: tuple[tuple[str, str, str], ...]  # (resource pattern, action, feature)
    features: frozenset[str]


class IndexVersionGap(Exception):
    """A delta that does not follow this index: a message was lost, so the replica must rebuild."""

    def __init__(self, current: int, received: int) -> None:
        super().__init__(f"index is at version {current}; delta for version {received} does not follow it")
        self.current = current
        self.received = received


@dataclass(frozen=True, slots=True)
class IndexDelta:
    """Changes since the previous version. Values are the new state, not increments, so a redelivered
    delta is harmless once versions line up.

    `tenants`: tenant id -> its new standing, None when the tenant is gone.
    `member_roles`: (user id, tenant id) -> every role the user now holds there; empty removes the user.
    `policy`: a new policy snapshot, recompiled for every tenant.
    """

    version: int
    tenants: Mapping[str, TenantStanding | None] = field(default_factory=dict)
    member_roles: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    policy: PolicySnapshot | None = None


class _Matcher:
    """(resource pattern, action) pairs with a label each, matched with keyMatch and `*` actions.

    Exact resources are one dict lookup; patterns become prefixes (keyMatch ignores what follows the
    first `*`), tried in a short loop. The label is the role (or gated feature) to report.
    """

    __slots__ = ("_exact", "_prefixes")

    def __init__(self, entries: Iterable[tuple[str, str, str]]) -> None:
        exact: dict[str, dict[str, str]] = {}
        prefixes: dict[str, dict[str, str]] = {}
        for pattern, action, label in entries:
            star = pattern.find("*")
            if star < 0:
                exact.setdefault(pattern, {}).setdefault(action, label)
            else:
                prefixes.setdefault(pattern[:star], {}).setdefault(action, label)
        self._exact = exact
        self._prefixes = tuple(prefixes.items())

    def match(self, resource: str, action: str) -> str | None:
        actions = self._exact.get(resource)
        if actions is not None:
            label = actions.get(action) or actions.get(ANY)
            if label is not None:
                return label
        for prefix, actions in self._prefixes:
            if resource.startswith(prefix):
                label = actions.get(action) or actions.get(ANY)
                if label is not None:
                    return label
        return None


class _Grant:
    __slots__ = ("active", "inactive")

    def __init__(self, active: _Matcher, inactive: _Matcher) -> None:
        self.active = active
        self.inactive = inactive


_Permissions = Mapping[str, tuple[tuple[str, str], ...]]  # role -> ((resource pattern, action), ...)
_NO_PERMISSIONS: _Permissions = {}


class _TierRules:
    """What a plan's tier means for one tenant: catalog roles it allows, the tenant's custom roles if the
    tier permits them, and the feature gates it leaves closed. Shared by every tenant on the plan that
    defines no custom roles."""

    __slots__ = (
        "_catalog",
        "_custom",
        "allowed_roles",
        "closed",
        "closed_gates",
        "custom_roles",
        "features",
        "grants",
    )

    def __init__(
        self,
        unlocks: PlanUnlocks | None,
        catalog: _Permissions,
        custom: _Permissions,
        closed: tuple[tuple[str, str, str], ...],
    ) -> None:
        self.features = unlocks.features if unlocks else frozenset()
        self.allowed_roles = unlocks.roles if unlocks else frozenset()
        self.custom_roles = unlocks.custom_roles if unlocks else False
        self._catalog = catalog
        self._custom = custom
        self.closed = closed  # (resource pattern, action, feature) of every gate the plan leaves closed
        self.closed_gates = _Matcher(closed) if closed else None
        self.grants: dict[tuple[str, ...], _Grant] = {}  # memo of grant(), read directly on the hot path

    def role_active(self, role: str) -> bool:
        return role in self.allowed_roles or (self.custom_roles and role in self._custom)

    def grant(self, roles: tuple[str, ...]) -> _Grant:
        grant = self.grants.get(roles)
        if grant is None:
            grant = self.grants[roles] = self._compile(roles)
        return grant

    def _compile(self, roles: tuple[str, ...]) -> _Grant:
        # Each permission line is judged on its own, as Casbin's matcher does: a role's catalog lines
        # count if the tier allows the role, its tenant-defined lines if the tier allows custom roles.
        active: list[tuple[str, str, str]] = []
        inactive: list[tuple[str, str, str]] = []
        for role in roles:
            into = active if role in self.allowed_roles else inactive
            into.extend((resource, action, role) for resource, action in self._catalog.get(role, ()))
            into = active if self.custom_roles else inactive
            into.extend((resource, action, role) for resource, action in self._custom.get(role, ()))
        return _Grant(_Matcher(active), _Matcher(inactive))


class _CompiledPolicy:
    __slots__ = ("_by_plan", "_by_tenant", "_catalog", "_custom", "_gates", "_unlocks", "snapshot")

    def __init__(self, snapshot: PolicySnapshot) -> None:
        self.snapshot = snapshot
        self._unlocks = plan_unlocks(snapshot)
        catalog: dict[str, list[tuple[str, str]]] = {}
        custom: dict[str, dict[str, list[tuple[str, str]]]] = {}
        for perm in snapshot.permissions:
            scope = catalog if perm.tenant_id is None else custom.setdefault(perm.tenant_id, {})
            scope.setdefault(perm.role, []).append((perm.resource, perm.action))
        self._catalog: _Permissions = {role: tuple(perms) for role, perms in catalog.items()}
        self._custom: dict[str, _Permissions] = {
            tenant: {role: tuple(perms) for role, perms in roles.items()} for tenant, roles in custom.items()
        }
        self._gates = snapshot.gates
        self._by_plan: dict[str, _TierRules] = {}
        self._by_tenant: dict[tuple[str, str], _TierRules] = {}

    def rules_for(self, plan: str, tenant_id: str) -> _TierRules:
        custom = self._custom.get(tenant_id)
        if custom is None:
            rules = self._by_plan.get(plan)
            if rules is None:
                rules = self._by_plan[plan] = self._compile(plan, _NO_PERMISSIONS)
            return rules
        key = (plan, tenant_id)
        rules = self._by_tenant.get(key)
        if rules is None:
            rules = self._by_tenant[key] = self._compile(plan, custom)
        return rules

    def _compile(self, plan: str, custom: _Permissions) -> _TierRules:
        unlocks = self._unlocks.get(plan)
        features = unlocks.features if unlocks else frozenset()
        closed = tuple((g.resource, g.action, g.feature) for g in self._gates if g.feature not in features)
        return _TierRules(unlocks, self._catalog, custom, closed)


class _Tenant:
    __slots__ = ("access", "plan", "rules", "standing")

    def __init__(self, standing: TenantStanding, rules: _TierRules) -> None:
        self.standing = standing
        self.plan = standing.plan
        self.access = standing.grants_access
        self.rules = rules


def _role_tuple(roles: Iterable[str]) -> tuple[str, ...]:
    # Sorted so that equal role sets share one compiled grant and report the same granting role.
    return tuple(sorted(set(roles)))


class DecisionIndex:
    __slots__ = ("_decisions", "_members", "_policy", "_tenants", "version")

    def __init__(
        self,
        version: int,
        policy: _CompiledPolicy,
        tenants: dict[str, _Tenant],
        members: dict[str, dict[str, tuple[str, ...]]],
    ) -> None:
        self.version = version
        self._policy = policy
        self._tenants = tenants
        self._members = members
        self._decisions: dict[tuple[Reason, str | None, str | None], Decision] = {}

    @classmethod
    def build(
        cls,
        policy: PolicySnapshot,
        *,
        tenants: Iterable[TenantStanding],
        memberships: Iterable[Membership],
        version: int,
    ) -> DecisionIndex:
        compiled = _CompiledPolicy(policy)
        tenant_table = {
            standing.tenant_id: _Tenant(standing, compiled.rules_for(standing.plan, standing.tenant_id))
            for standing in tenants
        }
        held: dict[str, dict[str, set[str]]] = {}
        for m in memberships:
            held.setdefault(m.tenant_id, {}).setdefault(m.user_id, set()).add(m.role)
        members = {
            tenant_id: {user: _role_tuple(roles) for user, roles in users.items()}
            for tenant_id, users in held.items()
        }
        index = cls(version, compiled, tenant_table, members)
        index._warm(members.keys())
        return index

    @property
    def policy(self) -> PolicySnapshot:
        return self._policy.snapshot

    def decide(self, user_id: str, tenant_id: str, resource: str, action: str) -> Decision:
        tenant = self._tenants.get(tenant_id)
        if tenant is None:
            return self._verdict(Reason.UNKNOWN_TENANT, None, None)
        users = self._members.get(tenant_id)
        roles = users.get(user_id) if users is not None else None
        if roles is None:
            return self._verdict(Reason.UNKNOWN_SUBJECT, None, tenant.plan)
        if not tenant.access:
            return self._verdict(Reason.SUBSCRIPTION_INACTIVE, None, tenant.plan)
        rules = tenant.rules
        grant = rules.grants.get(roles) or rules.grant(roles)
        role = grant.active.match(resource, action)
        if role is not None:
            gates = rules.closed_gates
            if gates is not None and gates.match(resource, action) is not None:
                return self._verdict(Reason.FEATURE_NOT_IN_PLAN, role, tenant.plan)
            return self._verdict(Reason.ALLOWED, role, tenant.plan)
        role = grant.inactive.match(resource, action)
        if role is not None:
            return self._verdict(Reason.ROLE_NOT_ALLOWED, role, tenant.plan)
        return self._verdict(Reason.NO_PERMISSION, None, tenant.plan)

    def _verdict(self, reason: Reason, role: str | None, plan: str | None) -> Decision:
        # Decisions are interned per index: building a frozen dataclass costs about as much as the rest
        # of decide(), and there are only (reasons x roles x plans) distinct ones. The memo is per index,
        # never shared, because every decision carries this index's version.
        key = (reason, role, plan)
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._decisions[key] = Decision(
                reason is Reason.ALLOWED, reason, self.version, role, plan
            )
        return decision

    def feature_enabled(self, tenant_id: str, feature_key: str) -> bool:
        tenant = self._tenants.get(tenant_id)
        return tenant is not None and tenant.access and feature_key in tenant.rules.features

    def roles_of(self, user_id: str, tenant_id: str) -> MemberRoles:
        """The user's roles in the tenant, split by what the tenant's tier allows.

        The split ignores the subscription's access: a paused tenant's admins are still admins, they are
        just denied everything (reason subscription_inactive) until it resumes.
        """
        roles = self._members.get(tenant_id, {}).get(user_id, ())
        tenant = self._tenants.get(tenant_id)
        if tenant is None:
            return MemberRoles((), roles)
        active = tuple(r for r in roles if tenant.rules.role_active(r))
        return MemberRoles(active, tuple(r for r in roles if r not in active))

    def export(self, tenant_id: str) -> TenantRules | None:
        """The tenant's decision inputs for an out-of-process decider (None: the index does not know it)."""
        tenant = self._tenants.get(tenant_id)
        if tenant is None:
            return None
        members = dict(self._members.get(tenant_id, {}))
        held = {role for roles in members.values() for role in roles}
        rules = tenant.rules
        return TenantRules(
            tenant_id=tenant_id,
            plan=tenant.plan,
            access=tenant.access,
            members=members,
            allowed_roles=rules.allowed_roles,
            custom_roles=rules.custom_roles,
            permissions={r: rules._catalog[r] for r in sorted(held) if r in rules._catalog},
            custom_permissions={r: rules._custom[r] for r in sorted(held) if r in rules._custom},
            closed_gates=rules.closed,
            features=rules.features,
        )

    def tenant_ids(self) -> set[str]:
        """Every tenant the index knows: subscribed ones and ones with members."""
        return set(self._tenants) | set(self._members)

    def member_count(self, tenant_id: str) -> int:
        """How many users hold a role in the tenant (each holds one seat)."""
        return len(self._members.get(tenant_id, ()))

    def inputs_of(self, tenant_id: str) -> tuple[TenantStanding | None, dict[str, tuple[str, ...]]]:
        """What the index decides a tenant's requests from: its standing (plan node, status) and its
        members' roles. The anti-entropy check compares these with the database."""
        tenant = self._tenants.get(tenant_id)
        return (tenant.standing if tenant is not None else None, dict(self._members.get(tenant_id, {})))

    def apply(self, delta: IndexDelta) -> DecisionIndex:
        """The index at `delta.version`; raises `IndexVersionGap` unless that is exactly the next one."""
        if delta.version != self.version + 1:
            raise IndexVersionGap(self.version, delta.version)
        policy = self._policy
        tenants = self._tenants
        if delta.policy is not None:
            policy = _CompiledPolicy(delta.policy)
            tenants = {
                tid: _Tenant(t.standing, policy.rules_for(t.plan, tid)) for tid, t in self._tenants.items()
            }
        if delta.tenants:
            tenants = dict(tenants) if tenants is self._tenants else tenants
            for tenant_id, standing in delta.tenants.items():
                if standing is None:
                    tenants.pop(tenant_id, None)
                else:
                    tenants[tenant_id] = _Tenant(standing, policy.rules_for(standing.plan, tenant_id))
        members = self._members
        touched: dict[str, dict[str, tuple[str, ...]]] = {}
        if delta.member_roles:
            # Copy only the outer table and the tenants the delta touches; every other tenant's member
            # table is shared with the previous version.
            members = dict(members)
            for (user_id, tenant_id), roles in delta.member_roles.items():
                users = touched.get(tenant_id)
                if users is None:
                    users = touched[tenant_id] = dict(members.get(tenant_id, {}))
                    members[tenant_id] = users
                if roles:
                    users[user_id] = _role_tuple(roles)
                else:
                    users.pop(user_id, None)
            for tenant_id, users in touched.items():
                if not users:
                    del members[tenant_id]
        index = DecisionIndex(delta.version, policy, tenants, members)
        index._warm(members.keys() if delta.policy is not None else touched.keys() | delta.tenants.keys())
        return index

    def _warm(self, tenant_ids: Iterable[str]) -> None:
        # Compile grants now rather than on a request's first check, so that cost never shows in p99.
        for tenant_id in tenant_ids:
            tenant = self._tenants.get(tenant_id)
            if tenant is not None:
                for roles in self._members.get(tenant_id, {}).values():
                    tenant.rules.grant(roles)
