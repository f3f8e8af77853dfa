"""SSO endpoints: the connections API under /v1 (API keys, `sso:*` scopes) and the browser flow under /sso
(no API key: the browser carries a session cookie holding only an opaque id).

Browser errors are pages (HTML with the problem's status) for a browser and problem+json for anything else,
chosen by the Accept header; either way a refused sign-in has created nothing.
"""

from __future__ import annotations

import html
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import Cookie, State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.customers import CustomerService
from gateway.customers.repository import CustomerRepository
from gateway.entitlements.service import CheckService
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import DomainError
from gateway.sso import schemas as s
from gateway.sso.repository import SsoRepository
from gateway.sso.service import ConnectionService, SignInService, SsoSettings
from gateway.web.deps import ListParams
from gateway.web.problems import ERROR_RESPONSES, PROBLEM_MEDIA_TYPE
from gateway.web.schemas import changes_of

READ = {"scope": "sso:read"}
WRITE = {"scope": "sso:write"}
SESSION_COOKIE = "tg_session"
# Binds a started sign-in to the browser that started it; sent back only to the callback.
LOGIN_COOKIE = "tg_sso_login"


def sso_settings(state: State) -> SsoSettings:
    settings = state.settings
    return SsoSettings(
        public_url=settings.public_url,
        session_ttl_seconds=settings.sso_session_ttl_seconds,
        login_ttl_seconds=settings.sso_login_ttl_seconds,
        token_ttl_seconds=settings.token_ttl_seconds,
    )


def provide_connections(
    session: NamedDependency[AsyncSession], clock: NamedDependency[Clock], state: State
) -> ConnectionService:
    return ConnectionService(
        SsoRepository(session),
        CustomerService(CustomerRepository(session), clock),
        CheckService(state.engine),
        clock,
        state.secret_box,
    )


class SsoConnectionController(Controller):
    path = "/sso/connections"
    tags = ["sso"]
    dependencies = {"connections": Provide(provide_connections, sync_to_thread=False)}

    @post(
        "/",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Register an OIDC identity provider (tenant or platform)",
    )
    async def create(
        self,
        data: JSONBody[s.ConnectionCreate],
        connections: NamedDependency[ConnectionService],
        principal: NamedDependency[Principal],
        state: State,
    ) -> s.Connection:
        fields = {f: getattr(data, f) for f in data.__struct_fields__}
        row = await connections.create(fields, scope=principal.tenant_id)
        return await _shown(connections, row, state)

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List SSO connections")
    async def list_(
        self,
        connections: NamedDependency[ConnectionService],
        principal: NamedDependency[Principal],
        page: NamedDependency[ListParams],
        state: State,
    ) -> s.ConnectionList:
        result = await connections.list(scope=principal.tenant_id, after=page.after, limit=page.limit)
        redirect_uri = sso_settings(state).redirect_uri
        verified = await connections.verified_domains(result.items)
        return s.ConnectionList(
            [s.Connection.of(r, redirect_uri, verified.get(r.id, [])) for r in result.items],
            result.next_cursor is not None,
            result.next_cursor,
        )

    @get("/{connection_id:str}", opt=READ, responses=ERROR_RESPONSES, summary="Retrieve an SSO connection")
    async def retrieve(
        self,
        connection_id: FromPath[str],
        connections: NamedDependency[ConnectionService],
        principal: NamedDependency[Principal],
        state: State,
    ) -> s.Connection:
        row = await connections.get(connection_id, scope=principal.tenant_id)
        return await _shown(connections, row, state)

    @patch("/{connection_id:str}", opt=WRITE, responses=ERROR_RESPONSES, summary="Update an SSO connection")
    async def update(
        self,
        connection_id: FromPath[str],
        data: JSONBody[s.ConnectionUpdate],
        connections: NamedDependency[ConnectionService],
        principal: NamedDependency[Principal],
        state: State,
    ) -> s.Connection:
        row = await connections.update(connection_id, changes_of(data), scope=principal.tenant_id)
        return await _shown(connections, row, state)

    @post(
        "/{connection_id:str}/verify_domain",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Platform keys only: record that the connection's tenant owns a domain (verified out of "
        "band, e.g. a DNS TXT record); the domain's claim moves to this connection and stays there",
    )
    async def verify_domain(
        self,
        connection_id: FromPath[str],
        data: JSONBody[s.DomainVerification],
        connections: NamedDependency[ConnectionService],
        principal: NamedDependency[Principal],
        state: State,
    ) -> s.Connection:
        row = await connections.verify_domain(connection_id, data.domain, scope=principal.tenant_id)
        return await _shown(connections, row, state)

    @delete(
        "/{connection_id:str}",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Delete an SSO connection (its sessions end at their next refresh)",
    )
    async def remove(
        self,
        connection_id: FromPath[str],
        connections: NamedDependency[ConnectionService],
        principal: NamedDependency[Principal],
        state: State,
    ) -> s.Connection:
        row = await connections.delete(connection_id, scope=principal.tenant_id)
        return s.Connection.of(row, sso_settings(state).redirect_uri, [])


