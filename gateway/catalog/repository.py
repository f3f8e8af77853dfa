"""All catalog SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import ColumnElement, CursorResult, column, func, select, table, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog.models import (
    Coupon,
    Feature,
    Plan,
    PlanGrant,
    PlanVersion,
    Price,
    Product,
    PromotionCode,
)

# The customers table, by name only: the catalog may check that a promotion code's customer exists
# without importing the customers domain (they are peers in the layer contract).
_customers = table("customers", column("id"))
# The metering domain's meters, by key: features and prices name one (metering sits above the catalog).
_meters = table("meters", column("id"), column("key"))


class CatalogRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: object) -> None:
        self.session.add(row)

    async def flush(self) -> None:
        await self.session.flush()

    # products -----------------------------------------------------------------------------------
    async def get_product(self, product_id: str) -> Product | None:
        return await self.session.get(Product, product_id)

    async def list_products(self, *, after: str | None, limit: int, active: bool | None) -> Sequence[Product]:
        query = select(Product).order_by(Product.id).limit(limit + 1)
        if after:
            query = query.where(Product.id > after)
        if active is not None:
            query = query.where(Product.active == active)
        return (await self.session.scalars(query)).all()

    # features -----------------------------------------------------------------------------------
    async def get_feature(self, id_or_key: str) -> Feature | None:
        query = select(Feature).where((Feature.id == id_or_key) | (Feature.key == id_or_key))
        return (await self.session.scalars(query)).first()

    async def meter_key(self, id_or_key: str) -> str | None:
        """The key of the meter with this id or key, None if there is none."""
        query = select(_meters.c.key).where((_meters.c.key == id_or_key) | (_meters.c.id == id_or_key))
        return (await self.session.execute(query)).scalar()

    async def features_by_key(self, keys: Sequence[str]) -> dict[str, Feature]:
        rows = (await self.session.scalars(select(Feature).where(Feature.key.in_(keys)))).all()
        return {row.key: row for row in rows}

    async def list_features(self, *, after: str | None, limit: int) -> Sequence[Feature]:
        query = select(Feature).order_by(Feature.id).limit(limit + 1)
        if after:
            query = query.where(Feature.id > after)
        return (await self.session.scalars(query)).all()

    # plans --------------------------------------------------------------------------------------
    async def get_plan(self, id_or_key: str) -> Plan | None:
        query = select(Plan).where((Plan.id == id_or_key) | (Plan.key == id_or_key))
        return (await self.session.scalars(query)).first()

    async def get_plan_for_update(self, id_or_key: str) -> Plan | None:
        # Row lock on PostgreSQL so two concurrent grant edits cannot both create version N+1
        # (the unique (plan_id, version) constraint would refuse the second anyway).
        query = select(Plan).where((Plan.id == id_or_key) | (Plan.key == id_or_key)).with_for_update()
        return (await self.session.scalars(query)).first()

    async def list_plans(
        self, *, after: str | None, limit: int, kind: str | None, product_id: str | None, active: bool | None
    ) -> Sequence[Plan]:
        query = select(Plan).order_by(Plan.id).limit(limit + 1)
        if after:
            query = query.where(Plan.id > after)
        if kind:
            query = query.where(Plan.kind == kind)
        if product_id:
            query = query.where(Plan.product_id == product_id)
        if active is not None:
            query = query.where(Plan.active == active)
        return (await self.session.scalars(query)).all()

    async def get_version(self, plan_id: str, version: int) -> PlanVersion | None:
        query = select(PlanVersion).where(PlanVersion.plan_id == plan_id, PlanVersion.version == version)
        return (await self.session.scalars(query)).first()

    async def get_version_by_id(self, version_id: str) -> PlanVersion | None:
        return await self.session.get(PlanVersion, version_id)

    async def list_versions(self, plan_id: str) -> Sequence[PlanVersion]:
        query = select(PlanVersion).where(PlanVersion.plan_id == plan_id).order_by(PlanVersion.version)
        return (await self.session.scalars(query)).all()

    async def grants_of(self, version_id: str) -> Sequence[tuple[PlanGrant, Feature]]:
        query = (
            select(PlanGrant, Feature)
            .join(Feature, Feature.id == PlanGrant.feature_id)
            .where(PlanGrant.plan_version_id == version_id)
            .order_by(Feature.key)
        )
        return [(g, f) for g, f in (await self.session.execute(query)).all()]

    # prices -------------------------------------------------------------------------------------
    async def get_price(self, id_or_lookup: str) -> Price | None:
        query = select(Price).where((Price.id == id_or_lookup) | (Price.lookup_key == id_or_lookup))
        return (await self.session.scalars(query)).first()

    async def list_prices(
        self, *, after: str | None, limit: int, plan_id: str | None, active: bool | None, currency: str | None
    ) -> Sequence[Price]:
        query = select(Price).order_by(Price.id).limit(limit + 1)
        if after:
            query = query.where(Price.id > after)
        if plan_id:
            query = query.where(Price.plan_id == plan_id)
        if active is not None:
            query = query.where(Price.active == active)
        rows = (await self.session.scalars(query)).all()
        if currency:
            # currency_options is JSON; filtering in Python keeps the query portable (the catalog is small).
            rows = [r for r in rows if currency in r.currency_options]
        return rows

    async def lookup_key_taken(self, lookup_key: str) -> bool:
        count = await self.session.scalar(select(func.count()).where(Price.lookup_key == lookup_key))
        return bool(count)

    # coupons ------------------------------------------------------------------------------------
    async def get_coupon(self, coupon_id: str) -> Coupon | None:
        return await self.session.get(Coupon, coupon_id)

    async def list_coupons(self, *, after: str | None, limit: int, active: bool | None) -> Sequence[Coupon]:
        query = select(Coupon).order_by(Coupon.id).limit(limit + 1)
        if after:
            query = query.where(Coupon.id > after)
        if active is not None:
            query = query.where(Coupon.active == active)
        return (await self.session.scalars(query)).all()

    async def plans_by_id_or_key(self, ids_or_keys: Sequence[str]) -> dict[str, Plan]:
        """Plans named by id or key, keyed by what the caller wrote."""
        query = select(Plan).where(Plan.id.in_(ids_or_keys) | Plan.key.in_(ids_or_keys))
        found: dict[str, Plan] = {}
        for plan in (await self.session.scalars(query)).all():
            for name in (plan.id, plan.key):
                if name in ids_or_keys:
                    found[name] = plan
        return found

    async def claim_coupon(self, coupon_id: str) -> bool:
        """Take one redemption, atomically: False when the limit is reached.

        WARNING: this conditional UPDATE is the only thing that keeps concurrent redemptions within
        `max_redemptions` (PostgreSQL re-evaluates the WHERE on the locked row; SQLite has one writer).
        A read-then-write check in Python would over-admit under concurrency.
        """
        return await self._bump(Coupon, coupon_id, +1)

    async def release_coupon(self, coupon_id: str) -> bool:
        return await self._bump(Coupon, coupon_id, -1)

    # promotion codes ----------------------------------------------------------------------------
    async def get_promotion_code(self, id_or_code: str) -> PromotionCode | None:
        """By id ("promo_…", exact) or by customer-facing code (case-insensitive)."""
        query = select(PromotionCode).where(
            (PromotionCode.id == id_or_code) | (PromotionCode.code == id_or_code.strip().upper())
        )
        rows = (await self.session.scalars(query)).all()
        # An id match wins over a code that happens to spell the same characters.
        return next((r for r in rows if r.id == id_or_code), rows[0] if rows else None)

    async def code_taken(self, code: str) -> bool:
        count = await self.session.scalar(select(func.count()).where(PromotionCode.code == code))
        return bool(count)

    async def list_promotion_codes(
        self,
        *,
        after: str | None,
        limit: int,
        code: str | None,
        coupon_id: str | None,
        active: bool | None,
        customer_id: str | None,
        visible_to: str | None,
    ) -> Sequence[PromotionCode]:
        query = select(PromotionCode).order_by(PromotionCode.id).limit(limit + 1)
        if after:
            query = query.where(PromotionCode.id > after)
        if code is not None:
            query = query.where(PromotionCode.code == code)
        if coupon_id is not None:
            query = query.where(PromotionCode.coupon_id == coupon_id)
        if active is not None:
            query = query.where(PromotionCode.active == active)
        if customer_id is not None:
            query = query.where(PromotionCode.customer_id == customer_id)
        if visible_to is not None:
            # A tenant-scoped key never sees codes reserved for another customer.
            query = query.where(
                PromotionCode.customer_id.is_(None) | (PromotionCode.customer_id == visible_to)
            )
        return (await self.session.scalars(query)).all()

    async def coupons_by_id(self, coupon_ids: Sequence[str]) -> dict[str, Coupon]:
        rows = (await self.session.scalars(select(Coupon).where(Coupon.id.in_(coupon_ids)))).all()
        return {row.id: row for row in rows}

    async def claim_promotion_code(self, promotion_code_id: str) -> bool:
        """Like `claim_coupon`, for the code's own limit."""
        return await self._bump(PromotionCode, promotion_code_id, +1)

    async def release_promotion_code(self, promotion_code_id: str) -> bool:
        return await self._bump(PromotionCode, promotion_code_id, -1)

    async def customer_exists(self, customer_id: str) -> bool:
        found = await self.session.scalar(select(_customers.c.id).where(_customers.c.id == customer_id))
        return found is not None

    async def _bump(self, model: type[Coupon] | type[PromotionCode], row_id: str, step: int) -> bool:
        room: ColumnElement[bool]
        if step > 0:
            room = model.max_redemptions.is_(None) | (model.times_redeemed < model.max_redemptions)
        else:
            room = model.times_redeemed > 0
        statement = (
            update(model)
            .where(model.id == row_id, room)
            .values(times_redeemed=model.times_redeemed + step)
            .execution_options(synchronize_session=False)
        )
        result = cast(CursorResult[object], await self.session.execute(statement))
        changed = result.rowcount == 1
        if changed and (row := self.session.identity_map.get(self.session.identity_key(model, row_id))):
            # Keep the loaded object in step with the row (the UPDATE bypassed the ORM on purpose).
            await self.session.refresh(row, ["times_redeemed"])
        return changed
