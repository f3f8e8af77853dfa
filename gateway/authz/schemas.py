"""Request and response types of the policy API (msgspec).

A rule is a tagged union on `type`: `permission` (a role may do an action on resources), `gate` (a
feature closes resources) and `tier` (a plan unlocks a role, feature, plan or capability). Responses add
`line`, the rule as Casbin writes it; a request may send `line` back (so a fetched policy can be edited and
replaced as is), but then it must match the rule's fields. Identifier syntax is checked by the domain
(`gateway/authz/domain.py`), once, so the API and policy files accept exactly the same rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct

from gateway.authz.domain import (
    FeatureGate,
    InvalidPolicy,
    NodeKind,
    PolicyRule,
    RolePermission,
    TierGrant,
)
from gateway.authz.service import (
    Verdict,
    VersionInfo,
    WhatIfReport,
    WhatIfRequest,
    WhatIfResult,
    line_text,
)

Ident = Annotated[str, Meta(min_length=1, max_length=100)]
Pattern = Annotated[str, Meta(min_length=1, max_length=200)]
Note = Annotated[str, Meta(max_length=1000)]
LineText = Annotated[str, Meta(max_length=500)]
MAX_RULES = 10_000
MAX_EDIT = 1_000


class PermissionRule(Struct, tag_field="type", tag="permission", forbid_unknown_fields=True):
    """`role` may `action` on `resource`; `customer` set makes it that customer's custom role."""

    role: Ident
    resource: Pattern
    action: Ident
    customer: Ident | None = None
    line: LineText | None = None


class GateRule(Struct, tag_field="type", tag="gate", forbid_unknown_fields=True):
    """`resource` is closed for `action` (`*` = every action) unless the plan unlocks `feature`."""

    feature: Ident
    resource: Pattern
    action: Ident = "*"
    line: LineText | None = None


class TierRule(Struct, tag_field="type", tag="tier", forbid_unknown_fields=True):
    """`plan` unlocks `key` of `kind`; kind `plan` makes `plan` include that plan and all it unlocks.
    Kind `feature` is refused on publish (422 `plan_feature_in_policy`): a plan's features are its plan
    versions' grants in the catalog."""

    plan: Ident
    kind: Literal["role", "feature", "plan", "capability"]
    key: Ident
    line: LineText | None = None


Rule = PermissionRule | GateRule | TierRule


def to_domain(rules: list[Rule], where: str) -> list[PolicyRule]:
    result: list[PolicyRule] = []
    for i, rule in enumerate(rules):
        domain: PolicyRule
        if isinstance(rule, PermissionRule):
            domain = RolePermission(rule.role, rule.resource, rule.action, rule.customer)
        elif isinstance(rule, GateRule):
            domain = FeatureGate(rule.feature, rule.resource, rule.action)
        else:
            domain = TierGrant(rule.plan, NodeKind(rule.kind), rule.key)
        if rule.line is not None and rule.line != line_text(domain.casbin_line()):
            raise InvalidPolicy(
                f"{where}[{i}].line {rule.line!r} does not match the rule's fields "
                f"({line_text(domain.casbin_line())!r}); send one or the other",
                field=f"{where}[{i}].line",
            )
        result.append(domain)
    return result


def of_domain(rule: PolicyRule) -> Rule:
    line = line_text(rule.casbin_line())
    if isinstance(rule, RolePermission):
        return PermissionRule(rule.role, rule.resource, rule.action, rule.tenant_id, line)
    if isinstance(rule, FeatureGate):
        return GateRule(rule.feature, rule.resource, rule.action, line)
    return TierRule(rule.plan, rule.kind.value, rule.key, line)


# --- requests -------------------------------------------------------------------------------------------


class PolicyEdit(Struct, forbid_unknown_fields=True):
    add: Annotated[list[Rule], Meta(max_length=MAX_EDIT)] = []
    remove: Annotated[list[Rule], Meta(max_length=MAX_EDIT)] = []
    note: Note | None = None


class PolicyReplace(Struct, forbid_unknown_fields=True):
    rules: Annotated[list[Rule], Meta(max_length=MAX_RULES)]
    note: Note | None = None


