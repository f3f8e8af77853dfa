"""API-key authentication and authorization (the app's one guard, `authorize`) and API-key endpoints.

The key is resolved once per request by `authorize` and cached for a few seconds per replica: a
revoked key stops working on this replica at once and on others within `KEY_CACHE_SECONDS`, the bound we
accept to keep the database off the per-request path. Keys are created by holders of `api_keys:write`; a
tenant-scoped key can only create keys for its own tenant, never a platform key.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.handlers.http_handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody
from msgspec import Meta, Struct
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.session import Database
from gateway.identity.domain import hash_secret
from gateway.identity.models import ApiKey as ApiKeyRow
from gateway.identity.service import ApiKeyService
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Forbidden, Unauthenticated
from gateway.web.deps import ListParams, set_request_actor
from gateway.web.permissions import AUTOMATIC_OPTIONS, access_for, not_in_matrix, refusal
from gateway.web.problems import ERROR_RESPONSES

KEY_CACHE_SECONDS = 5.0
_cache: dict[str, tuple[Principal, float]] = {}


def forget_cached_keys() -> None:
    _cache.clear()


async def _principal_for(secret: str, db: Database, clock: NamedDependency[Any]) -> Principal:
    digest = hash_secret(secret)
    hit = _cache.get(digest)
    now = time.monotonic()
    if hit is not None and hit[1] > now:
        return hit[0]
    async with db.unit_of_work() as session:
        principal = await ApiKeyService(session, clock).authenticate(secret)
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[digest] = (principal, now + KEY_CACHE_SECONDS)
    return principal


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
    access = access_for(method, path)
    if access is None:
        if not _automatic_options(handler):
            raise not_in_matrix(method, path)
        access = AUTOMATIC_OPTIONS
    if not access.by_api_key:
        return
    principal = await _authenticate(connection)
    connection.scope["state"]["principal"] = principal
    set_request_actor(connection, f"key:{principal.key_id}")
    refused = refusal(access, principal)
    if refused is not None:
        raise refused


def _automatic_options(handler: BaseRouteHandler) -> bool:
    """Litestar's own OPTIONS answer on every path (it lists the path's methods, runs no code of ours)."""
    return (
        isinstance(handler, HTTPRouteHandler)
        and handler.http_methods == {"OPTIONS"}
        and handler.include_in_schema is False
        and handler.handler_name == "options_handler"
    )


async def _authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    header = connection.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("send an API key as `Authorization: Bearer <key>`")
    return await _principal_for(secret.strip(), connection.app.state.db, connection.app.state.clock)


def revoke_from_cache(principal_key_id: str) -> None:
    for digest, (principal, _) in list(_cache.items()):
        if principal.key_id == principal_key_id:
            _cache.pop(digest, None)


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
        revoke_from_cache(row.id)
        return ApiKey.of(row)


# Invites live in their own module (they need the composition root's `member_directory`).
from gateway.identity.invites_http import InviteController  # noqa: E402

CONTROLLERS = [ApiKeyController, InviteController]
