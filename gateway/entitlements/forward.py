"""Forward authentication for reverse proxies: nginx `auth_request`, Traefik ForwardAuth, Envoy `ext_authz`.

The proxy asks `/v1/authz/forward` before passing a request to the SaaS app. The end user proves who they
are with the Tiergate access token the app's client already sends (`Authorization: Bearer …`); the route
table (`routes.py`) turns the original method and URI into a permission and the quotas it uses; the
decision index answers. What each proxy sends and does with the answer is in
/work/shared/reference/proxy-contracts.md; in short:

* nginx sends a GET subrequest with the original as `X-Original-Method` / `X-Original-URI`;
* Traefik sends a GET with `X-Forwarded-Method` / `X-Forwarded-Uri`;
* Envoy sends the original method to `/v1/authz/forward` + the original path.

Answers: 200 + `X-Auth-*` identity headers (the proxy copies them to the app), 401 + `WWW-Authenticate`,
403 with a problem+json naming the reason, 429 (+ `Retry-After` when the quota resets at a known time).

This endpoint is mounted outside the `/v1` API-key guard: the caller is a proxy acting for an end user,
and the end user's token is the credential.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import msgspec
from litestar import Request, Response, Router, route
from litestar.datastructures import ResponseHeader, State
from litestar.enums import HttpMethod
from litestar.openapi.datastructures import ResponseSpec

from gateway.entitlements.engine import Engine, EngineView
from gateway.entitlements.routes import DEFAULT_ROUTES, BadPath, RouteTable, load_routes
from gateway.entitlements.service import CheckResult, CheckService
from gateway.identity.revocation import RevocationList
from gateway.identity.tokens import InvalidToken, TokenSigner
from gateway.web.problems import PROBLEM_MEDIA_TYPE

log = logging.getLogger("tiergate.forward")

PREFIX = "/v1/authz/forward"
METHODS = [
    HttpMethod.GET,
    HttpMethod.POST,
    HttpMethod.PUT,
    HttpMethod.PATCH,
    HttpMethod.DELETE,
    HttpMethod.HEAD,
    HttpMethod.OPTIONS,
]
WWW_AUTHENTICATE = 'Bearer realm="tiergate"'
# Only visible ASCII reaches a header we set: claims are signed by us, but a header value must never be
# able to carry CR/LF or a separator into the proxy's request to the app.
_UNSAFE = re.compile(r"[^\x21-\x2b\x2d-\x7e]")  # keeps printable ASCII but ","


class ForwardDenial(msgspec.Struct, kw_only=True):
    """RFC 9457 problem for a refused forward check; `code` is the decision's reason."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    allowed: bool = False
    reason: str
    instance: str | None = None
    feature: str | None = None
    limit: int | None = None
    used: int | None = None
    remaining: int | None = None
    resets_at: datetime | None = None
    index_version: int | None = None


def _spec(description: str) -> ResponseSpec:
    return ResponseSpec(
        data_container=ForwardDenial,
        description=description,
        media_type=PROBLEM_MEDIA_TYPE,
        generate_examples=False,
    )


RESPONSES: dict[int, ResponseSpec] = {
    401: _spec("No, malformed, expired or foreign access token (`WWW-Authenticate: Bearer`)"),
    403: _spec("Refused: `code` says why (no_route, no_permission, feature_not_in_plan, …)"),
    429: _spec("A quota is used up; `Retry-After` gives the seconds until it resets, when it does"),
}


def _clean(value: str) -> str:
    """`value` with every character a header value must not carry (controls, spaces, non-ASCII, the list
    separator `,`) removed, at most 256 characters."""
    return _UNSAFE.sub("", value)[:256]


def _table(state: State) -> RouteTable:
    """The configured table (`settings.forward_routes`, else the demo table), compiled with the configured
    `forward_unmatched` and `forward_case_sensitive` (once per app: see `_caches`)."""
    settings = state.settings
    return load_routes(
        getattr(settings, "forward_routes", None) or DEFAULT_ROUTES,
        unmatched=getattr(settings, "forward_unmatched", "deny") or "deny",
        case_sensitive=bool(getattr(settings, "forward_case_sensitive", False)),
    )


class HeaderLookup(Protocol):
    def get(self, name: str, /) -> str | None: ...


