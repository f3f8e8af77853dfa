"""Privacy endpoints: GET /v1/users/{id}/export (privacy:read), POST /v1/users/{id}/erase (privacy:write,
platform keys only: a user may belong to several tenants). GET /v1/customers/{id}/access: where the
tenant's account stands (customers:read)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.customers import CustomerService
from gateway.customers.repository import CustomerRepository
from gateway.identity.http import platform_key_only
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.provisioning.members import CustomerMemberDirectory
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
        guards=[platform_key_only],
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
        return await service.erase(user_id, actor=f"key:{principal.key_id}")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


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
    ) -> dict[str, Any]:
        customer = await CustomerService(CustomerRepository(session), clock).get(
            customer_id, scope=principal.tenant_id
        )
        account = await ProvisioningRepository(session).account(customer.id)
        if account is None:  # no subscription event has reached provisioning yet
            return {"object": "customer_access", "customer": customer.id, "state": "not_provisioned"}
        return {
            "object": "customer_access",
            "customer": customer.id,
            "state": account.state,
            "subscription": account.subscription_id,
            "plan": account.plan_key,
            "provisioned_at": _iso(account.provisioned_at),
            "past_due_since": _iso(account.past_due_since),
            "revoked_at": _iso(account.revoked_at),
            "revoked_reason": account.revoked_reason,
            "restored_at": _iso(account.restored_at),
            "retain_until": _iso(account.retain_until),
            "purged_at": _iso(account.purged_at),
        }


CONTROLLERS = [PrivacyController, AccessController]
