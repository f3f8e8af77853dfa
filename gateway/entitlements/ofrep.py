"""OpenFeature Remote Evaluation Protocol (OFREP) over the tenant's entitlements.

Any OpenFeature SDK with an OFREP provider can then ask "is `reporting_advanced` on for this customer?"
or "how many `projects` may this customer have?" without a Tiergate-specific client. The wire format is
the open-feature/protocol `service/openapi.yaml` (v0.1.0): `POST /ofrep/v1/evaluate/flags/{key}` and the
bulk `POST /ofrep/v1/evaluate/flags` with ETag / If-None-Match.

Mapping (the choices the protocol leaves to the flag system):

- The evaluation context's `targetingKey` is the customer (tenant) id; `context.customer` is accepted as
  an alias for SDKs that cannot set a targeting key. Giving both with different values is INVALID_CONTEXT.
- A flag is a catalog feature key. A boolean feature evaluates to a boolean (variant `on`/`off`); a gauge or
  metered feature evaluates to its integer limit, with `used`, `remaining`, `unlimited` and (metered)
  `resets_at` in the metadata. An unlimited grant evaluates to **-1** with `metadata.unlimited = true`,
  because the protocol has no "no limit" value and -1 can never be mistaken for a real limit.
- A feature the catalog knows but the tenant's plan does not grant evaluates to `false` / `0` with reason
  DISABLED: the flag exists, it is off for this tenant. That is an answer, not an error, so SDK callers
  get the same value whichever default they passed. Only a key the catalog does not know at all is
  404 FLAG_NOT_FOUND (and, in bulk, simply absent).
- A tenant without a live subscription (unknown, cancelled, paused, unpaid) gets every flag off with
  reason DISABLED: the protocol answers about flags, and a customer id must not be probed through it.
- When the decision index is older than its staleness bound the answer fails closed like /v1/check does
  (off, reason STALE), except features the admin listed as fail-open, which evaluate from the index and
  also say STALE.
- A tenant-scoped API key may only evaluate its own tenant; another targetingKey is 403 (never 404,
  which OFREP reserves for "flag not found").

Error bodies are the protocol's (`{key, errorCode, errorDetails}`), not problem+json, because OFREP
providers parse exactly those; only 401/403 keep the gateway's problem+json, as the protocol defines no
body for them.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, post
from litestar.datastructures import ResponseHeader, State
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody
from litestar.types import ExceptionHandlersMap
from sqlalchemy import select

from gateway.catalog.domain import FeatureKind
from gateway.catalog.models import Feature
from gateway.entitlements.engine import Engine
from gateway.entitlements.loader import FeatureLimit
from gateway.kernel.auth import Principal
from gateway.kernel.clock import format_timestamp
from gateway.kernel.errors import Forbidden
from gateway.web.problems import ERROR_RESPONSES, http_error_handler

MetadataValue = bool | int | str


# -- wire types (field names exactly as the protocol spells them) -----------------------------------------
class EvaluationRequest(msgspec.Struct):
    """`context.targetingKey` (or `context.customer`) is the customer id; other attributes are ignored."""

    context: dict[str, Any] | None = None


class FlagEvaluation(msgspec.Struct):
    """evaluationSuccess: a boolean feature as a boolean, a gauge/metered feature as its limit (-1 =
    unlimited)."""

    key: str
    value: bool | int
    reason: Literal["TARGETING_MATCH", "DISABLED", "STALE"]
    variant: str
    metadata: dict[str, MetadataValue]


class EvaluationFailure(msgspec.Struct):
    key: str
    error_code: Literal["PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"] = msgspec.field(
        name="errorCode"
    )
    error_details: str = msgspec.field(name="errorDetails")


class FlagNotFound(msgspec.Struct):
    key: str
    error_code: Literal["FLAG_NOT_FOUND"] = msgspec.field(name="errorCode")
    error_details: str = msgspec.field(name="errorDetails")


class BulkEvaluationFailure(msgspec.Struct):
    error_code: Literal["PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"] = msgspec.field(
        name="errorCode"
    )
    error_details: str = msgspec.field(name="errorDetails")


class BulkEvaluation(msgspec.Struct):
    # Every flag in a bulk answer evaluates (errors are request-wide here), so no per-flag failures.
    flags: list[FlagEvaluation]


class OfrepError(Exception):
    """An OFREP-shaped error response; raised so handlers keep their success return type."""

    def __init__(self, status: int, body: msgspec.Struct) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


# -- context -------------------------------------------------------------------------------------------
def _failure(key: str | None, code: str, details: str) -> OfrepError:
    body: msgspec.Struct = (
        BulkEvaluationFailure(code, details)  # type: ignore[arg-type]
        if key is None
        else EvaluationFailure(key, code, details)  # type: ignore[arg-type]
    )
    return OfrepError(400, body)


def customer_of(data: EvaluationRequest | None, key: str | None) -> str:
    """The customer id the context targets; `key` is the flag (None in bulk) for the error body."""
    context = data.context if data is not None else None
    if not context:
        raise _failure(key, "TARGETING_KEY_MISSING", "context.targetingKey (the customer id) is required")
    candidates = {name: context[name] for name in ("targetingKey", "customer") if name in context}
    for name, value in candidates.items():
        if not isinstance(value, str) or not 1 <= len(value) <= 64:
            raise _failure(key, "INVALID_CONTEXT", f"context.{name} must be a customer id string")
    if len(set(candidates.values())) > 1:
        raise _failure(key, "INVALID_CONTEXT", "context.targetingKey and context.customer disagree")
    if not candidates:
        raise _failure(key, "TARGETING_KEY_MISSING", "context.targetingKey (the customer id) is required")
    customer: str = next(iter(candidates.values()))
    return customer


def _scope(principal: Principal, customer: str) -> None:
    # The same rule as /v1 (a tenant-scoped key sees only its tenant), but 403: OFREP's 404 means "no such
    # flag", and a provider would report FLAG_NOT_FOUND for what is a misconfigured key. Answering 403 for
    # every other id still reveals nothing about which customers exist.
    if principal.tenant_id is not None and principal.tenant_id != customer:
        raise Forbidden(
            "this API key may only evaluate flags for its own customer", code="customer_forbidden"
        )


# -- evaluation ----------------------------------------------------------------------------------------
def _off(key: str, kind: str, reason: Literal["DISABLED", "STALE"]) -> FlagEvaluation:
    value: bool | int = False if kind == FeatureKind.BOOLEAN.value else 0
    return FlagEvaluation(key, value, reason, "off", {"kind": kind})


async def evaluate(
    engine: Engine, customer: str, key: str, catalog_kind: str | None
) -> FlagEvaluation | None:
    """One flag for one tenant, or None when neither the tenant's grants nor the catalog know `key`.

    `catalog_kind` is the catalog's kind for `key` (None if unknown or not looked up); it only matters
    when the tenant has no grant for the key, which is when the answer must still have the right type."""
    tenant = engine.tenant(customer)
    grant: FeatureLimit | None = tenant.features.get(key) if tenant is not None else None
    kind = grant.kind.value if grant is not None else catalog_kind
    if kind is None:
        return None
    stale = engine.stale
    if stale and key not in engine.settings.fail_open_features:
        return _off(key, kind, "STALE")
    if grant is None or not engine.has_access(customer):
        return _off(key, kind, "STALE" if stale else "DISABLED")
    reason: Literal["TARGETING_MATCH", "STALE"] = "STALE" if stale else "TARGETING_MATCH"
    if grant.kind is FeatureKind.BOOLEAN:
        return FlagEvaluation(key, True, reason, "on", {"kind": kind})
    # Looking only (consume=False): evaluating a flag must never spend quota.
    verdict = await engine.check_feature(customer, key, quantity=1, consume=False)
    metadata: dict[str, MetadataValue] = {"kind": kind, "unlimited": grant.limit is None}
    if grant.soft:
        metadata["soft"] = True
    # The protocol's metadata values are boolean, string or number: absent facts are left out, not null.
    if verdict.used is not None:
        metadata["used"] = verdict.used
    if verdict.remaining is not None:
        metadata["remaining"] = verdict.remaining
    if verdict.resets_at is not None:
        metadata["resets_at"] = format_timestamp(verdict.resets_at)
    if grant.limit is None:
        return FlagEvaluation(key, -1, reason, "unlimited", metadata)
    return FlagEvaluation(key, grant.limit, reason, "limited", metadata)


async def catalog_kinds(state: State, key: str | None = None) -> dict[str, str]:
    """Feature key → kind from the catalog (all features, or just `key`). Read only when the tenant's
    grants cannot answer, so the common single evaluation stays on the in-memory index."""
    query = select(Feature.key, Feature.kind)
    if key is not None:
        query = query.where(Feature.key == key)
    async with state.db.unit_of_work() as session:
        return {k: kind for k, kind in (await session.execute(query)).tuples()}


def etag_of(flags: list[FlagEvaluation]) -> str:
    return '"' + hashlib.sha256(msgspec.json.encode(flags)).hexdigest()[:32] + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison against a comma-separated If-None-Match (or `*`)."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


# -- errors --------------------------------------------------------------------------------------------
def _flag_key(request: Request[Any, Any, Any]) -> str | None:
    key = request.path_params.get("key")
    return key if isinstance(key, str) else None


def ofrep_error_handler(request: Request[Any, Any, Any], exc: OfrepError) -> Response[Any]:
    return Response(exc.body, status_code=exc.status)


def _malformed(request: Request[Any, Any, Any], details: str, code: str) -> Response[Any]:
    return ofrep_error_handler(request, _failure(_flag_key(request), code, details))


def ofrep_validation_handler(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    # The body decoded but does not fit the request schema. Only `context` is read, so a wrong `context`
    # is INVALID_CONTEXT; anything else (a non-object body) means the request could not be parsed. The
    # path key is a plain string and never fails validation, so nothing else reaches here.
    text = str(exc.extra or exc.detail)
    code = "INVALID_CONTEXT" if "context" in text else "PARSE_ERROR"
    return _malformed(request, str(exc.detail), code)


def ofrep_http_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    # Litestar's 400s here are undecodable bodies (PARSE_ERROR in OFREP terms); 401/403/405/... keep the
    # gateway's problem+json, which the protocol leaves undefined.
    if exc.status_code == 400:
        return _malformed(request, str(exc.detail), "PARSE_ERROR")
    return http_error_handler(request, exc)


def _spec(container: Any, description: str) -> ResponseSpec:
    return ResponseSpec(data_container=container, description=description, generate_examples=False)


_AUTH_RESPONSES = {status: ERROR_RESPONSES[status] for status in (401, 403)}
SINGLE_RESPONSES: dict[int, ResponseSpec] = {
    400: _spec(EvaluationFailure, "Bad evaluation request (no targetingKey, malformed context or body)"),
    404: _spec(FlagNotFound, "Flag not found: the key is not a feature of the catalog"),
    **_AUTH_RESPONSES,
}
BULK_RESPONSES: dict[int, ResponseSpec] = {
    304: ResponseSpec(data_container=None, description="Not modified: the If-None-Match ETag still holds"),
    400: _spec(BulkEvaluationFailure, "Bad evaluation request (no targetingKey, malformed context or body)"),
    **_AUTH_RESPONSES,
}


class OfrepController(Controller):
    path = "/ofrep/v1"
    tags = ["OFREP"]
    security = [{"apiKey": []}]
    exception_handlers: ExceptionHandlersMap = {
        OfrepError: ofrep_error_handler,
        ValidationException: ofrep_validation_handler,
        SerializationException: ofrep_http_handler,
        HTTPException: ofrep_http_handler,
    }

    @post(
        "/evaluate/flags/{key:str}",
        # Evaluations are POSTs but read-only: `read_only` spares each one the app's post-write nudge.
        opt={"scope": "entitlements:read", "read_only": True},
        status_code=200,
        responses=SINGLE_RESPONSES,
        summary="OFREP: evaluate one feature flag for the customer in context.targetingKey",
        description=__doc__,
    )
    async def evaluate_flag(
        self,
        key: FromPath[str],
        state: State,
        principal: NamedDependency[Principal],
        data: JSONBody[EvaluationRequest | None] = None,
    ) -> FlagEvaluation:
        customer = customer_of(data, key)
        _scope(principal, customer)
        engine: Engine = state.engine
        tenant = engine.tenant(customer)
        known = tenant is not None and key in tenant.features
        kind = None if known else (await catalog_kinds(state, key)).get(key)
        result = await evaluate(engine, customer, key, kind)
        if result is None:
            raise OfrepError(404, FlagNotFound(key, "FLAG_NOT_FOUND", f"no feature {key!r} in the catalog"))
        return result

    @post(
        "/evaluate/flags",
        # Evaluations are POSTs but read-only: `read_only` spares each one the app's post-write nudge.
        opt={"scope": "entitlements:read", "read_only": True},
        status_code=200,
        responses=BULK_RESPONSES,
        response_headers=[
            ResponseHeader(
                name="ETag", description="Entity tag of the flags, for If-None-Match", documentation_only=True
            )
        ],
        summary="OFREP: evaluate every catalog feature for one customer (ETag / If-None-Match)",
        description=__doc__,
    )
    async def evaluate_flags(
        self,
        state: State,
        principal: NamedDependency[Principal],
        if_none_match: Annotated[
            str | None,
            HeaderParameter(name="If-None-Match", description="ETag of a previous bulk answer"),
        ] = None,
        data: JSONBody[EvaluationRequest | None] = None,
    ) -> Response[BulkEvaluation]:
        customer = customer_of(data, None)
        _scope(principal, customer)
        engine: Engine = state.engine
        kinds = await catalog_kinds(state)
        tenant = engine.tenant(customer)
        # The tenant's grants are normally a subset of the catalog; the union covers a catalog read that
        # raced a feature's creation.
        keys = sorted(set(kinds) | set(tenant.features if tenant is not None else ()))
        flags = [f for k in keys if (f := await evaluate(engine, customer, k, kinds.get(k))) is not None]
        etag = etag_of(flags)
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if matches(if_none_match, etag):
            return Response(content=b"", status_code=304, headers=headers)  # type: ignore[arg-type]
        return Response(BulkEvaluation(flags), headers=headers)


OFREP_CONTROLLERS = [OfrepController]
