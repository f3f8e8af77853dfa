"""Policy rules and assignments as plain values, their CSV format, and their Casbin encoding. No I/O.

A policy is two layers (see `policies/model.conf`):
- the tier graph: what a plan unlocks (included plans, roles a tenant may hand out, features, capabilities);
- role permissions and feature gates: what a role may do, and which resources a missing feature closes.
Assignments (which tenant is on which plan with which standing, which user holds which role where) are
not policy: they come from the subscriptions and identity domains, and only meet the policy here, when
both are encoded as Casbin lines for the oracle, and in the decision index.

Invariants kept by validation, because the index and the oracle only agree while they hold:
- identifiers never contain `:` (the tier graph's type prefix), `,` (Casbin's field separator) or `*`;
- `*` appears in a resource only as its last character (keyMatch ignores everything after the first one);
- the plan-inclusion graph is acyclic and at most `MAX_PLAN_DEPTH` deep, well inside the depth Casbin's
  role manager follows (10 links), so Casbin never silently stops short of a grant the index sees.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.kernel.errors import ValidationFailed

ANY = "*"
ALLOW = "allow"
DENY = "deny"
MAX_PLAN_DEPTH = 5

_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]*")
_RESOURCE_RE = re.compile(r"[A-Za-z0-9_./-]*\*?")


class InvalidPolicy(ValidationFailed):
    code = "invalid_policy"
    title = "Policy is invalid"


class NodeKind(StrEnum):
    """Types of the tier graph's nodes; the value is the node's prefix in Casbin (`role:admin`)."""

    PLAN = "plan"
    ROLE = "role"
    FEATURE = "feature"
    CAPABILITY = "capability"


class Capability(StrEnum):
    CUSTOM_ROLES = "custom_roles"  # the tenant may define its own roles (tenant-scoped permissions)


class TenantStatus(StrEnum):
    """The subscription statuses the policy layer distinguishes.

    This mirrors the subscription lifecycle without importing it: authz sits below subscriptions in the
    import flow, so the composition root maps one onto the other.
    """

    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    CANCELED = "canceled"
    EXPIRED = "expired"
    # Statuses of a first payment that never succeeded or of a subscription unpaid after dunning: the
    # tenant stays known (its standing is reported), without access.
    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"
    UNPAID = "unpaid"


# past_due is here because dunning grace is decided upstream: the caller narrows it with `access=False`.
ACCESS_STATUSES = frozenset({TenantStatus.TRIALING, TenantStatus.ACTIVE, TenantStatus.PAST_DUE})


_NODE_PREFIXES = frozenset(kind.value for kind in NodeKind)
_CAPABILITIES = frozenset(c.value for c in Capability)


def node(kind: NodeKind, key: str) -> str:
    return f"{kind.value}:{key}"


@dataclass(frozen=True, slots=True)
class RolePermission:
    """`role` may perform `action` on resources matching `resource`.

    `tenant_id` None is a catalog role, usable wherever the tier allows the role; a tenant id makes it a
    custom role of that tenant, usable while the tenant's tier has `Capability.CUSTOM_ROLES`.
    """

    role: str
    resource: str
    action: str
    tenant_id: str | None = None

    def casbin_line(self) -> tuple[str, ...]:
        domain = ANY if self.tenant_id is None else self.tenant_id
        return ("p", node(NodeKind.ROLE, self.role), domain, self.resource, self.action, ALLOW)


@dataclass(frozen=True, slots=True)
class FeatureGate:
    """Resources matching `resource` are closed for `action` unless the tenant's tier unlocks `feature`."""

    feature: str
    resource: str
    action: str = ANY

    def casbin_line(self) -> tuple[str, ...]:
        return ("p", node(NodeKind.FEATURE, self.feature), ANY, self.resource, self.action, DENY)


@dataclass(frozen=True, slots=True)
class TierGrant:
    """An edge of the tier graph: `plan` unlocks the node (`kind`, `key`); a PLAN edge includes a plan."""

    plan: str
    kind: NodeKind
    key: str

    def casbin_line(self) -> tuple[str, ...]:
        return ("g2", node(NodeKind.PLAN, self.plan), node(self.kind, self.key))


