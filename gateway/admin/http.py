"""Staff sign-in (redeem a one-time login link for a staff session) and staff management.

- `POST /v1/staff_sessions` {login_token}: for API clients and tests; the answer carries the session
  token (`tgstaff_…`, shown once) to send as `Authorization: Bearer` to /v1 operations open to staff.
- `GET /admin/login/{token}`: the link `tiergate admin-login` prints; sets the session cookie
  (`HttpOnly`, `SameSite=Lax`, `Secure` outside the embedded default) and sends the browser to /admin.
- `/v1/staff` (owners and platform keys; `staff:read` for admins too): list the staff, invite a member
  (the answer carries their one-time login link, once), change a role or deactivate/reactivate
  (`PATCH /v1/staff/{id}`), and a fresh login link for an active member. The rules are `StaffService`'s
  (gateway/admin/staff.py), shared with the console's staff page.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect
from msgspec import UNSET, Meta, Struct, UnsetType
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.models import StaffMember
from gateway.admin.staff import (
    LINK_TTL,
    STAFF_READ,
    STAFF_WRITE,
    StaffService,
    StaffUnauthenticated,
    acting_staff,
    login_url,
)
from gateway.admin.timeline import timeline
from gateway.customers.repository import CustomerRepository
from gateway.customers.service import CustomerNotFound
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.web.cookies import STAFF_COOKIE
from gateway.web.deps import ListParams
from gateway.web.problems import ERROR_RESPONSES

Token = Annotated[str, Meta(min_length=1, max_length=200)]
StaffRole = Literal["owner", "admin", "support", "finance", "read_only"]


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


class StaffInvite(Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(min_length=3, max_length=320)]
    role: StaffRole
    name: Annotated[str, Meta(max_length=200)] | None = None


class StaffChange(Struct, forbid_unknown_fields=True):
    role: StaffRole | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class StaffMemberDetail(Struct):
    id: str
    object: Literal["staff_member"]
    email: str
    name: str | None
    role: str
    active: bool
    created_at: datetime
    last_sign_in_at: datetime | None  # the latest session opened (link or SSO); None: never signed in


class StaffLoginLinkOut(Struct):
    object: Literal["staff_login_link"]
    staff: StaffMemberDetail
    # Shown once: the link for a browser, the token for `POST /v1/staff_sessions`; 15 minutes, single use.
    login_url: str
    login_token: str
    expires_at: datetime


class StaffList(Struct):
    object: Literal["list"]
    data: list[StaffMemberDetail]
    has_more: bool


def staff_detail(member: StaffMember, last_sign_in: datetime | None = None) -> StaffMemberDetail:
    return StaffMemberDetail(
        member.id,
        "staff_member",
        member.email,
        member.name,
        member.role,
        member.active,
        member.created_at,
        last_sign_in,
    )


class StaffController(Controller):
    path = "/staff"
    tags = ["staff"]
    dependencies = {"staff": Provide(provide_staff, sync_to_thread=False)}

    def _link(self, state: State, staff: StaffService, member: StaffMember, token: str) -> StaffLoginLinkOut:
        return StaffLoginLinkOut(
            "staff_login_link",
            staff_detail(member),
            login_url(state.settings, token),
            token,
            staff.clock.now() + LINK_TTL,
        )

    @get(
        "/",
        opt={"scope": STAFF_READ},
        responses=ERROR_RESPONSES,
        summary="List the staff members, oldest first, with their latest sign-in",
    )
    async def list_(self, staff: NamedDependency[StaffService]) -> StaffList:
        rows = await staff.list_members()
        return StaffList("list", [staff_detail(member, at) for member, at in rows], False)

    @post(
        "/",
        opt={"scope": STAFF_WRITE},
        responses=ERROR_RESPONSES,
        summary="Invite a staff member: created with a role, and their one-time login link (shown once)",
        description="409 `staff_member_exists` for an e-mail already on the staff; 422 for an unknown role "
        "or a malformed e-mail. The login link expires after 15 minutes; "
        "`POST /v1/staff/{staff_id}/login_link` issues another.",
    )
    async def invite(
        self, data: JSONBody[StaffInvite], staff: NamedDependency[StaffService], state: State
    ) -> StaffLoginLinkOut:
        member, token = await staff.invite(data.email, data.role, name=data.name)
        return self._link(state, staff, member, token)

    @patch(
        "/{staff_id:str}",
        opt={"scope": STAFF_WRITE},
        responses=ERROR_RESPONSES,
        summary="Change a staff member's role, or deactivate (ending their sessions) or reactivate them",
        description="409 `last_owner`: the last active owner cannot be demoted or deactivated; 409 "
        "`staff_self_change`: nobody changes their own role or deactivates themself.",
    )
    async def change(
        self,
        staff_id: FromPath[str],
        data: JSONBody[StaffChange],
        staff: NamedDependency[StaffService],
        principal: NamedDependency[Principal],
    ) -> StaffMemberDetail:
        member = await staff.change(
            staff_id,
            role=None if isinstance(data.role, UnsetType) else data.role,
            active=None if isinstance(data.active, UnsetType) else data.active,
            acting=acting_staff(principal),
        )
        return staff_detail(member, await staff.last_sign_in(member.id))

    @post(
        "/{staff_id:str}/login_link",
        opt={"scope": STAFF_WRITE},
        responses=ERROR_RESPONSES,
        summary="A fresh one-time login link for an active staff member (shown once)",
        description="409 `staff_member_inactive` for a deactivated member.",
    )
    async def login_link(
        self, staff_id: FromPath[str], staff: NamedDependency[StaffService], state: State
    ) -> StaffLoginLinkOut:
        member = await staff.get(staff_id)
        return self._link(state, staff, member, await staff.issue_login_link(member))


TimelineCategory = Literal[
    "customer",
    "subscription",
    "trial",
    "invoice",
    "credit",
    "payment",
    "dunning",
    "email",
    "member",
    "sign_in",
]


class StaffSignOutController(Controller):
    path = "/staff_sessions"
    tags = ["staff"]
    dependencies = {"staff": Provide(provide_staff, sync_to_thread=False)}

    @delete(
        "/current",
        responses=ERROR_RESPONSES,
        summary="Sign out: revoke the staff session whose token is the request's Bearer token",
    )
    async def sign_out(self, request: Request[Any, Any, Any], staff: NamedDependency[StaffService]) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise StaffUnauthenticated("send the staff session token as `Authorization: Bearer tgstaff_…`")
        await staff.sign_out(token.strip()[:200])


class CustomerTimelineController(Controller):
    path = "/customers/{customer_id:str}/timeline"
    tags = ["customers"]

    @get(
        "/",
        opt={"scope": "events:read"},
        responses=ERROR_RESPONSES,
        summary="A customer's timeline from the event log, newest first",
        description="Every event about the customer (subscription, trial, invoices, credit, payments, "
        "dunning, e-mails, members, sign-ins) at its domain time (a test clock's for a customer on one), "
        "with who caused it. `category` keeps one kind.",
    )
    async def list_(
        self,
        customer_id: FromPath[str],
        session: NamedDependency[AsyncSession],
        page: NamedDependency[ListParams],
        category: Annotated[TimelineCategory | None, QueryParameter(name="category")] = None,
    ) -> dict[str, Any]:
        if await CustomerRepository(session).get(customer_id[:40]) is None:
            raise CustomerNotFound(f"no customer {customer_id!r}")
        result = await timeline(session, customer_id, limit=page.limit, after=page.after, category=category)
        has_more = result.next_cursor is not None
        return {
            "object": "list",
            "data": result.entries,
            "has_more": has_more,
            "next_cursor": result.next_cursor,
        }


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
        return into_console(done.token, state)


def into_console(session_token: str, state: State) -> Response[Any]:
    """To /admin with the staff session cookie (`HttpOnly`, `SameSite=Lax`, `Secure` outside the embedded
    default): how every sign-in ends, the login link's and SSO's."""
    response: Response[Any] = Redirect("/admin", status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        key=STAFF_COOKIE,
        value=session_token,
        path="/",
        httponly=True,
        samesite="lax",
        secure=not state.settings.embedded,
        max_age=int(state.settings.staff_session_ttl_seconds),
    )
    return response


API_CONTROLLERS = [
    StaffSessionController,
    StaffSignOutController,
    StaffController,
    CustomerTimelineController,
]
BROWSER_CONTROLLERS = [StaffLoginController]
