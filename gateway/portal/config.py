"""Portal configuration: which actions a customer's portal offers, which plans it may switch to, the
retention coupon of the cancel flow, and where "return to app" leads.

One row per scope: `platform` (the default) or a customer id (that customer's own, replacing the default
as a whole). With no row at all, the portal offers every action and every active plan, and no coupon.
Only platform keys (and staff) set it: a customer must not discount or enable things for itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog import CouponService
from gateway.catalog.repository import CatalogRepository
from gateway.db.outbox import record_change
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Forbidden, NotFound, ValidationFailed
from gateway.portal.config_models import PortalConfiguration

PLATFORM_SCOPE = "platform"

# Every action the portal knows, in the order the pages list them.
ACTIONS = (
    "upgrade",
    "downgrade",
    "switch_interval",
    "change_seats",
    "addons",
    "promotion_code",
    "pause",
    "cancel",
    "update_billing_details",
)


class ActionNotOffered(Forbidden):
    code = "portal_action_not_offered"


@dataclass(frozen=True, slots=True)
class PortalSettings:
    """The configuration in force for one customer (`scope` says where it came from)."""

    scope: str
    actions: tuple[str, ...]
    plans: tuple[str, ...]
    retention_coupon: str | None
    default_return_url: str | None

    def offers(self, action: str) -> bool:
        return action in self.actions

    def require(self, action: str) -> None:
        if action not in self.actions:
            raise ActionNotOffered(f"this portal does not offer {action.replace('_', ' ')}")

    def allows_plan(self, plan_key: str) -> bool:
        return not self.plans or plan_key in self.plans


DEFAULT = PortalSettings(PLATFORM_SCOPE, ACTIONS, (), None, None)


def _settings(row: PortalConfiguration) -> PortalSettings:
    return PortalSettings(
        row.scope,
        tuple(a for a in ACTIONS if a in row.actions),
        tuple(row.plans),
        row.retention_coupon_id,
        row.default_return_url,
    )


class PortalConfigService:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    async def for_customer(self, customer_id: str | None) -> PortalSettings:
        """The customer's own configuration, else the platform default, else everything offered."""
        if customer_id is not None:
            row = await self.session.get(PortalConfiguration, customer_id)
            if row is not None:
                return _settings(row)
        row = await self.session.get(PortalConfiguration, PLATFORM_SCOPE)
        return _settings(row) if row is not None else DEFAULT

    async def put(
        self,
        customer_id: str | None,
        *,
        actions: list[str],
        plans: list[str],
        retention_coupon: str | None,
        default_return_url: str | None,
    ) -> PortalSettings:
        unknown = [a for a in actions if a not in ACTIONS]
        if unknown:
            raise ValidationFailed(
                f"unknown portal action {unknown[0]!r}; choose from {list(ACTIONS)}", field="actions"
            )
        catalog = CatalogRepository(self.session)
        keys: list[str] = []
        for name in plans:
            plan = await catalog.get_plan(name)
            if plan is None:
                raise ValidationFailed(f"unknown plan {name!r}", field="plans")
            if plan.key not in keys:
                keys.append(plan.key)
        if retention_coupon is not None:
            try:
                await CouponService(catalog, self.clock).get_coupon(retention_coupon)
            except NotFound as exc:  # a bad field of this request, not a missing resource
                raise ValidationFailed(
                    f"unknown coupon {retention_coupon!r}", field="retention_coupon"
                ) from exc
        scope = customer_id or PLATFORM_SCOPE
        now = self.clock.now()
        row = await self.session.get(PortalConfiguration, scope)
        if row is None:
            row = PortalConfiguration(scope=scope, tenant_id=customer_id, updated_at=now)
            self.session.add(row)
        row.actions = [a for a in ACTIONS if a in actions]
        row.plans = keys
        row.retention_coupon_id = retention_coupon
        row.default_return_url = default_return_url
        row.updated_at = now
        await self.session.flush()
        await record_change(
            self.session,
            "portal_configuration.updated",
            "portal_configuration",
            scope,
            now,
            tenant_id=customer_id,
            actions=row.actions,
            plans=keys,
            retention_coupon=retention_coupon,
        )
        return _settings(row)
