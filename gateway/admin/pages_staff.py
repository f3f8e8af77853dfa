"""The console's staff page (issue #14 "Access"): who operates Tiergate, with which role.

- `GET /admin/staff` (staff:read, as `GET /v1/staff`): every staff member with their role, whether they
  are active, when they were added and last signed in. Admins see the list; owners (`staff:write`, the
  policy's `staff, manage`) also get the forms.
- `POST /admin/staff` (staff:write, as `POST /v1/staff`): invite a member (e-mail, name, role); the page
  shows their one-time login link once (never in a URL or a redirect).
- `POST /admin/staff/{id}` (staff:write, as `PATCH /v1/staff/{id}`): `role`, or `active` (`true`/`false`):
  change a role, deactivate (ending their sessions) or reactivate.
- `POST /admin/staff/{id}/login_link` (staff:write, as `POST /v1/staff/{id}/login_link`): a fresh link.

Each calls `StaffService` (gateway/admin/staff.py), the API's own rules: a refusal (the last owner, one's
own role, a duplicate e-mail, a bad address) comes back beside its form, nothing changed; every change is
in the audit log under the staff member who made it (`staff.*`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.staff import (
    ROLES,
    STAFF_WRITE,
    StaffService,
    acting_staff,
    login_url,
    staff_may,
)
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import DomainError
from gateway.webui.pages import render_page

DONE = ("invited", "role_changed", "deactivated", "reactivated")


def _service(session: AsyncSession, clock: Clock, state: State) -> StaffService:
    ttl = timedelta(seconds=state.settings.staff_session_ttl_seconds)
    return StaffService(session, clock, session_ttl=ttl)


async def _staff_page(
    request: Request[Any, Any, Any],
    staff: StaffService,
    principal: Principal,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    row_error: tuple[str, str] | None = None,
    link: tuple[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    done = request.query_params.get("done", "")[:20]
    return render_page(
        request,
        "admin/staff.html",
        {
            "members": await staff.list_members(),
            "roles": ROLES,
            "me": acting_staff(principal),
            "can_manage": staff_may(principal, STAFF_WRITE),
            "values": values or {"role": "support"},
            "errors": errors or {},  # field -> the refusal's code (the template says it in the language)
            "row_error": row_error,  # (staff id, the refusal's code) beside that member's row
            "link": link,  # (e-mail, login link): shown once
            "done": done if done in DONE else "",
        },
        package="admin",
        status_code=status_code,
    )


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {k: str(v)[:400] for k, v in (await request.form()).items() if k != "_csrf_token"}


async def _refused_on_row(
    request: Request[Any, Any, Any],
    staff: StaffService,
    principal: Principal,
    staff_id: str,
    exc: DomainError,
) -> Template:
    """The page again, the refusal (its code, worded by the template) beside that staff member's row."""
    return await _staff_page(
        request, staff, principal, row_error=(staff_id, exc.error_code), status_code=exc.status
    )


@get("/staff", summary="The staff: roles, who is active, last sign-ins")
async def staff_page(
    request: Request[Any, Any, Any],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    state: State,
    principal: NamedDependency[Principal],
) -> Template:
    return await _staff_page(request, _service(session, clock, state), principal)


@post("/staff", summary="Invite a staff member and show their login link once", status_code=200)
async def invite_staff(
    request: Request[Any, Any, Any],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    state: State,
    principal: NamedDependency[Principal],
) -> Template:
    staff = _service(session, clock, state)
    form = await _form(request)
    try:
        member, token = await staff.invite(
            form.get("email", ""), form.get("role", ""), name=form.get("name") or None
        )
    except DomainError as exc:
        field = str(exc.extra.get("field", "email"))
        return await _staff_page(
            request, staff, principal, values=form, errors={field: exc.error_code}, status_code=exc.status
        )
    return await _staff_page(request, staff, principal, link=(member.email, login_url(state.settings, token)))


@post("/staff/{staff_id:str}", summary="Change a staff member's role, or (de)activate them", status_code=303)
async def change_staff(
    request: Request[Any, Any, Any],
    staff_id: FromPath[str],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    state: State,
    principal: NamedDependency[Principal],
) -> Template | Redirect:
    staff = _service(session, clock, state)
    form = await _form(request)
    active = {"true": True, "false": False}.get(form.get("active", ""))
    role = form.get("role") or None
    member = await staff.get(staff_id)  # 404 page for an unknown id
    was_active, was_role = member.active, member.role
    try:
        member = await staff.change(member.id, role=role, active=active, acting=acting_staff(principal))
    except DomainError as exc:
        return await _refused_on_row(request, staff, principal, member.id, exc)
    if member.active != was_active:
        done = "reactivated" if member.active else "deactivated"
    else:
        done = "role_changed" if member.role != was_role else ""
    return Redirect(f"/admin/staff?done={done}" if done else "/admin/staff", status_code=303)


@post("/staff/{staff_id:str}/login_link", summary="A fresh login link for a staff member", status_code=200)
async def staff_login_link(
    request: Request[Any, Any, Any],
    staff_id: FromPath[str],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    state: State,
    principal: NamedDependency[Principal],
) -> Template:
    staff = _service(session, clock, state)
    member = await staff.get(staff_id)
    try:
        token = await staff.issue_login_link(member)
    except DomainError as exc:
        return await _refused_on_row(request, staff, principal, member.id, exc)
    return await _staff_page(request, staff, principal, link=(member.email, login_url(state.settings, token)))


ROUTES = [staff_page, invite_staff, change_staff, staff_login_link]