async def _shown(connections: ConnectionService, row: Any, state: State) -> s.Connection:
    verified = await connections.verified_domains([row])
    return s.Connection.of(row, sso_settings(state).redirect_uri, verified.get(row.id, []))


# -- the browser flow ---------------------------------------------------------------------------------
def provide_sign_in(state: State) -> SignInService:
    clock: Clock = state.clock
    return SignInService(
        db=state.db,
        clock=clock,
        checks=CheckService(state.engine),
        oidc=state.sso_oidc,
        pending=state.sso_pending,
        sessions=state.sessions,
        signer=lambda: state.signer,
        customers=lambda session: CustomerService(CustomerRepository(session), clock),
        settings=sso_settings(state),
        box=state.secret_box,
        tenant_revoked=state.revocations.tenant_revoked if state.get("revocations") else lambda _t: False,
    )


def _page(title: str, body: str, status: int = 200) -> Response[str]:
    document = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)} · Tiergate</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem}"
        "dt{font-weight:600}button{font-size:1rem;padding:.5rem 1rem}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return Response(
        document,
        status_code=status,
        media_type="text/html",
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


def _wants_html(request: Request[Any, Any, Any]) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept


def browser_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    if _wants_html(request):
        body = (
            f"<p id=problem data-code='{html.escape(exc.error_code)}'>{html.escape(exc.detail)}</p>"
            f"<p><small>code: <code>{html.escape(exc.error_code)}</code></small></p>"
            "<p><a href='/sso/login'>Back to sign-in</a></p>"
        )
        return _page(exc.title, body, exc.status)
    return Response(
        exc.to_problem(instance=request.url.path), status_code=exc.status, media_type=PROBLEM_MEDIA_TYPE
    )


def _cookie(value: str, *, secure: bool, max_age: int) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=value,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
        max_age=max_age,
    )


LOGIN_FORM = (
    "<form method=get action='/sso/login'>"
    "<p><label>Work e-mail <input id=email name=email type=email required autocomplete=username></label></p>"
    "<p><button id=sign-in type=submit>Sign in with SSO</button></p></form>"
)

Email = Annotated[str | None, QueryParameter(name="email", max_length=320)]
Tenant = Annotated[str | None, QueryParameter(name="tenant", max_length=40)]
Param = Annotated[str | None, QueryParameter(max_length=4096)]