class PolicyRestore(Struct, forbid_unknown_fields=True):
    note: Note | None = None


class DecisionRequest(Struct, forbid_unknown_fields=True):
    user: Ident
    customer: Ident
    resource: Pattern
    action: Ident

    def to_domain(self) -> WhatIfRequest:
        return WhatIfRequest(self.user, self.customer, self.resource, self.action)


class WhatIf(Struct, forbid_unknown_fields=True):
    """A draft as an edit of the current policy (`add`/`remove`) or as a complete rule list (`rules`)."""

    requests: Annotated[list[DecisionRequest], Meta(min_length=1, max_length=1000)]
    add: Annotated[list[Rule], Meta(max_length=MAX_EDIT)] = []
    remove: Annotated[list[Rule], Meta(max_length=MAX_EDIT)] = []
    rules: Annotated[list[Rule], Meta(max_length=MAX_RULES)] | None = None


# --- responses ------------------------------------------------------------------------------------------


class Policy(Struct):
    object: Literal["policy"]
    version: int
    rules: list[Rule]


class PolicyDiff(Struct):
    added: list[Rule]
    removed: list[Rule]


class PolicyVersion(Struct):
    object: Literal["policy_version"]
    version: int
    created_at: datetime
    author: str | None
    note: str | None
    rules: list[Rule]
    diff: PolicyDiff

    @classmethod
    def of(cls, info: VersionInfo) -> PolicyVersion:
        return cls(
            "policy_version",
            info.version,
            info.created_at,
            info.author,
            info.note,
            [of_domain(r) for r in info.rules],
            PolicyDiff([of_domain(r) for r in info.added], [of_domain(r) for r in info.removed]),
        )


class PolicyVersionSummary(Struct):
    object: Literal["policy_version"]
    version: int
    created_at: datetime
    author: str | None
    note: str | None
    rule_count: int
    added: int
    removed: int

    @classmethod
    def of(cls, info: VersionInfo) -> PolicyVersionSummary:
        return cls(
            "policy_version",
            info.version,
            info.created_at,
            info.author,
            info.note,
            len(info.rules),
            len(info.added),
            len(info.removed),
        )


class PolicyVersionList(Struct):
    data: list[PolicyVersionSummary]
    has_more: bool
    next_cursor: str | None


class DecisionOut(Struct, omit_defaults=False):
    """`allowed` is Casbin's decision, `reason` the decision index's (as /v1/check reports it), `rule` the
    Casbin line that settled it (null when no rule matched)."""

    allowed: bool
    reason: str
    rule: str | None
    index_agrees: bool

    @classmethod
    def of(cls, verdict: Verdict) -> DecisionOut:
        return cls(verdict.allowed, verdict.reason, verdict.rule, verdict.index_agrees)


class WhatIfOutcome(Struct):
    request: DecisionRequest
    current: DecisionOut
    draft: DecisionOut
    changed: bool

    @classmethod
    def of(cls, result: WhatIfResult) -> WhatIfOutcome:
        r = result.request
        return cls(
            DecisionRequest(r.user_id, r.tenant_id, r.resource, r.action),
            DecisionOut.of(result.current),
            DecisionOut.of(result.draft),
            result.changed,
        )


class WhatIfSummary(Struct):
    requests: int
    changed: int
    newly_allowed: int
    newly_denied: int
    disagreements: int


class WhatIfResponse(Struct):
    object: Literal["policy_what_if"]
    current_version: int
    diff: PolicyDiff
    results: list[WhatIfOutcome]
    summary: WhatIfSummary

    @classmethod
    def of(cls, report: WhatIfReport) -> WhatIfResponse:
        return cls(
            "policy_what_if",
            report.current_version,
            PolicyDiff([of_domain(r) for r in report.added], [of_domain(r) for r in report.removed]),
            [WhatIfOutcome.of(r) for r in report.results],
            WhatIfSummary(
                len(report.results),
                report.changed,
                report.newly_allowed,
                report.newly_denied,
                report.disagreements,
            ),
        )
