"""Portal sign-in by an e-mailed code: the pages (the rules are gateway/portal/login.py).

- `GET /portal/login[?next=]`: the billing e-mail address, asked.
- `POST /portal/login`: a code mailed when the address is a customer's; the same code page either way
  (nobody learns which addresses are customers). Bad input: the form again, the error beside the field, 422.
- `POST /portal/login/verify`: the right code opens the portal session and lands on `next`; an address
  shared by several customers first gets the choice page. A wrong, expired or dead code: the code page
  again, 422 (the try is counted, so the answer is a page, not an error: the transaction commits).
- `POST /portal/login/choose`: the customer picked on the choice page, bound to the verified code's token.

`next` is only ever a local portal path (`safe_next`), so an e-mail's `/portal#methods-heading` link that
led here without a session ends on that page, and a crafted `next=https://evil.example/` on /portal.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.kernel.clock import Clock
from gateway.portal.entry import into_portal
from gateway.portal.login import EmailRefused, PortalLoginService, normalize_email, safe_next
from gateway.portal.session import PortalSessionService
from gateway.webui.pages import render_page

TEMPLATE = "portal/portal_login.html"


def _page(
    request: Request[Any, Any, Any],
    step: str,
    *,
    next_path: str,
    email: str = "",
    error: str | None = None,
    customers: list[Any] | None = None,
    choice: str = "",
) -> Template:
    """step: `ask` (the address), `code` (the code, after a request), `choose` (several customers)."""
    return render_page(
        request,
        TEMPLATE,
        {
            "step": step,
            "next_path": next_path,
            "email": email,
            "error": error,
            "customers": customers or [],
            "choice": choice,
        },
        package="portal",
        status_code=422 if error else 200,
    )


def _service(session: AsyncSession, clock: Clock, state: State) -> PortalLoginService:
    return PortalLoginService(session, clock, state.secret_box)


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    form = await request.form()
    return {key: str(form.get(key) or "") for key in ("email", "code", "next", "choice", "customer")}


@get("/login", summary="Sign in to the portal with a code e-mailed to the billing address")
async def login_form(request: Request[Any, Any, Any]) -> Template:
    return _page(request, "ask", next_path=safe_next(request.query_params.get("next")))


@post("/login", summary="Mail a sign-in code to a billing address (the same answer for any address)")
async def request_code(
    request: Request[Any, Any, Any],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    state: State,
) -> Template:
    form = await _form(request)
    next_path = safe_next(form["next"])
    try:
        email = normalize_email(form["email"])
    except EmailRefused as refused:
        return _page(request, "ask", next_path=next_path, email=form["email"][:400], error=refused.code)
    # Whether a mail went out stays here: the page is the same for a customer's address and any other.
    await _service(session, clock, state).request_code(email)
    return _page(request, "code", next_path=next_path, email=email)


@post("/login/verify", summary="Sign in with the e-mailed code")
async def verify_code(
    request: Request[Any, Any, Any],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    state: State,
) -> Response[Any] | Template:
    form = await _form(request)
    next_path = safe_next(form["next"])
    try:
        email = normalize_email(form["email"])
    except EmailRefused as refused:
        return _page(request, "ask", next_path=next_path, email=form["email"][:400], error=refused.code)
    verified = await _service(session, clock, state).verify(email, form["code"].strip()[:20])
    if verified is None:
        return _page(request, "code", next_path=next_path, email=email, error="code_invalid")
    if verified.choice_token is not None:
        return _page(
            request,
            "choose",
            next_path=next_path,
            email=email,
            customers=verified.customers,
            choice=verified.choice_token,
        )
    opened = await PortalSessionService(session, clock).open_by_email_code(
        verified.customers[0].id, login_id=verified.login_id, locale=None
    )
    return into_portal(opened.token, request, next_path)


@post("/login/choose", summary="Open the portal of one of the customers sharing the verified address")
async def choose_customer(
    request: Request[Any, Any, Any],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    state: State,
) -> Response[Any] | Template:
    form = await _form(request)
    next_path = safe_next(form["next"])
    chosen = await _service(session, clock, state).choose(form["choice"][:200], form["customer"][:40])
    if chosen is None:
        # The token ran out, was spent, or the customer is not one of the address's: start again.
        return _page(request, "ask", next_path=next_path, error="choice_invalid")
    login_id, customer = chosen
    opened = await PortalSessionService(session, clock).open_by_email_code(
        customer.id, login_id=login_id, locale=None
    )
    return into_portal(opened.token, request, next_path)


@get(
    ["/login/verify", "/login/choose"],
    summary="Back to the sign-in page (where the pages' language links lead after a posted step)",
)
async def back_to_login(request: Request[Any, Any, Any]) -> Response[Any]:
    # The steps after the first are answers to POSTs; the layout's language links (`?lang=nl`) GET the
    # same path. The code and the choice token are not in a URL, so the visitor starts again, in the
    # language picked.
    lang = request.query_params.get("lang", "")[:8]
    target = f"/portal/login?lang={lang}" if lang.isalpha() else "/portal/login"
    return Redirect(target, status_code=303)


ROUTES = [login_form, request_code, verify_code, choose_customer, back_to_login]
