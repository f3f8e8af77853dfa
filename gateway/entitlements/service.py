"""Answering checks: a permission from the decision index, a feature from the tenant's grants and the
quota counters, or both (the quota is only consumed when the permission allows).

Each check reads one `EngineView`; `pinned()` gives a service whose every check reads the same one, which
is how a batch answers all its items from one index version while the engine keeps syncing."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from gateway.entitlements.engine import Engine, EngineView, FeatureVerdict
from gateway.kernel.errors import ValidationFailed


@dataclass(frozen=True, slots=True)
class CheckResult:
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
        wants_permission = resource is not None or action is not None
        if wants_permission and not (user and resource and action):
            raise ValidationFailed("a permission check needs user, resource and action", field="resource")
        if not wants_permission and feature is None:
            raise ValidationFailed("say what to check: user + resource + action, or feature", field="feature")
        engine = self.view()
        version = engine.version
        entitlements = engine.tenant(customer)
        plan = entitlements.plan_key if entitlements else None
        if engine.stale and (feature is None or feature not in engine.settings.fail_open_features):
            # The index may be arbitrarily old (database unreachable for longer than the bound): refuse
            # rather than answer from it. Features the admin marked fail-open are let through below.
            return CheckResult(False, "index_stale", customer, version, user, plan, stale=True)

        role = None
        if wants_permission:
            assert user and resource and action
            decision = engine.decide(user, customer, resource, action)
            role = decision.role
            if not decision.allowed or feature is None:
                return _inactive_since(
                    CheckResult(decision.allowed, decision.reason, customer, version, user, plan, role),
                    engine,
                )
        assert feature is not None
        verdict = await engine.check_feature(customer, feature, quantity=quantity, consume=consume)
        result = _with_feature(customer, version, user, plan, role, verdict, engine.stale)
        return _inactive_since(result, engine)

    async def release(self, customer: str, feature: str, quantity: int) -> CheckResult:
        view = self.view()
        verdict = await view.release(customer, feature, quantity)
        entitlements = view.tenant(customer)
        plan = entitlements.plan_key if entitlements else None
        return _with_feature(customer, view.version, None, plan, None, verdict, False)


def _inactive_since(result: CheckResult, view: EngineView) -> CheckResult:
    if result.reason != "subscription_inactive":
        return result
    entitlements = view.tenant(result.customer)
    since = entitlements.inactive_since if entitlements else None
    return replace(result, inactive_since=since) if since is not None else result


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