PolicyRule = RolePermission | FeatureGate | TierGrant


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    """One committed version of the policy. Built through `policy_snapshot` so it is always valid."""

    version: int
    rules: tuple[PolicyRule, ...]

    @property
    def permissions(self) -> tuple[RolePermission, ...]:
        return tuple(r for r in self.rules if isinstance(r, RolePermission))

    @property
    def gates(self) -> tuple[FeatureGate, ...]:
        return tuple(r for r in self.rules if isinstance(r, FeatureGate))

    @property
    def tier_grants(self) -> tuple[TierGrant, ...]:
        return tuple(r for r in self.rules if isinstance(r, TierGrant))


@dataclass(frozen=True, slots=True)
class TenantStanding:
    """Which plan a tenant is on and whether its subscription currently grants access."""

    tenant_id: str
    plan: str
    status: TenantStatus
    access: bool = True  # only narrows: a paused or canceled tenant gets no access whatever this says

    @property
    def grants_access(self) -> bool:
        return self.access and self.status in ACCESS_STATUSES


@dataclass(frozen=True, slots=True)
class Membership:
    user_id: str
    tenant_id: str
    role: str


# A subscribed plan version's policy node (`pro.v2`) -> (its plan's key, the boolean features its grants
# name). The catalog's grants are the one source of what a plan version unlocks; see `catalog_policy`.
PlanNodes = Mapping[str, tuple[str, frozenset[str]]]


@dataclass(frozen=True, slots=True)
class Assignments:
    tenants: tuple[TenantStanding, ...]
    memberships: tuple[Membership, ...]
    plan_nodes: PlanNodes = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlanUnlocks:
    """Everything a plan reaches in the tier graph, included plans' grants folded in."""

    plan: str
    roles: frozenset[str]
    features: frozenset[str]
    capabilities: frozenset[str]

    @property
    def custom_roles(self) -> bool:
        return Capability.CUSTOM_ROLES.value in self.capabilities


# --- validation -------------------------------------------------------------------------------------


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise InvalidPolicy(f"invalid {what}: {value!r}", field=what)
    return value


def check_key(value: str, what: str = "key") -> str:
    return _check(_KEY_RE, value, what)


def check_id(value: str, what: str = "id") -> str:
    return _check(_ID_RE, value, what)


def check_resource(value: str) -> str:
    if not value:
        raise InvalidPolicy("invalid resource: empty", field="resource")
    return _check(_RESOURCE_RE, value, "resource")


def check_action(value: str) -> str:
    return value if value == ANY else check_key(value, "action")


def _check_rule(rule: PolicyRule) -> None:
    if isinstance(rule, RolePermission):
        check_key(rule.role, "role")
        check_resource(rule.resource)
        check_action(rule.action)
        if rule.tenant_id is not None:
            check_id(rule.tenant_id, "tenant_id")
    elif isinstance(rule, FeatureGate):
        check_key(rule.feature, "feature")
        check_resource(rule.resource)
        check_action(rule.action)
    else:
        check_key(rule.plan, "plan")
        check_key(rule.key, rule.kind.value)
        if rule.kind is NodeKind.CAPABILITY and rule.key not in _CAPABILITIES:
            raise InvalidPolicy(f"unknown capability: {rule.key!r}", field="capability")


def _plan_includes(rules: Iterable[PolicyRule]) -> dict[str, set[str]]:
    includes: dict[str, set[str]] = {}
    for rule in rules:
        if isinstance(rule, TierGrant):
            bucket = includes.setdefault(rule.plan, set())
            if rule.kind is NodeKind.PLAN:
                bucket.add(rule.key)
    return includes


def _check_plan_graph(rules: Iterable[PolicyRule]) -> None:
    includes = _plan_includes(rules)
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def walk(plan: str) -> int:
        if plan in depth:
            return depth[plan]
        if plan in visiting:
            raise InvalidPolicy(f"plan inclusion cycle through {plan!r}", field="plan")
        visiting.add(plan)
        below = max((walk(child) + 1 for child in includes.get(plan, ())), default=0)
        visiting.discard(plan)
        if below > MAX_PLAN_DEPTH:
            raise InvalidPolicy(f"plan {plan!r} includes plans {below} levels deep", field="plan")
        depth[plan] = below
        return below

    for plan in includes:
        walk(plan)


