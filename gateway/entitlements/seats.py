"""The one seat check: every path that makes someone an active member of a tenant goes through here.

REST (`POST /v1/customers/{id}/members`, re-adding a removed member), invite acceptance, SCIM create and
`active: true`, and SSO just-in-time provisioning all call `MemberAdmission.take_seat` (REST through
`add_member`, which also validates the role) in the unit of work that then adds the membership. The
account's owner, created by provisioning when the first subscription starts, is the one member added
without it: the account needs an owner whatever its plan counts.

**Seats** are the plan's `seats` gauge (plus add-ons) against the tenant's *active memberships*, read in
the same transaction: the memberships are the source of truth, never a counter beside them. No `seats`
grant (or no live subscription) means no cap; a soft limit admits the member (overage is metered).

**Serialised per tenant, on both databases.** Counting and then inserting is a check-then-act race, so
`take_seat` first takes the tenant's member lock (`CustomerService.lock_members`) and only then counts:

* PostgreSQL: `SELECT … FOR UPDATE` on the tenant's `customers` row. A second admission into the same
  tenant blocks there until the first commits or rolls back, and (READ COMMITTED takes a new snapshot per
  statement) its count then includes the first one's member. Other tenants are not held up.
* SQLite (the embedded default): row locks do not exist, and its driver starts a transaction only at the
  first write, so every concurrent request (they interleave on one event loop) would count the same
  members. The lock is therefore a no-op `UPDATE` of the tenant's row, which takes SQLite's write lock:
  the database's single-writer queue, held until commit. This is equivalent to an in-process per-tenant
  `asyncio.Lock` for correctness, and better in two ways: it also serialises other *processes* on the
  same file (a `tiergate worker`, a second uvicorn worker), and there is only one lock, so no
  lock-ordering deadlock with a request that already wrote (an asyncio lock taken after a write could
  wait on a holder that itself waits for SQLite's write lock). Waiting happens in aiosqlite's thread
  (SQLite's busy handler, `busy_timeout`), never blocking the event loop. The cost (every writer of the
  database waits while one tenant counts its seats) is the embedded default's cost of any write.

**Roles** are validated against the policy: a tenant on a plan the policy knows may only hand out the
roles that plan unlocks (plus its own custom roles where the plan allows them) → 422 `role_not_allowed`;
a role the policy does not define at all → 422 `unknown_role`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.authz.domain import NodeKind, PolicySnapshot, plan_unlocks
from gateway.authz.service import PolicyService
from gateway.customers import CustomerService
from gateway.customers.models import Membership, User
from gateway.customers.repository import CustomerRepository
from gateway.customers.service import AlreadyMember, CustomerNotFound, check_email, check_role
from gateway.entitlements.loader import TenantEntitlements, load_tenants
from gateway.identity.invites import RoleNotAllowed, SeatLimitReached
from gateway.kernel.clock import Clock
from gateway.kernel.errors import ValidationFailed
from gateway.metering.allowance_service import AllowanceService

SEATS_FEATURE = "seats"
# Percentages of the plan's seats at which the customer is told (as metered features' default alerts).
SEAT_THRESHOLDS = (80, 100)


class UnknownRole(ValidationFailed):
    code = "unknown_role"


@dataclass(frozen=True, slots=True)
class SeatCount:
    used: int
    limit: int | None  # None: no cap (no `seats` grant, or no live subscription)
    soft: bool
    plan: str | None

    @property
    def room_for_one_more(self) -> bool:
        return self.limit is None or self.soft or self.used + 1 <= self.limit


class MemberAdmission:
    """Seats and roles for one unit of work. Raises `SeatLimitReached` (409 `seat_limit_reached`, with
    `seats_used`, `seats_limit`, `plan`), `RoleNotAllowed` or `UnknownRole` (422); callers that speak
    another protocol (SCIM, the SSO pages) translate them."""

    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.session = session
        self.clock = clock
        self.customers = CustomerService(CustomerRepository(session), clock)
        self._policy: PolicySnapshot | None = None

    # -- seats -----------------------------------------------------------------------------------
    async def _entitlements(self, tenant_id: str) -> TenantEntitlements | None:
        return (await load_tenants(self.session, [tenant_id])).tenants.get(tenant_id)

    async def seats(self, tenant_id: str) -> SeatCount:
        """Seats used and the cap, as of this transaction (no lock: for reporting)."""
        return (await self._seats_and_entitlements(tenant_id))[0]

    async def _seats_and_entitlements(self, tenant_id: str) -> tuple[SeatCount, TenantEntitlements | None]:
        entitlements = await self._entitlements(tenant_id)
        grant = entitlements.features.get(SEATS_FEATURE) if entitlements else None
        used = await self.customers.count_members(tenant_id)
        count = SeatCount(
            used=used,
            limit=grant.limit if grant else None,
            soft=grant.soft if grant else False,
            plan=entitlements.plan_key if entitlements else None,
        )
        return count, entitlements

    async def take_seat(self, tenant_id: str) -> SeatCount:
        """Serialise on the tenant, then make sure one more active member fits. The lock is held until
        the caller's transaction ends, so the member it adds next is counted by every later caller."""
        if not await self.customers.lock_members(tenant_id):
            raise CustomerNotFound(f"no customer {tenant_id!r}")
        seats, entitlements = await self._seats_and_entitlements(tenant_id)
        if not seats.room_for_one_more:
            raise SeatLimitReached(
                f"all {seats.limit} seats of plan {seats.plan!r} are taken: {seats.used} active members; "
                "free a seat or move to a plan with more",
                seats_used=seats.used,
                seats_limit=seats.limit,
                plan=seats.plan,
            )
        await self._alert_thresholds(tenant_id, seats, entitlements)
        return seats

    async def _alert_thresholds(
        self, tenant_id: str, seats: SeatCount, entitlements: TenantEntitlements | None
    ) -> None:
        """The seat about to be taken crosses 80 % or 100 % of the plan's seats: `usage.threshold_reached`
        with feature `seats`, once per threshold per period (the metered features' alert record), in this
        transaction, so a member that is not added after all sends nothing. The mail and the webhook are
        the usage alert's."""
        if seats.limit is None or seats.limit <= 0 or entitlements is None:
            return
        taken = seats.used + 1
        alerts = AllowanceService(self.session)
        for threshold in SEAT_THRESHOLDS:
            if seats.used * 100 < threshold * seats.limit <= taken * 100:
                await alerts.alert_once(
                    tenant_id,
                    entitlements.subscription_id,
                    SEATS_FEATURE,
                    (entitlements.period_start, entitlements.period_end),
                    threshold,
                    taken,
                    seats.limit,
                    at=self.clock.now(),
                )

    # -- roles -----------------------------------------------------------------------------------
    async def _policy_snapshot(self) -> PolicySnapshot:
        if self._policy is None:
            self._policy = await PolicyService(self.session, self.clock).current()
        return self._policy

    async def defined_roles(self, tenant_id: str) -> frozenset[str]:
        """Every role the policy names for this tenant: catalog roles and the tenant's custom roles."""
        policy = await self._policy_snapshot()
        roles = {p.role for p in policy.permissions if p.tenant_id in (None, tenant_id)}
        roles |= {g.key for g in policy.tier_grants if g.kind is NodeKind.ROLE}
        return frozenset(roles)

    async def allowed_roles(self, tenant_id: str) -> frozenset[str] | None:
        """The roles the tenant's plan hands out, or None when there is no live subscription or the
        policy does not know its plan (then any defined role is accepted)."""
        entitlements = await self._entitlements(tenant_id)
        if entitlements is None:
            return None
        policy = await self._policy_snapshot()
        unlocks = plan_unlocks(policy).get(entitlements.plan_key)
        if unlocks is None:
            return None
        roles = set(unlocks.roles)
        if unlocks.custom_roles:
            roles |= {p.role for p in policy.permissions if p.tenant_id == tenant_id}
        return frozenset(roles)

    async def check_role(self, tenant_id: str, role: str) -> str:
        check_role(role)
        if role not in await self.defined_roles(tenant_id):
            raise UnknownRole(f"the policy defines no role {role!r}", field="role")
        allowed = await self.allowed_roles(tenant_id)
        if allowed is not None and role not in allowed:
            raise RoleNotAllowed(
                f"the tenant's plan does not hand out the role {role!r}; it allows {sorted(allowed)}",
                field="role",
            )
        return role

    # -- the REST use cases ----------------------------------------------------------------------
    async def add_member(
        self, tenant_id: str, *, email: str, name: str | None, role: str | None, scope: str | None
    ) -> tuple[Membership, User]:
        """Add (or re-activate) a member: role validated, one seat taken, under the tenant's lock."""
        customer = await self.customers.get(tenant_id, scope=scope)
        email = check_email(email)
        role = await self.check_role(customer.id, role or customer.default_role)
        await self.customers.lock_members(customer.id)
        if await self.customers.is_active_member(customer.id, email):
            raise AlreadyMember(f"{email} is already a member of {customer.id}")
        await self.take_seat(customer.id)
        return await self.customers.add_member(customer.id, email=email, name=name, role=role)

    async def change_role(
        self, tenant_id: str, membership_id: str, role: str, *, scope: str | None
    ) -> tuple[Membership, User]:
        customer = await self.customers.get(tenant_id, scope=scope)
        await self.check_role(customer.id, role)
        return await self.customers.change_role(customer.id, membership_id, role)


__all__ = ["SEATS_FEATURE", "MemberAdmission", "SeatCount", "SeatLimitReached", "UnknownRole"]