def _original(headers: HeaderLookup, scope: Mapping[str, Any]) -> tuple[str, str] | str:
    """(method, uri) of the request the proxy is asking about, or the reason it cannot be known.

    A pair must come from one proxy: nginx's subrequest is always a GET, so taking the URI from a header
    but the method from the subrequest itself would check a POST as a read."""
    for method_header, uri_header in (
        ("x-original-method", "x-original-uri"),
        ("x-forwarded-method", "x-forwarded-uri"),
    ):
        method, uri = headers.get(method_header), headers.get(uri_header)
        if method is not None or uri is not None:
            if not method or not uri:
                return "incomplete_forward_headers"
            return method.strip().upper(), uri.strip()
    # Envoy: the original method, and the original path appended to the prefix. The raw path keeps
    # percent-encoding, so the route table sees (and refuses) encoded slashes the way the app would.
    raw = scope.get("raw_path") or scope["path"].encode()
    path = raw.decode("latin-1")[len(PREFIX) :] or "/"
    query = scope.get("query_string", b"").decode("latin-1")
    return str(scope["method"]).upper(), path + ("?" + query if query else "")


class ForwardAnswer(msgspec.Struct, frozen=True):
    """What `/v1/authz/forward` answers: the status, the headers, and for a refusal its problem body (an
    admitted request has an empty text/plain body). The Litestar route and the lean route
    (`gateway.entitlements.lean`) both send exactly this."""

    status: int
    headers: dict[str, str]
    denial: ForwardDenial | None = None
    # The same headers as ASGI (name, value) byte pairs with lower-case names, when already encoded (the
    # identities kept per view): the lean route sends them as they are.
    raw: tuple[tuple[bytes, bytes], ...] = ()

    def response(self) -> Response[Any]:
        if self.denial is None:
            return Response(
                content="", status_code=self.status, headers=self.headers, media_type="text/plain"
            )
        return Response(
            self.denial, status_code=self.status, media_type=PROBLEM_MEDIA_TYPE, headers=self.headers
        )


def _deny(
    status: int,
    reason: str,
    detail: str,
    uri: str | None,
    result: CheckResult | None = None,
    headers: Mapping[str, str] | None = None,
) -> ForwardAnswer:
    body = ForwardDenial(
        type=f"https://tiergate.dev/problems/{reason.replace('_', '-')}",
        title="Authentication required" if status == 401 else "Request refused",
        status=status,
        code=reason,
        detail=detail,
        reason=reason,
        instance=uri,
        feature=result.feature if result else None,
        limit=result.limit if result else None,
        used=result.used if result else None,
        remaining=result.remaining if result else None,
        resets_at=result.resets_at if result else None,
        index_version=result.index_version if result else None,
    )
    # X-Auth-Reason lets a proxy that discards the body (nginx auth_request) still tell the client why.
    out = {"X-Auth-Reason": _clean(reason), **(headers or {})}
    if status == 401:
        out["WWW-Authenticate"] = WWW_AUTHENTICATE
    return ForwardAnswer(status, out, body)


class _VerifiedTokens:
    """Claims of tokens already verified, by the exact token string.

    ES256 verification costs ~160 µs here, a third of this endpoint's budget, and a client sends the same
    token on every request for its whole life. The same bytes verify the same way, so only the
    time-dependent check (expiry) is redone per use. Entries are bound to the signer that verified them:
    a new signer (key rotation, restart) starts from an empty cache."""

    MAX_ENTRIES = 50_000

    def __init__(self) -> None:
        self._signer: TokenSigner | None = None
        self._claims: dict[str, dict[str, Any]] = {}

    def verify(self, signer: TokenSigner, token: str, now: datetime) -> dict[str, Any]:
        if signer is not self._signer:
            self._signer, self._claims = signer, {}
        claims = self._claims.get(token)
        if claims is not None:
            if claims["exp"] > now.timestamp():
                return claims
            del self._claims[token]
            raise InvalidToken("access token expired")
        claims = signer.verify(token, at=now)  # raises InvalidToken; failures are never cached
        if len(self._claims) >= self.MAX_ENTRIES:
            self._claims.clear()  # crude but bounded: a full cache costs one verify per token
        self._claims[token] = claims
        return claims


