"""API-key authentication and authorization (the app's one guard, `authorize`) and API-key endpoints.

The key is resolved once per request by `authorize` and cached per replica (`key_cache.py`): a key
revoked by hand, or disabled by deprovisioning, stops working on this replica as soon as the revocation
commits (the cache is invalidated after commit, and a fill that began before the invalidation is not
stored), on other replicas within their revocation list's poll (deprovisioning) or the cache's
`KEY_CACHE_SECONDS` (a key revoked by hand). While the database is unreachable a known key keeps working
for up to the decision index's staleness bound; an unknown key gets 503 with `Retry-After`, never a 500.
Keys are created by holders of `api_keys:write`; a tenant-scoped key can only create keys for its own
tenant, never a platform key.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.handlers.asgi_handlers import ASGIRouteHandler
from litestar.handlers.base import BaseRouteHandler
from litestar.handlers.http_handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody
from msgspec import Meta, Struct
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.session import Database, after_commit
from gateway.identity.domain import hash_secret
from gateway.identity.key_cache import KeyCache, clear_all
from gateway.identity.models import ApiKey as ApiKeyRow
from gateway.identity.service import ApiKeyService
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import DomainError, Forbidden, Unauthenticated
from gateway.web.cookies import STAFF_COOKIE
from gateway.web.deps import ListParams, set_request_actor
from gateway.web.permissions import AUTOMATIC_OPTIONS, Caller, access_for, not_in_matrix, refusal
from gateway.web.problems import ERROR_RESPONSES

log = logging.getLogger("tiergate.identity")

KEY_CACHE_SECONDS = 5.0
# What "the database is unreachable" looks like from here: the driver's connection errors (wrapped by
# SQLAlchemy or raw, e.g. asyncpg's ConnectionRefusedError), a pool timeout, a socket timeout.
DATABASE_UNREACHABLE = (DBAPIError, PoolTimeout, OSError)


class DatabaseUnavailable(DomainError):
    code = "database_unavailable"
    status = 503
    title = "Service temporarily unavailable"

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail, retry_after=retry_after_seconds)
        self.headers = {"Retry-After": str(retry_after_seconds)}


def forget_cached_keys() -> None:
    clear_all()


def key_cache_of(state: State) -> KeyCache:
    """The replica's cache (built by the composition root; an app without one gets one here)."""
    cache: KeyCache | None = state.get("key_cache")
    if cache is None:
        cache = state["key_cache"] = KeyCache(state.clock, ttl_seconds=KEY_CACHE_SECONDS)
    return cache


async def _read_key(secret: str, db: Database, clock: Clock) -> Principal:
    async with db.unit_of_work(read_only=True) as session:
        return await ApiKeyService(session, clock).authenticate(secret)


async def _principal_for(secret: str, db: Database, clock: Clock, cache: KeyCache) -> Principal:
    digest = hash_secret(secret)
    hit = cache.fresh(digest)
    if hit is not None:
        if cache.refresh_due(digest):
            cache.refresh(digest, lambda: _read_key(secret, db, clock))
        return hit
    try:
        # Concurrent misses of one key share one read (key_cache.py: the refill stall under load).
        return await cache.fill(digest, lambda: _read_key(secret, db, clock))
    except DATABASE_UNREACHABLE as exc:
        known = cache.stale(digest)
        if known is not None:
            log.warning(
                "database unreachable (%s); key %s served from the cache", type(exc).__name__, known.key_id
            )
            return known
        raise DatabaseUnavailable(
            "the database is unreachable and this API key is not known to this replica; retry shortly",
            retry_after_seconds=int(KEY_CACHE_SECONDS),
        ) from None


