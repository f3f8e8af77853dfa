"""Answering checks: a permission from the decision index, a feature from the tenant's grants and the
quota counters, or both (the quota is only consumed when the permission allows).

Each check reads one `EngineView`; `pinned()` gives a service whose every check reads the same one, which
is how a batch answers all its items from one index version while the engine keeps syncing."""

from __future__ import annotations

from datetime import datetime

import msgspec
from msgspec.structs import replace
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.authz.domain import TenantStatus
from gateway.entitlements.engine import Engine, EngineView, FeatureVerdict
from gateway.entitlements.loader import TenantEntitlements, load_tenants
from gateway.kernel.errors import ValidationFailed


class CheckResult(msgspec.Struct, frozen=True, gc=False):
    """One check's answer. A frozen msgspec Struct rather than a frozen dataclass: a batch builds up to a
    thousand, and a frozen dataclass takes ~1.8 µs to build against ~0.15 µs (both immutable)."""

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
    # With reason subscription_inactive: since when the tenant's subscription grants no access.
    inactive_since: datetime | None = None
    # Metered and gauge features: units used beyond a soft limit (what billing charges as overage).
    overage: int | None = None


class Pending(msgspec.Struct, frozen=True, gc=False):
    """A check the index could not finish alone: the quota store is still to be asked (what the index
    already knew: the tenant's plan, and the role that granted the permission part)."""

    plan: str | None
    role: str | None


class CheckService:
    def __init__(self, engine: Engine, view: EngineView | None = None) -> None:
        self.engine = engine
        self._view = view

    def pinned(self) -> CheckService:
        """A service that answers every check from the engine's current view."""
        return CheckService(self.engine, self.engine.view())

    def view(self) -> EngineView:
        return self._view if self._view is not None else self.engine.view()

    async def check(
        self,
        *,
        customer: str,
        user: str | None = None,
        resource: str | None = None,
        action: str | None = None,
        feature: str | None = None,
        quantity: int = 1,
        consume: bool = False,
    ) -> CheckResult:
        view = self.view()
        answered = self.check_now(view, customer, user, resource, action, feature, quantity, consume)
        if isinstance(answered, CheckResult):
            return answered
        assert feature is not None  # only a feature waits for the quota store
        return await self.finish(view, answered, customer, user, feature, quantity, consume)

    async def finish(
        self,
        view: EngineView,
        pending: Pending,
        customer: str,
        user: str | None,
        feature: str,
        quantity: int,
        consume: bool,
        stale: bool | None = None,
    ) -> CheckResult:
        """The rest of a check `check_now` left pending: the feature's counter, peeked at or consumed.
        `stale`: as `check_now`'s (a batch passes the one reading it answers every item with)."""
        verdict = await view.check_feature(customer, feature, quantity=quantity, consume=consume)
        if stale is None:
            stale = view.stale
        result = _with_feature(customer, view.version, user, pending.plan, pending.role, verdict, stale)
        return _inactive_since(result, view)

    async def check_feature_as_stored(
        self, session: AsyncSession, customer: str, feature: str
    ) -> CheckResult:
        """A feature check against what `session` sees of the database instead of the index.

        For a change an app makes right after a write of its own: create a customer and its subscription,
        then at once its SSO connection. Until the index catches up (within the propagation bound) it
        does not know the tenant yet (`unknown_tenant`), and the app would be refused what its plan
        gives. The tenant is loaded as the index loads it and asked through a view holding that one
        tenant, so the rules are the same code; only the data is newer. Not for the per-request path:
        it costs queries."""
        current = self.engine.view()
        loaded = await load_tenants(session, [customer])
        view = EngineView(self.engine, current.index, loaded.tenants, current.version)
        answered = self.check_now(view, customer, None, None, None, feature, 1)
        if isinstance(answered, CheckResult):
            return answered
        return await self.finish(view, answered, customer, None, feature, 1, False)

    def check_now(
        self,
        view: EngineView,
        customer: str,
        user: str | None,
        resource: str | None,
        action: str | None,
        feature: str | None,
        quantity: int,
        consume: bool = False,
        stale: bool | None = None,
    ) -> CheckResult | Pending:
        """The check's answer from `view` alone, or `Pending` when the quota store must still be asked (a
        gauge or metered feature, to peek at or to consume: the index cannot know its counter). `check`
        is this plus that one await; a batch calls it directly and awaits only the items that need it.
        `stale`: whether `view` is too old to trust, when the caller already asked (a batch asks once)."""
        wants_permission = resource is not None or action is not None
        if wants_permission and not (user and resource and action):
            raise ValidationFailed("a permission check needs user, resource and action", field="resource")
        if not wants_permission and feature is None:
            raise ValidationFailed("say what to check: user + resource + action, or feature", field="feature")
        version = view.version
        entitlements = view.tenants.get(customer)
        plan = entitlements.plan_key if entitlements else None
        if stale is None:
            stale = view.stale
        if stale and (feature is None or feature not in view.settings.fail_open_features):
            # The index may be arbitrarily old (database unreachable for longer than the bound): refuse
            # rather than answer from it. Features the admin marked fail-open are let through below.
            return CheckResult(False, "index_stale", customer, version, user, plan, stale=True)

        role = None
        if wants_permission:
            assert user and resource and action
            decision = view.decide(user, customer, resource, action)
            role = decision.role
            if not decision.allowed or feature is None:
                return _inactive_since(
                    CheckResult(decision.allowed, decision.reason, customer, version, user, plan, role),
                    view,
                )
        assert feature is not None
        if consume:
            return Pending(plan, role)  # taking units is the quota store's (atomic), even where it says no
        verdict = view.check_feature_now(customer, feature, quantity=quantity)
        if verdict is None:
            return Pending(plan, role)
        return _inactive_since(_with_feature(customer, version, user, plan, role, verdict, stale), view)

    async def release(self, customer: str, feature: str, quantity: int) -> CheckResult:
        view = self.view()
        verdict = await view.release(customer, feature, quantity)
        entitlements = view.tenant(customer)
        plan = entitlements.plan_key if entitlements else None
        return _with_feature(customer, view.version, None, plan, None, verdict, False)


