"""All catalog SQL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog.models import Feature, Plan, PlanGrant, PlanVersion, Price, Product


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
