"""Request and response types of the check, entitlements and token APIs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct

Id = Annotated[str, Meta(min_length=1, max_length=64)]
Resource = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_./*-]+$")]
Action = Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.*-]+$")]
FeatureKey = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.\-]*$")]


class CheckRequest(Struct, forbid_unknown_fields=True):
    """Either a permission (`user` + `resource` + `action`), a feature (`feature`), or both at once.

    With `consume`, a gauge reserves `quantity` units and a metered feature counts them, atomically;
    without it the check only looks."""

    customer: Id
    user: Id | None = None
    resource: Resource | None = None
    action: Action | None = None
    feature: FeatureKey | None = None
    quantity: Annotated[int, Meta(ge=1, le=1_000_000_000)] = 1
    consume: bool = False


class CheckResponse(Struct, omit_defaults=False):
    allowed: bool
    reason: str
    customer: str
    index_version: int
    user: str | None = None
    plan: str | None = None
    role: str | None = None
    feature: str | None = None
    limit: int | None = None
    used: int | None = None
    remaining: int | None = None
    resets_at: datetime | None = None
    stale: bool = False
    # Set with reason `subscription_inactive`: when the subscription stopped granting access (ended,
    # paused, ...). `unknown_tenant` is only for a customer id that never subscribed.
    inactive_since: datetime | None = None
    # Units used beyond a soft limit this period (billed as overage); null for boolean features.
    overage: int | None = None


class BatchCheckRequest(Struct, forbid_unknown_fields=True):
    checks: Annotated[list[CheckRequest], Meta(min_length=1, max_length=1000)]


class BatchCheckResponse(Struct):
    """Every result was decided from one snapshot of the index, the one at `index_version`: a change
    published while the batch runs (between quota calls to Redis) is not seen by any of its items."""

    results: list[CheckResponse]
    index_version: int


class ReleaseRequest(Struct, forbid_unknown_fields=True):
    customer: Id
    feature: FeatureKey
    quantity: Annotated[int, Meta(ge=1, le=1_000_000_000)] = 1


class FeatureEntitlement(Struct):
    feature: str
    kind: str
    enabled: bool
    limit: int | None
    unlimited: bool
    soft: bool
    used: int | None
    remaining: int | None
    resets_at: datetime | None
    # Metered features: `limit` = `included` (the plan's grant) + `credits` (prepaid usage credits live
    # this period); `used` = the meter's usage + check-time consumption; `overage` beyond a soft limit.
    included: int | None = None
    credits: int | None = None
    overage: int | None = None
    meter: str | None = None


class Entitlements(Struct):
    object: Literal["entitlements"]
    customer: str
    plan: str | None
    plan_version: int | None
    status: str | None
    access: bool
    # When the subscription stopped granting access (canceled, expired, paused, ...); None with access.
    inactive_since: datetime | None
    current_period_start: datetime | None
    current_period_end: datetime | None
    features: list[FeatureEntitlement]
    index_version: int


class TokenRequest(Struct, forbid_unknown_fields=True):
    customer: Id
    user: Id
    ttl_seconds: Annotated[int, Meta(ge=60, le=43_200)] | None = None


class Token(Struct):
    object: Literal["access_token"]
    access_token: str
    token_type: Literal["Bearer"]
    expires_at: datetime
    user: str
    customer: str
    roles: list[str]
    plan: str | None
    index_version: int
    plan_version: int | None = None
    # Boolean features on for the tenant's plan version (also the token's `features` claim)
    features: list[str] = []


class UsageCreditCreate(Struct, forbid_unknown_fields=True):
    """Prepaid units of a metered feature (buy 100k API calls): drawn before overage is billed."""

    feature: FeatureKey
    units: Annotated[int, Meta(ge=1, le=10**12)]
    expires_at: Annotated[str, Meta(max_length=40)] | None = None
    effective_at: Annotated[str, Meta(max_length=40)] | None = None
    description: Annotated[str, Meta(max_length=500)] | None = None


class UsageCredit(Struct):
    id: str
    object: Literal["usage_credit"]
    customer: str
    feature: str
    units: int
    remaining: int
    effective_at: datetime
    expires_at: datetime | None
    description: str | None
    created_at: datetime


class UsageCreditList(Struct):
    object: Literal["list"]
    data: list[UsageCredit]


class ReconcileRequest(Struct, forbid_unknown_fields=True):
    customer: Id | None = None


class UsagePeriodOut(Struct):
    """One customer's metered feature over one period: the reconciled truth and the hot path's drift."""

    object: Literal["usage_period"]
    customer: str
    subscription: str
    feature: str
    meter: str | None
    period_start: datetime
    period_end: datetime
    metered: int
    consumed: int
    used: int
    allowance: int | None
    overage: int
    drift: int
    reconciled_at: datetime


class UsageAlertOut(Struct):
    customer: str
    feature: str
    thresholds: list[int]


class UsagePeriodList(Struct):
    object: Literal["list"]
    data: list[UsagePeriodOut]
    # Set by POST: the thresholds that fired in this run, per customer and feature.
    alerts: list[UsageAlertOut] = []