# Refusals that dunning (gateway/dunning) causes, by what the index said: the tenant's campaign revoked
# access (subscription_inactive), made it read-only (a permission its members' own roles would have), or
# switched a feature off; an unpaid subscription grants nothing.
_DUNNING_REFUSALS = frozenset(
    {"subscription_inactive", "no_permission", "role_not_allowed", "feature_not_in_plan"}
)


def _inactive_since(result: CheckResult, view: EngineView) -> CheckResult:
    """A refusal for want of access says since when, and why when dunning is the cause:
    `payment_past_due` (a renewal in dunning narrowed access) or `subscription_unpaid`."""
    if result.allowed or result.reason not in _DUNNING_REFUSALS:
        return result
    entitlements = view.tenant(result.customer)
    if entitlements is None:
        return result
    if entitlements.in_dunning:
        reason = _dunning_reason(result, entitlements)
        if reason is not None:
            return replace(result, reason=reason, inactive_since=entitlements.inactive_since)
    if result.reason != "subscription_inactive":
        return result
    since = entitlements.inactive_since
    return replace(result, inactive_since=since) if since is not None else result


def _dunning_reason(result: CheckResult, entitlements: TenantEntitlements) -> str | None:
    if entitlements.status is TenantStatus.UNPAID:
        return "subscription_unpaid" if result.reason == "subscription_inactive" else None
    if result.reason == "subscription_inactive":
        return "payment_past_due" if not entitlements.access else None
    if result.reason == "feature_not_in_plan":
        return "payment_past_due" if result.feature in entitlements.revoked_features else None
    # no_permission / role_not_allowed while members act with the read-only role
    return "payment_past_due" if entitlements.read_only_role is not None and result.feature is None else None


def _with_feature(
    customer: str,
    version: int,
    user: str | None,
    plan: str | None,
    role: str | None,
    verdict: FeatureVerdict,
    stale: bool,
) -> CheckResult:
    return CheckResult(
        allowed=verdict.allowed,
        reason=verdict.reason,
        customer=customer,
        index_version=version,
        user=user,
        plan=plan,
        role=role,
        feature=verdict.feature,
        limit=verdict.limit,
        used=verdict.used,
        remaining=verdict.remaining,
        resets_at=verdict.resets_at,
        stale=stale,
        overage=verdict.overage if verdict.kind is not None and verdict.kind != "boolean" else None,
    )
