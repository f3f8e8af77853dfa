"""Check, entitlements and token endpoints: what a SaaS app calls on every request."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.entitlements import schemas as s
from gateway.entitlements.engine import Engine
from gateway.entitlements.seats import MemberAdmission
from gateway.entitlements.service import CheckResult, CheckService
from gateway.identity.revocation import RevocationList
from gateway.identity.tokens import TokenSigner
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Forbidden, NotFound
from gateway.web.problems import ERROR_RESPONSES


# WARNING: the dependency is called `deciding`, not `checks`: Litestar reports a body validation error whose
# key equals a dependency's name as a 500, and the batch body has a `checks` field (found by schemathesis).
def provide_checks(state: State) -> CheckService:
    engine: Engine = state.engine
    return CheckService(engine)


def provide_member_admission(
    session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]
) -> MemberAdmission:
    """The one seat check (`seats.py`), for the member endpoints of the layers below."""
    return MemberAdmission(session, clock)


def _scope(principal: Principal, customer: FromPath[str]) -> None:
    # A tenant-scoped key asks only about its own tenant; others look absent (404, no existence leak).
    if principal.tenant_id is not None and principal.tenant_id != customer:
        raise NotFound(f"no customer {customer!r}", code="customer_not_found")


def _out(result: CheckResult) -> s.CheckResponse:
    return s.CheckResponse(**{f: getattr(result, f) for f in s.CheckResponse.__struct_fields__})


async def _decide(deciding: CheckService, request: s.CheckRequest) -> CheckResult:
    return await deciding.check(
        customer=request.customer,
        user=request.user,
        resource=request.resource,
        action=request.action,
        feature=request.feature,
        quantity=request.quantity,
        consume=request.consume,
    )


def _need_consume_scope(principal: Principal, consume: bool) -> None:
    if consume and not principal.allows("check:write"):
        raise Forbidden(
            "consuming quota needs the `check:write` scope",
            code="missing_scope",
            required_scope="check:write",
        )


class CheckController(Controller):
    path = "/check"
    tags = ["decisions"]
    dependencies = {"deciding": Provide(provide_checks, sync_to_thread=False)}

    @post(
        "/",
        opt={"scope": "check:read", "read_only": True},
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Decide one request: may this user do this now, and within which limits",
    )
    async def check(
        self,
        data: JSONBody[s.CheckRequest],
        deciding: NamedDependency[CheckService],
        principal: NamedDependency[Principal],
    ) -> s.CheckResponse:
        _scope(principal, data.customer)
        _need_consume_scope(principal, data.consume)
        return _out(await _decide(deciding, data))

    @post(
        "/batch",
        opt={"scope": "check:read", "read_only": True},
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Decide up to 1000 requests in one call, all from the same index version",
        description=(
            "The batch takes one snapshot of the decision index before its first item and decides every "
            "item from it; `index_version` says which. A change published while the batch runs (between "
            "its quota calls) is seen by the next request, never by half of this batch."
        ),
    )
    async def batch(
        self,
        data: JSONBody[s.BatchCheckRequest],
        deciding: NamedDependency[CheckService],
        principal: NamedDependency[Principal],
    ) -> s.BatchCheckResponse:
        # Every item is authorised before any is decided: a refused item must not leave the quota that
        # earlier items consumed behind (a 4xx changes nothing).
        for item in data.checks:
            _scope(principal, item.customer)
            _need_consume_scope(principal, item.consume)
        pinned = deciding.pinned()
        results = [_out(await _decide(pinned, item)) for item in data.checks]
        return s.BatchCheckResponse(results, pinned.view().version)

    @post(
        "/release",
        opt={"scope": "check:write", "read_only": True},
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Give back gauge units (a project deleted, a seat freed)",
    )
    async def release(
        self,
        data: JSONBody[s.ReleaseRequest],
        deciding: NamedDependency[CheckService],
        principal: NamedDependency[Principal],
    ) -> s.CheckResponse:
        _scope(principal, data.customer)
        return _out(await deciding.release(data.customer, data.feature, data.quantity))


class EntitlementsController(Controller):
    path = "/entitlements"
    tags = ["decisions"]
    dependencies = {"deciding": Provide(provide_checks, sync_to_thread=False)}

    @get(
        "/{customer:str}",
        opt={"scope": "entitlements:read"},
        responses=ERROR_RESPONSES,
        summary="The tenant's full snapshot: plan, features, limits, usage (ETag / If-None-Match)",
    )
    async def snapshot(
        self,
        customer: FromPath[str],
        request: Request[Any, Any, Any],
        deciding: NamedDependency[CheckService],
        principal: NamedDependency[Principal],
    ) -> Response[s.Entitlements]:
        _scope(principal, customer)
        view = deciding.engine.view()  # one snapshot: the features and the standing agree
        tenant = view.tenant(customer)
        if tenant is None:
            # Only a customer that never subscribed: an ended subscription keeps its standing (200 below).
            raise NotFound(f"customer {customer!r} has never subscribed", code="customer_not_found")
        access = view.has_access(customer)
        features = []
        for key, grant in sorted(tenant.features.items()):
            verdict = await view.check_feature(customer, key, quantity=1, consume=False)
            balance = tenant.metered.get(key)
            metered = grant.kind.value == "metered"
            features.append(
                s.FeatureEntitlement(
                    feature=key,
                    kind=grant.kind.value,
                    enabled=access,
                    limit=grant.limit
                    if balance is None or grant.limit is None
                    else grant.limit + balance.credits,
                    unlimited=grant.kind.value != "boolean" and grant.limit is None,
                    soft=grant.soft,
                    used=verdict.used,
                    remaining=verdict.remaining,
                    resets_at=verdict.resets_at,
                    included=grant.limit if metered else None,
                    credits=(balance.credits if balance else 0) if metered else None,
                    overage=verdict.overage if metered and verdict.used is not None else None,
                    meter=balance.meter if balance else None,
                )
            )
        body = s.Entitlements(
            "entitlements",
            customer,
            tenant.plan_key,
            tenant.plan_version,
            tenant.status.value,
            access,
            tenant.inactive_since,
            tenant.period_start,
            tenant.period_end,
            features,
            view.version,
        )
        # The ETag covers everything but the index version: an unrelated tenant's change moves the
        # version without changing this snapshot, and must not invalidate caches.
        content = msgspec.json.encode(msgspec.structs.replace(body, index_version=0))
        etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(content=b"", status_code=304, headers=headers)  # type: ignore[arg-type]
        return Response(body, headers=headers)


class TokenController(Controller):
    path = "/tokens"
    tags = ["identity"]
    dependencies = {"deciding": Provide(provide_checks, sync_to_thread=False)}

    @post(
        "/",
        opt={"scope": "tokens:write"},
        responses=ERROR_RESPONSES,
        summary="Issue a short-lived access token for a member (SSO issues the same after sign-in)",
    )
    async def issue(
        self,
        data: JSONBody[s.TokenRequest],
        deciding: NamedDependency[CheckService],
        state: State,
        principal: NamedDependency[Principal],
    ) -> s.Token:
        _scope(principal, data.customer)
        view = deciding.engine.view()
        tenant = view.tenant(data.customer)
        roles = view.roles_of(data.user, data.customer)
        # A revoked tenant (canceled, expired, paused, unpaid past grace) keeps its members: say that
        # access is revoked, not that they are strangers.
        revocations: RevocationList | None = state.get("revocations")
        if revocations is not None and revocations.tenant_revoked(data.customer):
            raise Forbidden(f"access of {data.customer!r} is revoked", code="access_revoked")
        if tenant is None or not (roles.active or roles.inactive):
            raise NotFound(f"{data.user!r} is not a member of {data.customer!r}", code="unknown_subject")
        signer: TokenSigner = state.signer
        ttl = timedelta(seconds=data.ttl_seconds or state.settings.token_ttl_seconds)
        claims = view.token_claims(data.user, data.customer)
        token, expires = signer.sign(claims, at=deciding.engine.clock.now(), ttl=ttl)
        return s.Token(
            "access_token",
            token,
            "Bearer",
            expires,
            data.user,
            data.customer,
            list(roles.active),
            tenant.plan_key,
            view.version,
            tenant.plan_version,
            view.boolean_features(data.customer),
        )


@get(
    "/.well-known/jwks.json",
    tags=["identity"],
    summary="Public keys that verify Tiergate access tokens",
    sync_to_thread=False,
    cache_control=None,
)
def jwks(state: State) -> dict[str, Any]:
    signer: TokenSigner = state.signer
    return signer.public_jwks


CONTROLLERS = [CheckController, EntitlementsController, TokenController]
