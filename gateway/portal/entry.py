"""The end of every way into the portal (the app's portal link, SSO, an e-mailed code): the session
cookie, then /portal (or the portal page the visitor was going to)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.response import Redirect

from gateway.portal.session import COOKIE, SESSION_TTL


def into_portal(session_token: str, request: Request[Any, Any, Any], to: str = "/portal") -> Response[Any]:
    """To `to` (a local portal path the caller vetted; /portal by default) with the portal session
    cookie: how every way in ends (the app's link, SSO, an e-mailed code)."""
    response: Response[Any] = Redirect(to, status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        key=COOKIE,
        value=session_token,
        path="/portal",
        httponly=True,
        samesite="lax",
        # As the foundation's CSRF cookie: Secure whenever the page is served over HTTPS.
        secure=request.url.scheme == "https",
        max_age=int(SESSION_TTL.total_seconds()),
    )
    return response
