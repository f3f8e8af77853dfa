"""Invite endpoints: POST /v1/customers/{id}/invites, GET the same, POST /v1/invites/accept.

`member_directory` is provided by the composition root (customers and the tier live above identity)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from msgspec import Meta, Struct
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.identity.invites import Invite as InviteRow
from gateway.identity.invites import InviteService, MemberDirectory
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.web.deps import ListParams
from gateway.web.problems import ERROR_RESPONSES

Email = Annotated[str, Meta(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
Role = Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[a-z][a-z0-9_\-]*$")]


class InviteCreate(Struct, forbid_unknown_fields=True):
    email: Email
    role: Role | None = None


class InviteAccept(Struct, forbid_unknown_fields=True):
    token: Annotated[str, Meta(min_length=1, max_length=200)]
    name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


class Invite(Struct):
    id: str
    object: Literal["invite"]
    customer: str
    email: str
    role: str
    status: Literal["pending", "accepted", "expired"]
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    user: str | None
    member: str | None
    token: str | None = None  # only in the response that created the invite

    @classmethod
    def of(cls, row: InviteRow, now: datetime, token: str | None = None) -> Invite:
        status: Literal["pending", "accepted", "expired"] = (
            "accepted" if row.accepted_at else "expired" if now >= row.expires_at else "pending"
        )
        return cls(
            row.id,
            "invite",
            row.tenant_id,
            row.email,
            row.role,
            status,
            row.created_at,
            row.expires_at,
            row.accepted_at,
            row.accepted_user_id,
            row.membership_id,
            token,
        )


class InviteList(Struct):
    data: list[Invite]
    has_more: bool
    next_cursor: str | None


def _service(session: AsyncSession, clock: Clock, directory: MemberDirectory, state: State) -> InviteService:
    hours = getattr(state.settings, "invite_ttl_hours", 72)
    return InviteService(session, clock, directory, timedelta(hours=hours))


class InviteController(Controller):
    path = "/"
    tags = ["members"]

    @post(
        "/customers/{customer_id:str}/invites",
        opt={"scope": "members:write"},
        responses=ERROR_RESPONSES,
        summary="Invite someone by e-mail; the response carries the link token (shown once)",
    )
    async def create(
        self,
        customer_id: FromPath[str],
        data: JSONBody[InviteCreate],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        member_directory: NamedDependency[Any],
        principal: NamedDependency[Principal],
        state: State,
    ) -> Invite:
        invites = _service(session, clock, member_directory, state)
        row, token = await invites.create(
            customer_id,
            email=data.email,
            role=data.role,
            actor=f"key:{principal.key_id}",
            scope=principal.tenant_id,
        )
        return Invite.of(row, clock.now(), token)

    @get(
        "/customers/{customer_id:str}/invites",
        opt={"scope": "members:read"},
        responses=ERROR_RESPONSES,
        summary="List a customer's invitations",
    )
    async def list_(
        self,
        customer_id: FromPath[str],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        member_directory: NamedDependency[Any],
        principal: NamedDependency[Principal],
        page: NamedDependency[ListParams],
        state: State,
    ) -> InviteList:
        invites = _service(session, clock, member_directory, state)
        result = await invites.list(
            customer_id, scope=principal.tenant_id, after=page.after, limit=page.limit
        )
        now = clock.now()
        return InviteList(
            [Invite.of(r, now) for r in result.items], result.next_cursor is not None, result.next_cursor
        )

    @post(
        "/invites/accept",
        opt={"scope": "members:write"},
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Accept an invitation: the invitee becomes a member if a seat is free (else 409)",
    )
    async def accept(
        self,
        data: JSONBody[InviteAccept],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        member_directory: NamedDependency[Any],
        principal: NamedDependency[Principal],
        state: State,
    ) -> Invite:
        invites = _service(session, clock, member_directory, state)
        row = await invites.accept(data.token, name=data.name, scope=principal.tenant_id)
        return Invite.of(row, clock.now())


CONTROLLERS = [InviteController]
