"""Check, entitlements and token endpoints: what a SaaS app calls on every request."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog.domain import FeatureKind
from gateway.catalog.repository import CatalogRepository
from gateway.customers import CustomerService
from gateway.customers.models import Customer
from gateway.customers.repository import CustomerRepository
from gateway.entitlements import schemas as s
from gateway.entitlements.engine import Engine
from gateway.entitlements.reconcile import UsageReconciler
from gateway.entitlements.seats import MemberAdmission
from gateway.entitlements.service import CheckResult, CheckService
from gateway.identity.revocation import RevocationList
from gateway.identity.tokens import TokenSigner
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Forbidden, NotFound, ValidationFailed
from gateway.metering.allowance_models import UsageCredit as UsageCreditRow
from gateway.metering.allowance_models import UsagePeriod
from gateway.metering.allowance_service import AllowanceService
from gateway.metering.usage_source import DatabaseMeterUsage
from gateway.subscriptions.models import TestClock
from gateway.web.problems import ERROR_RESPONSES
from gateway.web.timestamps import parse_timestamp


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


def _out(r: CheckResult) -> s.CheckResponse:
    # Positional, field for field (a batch converts up to 1000; a dict of names cost a quarter of its
    # time). `tests/entitlements/test_lean_routes.py` checks that both types keep the same fields in order.
    return s.CheckResponse(
        r.allowed, r.reason, r.customer, r.index_version, r.user, r.plan, r.role, r.feature, r.limit, r.used,
        r.remaining, r.resets_at, r.stale, r.inactive_since, r.overage,
    )  # fmt: skip


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


async def decide_check(principal: Principal, data: s.CheckRequest, deciding: CheckService) -> s.CheckResponse:
    """`POST /v1/check` once the key is admitted and the body decoded (also the lean route's)."""
    _scope(principal, data.customer)
    _need_consume_scope(principal, data.consume)
    return _out(await _decide(deciding, data))


async def decide_batch(
    principal: Principal, data: s.BatchCheckRequest, deciding: CheckService
) -> s.BatchCheckResponse:
    """`POST /v1/check/batch` once the key is admitted and the body decoded (also the lean route's)."""
    # Every item is authorised before any is decided: a refused item must not leave the quota that
    # earlier items consumed behind (a 4xx changes nothing).
    for item in data.checks:
        _scope(principal, item.customer)
        _need_consume_scope(principal, item.consume)
    pinned = deciding.pinned()
    view = pinned.view()
    check_now, finish = pinned.check_now, pinned.finish
    # One view, so one reading of its staleness: the batch is answered as of one instant.
    stale = view.stale
    results: list[s.CheckResponse] = []
    for i in data.checks:
        # Most items are answered by the index alone (no coroutine); a gauge or metered feature, and
        # anything consuming, then asks the quota store, in order, from the same pinned view.
        answered = check_now(
            view, i.customer, i.user, i.resource, i.action, i.feature, i.quantity, i.consume, stale
        )
        if not isinstance(answered, CheckResult):
            assert i.feature is not None
            answered = await finish(
                view, answered, i.customer, i.user, i.feature, i.quantity, i.consume, stale
            )
        results.append(_out(answered))
    return s.BatchCheckResponse(results, view.version)


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
        return await decide_check(principal, data, deciding)

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
        return await decide_batch(principal, data, deciding)

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
        body = await entitlements_snapshot(deciding.engine, customer)
        if body is None:
            # Only a customer that never subscribed: an ended subscription keeps its standing (200 below).
            raise NotFound(f"customer {customer!r} has never subscribed", code="customer_not_found")
        # The ETag covers everything but the index version: an unrelated tenant's change moves the
        # version without changing this snapshot, and must not invalidate caches.
        content = msgspec.json.encode(msgspec.structs.replace(body, index_version=0))
        etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(content=b"", status_code=304, headers=headers)  # type: ignore[arg-type]
        return Response(body, headers=headers)


async def entitlements_snapshot(engine: Engine, customer: str) -> s.Entitlements | None:
    """The tenant's plan, standing and every feature with its limit, use and what is left, from one
    view of the decision index (the features and the standing agree); None for a customer that never
    subscribed. `GET /v1/entitlements/{customer}` and the customer portal both show this."""
    view = engine.view()
    tenant = view.tenant(customer)
    if tenant is None:
        return None
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
    return s.Entitlements(
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


def _credit_out(row: UsageCreditRow) -> s.UsageCredit:
    return s.UsageCredit(
        row.id,
        "usage_credit",
        row.tenant_id,
        row.feature_key,
        row.units,
        row.remaining,
        row.effective_at,
        row.expires_at,
        row.description,
        row.created_at,
    )


def _period_out(row: UsagePeriod) -> s.UsagePeriodOut:
    return s.UsagePeriodOut(
        "usage_period",
        row.tenant_id,
        row.subscription_id,
        row.feature_key,
        row.meter,
        row.period_start,
        row.period_end,
        row.metered,
        row.consumed,
        row.used,
        row.allowance,
        row.overage,
        row.drift,
        row.reconciled_at,
    )


async def _customer_now(session: AsyncSession, clock: Clock, customer: Customer) -> datetime:
    """The customer's time: its test clock's when it has one (credits granted on a test clock)."""
    if customer.test_clock_id is None:
        return clock.now()
    frozen = await session.scalar(select(TestClock.frozen_time).where(TestClock.id == customer.test_clock_id))
    return frozen if frozen is not None else clock.now()


class UsageCreditController(Controller):
    path = "/customers/{customer_id:str}/usage_credits"
    tags = ["metering"]

    @post(
        "/",
        opt={"scope": "billing:write"},
        responses=ERROR_RESPONSES,
        summary="Grant prepaid units of a metered feature, drawn down before overage, with an expiry",
    )
    async def grant(
        self,
        customer_id: FromPath[str],
        data: JSONBody[s.UsageCreditCreate],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> s.UsageCredit:
        customer = await CustomerService(CustomerRepository(session), clock).get(
            customer_id, scope=principal.tenant_id
        )
        feature = await CatalogRepository(session).get_feature(data.feature)
        if feature is None or feature.kind != FeatureKind.METERED.value:
            raise ValidationFailed("feature must name a metered feature", field="feature")
        at = await _customer_now(session, clock, customer)
        credit = await AllowanceService(session).grant_credit(
            customer.id,
            feature.key,
            data.units,
            at=at,
            effective_at=parse_timestamp(data.effective_at, "effective_at"),
            expires_at=parse_timestamp(data.expires_at, "expires_at"),
            description=data.description,
        )
        return _credit_out(credit)

    @get(
        "/", opt={"scope": "billing:read"}, responses=ERROR_RESPONSES, summary="The customer's usage credits"
    )
    async def list_(
        self,
        customer_id: FromPath[str],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> s.UsageCreditList:
        customer = await CustomerService(CustomerRepository(session), clock).get(
            customer_id, scope=principal.tenant_id
        )
        rows = await AllowanceService(session).credits(customer.id)
        return s.UsageCreditList("list", [_credit_out(r) for r in rows])


class UsageReconciliationController(Controller):
    path = "/usage_reconciliation"
    tags = ["metering"]

    @post(
        "/",
        opt={"scope": "entitlements:write"},
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Reconcile metered usage now (the worker does it on a schedule): truth, drift, alerts",
    )
    async def run(
        self,
        data: JSONBody[s.ReconcileRequest],
        state: State,
        session: NamedDependency[AsyncSession],
    ) -> s.UsagePeriodList:
        reconciler = UsageReconciler(state.engine, state.get("meters") or DatabaseMeterUsage)
        done = await reconciler.run(session, customer=data.customer)
        rows = await AllowanceService(session).drift_report(tenant_id=data.customer, limit=1000)
        alerts = [s.UsageAlertOut(r.customer, r.feature, list(r.alerts)) for r in done if r.alerts]
        return s.UsagePeriodList("list", [_period_out(r) for r in rows], alerts)

    @get(
        "/",
        opt={"scope": "entitlements:read"},
        responses=ERROR_RESPONSES,
        summary="Reconciled usage per customer and metered feature, with the hot path's drift",
    )
    async def report(
        self,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        customer: Annotated[str | None, QueryParameter(name="customer", max_length=64)] = None,
        drift_only: Annotated[bool, QueryParameter(name="drift_only", required=False)] = False,
    ) -> s.UsagePeriodList:
        if principal.tenant_id is not None:
            if customer is not None and customer != principal.tenant_id:
                raise NotFound(f"no customer {customer!r}", code="customer_not_found")
            customer = principal.tenant_id
        rows = await AllowanceService(session).drift_report(
            tenant_id=customer, only_drift=drift_only, limit=1000
        )
        return s.UsagePeriodList("list", [_period_out(r) for r in rows])


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


CONTROLLERS = [
    CheckController,
    EntitlementsController,
    TokenController,
    UsageCreditController,
    UsageReconciliationController,
]
