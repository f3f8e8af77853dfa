"""Privacy endpoints: GET /v1/users/{id}/export (privacy:read), POST /v1/users/{id}/erase (privacy:write,
platform keys only: a user may belong to several tenants). GET /v1/customers/{id}/access: where the
tenant's account stands (customers:read)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.customers import CustomerService
from gateway.customers.repository import CustomerRepository
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock, isoformat_or_none
from gateway.provisioning.members import CustomerMemberDirectory
from gateway.provisioning.models import TenantAccount
from gateway.provisioning.privacy import PrivacyService
from gateway.provisioning.repository import ProvisioningRepository
from gateway.web.problems import ERROR_RESPONSES


def provide_member_directory(
    session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]
) -> CustomerMemberDirectory:
    return CustomerMemberDirectory(session, clock)


class PrivacyController(Controller):
    path = "/users"
    tags = ["privacy"]

    @get(
        "/{user_id:str}/export",
        opt={"scope": "privacy:read"},
        responses=ERROR_RESPONSES,
        summary="Export a user's personal data: profile, memberships, sessions, invites, audit entries",
    )
    async def export(
        self,
        user_id: FromPath[str],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
        state: State,
    ) -> dict[str, Any]:
        service = PrivacyService(session, clock, state.get("sessions"))
        return await service.export(user_id, scope=principal.tenant_id)

    @post(
        "/{user_id:str}/erase",
        opt={"scope": "privacy:write"},
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Erase a user: personal fields pseudonymised, memberships removed, tokens refused",
    )
    async def erase(
        self,
        user_id: FromPath[str],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
        state: State,
    ) -> dict[str, Any]:
        service = PrivacyService(session, clock, state.get("sessions"))
        return await service.erase(user_id)


class CustomerAccess(Struct):
    """Where a tenant's account stands; `not_provisioned` (all else null) before any subscription."""

    customer: str
    state: str  # not_provisioned | active | revoked | purged
    object: str = "customer_access"
    subscription: str | None = None
    plan: str | None = None
    provisioned_at: str | None = None
    past_due_since: str | None = None
    revoked_at: str | None = None
    revoked_reason: str | None = None
    restored_at: str | None = None
    retain_until: str | None = None
    purged_at: str | None = None

    @classmethod
    def of(cls, customer_id: str, account: TenantAccount | None) -> CustomerAccess:
        if account is None:
            return cls(customer=customer_id, state="not_provisioned")
        return cls(
            customer=customer_id,
            state=account.state,
            subscription=account.subscription_id,
            plan=account.plan_key,
            provisioned_at=isoformat_or_none(account.provisioned_at),
            past_due_since=isoformat_or_none(account.past_due_since),
            revoked_at=isoformat_or_none(account.revoked_at),
            revoked_reason=account.revoked_reason,
            restored_at=isoformat_or_none(account.restored_at),
            retain_until=isoformat_or_none(account.retain_until),
            purged_at=isoformat_or_none(account.purged_at),
        )


class AccessController(Controller):
    path = "/customers"
    tags = ["customers"]

    @get(
        "/{customer_id:str}/access",
        opt={"scope": "customers:read"},
        responses=ERROR_RESPONSES,
        summary="Where the tenant's account stands: active, revoked (and why, kept until when) or purged",
    )
    async def access(
        self,
        customer_id: FromPath[str],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> CustomerAccess:
        customer = await CustomerService(CustomerRepository(session), clock).get(
            customer_id, scope=principal.tenant_id
        )
        return CustomerAccess.of(customer.id, await ProvisioningRepository(session).account(customer.id))


CONTROLLERS = [PrivacyController, AccessController]
