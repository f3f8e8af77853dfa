"""Policy store use cases: the current policy, numbered versions, admin edits, restore, and what-if.

Every publish is one transaction: a new `policy_versions` row, the rewritten `casbin_rule` table and a
`policy.published` outbox event, so replicas (which reload the policy on `policy.*` events) never see a
version without its rules or rules without their version.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.authz.domain import (
    Assignments,
    FeatureGate,
    InvalidPolicy,
    Membership,
    PlanNodes,
    PolicyRule,
    PolicySnapshot,
    RolePermission,
    TenantStanding,
    catalog_policy,
    check_key,
    is_plan_feature,
    parse_policy,
    policy_snapshot,
)
from gateway.authz.models import PolicyVersion
from gateway.authz.oracle import PolicyOracle
from gateway.authz.repository import PolicyRepository
from gateway.db.outbox import record_event
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Conflict, NotFound
from gateway.kernel.events import DomainEvent
from gateway.kernel.pagination import Page, encode_cursor

log = logging.getLogger("tiergate.authz")

DEFAULT_POLICY_PATH = Path(__file__).resolve().parents[2] / "policies" / "demo_policy.csv"
# Versions are INTEGER columns: a larger number cannot exist, and PostgreSQL would refuse to compare it.
MAX_VERSION = 2**31 - 1


class PolicyVersionNotFound(NotFound):
    code = "policy_version_not_found"


class NoPolicyChange(Conflict):
    code = "no_change"
    title = "The policy would not change"


# --- the decision index, seen from below --------------------------------------------------------------
# The what-if tool reports the index's reasons, but the index lives in `entitlements`, above authz in the
# import layers. The composition root passes `DecisionIndex.build` in; these protocols are the part of it
# this module relies on.


class IndexVerdict(Protocol):
    @property
    def allowed(self) -> bool: ...

    @property
    def reason(self) -> str: ...


class DecisionSource(Protocol):
    def decide(self, user_id: str, tenant_id: str, resource: str, action: str) -> IndexVerdict: ...


@runtime_checkable  # Litestar checks injected dependencies against their annotation
class IndexBuilder(Protocol):
    def __call__(
        self,
        policy: PolicySnapshot,
        *,
        tenants: Iterable[TenantStanding],
        memberships: Iterable[Membership],
        version: int,
    ) -> DecisionSource: ...


@runtime_checkable
class AssignmentsLoader(Protocol):
    """The named tenants' standings (on their plan-version nodes), members and plan-version grants, as the
    decision engine loads them; provided by the composition root (the loader lives in entitlements)."""

    async def __call__(self, session: AsyncSession, tenant_ids: Iterable[str]) -> Assignments: ...


# --- values ---------------------------------------------------------------------------------------------


def line_text(line: Sequence[str]) -> str:
    """A Casbin line as it appears in a policy CSV file: `p, role:editor, *, projects/*, update, allow`."""
    return ", ".join(line)


def rules_from_lines(lines: Iterable[Sequence[str]], version: int) -> PolicySnapshot:
    # Stored lines go back through the CSV parser, so a stored version is held to the same validation as
    # a policy file. Validated identifiers contain no `,`, `"` or newline, so joining them is lossless.
    return parse_policy("\n".join(line_text(line) for line in lines), version)


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: int
    created_at: datetime
    author: str | None
    note: str | None
    rules: tuple[PolicyRule, ...]
    added: tuple[PolicyRule, ...]
    removed: tuple[PolicyRule, ...]


@dataclass(frozen=True, slots=True)
class WhatIfRequest:
    user_id: str
    tenant_id: str
    resource: str
    action: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """`allowed` is Casbin's answer (the reference), `reason` the decision index's; `rule` the line that
    settled it in Casbin (None when no rule matched). `index_agrees` False means the index would answer
    differently: a bug in the index, which the differential test exists to prevent."""

    allowed: bool
    reason: str
    rule: str | None
    index_agrees: bool


@dataclass(frozen=True, slots=True)
class WhatIfResult:
    request: WhatIfRequest
    current: Verdict
    draft: Verdict

    @property
    def changed(self) -> bool:
        return self.current.allowed != self.draft.allowed


@dataclass(frozen=True, slots=True)
class WhatIfReport:
    current_version: int
    results: tuple[WhatIfResult, ...]
    added: tuple[PolicyRule, ...]
    removed: tuple[PolicyRule, ...]

    @property
    def changed(self) -> int:
        return sum(1 for r in self.results if r.changed)

    @property
    def newly_allowed(self) -> int:
        return sum(1 for r in self.results if r.changed and r.draft.allowed)

    @property
    def newly_denied(self) -> int:
        return sum(1 for r in self.results if r.changed and not r.draft.allowed)

    @property
    def disagreements(self) -> int:
        return sum(1 for r in self.results if not (r.current.index_agrees and r.draft.index_agrees))


# --- validation with the API's field names ----------------------------------------------------------


def _api_field(rule: PolicyRule, reported: str | None) -> str:
    """The request field a domain validation error is about. The domain names a tier rule's target after
    its kind (`role`, `capability`, and `plan` for an included plan), which the API calls `key`."""
    if isinstance(rule, RolePermission):
        return "customer" if reported == "tenant_id" else reported or "rule"
    if isinstance(rule, FeatureGate):
        return reported or "rule"
    if reported == "plan":
        try:
            check_key(rule.plan, "plan")
        except InvalidPolicy:
            return "plan"
    return "key"


def validate_rules(rules: Sequence[PolicyRule], where: str) -> None:
    """Each rule on its own, so a 422 names the offending item (`add[2].resource`)."""
    for i, rule in enumerate(rules):
        try:
            policy_snapshot([rule], 0)
        except InvalidPolicy as exc:
            field = f"{where}[{i}].{_api_field(rule, exc.extra.get('field'))}"
            raise InvalidPolicy(f"{field}: {exc.detail}", field=field) from exc


def refuse_plan_features(added: Iterable[PolicyRule], where: str) -> None:
    """What a plan unlocks lives in its plan versions' grants (the catalog), so that a new version that
    drops a feature closes its gates while subscribers of the old version keep it. A policy line saying
    `plan -> feature` would be a second, unversioned truth: refused. Lines already stored by older
    versions are tolerated when carried over, and ignored by `catalog_policy`."""
    for rule in added:
        if is_plan_feature(rule):
            raise InvalidPolicy(
                f"{line_text(rule.casbin_line())}: a plan's features are its plan versions' grants "
                "(POST /v1/plans/{key}/versions), not policy lines",
                code="plan_feature_in_policy",
                field=where,
            )


def _diff(old: Sequence[PolicyRule], new: Sequence[PolicyRule]) -> tuple[list[PolicyRule], list[PolicyRule]]:
    # Order inside a policy carries no meaning (Casbin's effect is "some allow and no deny"), so a
    # reordering is no change, and the diff lists rules in the order of the version they belong to.
    old_set, new_set = set(old), set(new)
    return [r for r in new if r not in old_set], [r for r in old if r not in new_set]


class PolicyService:
    def __init__(
        self,
        session: AsyncSession,
        clock: Clock,
        *,
        index_builder: IndexBuilder | None = None,
    ) -> None:
        self.repo = PolicyRepository(session)
        self.clock = clock
        self.index_builder = index_builder

    # reading ------------------------------------------------------------------------------------------
    async def current(self) -> PolicySnapshot:
        """The latest version; version 0 with no rules while nothing has been published."""
        row = await self.repo.latest_version()
        if row is None:
            return PolicySnapshot(version=0, rules=())
        return rules_from_lines(row.rules, row.version)

    async def version(self, version: int) -> VersionInfo:
        row = await self.repo.get_version(version) if 1 <= version <= MAX_VERSION else None
        if row is None:
            raise PolicyVersionNotFound(f"no policy version {version}")
        return self._info(row)

    async def versions(self, *, before: int | None, limit: int) -> Page[VersionInfo]:
        rows = list(await self.repo.list_versions(before=before, limit=limit))
        has_more = len(rows) > limit
        rows = rows[:limit]
        cursor = encode_cursor(str(rows[-1].version)) if has_more and rows else None
        return Page([self._info(row) for row in rows], cursor)

    def _info(self, row: PolicyVersion) -> VersionInfo:
        return VersionInfo(
            version=row.version,
            created_at=row.created_at,
            author=row.author,
            note=row.note,
            rules=rules_from_lines(row.rules, row.version).rules,
            added=rules_from_lines(row.diff.get("added", []), row.version).rules,
            removed=rules_from_lines(row.diff.get("removed", []), row.version).rules,
        )

    # writing ------------------------------------------------------------------------------------------
    async def publish(
        self, rules: Sequence[PolicyRule], *, note: str | None, author: str | None
    ) -> VersionInfo:
        """Make `rules` the next version. 409 `no_change` if they equal the current ones."""
        validate_rules(rules, "rules")
        current = await self.current()
        snapshot = policy_snapshot(rules, current.version + 1)
        added, removed = _diff(current.rules, snapshot.rules)
        refuse_plan_features(added, "rules")
        if not added and not removed:
            raise NoPolicyChange(f"the rules equal those of version {current.version}")
        lines = [rule.casbin_line() for rule in snapshot.rules]
        row = PolicyVersion(
            version=snapshot.version,
            created_at=self.clock.now(),
            author=author,
            note=note,
            rules=[list(line) for line in lines],
            diff={
                "added": [list(r.casbin_line()) for r in added],
                "removed": [list(r.casbin_line()) for r in removed],
            },
        )
        self.repo.add_version(row)
        # Flush the version row first: a concurrent publish of the same number fails here, before any
        # rule is rewritten, and the unit of work rolls everything back.
        await self.repo.flush()
        await self.repo.replace_rules(lines)
        await record_event(
            self.repo.session,
            DomainEvent(
                "policy.published",
                "policy",
                "policy",  # one aggregate: versions are delivered in order
                row.created_at,
                data={"version": row.version, "added": len(added), "removed": len(removed), "author": author},
            ),
        )
        log.info("policy version %s published: +%s -%s", row.version, len(added), len(removed))
        return VersionInfo(
            row.version, row.created_at, author, note, snapshot.rules, tuple(added), tuple(removed)
        )

    async def draft(self, add: Sequence[PolicyRule], remove: Sequence[PolicyRule]) -> list[PolicyRule]:
        """The current rules with `remove` taken out and `add` appended. Removing a rule that is not in the
        policy is a 422: the admin is looking at a policy other than the current one."""
        validate_rules(add, "add")
        validate_rules(remove, "remove")
        both = set(add) & set(remove)
        if both:
            rule = next(r for r in remove if r in both)
            raise InvalidPolicy(
                f"{line_text(rule.casbin_line())} is both added and removed",
                code="rule_added_and_removed",
                field=f"remove[{list(remove).index(rule)}]",
            )
        current = (await self.current()).rules
        present = set(current)
        for i, rule in enumerate(remove):
            if rule not in present:
                raise InvalidPolicy(
                    f"{line_text(rule.casbin_line())} is not in the current policy",
                    code="rule_not_in_policy",
                    field=f"remove[{i}]",
                )
        dropped = set(remove)
        return [r for r in current if r not in dropped] + [r for r in add if r not in present]

    async def edit(
        self,
        add: Sequence[PolicyRule],
        remove: Sequence[PolicyRule],
        *,
        note: str | None,
        author: str | None,
    ) -> VersionInfo:
        return await self.publish(await self.draft(add, remove), note=note, author=author)

    async def restore(self, version: int, *, author: str | None, note: str | None = None) -> VersionInfo:
        """A new version with exactly the rules of `version`; history is never rewritten."""
        old = await self.version(version)
        return await self.publish(old.rules, note=note or f"restore version {version}", author=author)

    async def seed_default(self, path: Path = DEFAULT_POLICY_PATH) -> int:
        """Publish the policy file as version 1 if nothing is published yet; returns the current version.

        Only an empty store is seeded, so a restart never overwrites what admins published."""
        current = await self.repo.latest_version()
        if current is not None:
            return current.version
        snapshot = parse_policy(await asyncio.to_thread(path.read_text), 1)
        return (
            await self.publish(snapshot.rules, note=f"default policy from {path.name}", author=None)
        ).version

    # what-if ------------------------------------------------------------------------------------------
    async def what_if(
        self,
        draft_rules: Sequence[PolicyRule],
        requests: Sequence[WhatIfRequest],
        *,
        tenants: Iterable[TenantStanding],
        memberships: Iterable[Membership],
        plan_nodes: PlanNodes | None = None,
    ) -> WhatIfReport:
        """How each request is decided under the current policy and under `draft_rules`, with the same
        assignments. Both are judged as the engine judges them, with the subscribed plan versions' grants
        (`plan_nodes`) in place of plan -> feature lines (`catalog_policy`). Nothing is written."""
        if self.index_builder is None:
            raise RuntimeError("PolicyService needs an index_builder for what-if")
        validate_rules(draft_rules, "rules")
        stored = await self.current()
        draft_stored = policy_snapshot(draft_rules, stored.version + 1)
        added, removed = _diff(stored.rules, draft_stored.rules)
        refuse_plan_features(added, "rules")
        current = catalog_policy(stored, plan_nodes or {})
        draft = catalog_policy(draft_stored, plan_nodes or {})
        tenants, memberships = tuple(tenants), tuple(memberships)
        # Casbin takes about a millisecond per request: 1000 requests on two policies would hold the
        # event loop for seconds, so the evaluation (pure, no session) runs in a worker thread.
        results = await asyncio.to_thread(
            _evaluate, self.index_builder, current, draft, requests, tenants, memberships
        )
        report = WhatIfReport(current.version, results, tuple(added), tuple(removed))
        if report.disagreements:
            log.error("what-if: decision index and Casbin disagree on %s requests", report.disagreements)
        return report


def _evaluate(
    builder: IndexBuilder,
    current: PolicySnapshot,
    draft: PolicySnapshot,
    requests: Sequence[WhatIfRequest],
    tenants: tuple[TenantStanding, ...],
    memberships: tuple[Membership, ...],
) -> tuple[WhatIfResult, ...]:
    judges = [
        (
            builder(snapshot, tenants=tenants, memberships=memberships, version=snapshot.version),
            PolicyOracle(snapshot, tenants, memberships),
        )
        for snapshot in (current, draft)
    ]

    def verdict(judge: tuple[DecisionSource, PolicyOracle], r: WhatIfRequest) -> Verdict:
        index, oracle = judge
        decision = index.decide(r.user_id, r.tenant_id, r.resource, r.action)
        allowed, rule = oracle.explain(r.user_id, r.tenant_id, r.resource, r.action)
        # explain() returns the matched p line without its ptype; only p lines carry effects.
        return Verdict(
            allowed, decision.reason, line_text(["p", *rule]) if rule else None, decision.allowed == allowed
        )

    return tuple(WhatIfResult(r, verdict(judges[0], r), verdict(judges[1], r)) for r in requests)