def policy_snapshot(rules: Iterable[PolicyRule], version: int) -> PolicySnapshot:
    """Validate `rules` and freeze them as policy `version`; duplicates are dropped, order is kept."""
    unique = tuple(dict.fromkeys(rules))
    for rule in unique:
        _check_rule(rule)
    _check_plan_graph(unique)
    return PolicySnapshot(version=version, rules=unique)


def plan_unlocks(snapshot: PolicySnapshot) -> dict[str, PlanUnlocks]:
    """What each plan named in the tier graph reaches, following plan inclusion like Casbin's g2()."""
    edges: dict[str, list[TierGrant]] = {}
    for grant in snapshot.tier_grants:
        edges.setdefault(grant.plan, []).append(grant)
    result: dict[str, PlanUnlocks] = {}
    for plan in edges:
        reached: dict[NodeKind, set[str]] = {kind: set() for kind in NodeKind}
        stack = [plan]
        while stack:
            for grant in edges.get(stack.pop(), ()):
                if grant.key not in reached[grant.kind]:
                    reached[grant.kind].add(grant.key)
                    if grant.kind is NodeKind.PLAN:
                        stack.append(grant.key)
        result[plan] = PlanUnlocks(
            plan=plan,
            roles=frozenset(reached[NodeKind.ROLE]),
            features=frozenset(reached[NodeKind.FEATURE]),
            capabilities=frozenset(reached[NodeKind.CAPABILITY]),
        )
    return result


def is_plan_feature(rule: PolicyRule) -> bool:
    """`g2, plan:<p>, feature:<f>`: what a plan unlocks, which the catalog's plan versions own."""
    return isinstance(rule, TierGrant) and rule.kind is NodeKind.FEATURE


def catalog_policy(stored: PolicySnapshot, plan_nodes: PlanNodes) -> PolicySnapshot:
    """The policy the decision index and Casbin both judge by: the stored rules (roles, permissions,
    gates, plan inclusion, capabilities) plus one node per subscribed plan version.

    The plan version's grants are the truth for plan -> feature: a version node includes its plan's policy
    node (for roles and capabilities) and unlocks exactly the boolean features its grants name. Stored
    `plan -> feature` edges (policies published before this rule; new ones are refused) are dropped, or
    Casbin's transitive g2 would reach them through the plan node and open a gate that a newer plan
    version closed."""
    edges: list[TierGrant] = []
    for version_node, (plan_key, features) in sorted(plan_nodes.items()):
        edges.append(TierGrant(plan=version_node, kind=NodeKind.PLAN, key=plan_key))
        edges.extend(TierGrant(plan=version_node, kind=NodeKind.FEATURE, key=f) for f in sorted(features))
    kept = [rule for rule in stored.rules if not is_plan_feature(rule)]
    return policy_snapshot([*kept, *edges], stored.version)


# --- CSV format ---------------------------------------------------------------------------------------


def _rows(text: str) -> Iterable[tuple[int, list[str]]]:
    # Casbin's own policy syntax: comma-separated, spaces around fields ignored, `#` starts a comment line.
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        yield number, [field.strip() for field in next(csv.reader([stripped]))]


def _split_node(value: str, line: int) -> tuple[NodeKind, str]:
    prefix, sep, key = value.partition(":")
    if not sep or prefix not in _NODE_PREFIXES:
        raise InvalidPolicy(f"line {line}: {value!r} is not a typed node such as role:admin", line=line)
    return NodeKind(prefix), key


