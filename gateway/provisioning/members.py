"""The `MemberDirectory` invites use (identity sits below customers, so the composition root hands it
this adapter): customers for the tenant and its members, the tier for roles and the seats quota, the
revocation state for deprovisioned tenants.

Seats: the one seat check of `gateway/entitlements/seats.py` (the plan's `seats` gauge plus add-ons
against the tenant's active memberships, serialised per tenant). No `seats` feature means unlimited.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.authz.domain import plan_unlocks
from gateway.authz.service import PolicyService
from gateway.customers import CustomerService
from gateway.customers.repository import CustomerRepository
from gateway.entitlements.loader import load_tenants
from gateway.entitlements.seats import MemberAdmission
from gateway.identity.invites import Seats
from gateway.identity.revocation import RevocationService
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Conflict


class CustomerMemberDirectory:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.session = session
        self.clock = clock
        self.customers = CustomerService(CustomerRepository(session), clock)
        self.admission = MemberAdmission(session, clock)

    async def default_role(self, tenant_id: str, *, scope: str | None) -> str:
        return (await self.customers.get(tenant_id, scope=scope)).default_role

    async def role_allowed(self, tenant_id: str, role: str) -> bool:
        loaded = await load_tenants(self.session, [tenant_id])
        entitlements = loaded.tenants.get(tenant_id)
        if entitlements is None:
            raise Conflict("the customer has no live subscription", code="no_live_subscription")
        policy = await PolicyService(self.session, self.clock).current()
        unlocks = plan_unlocks(policy).get(entitlements.plan_key)
        if unlocks is None:
            return False
        if role in unlocks.roles:
            return True
        return unlocks.custom_roles and any(
            p.role == role and p.tenant_id == tenant_id for p in policy.permissions
        )

    async def seats(self, tenant_id: str) -> Seats:
        count = await self.admission.seats(tenant_id)
        return Seats(used=count.used, limit=count.limit)

    async def take_seat(self, tenant_id: str) -> Seats:
        count = await self.admission.take_seat(tenant_id)
        return Seats(used=count.used, limit=count.limit)

    async def is_member(self, tenant_id: str, email: str) -> bool:
        after: str | None = None
        while True:
            page = await self.customers.list_members(tenant_id, after=after, limit=100, include_removed=False)
            if any(user.email == email for _, user in page.items):
                return True
            if page.next_cursor is None or not page.items:
                return False
            after = page.items[-1][0].id

    async def access_revoked(self, tenant_id: str) -> bool:
        row = await RevocationService(self.session, self.clock).tenant_state(tenant_id)
        return row is not None and row.active

    async def add_member(self, tenant_id: str, *, email: str, name: str | None, role: str) -> tuple[str, str]:
        membership, user = await self.customers.add_member(tenant_id, email=email, name=name, role=role)
        return membership.id, user.id
