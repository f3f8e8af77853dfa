"""The portal for members who sign in with SSO (issue #13: "or SSO sign-in for members with a billing
role"), besides the app's portal links.

`GET /portal/sso`: a member signed in through `/sso` (the `tg_session` cookie) whose role may manage
billing (the decision engine allows `billing` / `update` for them, as `/v1/check` would answer) gets a
portal session for their organisation and lands on `/portal`. Without a sign-in the browser is sent to
`/sso/login`; a member whose role may not manage billing gets 403 `billing_not_allowed` and no session.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.entitlements.service import CheckService
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Forbidden
from gateway.portal.entry import into_portal
from gateway.portal.session import PortalSessionService
from gateway.sso.http import SESSION_COOKIE

# What managing billing means in the tenant's policy: the same question the app would ask /v1/check.
BILLING = ("billing", "update")


class BillingNotAllowed(Forbidden):
    code = "billing_not_allowed"
    title = "Your role does not manage billing"


@get("/sso", summary="The portal for a member signed in with SSO whose role manages billing")
async def portal_from_sso(
    request: Request[Any, Any, Any],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    state: State,
) -> Response[Any]:
    signed_in = request.cookies.get(SESSION_COOKIE)
    member = await state.sessions.get(signed_in) if signed_in else None
    if member is None:
        return Redirect("/sso/login", status_code=303, headers={"Cache-Control": "no-store"})
    resource, action = BILLING
    decision = await CheckService(state.engine).check(
        customer=member.tenant_id, user=member.user_id, resource=resource, action=action
    )
    if not decision.allowed:
        raise BillingNotAllowed(
            f"only members whose role manages billing can open the billing portal ({decision.reason})"
        )
    opened = await PortalSessionService(session, clock).open_for_member(
        member.tenant_id, user_id=member.user_id, locale=None
    )
    return into_portal(opened.token, request)


ROUTES = [portal_from_sso]