def _parse_rule(number: int, fields: list[str]) -> PolicyRule:
    ptype, args = fields[0], fields[1:]
    if ptype == "p" and len(args) == 5:
        subject, domain, resource, action, effect = args
        kind, key = _split_node(subject, number)
        if effect == ALLOW and kind is NodeKind.ROLE:
            return RolePermission(key, resource, action, None if domain == ANY else domain)
        if effect == DENY and kind is NodeKind.FEATURE and domain == ANY:
            return FeatureGate(key, resource, action)
        raise InvalidPolicy(
            f"line {number}: a p line is `role:<r>, <*|tenant>, res, act, allow` "
            "or `feature:<f>, *, res, act, deny`",
            line=number,
        )
    if ptype == "g2" and len(args) == 2:
        source_kind, plan = _split_node(args[0], number)
        kind, key = _split_node(args[1], number)
        if source_kind is NodeKind.PLAN:
            return TierGrant(plan, kind, key)
        raise InvalidPolicy(f"line {number}: a g2 line starts from a plan node", line=number)
    # g (user -> role) and tenant -> plan lines are assignments, owned by other domains: a policy file
    # that carried them would silently fork the source of truth.
    raise InvalidPolicy(f"line {number}: expected a 6-field p line or a 3-field g2 line", line=number)


def parse_policy(text: str, version: int) -> PolicySnapshot:
    rules: list[PolicyRule] = []
    for number, fields in _rows(text):
        rule = _parse_rule(number, fields)
        try:
            _check_rule(rule)
        except InvalidPolicy as exc:
            raise InvalidPolicy(f"line {number}: {exc.detail}", line=number) from exc
        rules.append(rule)
    return policy_snapshot(rules, version)


def parse_assignments(text: str) -> Assignments:
    """Rows `tenant, <id>, <plan>, <status>[, access|no_access]` and `member, <user>, <tenant>, <role>`."""
    tenants: dict[str, TenantStanding] = {}
    members: list[Membership] = []
    for number, fields in _rows(text):
        kind, args = fields[0], fields[1:]
        try:
            if kind == "tenant" and len(args) in (3, 4):
                if len(args) == 4 and args[3] not in ("access", "no_access"):
                    raise InvalidPolicy(f"access flag must be access or no_access, not {args[3]!r}")
                tenant_id = check_id(args[0], "tenant_id")
                if tenant_id in tenants:
                    raise InvalidPolicy(f"tenant {tenant_id!r} appears twice")
                tenants[tenant_id] = TenantStanding(
                    tenant_id=tenant_id,
                    plan=check_key(args[1], "plan"),
                    status=TenantStatus(args[2]),
                    access=len(args) == 3 or args[3] == "access",
                )
            elif kind == "member" and len(args) == 3:
                user_id, member_tenant, role = args
                members.append(
                    Membership(
                        user_id=check_id(user_id, "user_id"),
                        tenant_id=check_id(member_tenant, "tenant_id"),
                        role=check_key(role, "role"),
                    )
                )
            else:
                raise InvalidPolicy(f"unexpected row {fields!r}")
        except (InvalidPolicy, ValueError) as exc:
            raise InvalidPolicy(f"line {number}: {exc}", line=number) from exc
    return Assignments(tenants=tuple(tenants.values()), memberships=tuple(dict.fromkeys(members)))


# --- Casbin encoding ----------------------------------------------------------------------------------


def casbin_lines(
    snapshot: PolicySnapshot,
    tenants: Iterable[TenantStanding],
    memberships: Iterable[Membership],
) -> list[tuple[str, ...]]:
    """The policy plus assignments as Casbin lines `(ptype, field, ...)` for `policies/model.conf`.

    A tenant whose subscription grants no access gets no `tenant -> plan` edge: that is how the model
    denies it everything without a status field. Later standings of the same tenant replace earlier ones,
    as they do in the index.
    """
    standings = {t.tenant_id: t for t in tenants}
    lines = [rule.casbin_line() for rule in snapshot.rules]
    lines.extend(
        ("g2", standing.tenant_id, node(NodeKind.PLAN, standing.plan))
        for standing in standings.values()
        if standing.grants_access
    )
    lines.extend(
        ("g", m.user_id, node(NodeKind.ROLE, m.role), m.tenant_id) for m in dict.fromkeys(memberships)
    )
    return lines
