"""Staff sign-in: redeem a one-time login link for a staff session.

- `POST /v1/staff_sessions` {login_token}: for API clients and tests; the answer carries the session
  token (`tgstaff_…`, shown once) to send as `Authorization: Bearer` to /v1 operations open to staff.
- `GET /admin/login/{token}`: the link `tiergate admin-login` prints; sets the session cookie
  (`HttpOnly`, `SameSite=Lax`, `Secure` outside the embedded default) and sends the browser to /admin.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.response import Redirect
from msgspec import Meta, Struct
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.staff import StaffService
from gateway.kernel.clock import Clock
from gateway.web.problems import ERROR_RESPONSES

STAFF_COOKIE = "tg_staff"
Token = Annotated[str, Meta(min_length=1, max_length=200)]


def provide_staff(
    session: NamedDependency[AsyncSession], clock: NamedDependency[Clock], state: State
) -> StaffService:
    return StaffService(
        session, clock, session_ttl=timedelta(seconds=state.settings.staff_session_ttl_seconds)
    )


class StaffSessionCreate(Struct, forbid_unknown_fields=True):
    login_token: Token


class StaffMemberOut(Struct):
    id: str
    object: Literal["staff_member"]
    email: str
    name: str | None
    role: str


class StaffSessionOut(Struct):
    object: Literal["staff_session"]
    token: str  # shown once: send it as `Authorization: Bearer <token>`
    expires_at: datetime
    staff: StaffMemberOut


class StaffSessionController(Controller):
    path = "/staff_sessions"
    tags = ["staff"]
    dependencies = {"staff": Provide(provide_staff, sync_to_thread=False)}

    @post(
        "/",
        responses=ERROR_RESPONSES,
        summary="Exchange a one-time staff login link token for a staff session token",
    )
    async def create(
        self, data: JSONBody[StaffSessionCreate], staff: NamedDependency[StaffService]
    ) -> StaffSessionOut:
        done = await staff.redeem(data.login_token)
        member = done.staff
        return StaffSessionOut(
            "staff_session",
            done.token,
            done.session.expires_at,
            StaffMemberOut(member.id, "staff_member", member.email, member.name, member.role),
        )


class StaffLoginController(Controller):
    path = "/admin"
    tags = ["staff (browser)"]
    include_in_schema = False
    dependencies = {"staff": Provide(provide_staff, sync_to_thread=False)}

    @get("/login/{token:str}", summary="The login link: a staff session cookie, then the console")
    async def login(
        self, token: FromPath[str], staff: NamedDependency[StaffService], state: State
    ) -> Response[Any]:
        done = await staff.redeem(token[:200])
        response: Response[Any] = Redirect("/admin", status_code=303, headers={"Cache-Control": "no-store"})
        response.set_cookie(
            key=STAFF_COOKIE,
            value=done.token,
            path="/",
            httponly=True,
            samesite="lax",
            secure=not state.settings.embedded,
            max_age=int(state.settings.staff_session_ttl_seconds),
        )
        return response


API_CONTROLLERS = [StaffSessionController]
BROWSER_CONTROLLERS = [StaffLoginController]
