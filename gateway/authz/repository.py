"""All policy-store SQL, and the read-only assignment loader of the what-if tool."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import column, delete, insert, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.authz.domain import Assignments, Membership, TenantStanding, TenantStatus
from gateway.authz.models import CasbinRule, PolicyVersion

_CASBIN_FIELDS = ("v0", "v1", "v2", "v3", "v4", "v5")


class PolicyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def flush(self) -> None:
        await self.session.flush()

    # versions -------------------------------------------------------------------------------------
    async def latest_version(self) -> PolicyVersion | None:
        query = select(PolicyVersion).order_by(PolicyVersion.version.desc()).limit(1)
        return (await self.session.scalars(query)).first()

    async def get_version(self, version: int) -> PolicyVersion | None:
        return await self.session.get(PolicyVersion, version)

    async def list_versions(self, *, before: int | None, limit: int) -> Sequence[PolicyVersion]:
        """Newest first; `limit + 1` rows so the caller can tell whether there is more."""
        query = select(PolicyVersion).order_by(PolicyVersion.version.desc()).limit(limit + 1)
        if before is not None:
            query = query.where(PolicyVersion.version < before)
        return (await self.session.scalars(query)).all()

    def add_version(self, row: PolicyVersion) -> None:
        self.session.add(row)

    # the published rule table -----------------------------------------------------------------------
    async def replace_rules(self, lines: Sequence[tuple[str, ...]]) -> None:
        # Replace rather than patch: the table then equals the version's rules even if something else
        # wrote into it since the last publish.
        await self.session.execute(delete(CasbinRule))
        if lines:
            rows = [{"ptype": line[0], **dict(zip(_CASBIN_FIELDS, line[1:], strict=False))} for line in lines]
            await self.session.execute(insert(CasbinRule), rows)

    async def rule_lines(self) -> list[tuple[str, ...]]:
        query = select(CasbinRule.ptype, *(getattr(CasbinRule, f) for f in _CASBIN_FIELDS)).order_by(
            CasbinRule.id
        )
        return [
            tuple(value for value in row if value is not None)
            for row in (await self.session.execute(query)).all()
        ]


# --- what-if assignments ------------------------------------------------------------------------------
# authz sits below customers and subscriptions in the import layers, so it cannot use their models. These
# lightweight table clauses name only the columns read here; they are read-only and never create anything.
_subscriptions = table(
    "subscriptions", column("tenant_id"), column("status"), column("plan_id"), column("created_at")
)
_plans = table("plans", column("id"), column("key"))
_memberships = table("memberships", column("tenant_id"), column("user_id"), column("role"), column("status"))

# Statuses of a live subscription (subscriptions.domain.LIVE_STATUSES): canceled and expired ones are
# history. A tenant without a live one is unknown to the decision index, so it is left out here too.
_LIVE = (TenantStatus.TRIALING, TenantStatus.ACTIVE, TenantStatus.PAST_DUE, TenantStatus.PAUSED)


async def load_assignments(session: AsyncSession, tenant_ids: Iterable[str]) -> Assignments:
    """The standings and active memberships of `tenant_ids`, as the decision engine loads them, except that
    a tenant is on its plan's policy node (`plan:<key>`), not on the plan version it subscribed to."""
    wanted = sorted(set(tenant_ids))
    if not wanted:
        return Assignments(tenants=(), memberships=())
    subs = (
        select(_subscriptions.c.tenant_id, _subscriptions.c.status, _plans.c.key)
        .join(_plans, _plans.c.id == _subscriptions.c.plan_id)
        .where(_subscriptions.c.tenant_id.in_(wanted))
        .where(_subscriptions.c.status.in_([s.value for s in _LIVE]))
        .order_by(_subscriptions.c.created_at)
    )
    # One live subscription per tenant is the subscriptions domain's rule; should two ever exist, the
    # newest wins, as later standings replace earlier ones in the index.
    standings = {
        tenant_id: TenantStanding(tenant_id=tenant_id, plan=plan_key, status=TenantStatus(status))
        for tenant_id, status, plan_key in (await session.execute(subs)).all()
    }
    members = (
        select(_memberships.c.user_id, _memberships.c.tenant_id, _memberships.c.role)
        .where(_memberships.c.tenant_id.in_(wanted))
        .where(_memberships.c.status == "active")
    )
    memberships = tuple(
        Membership(user_id=user_id, tenant_id=tenant_id, role=role)
        for user_id, tenant_id, role in (await session.execute(members)).all()
    )
    return Assignments(tenants=tuple(standings.values()), memberships=memberships)
