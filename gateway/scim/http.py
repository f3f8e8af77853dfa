"""The SCIM 2.0 endpoints (`/scim/v2`, RFC 7643/7644) and the SCIM-token endpoints under /v1.

`/scim/v2` is its own router: it authenticates with a tenant's SCIM token (the token decides the tenant;
another tenant's ids are 404), speaks `application/scim+json`, and renders every error, including
malformed bodies, unknown paths and unexpected bugs, as a SCIM Error with a `scimType`.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from litestar import Controller, Request, Response, Router, delete, get, patch, post, put, route
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, JSONBody
from msgspec import Meta, Struct
from pydantic import ValidationError
from scim2_models import (
    Context,
    Error,
    InvalidSyntaxException,
    InvalidValueException,
    ListResponse,
    NotFoundException,
    PatchOp,
    ResponseParameters,
    SCIMException,
    SearchRequest,
    UnauthorizedException,
)
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.customers import CustomerService
from gateway.customers.repository import CustomerRepository
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Conflict, DomainError
from gateway.scim import resources as r
from gateway.scim.domain import parse_group_roles
from gateway.scim.models import ScimToken as ScimTokenRow
from gateway.scim.service import ListResult, ScimCaller, ScimService, ScimTokenService
from gateway.web.bodies import DEFAULT_MAX_JSON_DEPTH, InvalidInput, decode_json
from gateway.web.deps import ListParams, set_request_actor
from gateway.web.problems import ERROR_RESPONSES

log = logging.getLogger("tiergate.scim")
SCIM_MEDIA_TYPE = "application/scim+json"
PREFIX = "/scim/v2"
_JSON_TYPES = ("application/scim+json", "application/json")
_METHODS: list[Any] = ["GET", "POST", "PUT", "PATCH", "DELETE"]
ANY_RESOURCE: Any = Union[r.User, r.Group]  # noqa: UP007 (a runtime union parametrizes scim2-models generics)

# --- /v1 token management --------------------------------------------------------------------------


class ScimTokenCreate(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


class ScimToken(Struct):
    id: str
    object: Literal["scim_token"]
    customer: str
    name: str | None
    prefix: str
    created_at: datetime
    disabled_at: datetime | None
    last_used_at: datetime | None
    secret: str | None = None  # only in the response that created the token
    scim_base_path: str = PREFIX

    @classmethod
    def of(cls, row: ScimTokenRow, secret: str | None = None) -> ScimToken:
        return cls(
            row.id,
            "scim_token",
            row.tenant_id,
            row.name,
            row.prefix,
            row.created_at,
            row.disabled_at,
            row.last_used_at,
            secret,
        )


class ScimTokenList(Struct):
    data: list[ScimToken]
    has_more: bool
    next_cursor: str | None


def provide_tokens(session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]) -> ScimTokenService:
    return ScimTokenService(session, clock)


def provide_customer_lookup(
    session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]
) -> CustomerService:
    return CustomerService(CustomerRepository(session), clock)


WRITE = {"scope": "customers:write"}


class ScimTokenController(Controller):
    path = "/customers/{customer_id:str}/scim_tokens"
    tags = ["scim"]
    dependencies = {
        "tokens": Provide(provide_tokens, sync_to_thread=False),
        "customer_lookup": Provide(provide_customer_lookup, sync_to_thread=False),
    }

    @post(
        "/",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Create a SCIM token for the tenant; the secret is shown only in this response",
    )
    async def create(
        self,
        customer_id: FromPath[str],
        data: JSONBody[ScimTokenCreate],
        tokens: NamedDependency[ScimTokenService],
        customer_lookup: NamedDependency[CustomerService],
        principal: NamedDependency[Principal],
    ) -> ScimToken:
        customer = await customer_lookup.get(customer_id, scope=principal.tenant_id)
        row, secret = await tokens.create(customer.id, name=data.name)
        return ScimToken.of(row, secret)

    @get("/", opt=WRITE, responses=ERROR_RESPONSES, summary="List the tenant's SCIM tokens")
    async def list_(
        self,
        customer_id: FromPath[str],
        tokens: NamedDependency[ScimTokenService],
        customer_lookup: NamedDependency[CustomerService],
        principal: NamedDependency[Principal],
        page: NamedDependency[ListParams],
    ) -> ScimTokenList:
        customer = await customer_lookup.get(customer_id, scope=principal.tenant_id)
        result = await tokens.list(customer.id, after=page.after, limit=page.limit)
        return ScimTokenList(
            [ScimToken.of(t) for t in result.items], result.next_cursor is not None, result.next_cursor
        )

    @delete(
        "/{token_id:str}",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Disable a SCIM token (final: reactivating the subscription does not restore it)",
        status_code=200,
    )
    async def disable(
        self,
        customer_id: FromPath[str],
        token_id: FromPath[str],
        tokens: NamedDependency[ScimTokenService],
        customer_lookup: NamedDependency[CustomerService],
        principal: NamedDependency[Principal],
    ) -> ScimToken:
        customer = await customer_lookup.get(customer_id, scope=principal.tenant_id)
        return ScimToken.of(await tokens.disable(customer.id, token_id))


CONTROLLERS = [ScimTokenController]

# --- /scim/v2 --------------------------------------------------------------------------------------


def scim_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    content = b"" if body is None else json.dumps(body, default=str).encode()
    return Response(content=content, status_code=status, media_type=SCIM_MEDIA_TYPE, headers=headers)


def _error_body(exc: Exception) -> tuple[int, dict[str, Any]]:
    if isinstance(exc, SCIMException):
        error = exc.to_error()
    elif isinstance(exc, ValidationError):
        error = SCIMException.from_error(Error.from_validation_errors(exc)[0]).to_error()
    elif isinstance(exc, DomainError):
        status = 400 if exc.status == 422 else exc.status
        scim_type = "invalidValue" if status == 400 else ("uniqueness" if isinstance(exc, Conflict) else None)
        error = Error(status=status, scim_type=scim_type, detail=exc.detail)
    elif isinstance(exc, HTTPException):
        status = exc.status_code
        error = Error(
            status=status,
            scim_type="invalidSyntax" if status == 400 else None,
            detail=str(exc.detail) if exc.detail else None,
        )
    else:
        log.exception("SCIM request failed", exc_info=exc)
        error = Error(status=500, detail="internal error (a bug in Tiergate, logged)")
    return int(error.status or 500), error.model_dump()


def scim_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    status, body = _error_body(exc)
    headers = {"WWW-Authenticate": 'Bearer realm="SCIM"'} if status == 401 else None
    if isinstance(exc, HTTPException) and exc.headers:
        headers = {**(headers or {}), **exc.headers}
    return scim_response(body, status, headers)


async def scim_authenticate(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    scheme, _, secret = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise UnauthorizedException(detail="send a SCIM token as `Authorization: Bearer <token>`")
    state = connection.app.state
    async with state.db.unit_of_work() as session:
        caller = await ScimTokenService(session, state.clock).authenticate(secret.strip())
    connection.scope["state"]["scim_caller"] = caller
    set_request_actor(connection, f"scim:{caller.token_id}")


def provide_caller(request: Request[Any, Any, Any]) -> ScimCaller:
    caller: ScimCaller = request.scope["state"]["scim_caller"]
    return caller


def provide_scim(
    request: Request[Any, Any, Any], session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]
) -> ScimService:
    base = str(request.base_url).rstrip("/") + PREFIX
    state = request.app.state
    mapping = state.get("scim_group_roles")
    if mapping is None:
        entries = getattr(state.get("settings"), "scim_group_roles", ())
        mapping = state["scim_group_roles"] = parse_group_roles(entries)
    return ScimService(session, clock, state.engine, base, mapping)


def _query(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items()}


def _response_parameters(model: type[Any], query: dict[str, str]) -> ResponseParameters[Any]:
    params = {k: query[k] for k in ("attributes", "excludedAttributes") if k in query}
    return ResponseParameters[model].model_validate(params)  # type: ignore[valid-type]


def _search(model: type[Any], payload: Any) -> SearchRequest[Any]:
    if not isinstance(payload, dict):
        raise InvalidSyntaxException(detail="a search request must be a JSON object")
    for key in ("sortBy", "sortOrder"):
        if key in payload:
            from scim2_models import NotImplementedException

            raise NotImplementedException(detail="sorting is not supported")
    search = SearchRequest[model].model_validate(payload, scim_ctx=Context.SEARCH_REQUEST)  # type: ignore[valid-type]
    if search.count is None:
        search.count = r.DEFAULT_PAGE_SIZE
    search.count = min(max(search.count, 0), r.MAX_RESULTS)
    return search


# The longest string Tiergate accepts for each SCIM attribute it keeps (matched case-insensitively by the
# attribute's own name, also as a PATCH operation's `path`); any other string in a SCIM body, kept or
# ignored, is bounded by SCIM_MAX_OTHER. A 5 MB displayName used to be accepted and stored.
SCIM_MAX_LENGTHS = {
    "username": 320,  # an e-mail address, like the member's
    "displayname": 200,  # the member's name / the group's name
    "formatted": 200,
    "givenname": 100,
    "familyname": 100,
    "middlename": 100,
    "honorificprefix": 50,
    "honorificsuffix": 50,
    "externalid": 200,
    "value": 320,  # emails[].value, members[].value
}
SCIM_MAX_OTHER = 1024


def _attribute_of(path: str) -> str:
    """`name.givenName` → givenname; `emails[type eq "work"].value` → value."""
    return path.split("]")[-1].split("[")[0].rsplit(".", 1)[-1].lower()


def _refuse_long_strings(value: Any, path: str = "", attribute: str = "") -> None:
    if isinstance(value, str):
        limit = SCIM_MAX_LENGTHS.get(attribute, SCIM_MAX_OTHER)
        if len(value) > limit:
            raise InvalidValueException(detail=f"{path or 'the body'} is longer than {limit} characters")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _refuse_long_strings(item, f"{path}[{i}]", attribute)
    elif isinstance(value, dict):
        # A PATCH operation's value is limited as the attribute its `path` names.
        target = value.get("path") if isinstance(value.get("path"), str) else None
        for key, item in value.items():
            named = _attribute_of(target) if key == "value" and target else key.lower()
            _refuse_long_strings(item, f"{path}.{key}" if path else key, named)


async def _body(request: Request[Any, Any, Any]) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type and content_type not in _JSON_TYPES and not content_type.endswith("+json"):
        raise HTTPException(status_code=415, detail=f"send {SCIM_MEDIA_TYPE}, not {content_type}")
    raw = await request.body()
    if not raw.strip():
        raise InvalidSyntaxException(detail="the body is empty; send a SCIM resource as a JSON object")
    settings = request.app.state.get("settings")
    try:
        # The same checks as every other body (depth, NUL characters, malformed JSON at byte N).
        max_depth = getattr(settings, "request_max_json_depth", DEFAULT_MAX_JSON_DEPTH)
        payload = decode_json(raw, max_depth=max_depth)
    except InvalidInput as exc:
        if exc.code == "nul_character":
            raise InvalidValueException(detail=str(exc.detail)) from None
        raise InvalidSyntaxException(detail=str(exc.detail)) from None
    if not isinstance(payload, dict):
        raise InvalidSyntaxException(detail="the body must be a JSON object")
    _refuse_long_strings(payload)
    return payload


def _known(model: type[Any], payload: dict[str, Any]) -> dict[str, Any]:
    """Drop attributes (and extension schemas) Tiergate does not keep: an IdP sends what it has, and
    RFC 7644 lets the provider ignore what it does not support."""
    names = {"schemas", "id", "externalid", "meta"}
    for name, info in model.model_fields.items():
        names.add(name.lower())
        alias = info.serialization_alias or info.alias
        if alias:
            names.add(alias.lower())
    for field in list(model.model_fields):
        camel = field.split("_")[0] + "".join(p.title() for p in field.split("_")[1:])
        names.add(camel.lower())
    kept = {k: v for k, v in payload.items() if k.lower() in names}
    schemas = kept.get("schemas")
    if isinstance(schemas, list):
        kept["schemas"] = [s for s in schemas if s == str(model.__schema__)] or [str(model.__schema__)]
    return kept


def _dump(resource: Any, ctx: Context, params: ResponseParameters[Any] | None = None) -> dict[str, Any]:
    dumped: dict[str, Any] = resource.model_dump(scim_ctx=ctx, response_parameters=params)
    return dumped


def _list(model: type[Any], result: ListResult, search: SearchRequest[Any]) -> Response[bytes]:
    dumped = [_dump(res, Context.RESOURCE_QUERY_RESPONSE, search) for res in result.resources]
    listing = ListResponse[model](  # type: ignore[valid-type]
        total_results=result.total,
        start_index=result.start_index,
        items_per_page=len(dumped),
        resources=dumped,
    )
    return scim_response(listing.model_dump(scim_ctx=Context.SEARCH_RESPONSE))


def _resource_response(
    resource: Any, ctx: Context, params: ResponseParameters[Any] | None, status: int = 200
) -> Response[bytes]:
    location = resource.meta.location if resource.meta else None
    headers = {"Location": location} if status == 201 and location else {}
    if location:
        headers["Content-Location"] = location
    return scim_response(_dump(resource, ctx, params), status, headers)


def _discovery(resource: Any, location: str) -> dict[str, Any]:
    from scim2_models import Meta as ScimMeta

    located = resource.model_copy(
        update={"meta": ScimMeta(resource_type=type(resource).__name__, location=location)}
    )
    body: dict[str, Any] = located.model_dump()
    return body


def _no_filter(query: dict[str, str]) -> None:
    if "filter" in query:
        from scim2_models import ForbiddenException

        raise ForbiddenException(detail="discovery endpoints do not support filtering")


class ScimDiscoveryController(Controller):
    path = "/"

    @get("/ServiceProviderConfig", summary="SCIM service provider configuration")
    async def service_provider_config(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        _no_filter(_query(request))
        base = str(request.base_url).rstrip("/") + PREFIX
        return scim_response(_discovery(r.SERVICE_PROVIDER_CONFIG, f"{base}/ServiceProviderConfig"))

    @get("/ResourceTypes", summary="SCIM resource types")
    async def resource_types(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        _no_filter(_query(request))
        base = str(request.base_url).rstrip("/") + PREFIX
        items = [_discovery(t, f"{base}/ResourceTypes/{t.id}") for t in r.RESOURCE_TYPES]
        return scim_response(_listing(items))

    @get("/ResourceTypes/{type_id:str}", summary="One SCIM resource type")
    async def resource_type(self, request: Request[Any, Any, Any], type_id: FromPath[str]) -> Response[bytes]:
        _no_filter(_query(request))
        base = str(request.base_url).rstrip("/") + PREFIX
        for t in r.RESOURCE_TYPES:
            if t.id == type_id:
                return scim_response(_discovery(t, f"{base}/ResourceTypes/{t.id}"))
        raise NotFoundException(detail=f"no resource type {type_id!r}")

    @get("/Schemas", summary="SCIM schemas")
    async def schemas(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        _no_filter(_query(request))
        base = str(request.base_url).rstrip("/") + PREFIX
        return scim_response(_listing([_discovery(s, f"{base}/Schemas/{s.id}") for s in r.SCHEMAS]))

    @get("/Schemas/{schema_id:str}", summary="One SCIM schema")
    async def schema(self, request: Request[Any, Any, Any], schema_id: FromPath[str]) -> Response[bytes]:
        _no_filter(_query(request))
        base = str(request.base_url).rstrip("/") + PREFIX
        for s in r.SCHEMAS:
            if s.id == schema_id:
                return scim_response(_discovery(s, f"{base}/Schemas/{s.id}"))
        raise NotFoundException(detail=f"no schema {schema_id!r}")


def _listing(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": len(items),
        "itemsPerPage": len(items),
        "startIndex": 1,
        "Resources": items,
    }


class ScimUserController(Controller):
    path = "/Users"

    @get("/", summary="List or filter Users")
    async def list_(
        self,
        request: Request[Any, Any, Any],
        scim: NamedDependency[ScimService],
        caller: NamedDependency[ScimCaller],
    ) -> Response[bytes]:
        search = _search(r.User, _query(request))
        return _list(r.User, await scim.search_users(caller.tenant_id, search), search)

    @post("/.search", summary="Search Users", status_code=200)
    async def search(
        self,
        request: Request[Any, Any, Any],
        scim: NamedDependency[ScimService],
        caller: NamedDependency[ScimCaller],
    ) -> Response[bytes]:
        search = _search(r.User, await _body(request))
        return _list(r.User, await scim.search_users(caller.tenant_id, search), search)

    @post("/", summary="Create a User (adds the member; needs a free seat)")
    async def create(
        self,
        request: Request[Any, Any, Any],
        scim: NamedDependency[ScimService],
        caller: NamedDependency[ScimCaller],
    ) -> Response[bytes]:
        payload = _known(r.User, await _body(request))
        resource = r.User.model_validate(payload, scim_ctx=Context.RESOURCE_CREATION_REQUEST)
        created = await scim.create_user(caller.tenant_id, resource)
        params = _response_parameters(r.User, _query(request))
        return _resource_response(created, Context.RESOURCE_CREATION_RESPONSE, params, 201)

    @get("/{user_id:str}", summary="Retrieve a User")
    async def retrieve(
        self,
        request: Request[Any, Any, Any],
        user_id: FromPath[str],
        scim: NamedDependency[ScimService],
        caller: NamedDependency[ScimCaller],
    ) -> Response[bytes]:
        params = _response_parameters(r.User, _query(request))
        user = await scim.get_user(caller.tenant_id, user_id)
        return _resource_response(user, Context.RESOURCE_QUERY_RESPONSE, params)

    @put("/{user_id:str}", summary="Replace a User")
    async def replace(
        self,
        request: Request[Any, Any, Any],
        user_id: FromPath[str],
        scim: NamedDependency[ScimService],
        caller: NamedDependency[ScimCaller],
    ) -> Response[bytes]:
        payload = _known(r.User, await _body(request))
        resource = r.User.model_validate(payload, scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
        user = await scim.replace_user(caller.tenant_id, user_id, resource)
        params = _response_parameters(r.User, _query(request))
        return _resource_response(user, Context.RESOURCE_REPLACEMENT_RESPONSE, params)

    @patch("/{user_id:str}", summary="Patch a User (`active: false` removes the membership)")
    async def patch_(
        self,
        request: Request[Any, Any, Any],
        user_id: FromPath[str],
        scim: NamedDependency[ScimService],
        caller: NamedDependency[ScimCaller],
    ) -> Response[bytes]:
        operations = PatchOp[r.User].model_validate(
            await _body(request), scim_ctx=Context.RESOURCE_PATCH_REQUEST
        )
        user = await scim.patch_user(caller.tenant_id, user_id, operations)
        params = _response_parameters(r.User, _query(request))
        return _resource_response(user, Context.RESOURCE_PATCH_RESPONSE, params)

    @delete(
        "/{user_id:str}",
        summary="Delete a User (removes the membership; the user row is kept)",
        status_code=204,
    )
    async def delete_(
        self, user_id: FromPath[str], scim: NamedDependency[ScimService], caller: NamedDependency[ScimCaller]
    ) -> None:
        await scim.delete_user(caller.tenant_id, user_id)


class ScimGroupController(Controller):
    path = "/Groups"

    @get("/", summary="List or filter Groups")
    async def list_(
        self,
        request: Request[Any, Any, Any],
        scim: NamedDependency[ScimService],
        caller: NamedDependency[ScimCaller],
    ) -> Response[bytes]:
        search = _search(r.Group, _query(request))
        return _list(r.Group, await scim.search_groups(caller.tenant_id, search), search)

    @post("/.search", summary="Search Groups", status_code=200)
    async def search(
        self,
        request: Request[Any, Any, Any],
        scim: NamedDependency[ScimService],
        caller: NamedDependency[ScimCaller],
    ) -> Response[bytes]:
        search = _search(r.Group, await _body(request))
        return _list(r.Group, await scim.search_groups(caller.tenant_id, search), search)

    @post("/", summary="Create a Group")
    async def create(
        self,
        request: Request[Any, Any, Any],
        scim: NamedDependency[ScimService],
        caller: NamedDependency[ScimCaller],
    ) -> Response[bytes]:
        payload = _known(r.Group, await _body(request))
        resource = r.Group.model_validate(payload, scim_ctx=Context.RESOURCE_CREATION_REQUEST)
        created = await scim.create_group(caller.tenant_id, resource)
        params = _response_parameters(r.Group, _query(request))
        return _resource_response(created, Context.RESOURCE_CREATION_RESPONSE, params, 201)

    @get("/{group_id:str}", summary="Retrieve a Group")
    async def retrieve(
        self,
        request: Request[Any, Any, Any],
        group_id: FromPath[str],
        scim: NamedDependency[ScimService],
        caller: NamedDependency[ScimCaller],
    ) -> Response[bytes]:
        params = _response_parameters(r.Group, _query(request))
        group = await scim.get_group(caller.tenant_id, group_id)
        return _resource_response(group, Context.RESOURCE_QUERY_RESPONSE, params)

    @put("/{group_id:str}", summary="Replace a Group")
    async def replace(
        self,
        request: Request[Any, Any, Any],
        group_id: FromPath[str],
        scim: NamedDependency[ScimService],
        caller: NamedDependency[ScimCaller],
    ) -> Response[bytes]:
        payload = _known(r.Group, await _body(request))
        resource = r.Group.model_validate(payload, scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
        group = await scim.replace_group(caller.tenant_id, group_id, resource)
        params = _response_parameters(r.Group, _query(request))
        return _resource_response(group, Context.RESOURCE_REPLACEMENT_RESPONSE, params)

    @patch("/{group_id:str}", summary="Patch a Group (members, displayName)")
    async def patch_(
        self,
        request: Request[Any, Any, Any],
        group_id: FromPath[str],
        scim: NamedDependency[ScimService],
        caller: NamedDependency[ScimCaller],
    ) -> Response[bytes]:
        operations = PatchOp[r.Group].model_validate(
            await _body(request), scim_ctx=Context.RESOURCE_PATCH_REQUEST
        )
        group = await scim.patch_group(caller.tenant_id, group_id, operations)
        params = _response_parameters(r.Group, _query(request))
        return _resource_response(group, Context.RESOURCE_PATCH_RESPONSE, params)

    @delete("/{group_id:str}", summary="Delete a Group", status_code=204)
    async def delete_(
        self, group_id: FromPath[str], scim: NamedDependency[ScimService], caller: NamedDependency[ScimCaller]
    ) -> None:
        await scim.delete_group(caller.tenant_id, group_id)


@post("/.search", summary="Search Users and Groups together", status_code=200)
async def search_all(
    request: Request[Any, Any, Any], scim: NamedDependency[ScimService], caller: NamedDependency[ScimCaller]
) -> Response[bytes]:
    search = _search(ANY_RESOURCE, await _body(request))
    return _list(ANY_RESOURCE, await scim.search_all(caller.tenant_id, search), search)


@route("/{unknown:path}", http_method=_METHODS, summary="Anything else under /scim/v2 is a SCIM 404")
async def scim_not_found(unknown: FromPath[str]) -> Response[bytes]:
    raise NotFoundException(detail=f"no SCIM endpoint {unknown!r}")


SCIM_ROUTER = Router(
    path=PREFIX,
    route_handlers=[
        ScimDiscoveryController,
        ScimUserController,
        ScimGroupController,
        search_all,
        scim_not_found,
    ],
    guards=[scim_authenticate],
    dependencies={
        "caller": Provide(provide_caller, sync_to_thread=False),
        "scim": Provide(provide_scim, sync_to_thread=False),
    },
    # Every type the app maps to problem+json is mapped here too: Litestar picks the most specific class
    # across layers, so an app-level HTTPException handler would otherwise answer SCIM clients (a 413
    # body, a 415, a refused parameter) in the wrong shape.
    exception_handlers={
        Exception: scim_error_handler,
        HTTPException: scim_error_handler,
        ValidationException: scim_error_handler,
        DomainError: scim_error_handler,
    },
    tags=["scim"],
    include_in_schema=False,
)