async def authorize(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The one guard of the whole app: looks the operation up in the permission matrix
    (`gateway/web/permissions.py`) and refuses what the matrix does not grant.

    An operation missing from the matrix is refused for everyone. Where an API key is the credential,
    this authenticates it (401 without a valid key), then refuses a kind of key the row does not name
    (403 `platform_key_required`) and a missing scope (403 `missing_scope`). Other credentials (an end
    user's token or session, a SCIM token) are checked by their own routes; tenant scoping of the data a
    tenant key names is the services' (`scope=principal.tenant_id`, 404 across tenants)."""
    method: str = connection.scope.get("method", "WEBSOCKET")  # type: ignore[assignment]
    path = connection.scope["path_template"]
    if isinstance(handler, ASGIRouteHandler) and handler.is_mount:
        # A mounted app (the embedded sandbox provider) is one row, `* <mount path>`: Litestar gives a
        # mount no template of its own, and what lies below it is the mounted app's business.
        path = next(iter(handler.paths))
    authorization = connection.headers.get("authorization", "")
    if not authorization and not path.startswith("/v1"):
        # A page (never /v1: the API takes no cookie, so no cross-site form can use one there) is opened by
        # a browser whose staff session is a cookie; page routes carry CSRF protection (gateway.webui).
        staff_cookie = connection.cookies.get(STAFF_COOKIE)
        if staff_cookie:
            authorization = f"Bearer {staff_cookie[:200]}"
    principal = await admit(
        method,
        path,
        authorization,
        connection.app.state,
        automatic_options=_automatic_options(handler),
    )
    if principal is not None:
        connection.scope["state"]["principal"] = principal
        # A staff session acts as `staff:<id>` (gateway.admin.staff), an API key as `key:<id>`.
        staff = principal.key_id.startswith("staff:")
        set_request_actor(connection, principal.key_id if staff else f"key:{principal.key_id}")


async def admit(
    method: str, path: str, authorization: str, state: State, *, automatic_options: bool = False
) -> Principal | None:
    """The guard's decision for one operation (`method` + the path as the matrix spells it): the API key
    that may call it, or None when an API key is not its credential; raises the refusal (401, 403, 503).

    `authorize` calls it for every route; the lean decision routes (`gateway.entitlements.lean`) call it
    for theirs, so both refuse and admit exactly alike."""
    access = access_for(method, path)
    if access is None:
        if not automatic_options:
            raise not_in_matrix(method, path)
        access = AUTOMATIC_OPTIONS
    if not access.by_api_key and Caller.STAFF not in access.callers:
        return None
    # A staff session token, where the row admits staff: the staff gate (gateway.admin.staff, set on the
    # state by the composition root) authenticates it and asks the staff policy for the row's scope.
    gate = state.get("staff_gate")
    if gate is not None and Caller.STAFF in access.callers and gate.is_staff_token(authorization):
        staff: Principal = await gate.admit(authorization, access.scope)
        return staff
    principal = await _authenticate(authorization, state)
    refused = refusal(access, principal)
    if refused is not None:
        raise refused
    return principal


def _automatic_options(handler: BaseRouteHandler) -> bool:
    """Litestar's own OPTIONS answer on every path (it lists the path's methods, runs no code of ours)."""
    return (
        isinstance(handler, HTTPRouteHandler)
        and handler.http_methods == {"OPTIONS"}
        and handler.include_in_schema is False
        and handler.handler_name == "options_handler"
    )


async def _authenticate(header: str, state: State) -> Principal:
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("send an API key as `Authorization: Bearer <key>`")
    return await _principal_for(secret.strip(), state.db, state.clock, key_cache_of(state))


class ApiKeyCreate(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    scopes: Annotated[list[Annotated[str, Meta(max_length=40)]], Meta(min_length=1, max_length=40)]
    customer: Annotated[str, Meta(max_length=40)] | None = None


class ApiKey(Struct):
    id: str
    object: Literal["api_key"]
    name: str
    prefix: str
    scopes: list[Any]
    customer: str | None
    created_at: datetime
    revoked_at: datetime | None
    secret: str | None = None  # only in the response that created the key

    @classmethod
    def of(cls, row: ApiKeyRow, secret: str | None = None) -> ApiKey:
        return cls(
            row.id,
            "api_key",
            row.name,
            row.prefix,
            list(row.scopes),
            row.tenant_id,
            row.created_at,
            row.revoked_at,
            secret,
        )


class ApiKeyList(Struct):
    data: list[ApiKey]
    has_more: bool
    next_cursor: str | None


def provide_keys(session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]) -> ApiKeyService:
    return ApiKeyService(session, clock)


class ApiKeyController(Controller):
    path = "/api_keys"
    tags = ["api keys"]
    dependencies = {"keys": Provide(provide_keys, sync_to_thread=False)}

    @post(
        "/",
        opt={"scope": "api_keys:write"},
        responses=ERROR_RESPONSES,
        summary="Create a secret API key; the secret is shown only in this response",
    )
    async def create(
        self,
        data: JSONBody[ApiKeyCreate],
        keys: NamedDependency[ApiKeyService],
        principal: NamedDependency[Principal],
    ) -> ApiKey:
        tenant = data.customer
        if principal.tenant_id is not None:
            if tenant not in (None, principal.tenant_id):
                raise Forbidden(
                    "a tenant-scoped key can only create keys for its own tenant", code="scope_too_narrow"
                )
            tenant = principal.tenant_id
            if not all(principal.allows(scope) for scope in data.scopes):
                raise Forbidden("a key cannot grant scopes it does not hold", code="scope_too_narrow")
        row, secret = await keys.create(name=data.name, scopes=data.scopes, tenant_id=tenant)
        return ApiKey.of(row, secret)

    @get("/", opt={"scope": "api_keys:read"}, responses=ERROR_RESPONSES, summary="List API keys")
    async def list_(
        self,
        keys: NamedDependency[ApiKeyService],
        principal: NamedDependency[Principal],
        page: NamedDependency[ListParams],
    ) -> ApiKeyList:
        result = await keys.list(after=page.after, limit=page.limit, scope=principal.tenant_id)
        return ApiKeyList(
            [ApiKey.of(r) for r in result.items], result.next_cursor is not None, result.next_cursor
        )

    @post(
        "/{key_id:str}/revoke",
        opt={"scope": "api_keys:write"},
        responses=ERROR_RESPONSES,
        summary="Revoke an API key",
    )
    async def revoke(
        self,
        key_id: FromPath[str],
        keys: NamedDependency[ApiKeyService],
        principal: NamedDependency[Principal],
        state: State,
    ) -> ApiKey:
        bootstrap = getattr(state.get("settings"), "bootstrap_api_key", None)
        row = await keys.revoke(key_id, scope=principal.tenant_id, bootstrap_secret=bootstrap)
        # After commit: dropped any earlier, a request in between could cache the still-active key.
        cache, key_ids = key_cache_of(state), [row.id]
        after_commit(keys.session, lambda: cache.forget_keys(key_ids))
        return ApiKey.of(row)


# Invites live in their own module (they need the composition root's `member_directory`).
from gateway.identity.invites_http import InviteController  # noqa: E402

CONTROLLERS = [ApiKeyController, InviteController]
