"""How staff sign in to the console (issue #14 "Access"): with the platform's single sign-on, or with the
one-time link `tiergate admin-login` prints (the embedded default has no IdP and no default password).

- `GET /admin/sign-in`: the page: an e-mail field for SSO, and how to get a login link.
- `GET /admin/sso?email=`: starts an OIDC sign-in at the platform connection that serves the address's
  domain (gateway/sso, `purpose=staff`: a tenant's own IdP cannot sign staff in) and sends the browser
  there, with a browser-binding cookie for the callback only.
- `GET /admin/sso/callback`: every check of a member sign-in (state, browser binding, issuer, code,
  ID token, verified e-mail in the connection's domains), then a staff session for that address if it is
  an active staff member (`not_staff`, 403, otherwise), as the login link gives: the `tg_staff` cookie,
  then /admin. The IdP must list `<public url>/admin/sso/callback` as a redirect URI of the client.
- `POST /admin/logout`: the console's sign-out form (CSRF-checked): revokes the session, clears the cookie.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.http import into_console
from gateway.admin.staff import StaffService, StaffUnauthenticated
from gateway.kernel.clock import Clock
from gateway.sso.http import provide_sign_in
from gateway.sso.service import STAFF, SignInService
from gateway.web.cookies import STAFF_COOKIE
from gateway.webui.pages import render_page

BINDING_COOKIE = "tg_staff_sso"  # the browser binding of a staff sign-in (login CSRF), callback only
CALLBACK = "/admin/sso/callback"
Param = Annotated[str | None, QueryParameter(max_length=4096)]
SIGN_IN = {"signing_in": Provide(provide_sign_in, sync_to_thread=False)}


def _callback_url(signing_in: SignInService) -> str:
    return signing_in.settings.public_url.rstrip("/") + CALLBACK


@get("/sign-in", summary="How staff sign in: SSO by e-mail, or a login link")
async def sign_in_page(request: Request[Any, Any, Any]) -> Template:
    return render_page(request, "admin/sign_in.html", package="admin")


@get("/sso", summary="Start a staff SSO sign-in at the platform's IdP", dependencies=SIGN_IN)
async def staff_sso_start(
    signing_in: NamedDependency[SignInService],
    email: Annotated[str, QueryParameter(min_length=3, max_length=320)],
) -> Response[Any]:
    started = await signing_in.begin(
        email=email, tenant=None, purpose=STAFF, redirect_uri=_callback_url(signing_in)
    )
    settings = signing_in.settings
    response: Response[Any] = Redirect(
        started.authorization_url, status_code=302, headers={"Cache-Control": "no-store"}
    )
    response.set_cookie(
        key=BINDING_COOKIE,
        value=started.binding,
        path=CALLBACK,
        httponly=True,
        samesite="lax",
        secure=settings.public_url.startswith("https://"),
        max_age=settings.login_ttl_seconds,
    )
    return response


@get("/sso/callback", summary="Where the platform's IdP sends staff back", dependencies=SIGN_IN)
async def staff_sso_callback(
    request: Request[Any, Any, Any],
    signing_in: NamedDependency[SignInService],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    state: State,
    code: Param = None,
    oauth_state: Annotated[str | None, QueryParameter(name="state", max_length=4096)] = None,
    iss: Param = None,
    error: Param = None,
) -> Response[Any]:
    verified = await signing_in.verify(
        state=oauth_state,
        code=code,
        iss=iss,
        error=error,
        binding=request.cookies.get(BINDING_COOKIE),
        purpose=STAFF,
    )
    ttl = int(state.settings.staff_session_ttl_seconds)
    staff = StaffService(session, clock, session_ttl=timedelta(seconds=ttl))
    done = await staff.sign_in_verified(verified.email)
    response = into_console(done.token, state)
    response.delete_cookie(BINDING_COOKIE, path=CALLBACK)
    return response


@post("/logout", status_code=303, summary="Sign out: revoke the cookie's session, clear it, go to sign-in")
async def staff_logout(
    request: Request[Any, Any, Any],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    state: State,
) -> Response[Any]:
    # A page form (CSRF-checked by the page router): a cross-site post cannot sign staff out.
    token = request.cookies.get(STAFF_COOKIE)
    if token:
        ttl = timedelta(seconds=int(state.settings.staff_session_ttl_seconds))
        with contextlib.suppress(StaffUnauthenticated):  # already expired or revoked: signed out
            await StaffService(session, clock, session_ttl=ttl).sign_out(token[:200])
    response: Response[Any] = Redirect(
        "/admin/sign-in", status_code=303, headers={"Cache-Control": "no-store"}
    )
    response.delete_cookie(STAFF_COOKIE, path="/")
    return response


ROUTES = [sign_in_page, staff_sso_start, staff_sso_callback, staff_logout]
