"""Privacy endpoints: GET /v1/users/{id}/export (privacy:read), POST /v1/users/{id}/erase (privacy:write,
platform keys only: a user may belong to several tenants)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.identity.http import platform_key_only
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.provisioning.members import CustomerMemberDirectory
from gateway.provisioning.privacy import PrivacyService
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


CONTROLLERS = [PrivacyController]