def _bearer(headers: HeaderLookup) -> str | None:
    scheme, _, token = (headers.get("authorization") or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _retry_after(resets_at: datetime | None, now: datetime) -> dict[str, str]:
    # Only a metered allowance resets at a known time. A full gauge (projects, seats) frees up when
    # something is deleted, which no clock predicts: a made-up Retry-After would only set clients polling.
    if resets_at is None:
        return {}
    return {"Retry-After": str(max(1, math.ceil((resets_at - now).total_seconds())))}


async def _decide(
    checks: CheckService, user: str, tenant: str, table: RouteTable, method: str, uri: str
) -> CheckResult | str:
    """The decision for the original request, or the reason no decision applies (unmatched route).

    The URI is normalised once (`RouteTable.normalise`, raising `BadPath`), and both the route match and
    the default-deny under a gated prefix look at those same segments."""
    parts = table.normalise(uri)
    match = table.match(method, parts)
    engine = checks.engine
    if match is None:
        if not table.allows_unmatched(parts):
            return "no_route"
        # Unrouted but allowed by configuration: still only for members of a tenant with access.
        roles = engine.roles_of(user, tenant)
        entitlements = engine.tenant(tenant)
        plan = entitlements.plan_key if entitlements else None
        if not (roles.active or roles.inactive):
            return CheckResult(False, "unknown_subject", tenant, engine.version, user, plan)
        if not engine.has_access(tenant):
            return CheckResult(False, "subscription_inactive", tenant, engine.version, user, plan)
        return CheckResult(True, "allowed", tenant, engine.version, user, plan)
    first = match.features[0] if match.features else None
    result = await checks.check(
        customer=tenant,
        user=user,
        resource=match.resource,
        action=match.action,
        feature=first,
        quantity=match.quantity,
        consume=match.consume,
    )
    taken = [first] if first and result.allowed and match.consume else []
    for feature in match.features[1:]:
        if not result.allowed:
            break
        result = await checks.check(
            customer=tenant, feature=feature, quantity=match.quantity, consume=match.consume
        )
        if result.allowed and match.consume:
            taken.append(feature)
    if not result.allowed:
        # A later quota refused the request: give back the gauge units an earlier one reserved (release
        # is a no-op for metered features, which is why the table lists gauges first).
        for feature in taken:
            await checks.release(tenant, feature, match.quantity)
    return result


@route(
    "/forward",
    http_method=METHODS,
    tags=["decisions"],
    summary="Forward auth for nginx auth_request, Traefik ForwardAuth and Envoy ext_authz",
    description=(
        "Decides the request a reverse proxy is about to pass on. The original is taken from "
        "`X-Original-Method`/`X-Original-URI` (nginx), `X-Forwarded-Method`/`X-Forwarded-Uri` (Traefik), "
        "or this request's own method and the path after `/v1/authz/forward` (Envoy). The end user "
        "authenticates with `Authorization: Bearer <Tiergate access token>`. No API key: this route is "
        "meant for the proxy, on behalf of the user. 200 has an empty body and identity headers."
    ),
    status_code=200,
    responses=RESPONSES,
    response_headers=[
        ResponseHeader(
            name="X-Auth-User", description="The token's subject (user id)", documentation_only=True
        ),
        ResponseHeader(name="X-Auth-Tenant", description="The token's tenant", documentation_only=True),
        ResponseHeader(
            name="X-Auth-Roles",
            description="The user's active roles, comma-separated",
            documentation_only=True,
            required=False,
        ),
        ResponseHeader(name="X-Auth-Plan", description="The tenant's plan key", documentation_only=True),
        ResponseHeader(
            name="X-Auth-Index-Version",
            description="Decision index version the answer came from",
            documentation_only=True,
        ),
    ],
    media_type="text/plain",
    cache_control=None,
)
async def forward_auth(request: Request[Any, Any, State], state: State) -> Response[str]:
    return (await forward_decision(request.headers, request.scope, state)).response()


# Envoy appends the original path to the prefix. Same handler, left out of the OpenAPI document: a
# `{path:path}` parameter is documented as `format: uri`, which no generated URL path satisfies, and the
# operation above already documents the contract.
@route(
    "/forward/{path:path}",
    http_method=METHODS,
    media_type="text/plain",
    cache_control=None,
    include_in_schema=False,
)
async def forward_auth_envoy(request: Request[Any, Any, State], state: State) -> Response[str]:
    return (await forward_decision(request.headers, request.scope, state)).response()


class _Identities:
    """The answers to admitted requests (their identity headers), by user and tenant, for one view of the
    index.

    They depend only on the view (the user's roles, the tenant's plan, the index version), yet building
    them (the active roles, five header values made safe, then encoded) cost a fifth of forward auth's
    time. A new view (any change to the index) starts an empty map. Answers are shared: their header
    dicts must never be changed."""

    MAX_ENTRIES = 50_000

    def __init__(self) -> None:
        self._view: EngineView | None = None
        self._answers: dict[tuple[str, str], ForwardAnswer] = {}

    def admitted(self, view: EngineView, user: str, tenant: str, outcome: CheckResult) -> ForwardAnswer:
        """The 200 answer for `user` of `tenant`, as `outcome` (from `view`) admitted them."""
        if view is not self._view:
            self._view, self._answers = view, {}
        key = (user, tenant)  # plan and version are the view's, and a new view starts a new map
        answer = self._answers.get(key)
        if answer is None:
            roles = view.roles_of(user, tenant).active
            headers = {
                "X-Auth-User": _clean(user),
                "X-Auth-Tenant": _clean(tenant),
                "X-Auth-Roles": ",".join(_clean(r) for r in roles),
                "X-Auth-Plan": _clean(outcome.plan or ""),
                "X-Auth-Index-Version": str(outcome.index_version),
            }
            raw = tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
            answer = ForwardAnswer(200, headers, None, raw)
            if len(self._answers) >= self.MAX_ENTRIES:
                self._answers.clear()
            self._answers[key] = answer
        return answer


class _Caches(msgspec.Struct):
    """What forward auth keeps per app between requests (in `state.forward_caches`)."""

    table: RouteTable
    tokens: _VerifiedTokens
    identities: _Identities


def _caches(state: State) -> _Caches:
    try:
        return state["forward_caches"]  # type: ignore[no-any-return]
    except KeyError:
        caches = state.forward_caches = _Caches(_table(state), _VerifiedTokens(), _Identities())
        return caches


async def forward_decision(headers: HeaderLookup, scope: Mapping[str, Any], state: State) -> ForwardAnswer:
    """The answer to one forward-auth request, from its headers (first value of each, lower-case names)
    and its ASGI scope (method, path, raw path, query string)."""
    engine: Engine = state.engine
    original = _original(headers, scope)
    if isinstance(original, str):
        return _deny(403, original, "the proxy sent only half of the original request", None)
    method, uri = original
    uri_for_body = uri[:2048]
    token = _bearer(headers)
    if token is None:
        return _deny(401, "missing_token", "send the end user's access token as a Bearer token", uri_for_body)
    signer: TokenSigner = state.signer
    now = engine.clock.now()
    caches = _caches(state)
    try:
        claims = caches.tokens.verify(signer, token, now)
    except InvalidToken as exc:
        return _deny(401, "invalid_token", exc.detail, uri_for_body)
    user, tenant = claims.get("sub"), claims.get("tid")
    if not isinstance(user, str) or not isinstance(tenant, str) or not user or not tenant:
        return _deny(401, "invalid_token", "the access token names no subject or tenant", uri_for_body)
    # Deprovisioned tenants and revoked users: an in-memory lookup, kept current from the outbox.
    revocations: RevocationList | None = state.get("revocations")
    if revocations is not None:
        refusal = revocations.refusal(tenant, user, claims.get("iat"))
        if refusal is not None:
            return _deny(401, "token_revoked", f"access token refused: {refusal}", uri_for_body)

    # One view of the index for the whole decision: route, features and the identity headers agree.
    checks = CheckService(engine).pinned()
    try:
        outcome = await _decide(checks, user, tenant, caches.table, method, uri)
    except BadPath as exc:
        return _deny(403, "bad_path", str(exc), uri_for_body)
    if isinstance(outcome, str):
        return _deny(403, outcome, f"no forward route for {method} {uri_for_body}", uri_for_body)
    if not outcome.allowed:
        if outcome.reason == "quota_exceeded":
            detail = f"the {outcome.feature} quota is used up ({outcome.used} of {outcome.limit})"
            return _deny(
                429, outcome.reason, detail, uri_for_body, outcome, _retry_after(outcome.resets_at, now)
            )
        return _deny(403, outcome.reason, f"{method} refused: {outcome.reason}", uri_for_body, outcome)
    return caches.identities.admitted(checks.view(), user, tenant, outcome)


# Mounted by the app beside (not inside) the API-key-guarded /v1 router.
FORWARD_ROUTER = Router(path="/v1/authz", route_handlers=[forward_auth, forward_auth_envoy])
