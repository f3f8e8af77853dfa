"""Policy administration under /v1/policies: the current policy, edits, versions, restore and what-if.

Platform keys only: rules are platform-wide, and custom-role permissions name their tenant inside the
rule, so a tenant-scoped key could otherwise read and change other tenants' custom roles.

The what-if endpoint needs the decision index's builder and the engine's assignment loader, which live
above authz (entitlements): the composition root provides them as the `index_builder` and
`assignments_loader` dependencies.
"""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.authz import schemas as s
from gateway.authz.service import AssignmentsLoader, IndexBuilder, PolicyService
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import ValidationFailed
from gateway.web.deps import ListParams
from gateway.web.problems import ERROR_RESPONSES

READ = {"scope": "policies:read"}
WRITE = {"scope": "policies:write"}


def provide_policies(
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    index_builder: NamedDependency[IndexBuilder],
) -> PolicyService:
    return PolicyService(session, clock, index_builder=index_builder)


def _before(page: ListParams) -> int | None:
    if page.after is None:
        return None
    if not page.after.isdigit():
        raise ValidationFailed("malformed pagination cursor", field="starting_after")
    return int(page.after)


class PolicyController(Controller):
    path = "/policies"
    tags = ["policies"]
    dependencies = {"policies": Provide(provide_policies, sync_to_thread=False)}

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="The current policy: its version and rules")
    async def current(self, policies: NamedDependency[PolicyService]) -> s.Policy:
        snapshot = await policies.current()
        return s.Policy("policy", snapshot.version, [s.of_domain(r) for r in snapshot.rules])

    @post(
        "/edits",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Publish a new version: the current rules with `remove` taken out and `add` put in",
    )
    async def edit(
        self,
        data: JSONBody[s.PolicyEdit],
        policies: NamedDependency[PolicyService],
        principal: NamedDependency[Principal],
    ) -> s.PolicyVersion:
        info = await policies.edit(
            s.to_domain(data.add, "add"),
            s.to_domain(data.remove, "remove"),
            note=data.note,
            author=principal.key_id,
        )
        return s.PolicyVersion.of(info)

    @post(
        "/replace",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Publish a new version made of exactly these rules",
    )
    async def replace(
        self,
        data: JSONBody[s.PolicyReplace],
        policies: NamedDependency[PolicyService],
        principal: NamedDependency[Principal],
    ) -> s.PolicyVersion:
        info = await policies.publish(
            s.to_domain(data.rules, "rules"), note=data.note, author=principal.key_id
        )
        return s.PolicyVersion.of(info)

    @get("/versions", opt=READ, responses=ERROR_RESPONSES, summary="List policy versions, newest first")
    async def versions(
        self, policies: NamedDependency[PolicyService], page: NamedDependency[ListParams]
    ) -> s.PolicyVersionList:
        result = await policies.versions(before=_before(page), limit=page.limit)
        return s.PolicyVersionList(
            [s.PolicyVersionSummary.of(v) for v in result.items],
            result.next_cursor is not None,
            result.next_cursor,
        )

    @get(
        "/versions/{version:int}",
        opt=READ,
        responses=ERROR_RESPONSES,
        summary="Retrieve a policy version: its rules, its diff against the previous one, who and when",
    )
    async def version(
        self, version: FromPath[int], policies: NamedDependency[PolicyService]
    ) -> s.PolicyVersion:
        return s.PolicyVersion.of(await policies.version(version))

    @post(
        "/versions/{version:int}/restore",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Publish a new version with exactly the rules of an earlier one",
    )
    async def restore(
        self,
        version: FromPath[int],
        data: JSONBody[s.PolicyRestore],
        policies: NamedDependency[PolicyService],
        principal: NamedDependency[Principal],
    ) -> s.PolicyVersion:
        return s.PolicyVersion.of(await policies.restore(version, author=principal.key_id, note=data.note))

    @post(
        "/what_if",
        opt=READ,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Decide requests under the current policy and a draft, and show what the draft changes",
    )
    async def what_if(
        self,
        data: JSONBody[s.WhatIf],
        policies: NamedDependency[PolicyService],
        session: NamedDependency[AsyncSession],
        assignments_loader: NamedDependency[AssignmentsLoader],
    ) -> s.WhatIfResponse:
        if data.rules is not None and (data.add or data.remove):
            raise ValidationFailed("send either `rules` (a complete draft) or `add`/`remove`", field="rules")
        if data.rules is not None:
            draft = s.to_domain(data.rules, "rules")
        else:
            draft = await policies.draft(s.to_domain(data.add, "add"), s.to_domain(data.remove, "remove"))
        requests = [r.to_domain() for r in data.requests]
        # Only the tenants the requests name: a what-if never loads the whole customer base.
        assignments = await assignments_loader(session, {r.tenant_id for r in requests})
        report = await policies.what_if(
            draft,
            requests,
            tenants=assignments.tenants,
            memberships=assignments.memberships,
            plan_nodes=assignments.plan_nodes,
        )
        return s.WhatIfResponse.of(report)


CONTROLLERS = [PolicyController]
