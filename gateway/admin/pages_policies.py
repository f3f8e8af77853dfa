"""The policy editor in the console (issue #14 "Policies"), through `PolicyService`, exactly what the
/v1/policies operations do:

- `GET /admin/policies` (policies:read): the policy in force as a readable matrix (which roles each plan
  unlocks, following plan inclusion; what each role may do; which resources a missing feature closes),
  its text (the policy file's CSV, the draft to edit) and the versions with their authors and notes.
- `POST /admin/policies/draft` (policies:read, as `POST /v1/policies/what_if`): the edited text, parsed as
  a policy file is (an error names its line, beside the text), its diff against the policy in force, and
  the **what-if** of the requests given (`user, customer, resource, action` per line) and, for the
  customers named, of every member asking for every resource and action the draft touches (who gains or
  loses what): each decided under both, Casbin as the reference and the decision index beside it, the
  changed ones marked. Nothing is written.
- `POST /admin/policies/publish` (policies:write, as `POST /v1/policies/replace`): the draft becomes the
  next version; audited with the staff member as author. Every replica's decision index follows within
  the propagation bound (the policy's change stream, as for the API).
- `POST /admin/policies/versions/{version}/restore` (policies:write, as `…/restore`): a new version with an
  older one's rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from litestar import Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.models import StaffMember
from gateway.admin.staff import scope_allows
from gateway.audit.service import record
from gateway.authz.domain import (
    FeatureGate,
    NodeKind,
    PolicyRule,
    PolicySnapshot,
    RolePermission,
    TierGrant,
    parse_policy,
    plan_unlocks,
)
from gateway.authz.http import provide_policies
from gateway.authz.service import (
    AssignmentsLoader,
    PolicyService,
    WhatIfReport,
    WhatIfRequest,
    line_text,
)
from gateway.customers.models import Membership
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import DomainError, ValidationFailed
from gateway.webui.pages import render_page

DEPENDENCIES = {"policies": Provide(provide_policies, sync_to_thread=False)}
MAX_TEXT = 500_000  # characters of policy text a form may send (the API's 10,000 rules fit)
MAX_REQUESTS = 500  # what-if requests per draft on the page (the API takes 1,000)
MAX_CUSTOMERS = 20  # customers whose members the what-if asks for
VERSIONS_SHOWN = 20


@dataclass(frozen=True, slots=True)
class Matrix:
    """The policy as people read it: plans × roles, and each role's and each feature gate's resources."""

    plans: list[str]
    roles: list[str]
    unlocked: dict[str, frozenset[str]]  # plan -> roles it reaches (directly or through included plans)
    permissions: dict[str, list[RolePermission]]  # role -> what it may do (catalog roles and custom ones)
    gates: list[FeatureGate]


def matrix_of(snapshot: PolicySnapshot) -> Matrix:
    unlocks = plan_unlocks(snapshot)
    permissions: dict[str, list[RolePermission]] = {}
    gates: list[FeatureGate] = []
    for rule in snapshot.rules:
        if isinstance(rule, RolePermission):
            permissions.setdefault(rule.role, []).append(rule)
        elif isinstance(rule, FeatureGate):
            gates.append(rule)
    roles = sorted({r for u in unlocks.values() for r in u.roles} | set(permissions))
    return Matrix(
        plans=list(unlocks),
        roles=roles,
        unlocked={plan: u.roles for plan, u in unlocks.items()},
        permissions=permissions,
        gates=gates,
    )


def policy_text(rules: Sequence[PolicyRule]) -> str:
    return "\n".join(line_text(rule.casbin_line()) for rule in rules) + "\n"


def parse_requests(text: str) -> list[WhatIfRequest]:
    """`user, customer, resource, action` per line (blank lines and `#` comments skipped)."""
    requests = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = [f.strip() for f in stripped.split(",")]
        if len(fields) != 4 or not all(fields) or any(len(f) > 200 for f in fields):
            raise ValidationFailed(
                f"line {number}: write `user, customer, resource, action`", field="requests"
            )
        requests.append(WhatIfRequest(*fields))
    if len(requests) > MAX_REQUESTS:
        raise ValidationFailed(f"at most {MAX_REQUESTS} requests", field="requests")
    return requests


def _sample(resource: str) -> str:
    """A concrete resource a pattern matches (`projects/*` → `projects/example`, `*` → `example`)."""
    return resource[:-1] + "example" if resource.endswith("*") else resource


def touched(current: Sequence[PolicyRule], draft: Sequence[PolicyRule]) -> list[tuple[str, str]]:
    """(resource, action) pairs whose decision the draft may change: those of the permissions and gates
    it adds or removes, and every permission of a role a plan gains or loses."""
    added, removed = set(draft) - set(current), set(current) - set(draft)
    changed_roles = {r.key for r in added | removed if isinstance(r, TierGrant) and r.kind is NodeKind.ROLE}
    pairs: dict[tuple[str, str], None] = {}
    for rule in [*added, *removed, *current, *draft]:
        if isinstance(rule, (RolePermission, FeatureGate)) and (
            rule in added
            or rule in removed
            or (isinstance(rule, RolePermission) and rule.role in changed_roles)
        ):
            action = "read" if rule.action == "*" else rule.action
            pairs[(_sample(rule.resource), action)] = None
    return list(pairs)


async def who_may_change(
    session: AsyncSession, customers: list[str], pairs: list[tuple[str, str]]
) -> list[WhatIfRequest]:
    """Every active member of `customers` asking for every touched (resource, action): the what-if
    then names the users and customers who gain or lose something."""
    if not customers or not pairs:
        return []
    rows = (
        await session.execute(
            select(Membership.tenant_id, Membership.user_id)
            .where(Membership.tenant_id.in_(customers), Membership.removed_at.is_(None))
            .order_by(Membership.tenant_id, Membership.user_id)
        )
    ).all()
    return [
        WhatIfRequest(user, tenant, resource, action) for tenant, user in rows for resource, action in pairs
    ]


async def _role(session: AsyncSession, principal: Principal) -> str:
    member = await session.get(StaffMember, principal.key_id.removeprefix("staff:"))
    return member.role if member is not None else "read_only"


async def _page(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    policies: PolicyService,
    principal: Principal,
    *,
    draft_text: str | None = None,
    requests_text: str = "",
    customers_text: str = "",
    report: WhatIfReport | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
) -> Template:
    current = await policies.current()
    versions = (await policies.versions(before=None, limit=VERSIONS_SHOWN)).items
    return render_page(
        request,
        "admin/policies.html",
        {
            "current": current,
            "matrix": matrix_of(current),
            "draft_text": policy_text(current.rules) if draft_text is None else draft_text,
            "requests_text": requests_text,
            "customers_text": customers_text,
            "report": report,
            "line_text": lambda rule: line_text(rule.casbin_line()),
            "versions": versions,
            "errors": errors or {},
            "notice": notice,
            "can_publish": scope_allows(await _role(session, principal), "policies:write"),
        },
        package="admin",
        status_code=422 if errors else 200,
    )


@get("/policies", summary="The policy in force: matrix, text, versions", dependencies=DEPENDENCIES)
async def policies_page(
    request: Request[Any, Any, Any],
    session: NamedDependency[AsyncSession],
    policies: NamedDependency[PolicyService],
    principal: NamedDependency[Principal],
) -> Template:
    done = request.query_params.get("done", "")
    notice = done if done in ("published", "restored") else None
    return await _page(request, session, policies, principal, notice=notice)


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    form = await request.form()
    return {
        "rules": str(form.get("rules") or "")[:MAX_TEXT],
        "requests": str(form.get("requests") or "")[:MAX_TEXT],
        "note": str(form.get("note") or "").strip()[:1000],
        "customers": str(form.get("customers") or "")[:MAX_TEXT],
    }


@post("/policies/draft", summary="A draft's diff and what-if (nothing is written)", dependencies=DEPENDENCIES)
async def draft_page(
    request: Request[Any, Any, Any],
    session: NamedDependency[AsyncSession],
    policies: NamedDependency[PolicyService],
    principal: NamedDependency[Principal],
    assignments_loader: NamedDependency[AssignmentsLoader],
) -> Template:
    form = await _form(request)
    errors: dict[str, str] = {}
    report = None
    try:
        draft = parse_policy(form["rules"], 0).rules
    except DomainError as exc:
        errors["rules"] = exc.detail
    try:
        requests = parse_requests(form["requests"])
    except DomainError as exc:
        errors["requests"] = exc.detail
    customers = [c.strip() for c in form["customers"].replace("\n", ",").split(",") if c.strip()][
        :MAX_CUSTOMERS
    ]
    if not errors:
        generated = await who_may_change(session, customers, touched((await policies.current()).rules, draft))
        requests = list(dict.fromkeys([*requests, *generated]))[:MAX_REQUESTS]
        assignments = await assignments_loader(session, {r.tenant_id for r in requests})
        try:
            report = await policies.what_if(
                draft,
                requests,
                tenants=assignments.tenants,
                memberships=assignments.memberships,
                plan_nodes=assignments.plan_nodes,
            )
        except DomainError as exc:
            errors["rules"] = exc.detail
    return await _page(
        request,
        session,
        policies,
        principal,
        draft_text=form["rules"],
        requests_text=form["requests"],
        customers_text=form["customers"],
        report=report,
        errors=errors,
    )


@post(
    "/policies/publish",
    summary="Publish the draft as the next version",
    status_code=303,
    dependencies=DEPENDENCIES,
)
async def publish(
    request: Request[Any, Any, Any],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    policies: NamedDependency[PolicyService],
    principal: NamedDependency[Principal],
) -> Redirect | Template:
    form = await _form(request)
    try:
        async with session.begin_nested():
            rules = parse_policy(form["rules"], 0).rules
            info = await policies.publish(rules, note=form["note"] or None, author=principal.key_id)
    except DomainError as exc:
        return await _page(
            request,
            session,
            policies,
            principal,
            draft_text=form["rules"],
            requests_text=form["requests"],
            errors={"rules": exc.detail},
        )
    await record(
        session,
        action="admin.policy_published",
        at=clock.now(),
        tenant_id=None,
        target=str(info.version),
        data={"added": len(info.added), "removed": len(info.removed), "note": form["note"] or None},
    )
    return Redirect("/admin/policies?done=published", status_code=303)


@post(
    "/policies/versions/{version:int}/restore",
    summary="Restore an earlier version (as a new version)",
    status_code=303,
    dependencies=DEPENDENCIES,
)
async def restore(
    version: FromPath[int],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    policies: NamedDependency[PolicyService],
    principal: NamedDependency[Principal],
) -> Redirect:
    info = await policies.restore(version, author=principal.key_id)
    await record(
        session,
        action="admin.policy_restored",
        at=clock.now(),
        tenant_id=None,
        target=str(info.version),
        data={"restored": version},
    )
    return Redirect("/admin/policies?done=restored", status_code=303)


ROUTES = [policies_page, draft_page, publish, restore]