class SsoBrowserController(Controller):
    path = "/sso"
    tags = ["sso (browser)"]
    # Browser endpoints (cookie session, HTML pages, redirects): not part of the API-key API document.
    include_in_schema = False
    dependencies = {"signing_in": Provide(provide_sign_in, sync_to_thread=False)}
    exception_handlers = {DomainError: browser_error}

    @get("/login", summary="Sign-in page; with ?email= or ?tenant= redirects to the organisation's IdP")
    async def login(
        self, signing_in: NamedDependency[SignInService], email: Email = None, tenant: Tenant = None
    ) -> Response[Any]:
        if not email and not tenant:
            return _page("Sign in", LOGIN_FORM)
        started = await signing_in.begin(email=email, tenant=tenant)
        settings = signing_in.settings
        response: Response[Any] = Redirect(
            started.authorization_url, status_code=302, headers={"Cache-Control": "no-store"}
        )
        response.set_cookie(
            key=LOGIN_COOKIE,
            value=started.binding,
            path="/sso/callback",
            httponly=True,
            samesite="lax",  # a top-level redirect back from the IdP carries it; cross-site posts do not
            secure=settings.public_url.startswith("https://"),
            max_age=settings.login_ttl_seconds,
        )
        return response

    @get("/callback", summary="Where the IdP sends the browser back (authorization code response)")
    async def callback(
        self,
        request: Request[Any, Any, Any],
        signing_in: NamedDependency[SignInService],
        code: Param = None,
        # `state` is a reserved name in Litestar handlers: the OAuth parameter arrives under another one.
        oauth_state: Annotated[str | None, QueryParameter(name="state", max_length=4096)] = None,
        iss: Param = None,
        error: Param = None,
    ) -> Response[Any]:
        done = await signing_in.complete(
            state=oauth_state, code=code, iss=iss, error=error, binding=request.cookies.get(LOGIN_COOKIE)
        )
        previous = request.cookies.get(SESSION_COOKIE)
        if previous:
            # A sign-in replaces whatever session this browser had (no fixation, no orphaned sessions).
            await signing_in.sessions.delete(previous)
        if done.provisioned:
            # A new membership: other replicas' indexes should not wait for their next poll.
            await request.app.state.notifier.changed()
        settings = signing_in.settings
        response: Response[Any] = Redirect("/sso/me", status_code=303, headers={"Cache-Control": "no-store"})
        response.delete_cookie(LOGIN_COOKIE, path="/sso/callback")
        response.set_cookie(
            _cookie(
                done.session_id,
                secure=settings.public_url.startswith("https://"),
                max_age=settings.session_ttl_seconds,
            )
        )
        return response

    @get("/me", summary="The signed-in page: who you are, in which organisation, with which role")
    async def me(
        self, request: Request[Any, Any, Any], signing_in: NamedDependency[SignInService]
    ) -> Response[str]:
        current = await signing_in.session(request.cookies.get(SESSION_COOKIE))
        engine = signing_in.engine
        roles = engine.roles_of(current.user_id, current.tenant_id).active
        tenant = engine.tenant(current.tenant_id)
        e = html.escape
        body = (
            "<dl>"
            f"<dt>Signed in as</dt><dd id=user>{e(str(current.data.get('email')))}</dd>"
            f"<dt>User</dt><dd id=user-id>{e(current.user_id)}</dd>"
            f"<dt>Organisation</dt><dd id=tenant>{e(current.tenant_id)}</dd>"
            f"<dt>Role</dt><dd id=role>{e(', '.join(roles) or '(none)')}</dd>"
            f"<dt>Plan</dt><dd id=plan>{e(tenant.plan_key if tenant else '(none)')}</dd>"
            "</dl>"
            "<p><a id=billing href='/portal/sso'>Manage billing</a> (members whose role manages billing)</p>"
            "<form method=post action='/sso/logout'><button id=sign-out type=submit>Sign out</button></form>"
        )
        return _page("Signed in", body)

    @get("/session", summary="The current session as JSON (for the app's front end)")
    async def session(
        self, request: Request[Any, Any, Any], signing_in: NamedDependency[SignInService]
    ) -> s.SsoSessionInfo:
        current = await signing_in.session(request.cookies.get(SESSION_COOKIE))
        engine = signing_in.engine
        tenant = engine.tenant(current.tenant_id)
        return s.SsoSessionInfo(
            "sso_session",
            current.user_id,
            current.tenant_id,
            str(current.data.get("email")),
            current.data.get("name"),
            list(engine.roles_of(current.user_id, current.tenant_id).active),
            tenant.plan_key if tenant else None,
            str(current.data.get("connection")),
            current.expires_at,
        )

    @post(
        "/refresh",
        status_code=200,
        opt={"read_only": True},
        summary="A fresh Tiergate access token for the signed-in session",
    )
    async def refresh(
        self, request: Request[Any, Any, Any], signing_in: NamedDependency[SignInService]
    ) -> s.SsoToken:
        token = await signing_in.refresh(request.cookies.get(SESSION_COOKIE))
        return s.SsoToken(
            "access_token",
            token.token,
            "Bearer",
            token.expires_at,
            token.user_id,
            token.tenant_id,
            list(token.roles),
            token.plan,
        )

    @post(
        "/logout",
        status_code=303,
        opt={"read_only": True},
        summary="Sign out here, then at the IdP when it supports RP-initiated logout",
    )
    async def logout(
        self, request: Request[Any, Any, Any], signing_in: NamedDependency[SignInService]
    ) -> Response[Any]:
        idp_logout = await signing_in.logout(request.cookies.get(SESSION_COOKIE))
        response: Response[Any] = Redirect(idp_logout or "/sso/logged-out", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @get("/logged-out", summary="Shown after signing out")
    async def logged_out(self) -> Response[str]:
        return _page(
            "Signed out",
            "<p id=signed-out>You are signed out.</p><p><a href='/sso/login'>Sign in again</a></p>",
        )


CONTROLLERS = [SsoConnectionController]
BROWSER_CONTROLLERS = [SsoBrowserController]
