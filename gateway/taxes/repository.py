"""All tax SQL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.taxes.models import TaxRate


class TaxRateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: TaxRate) -> None:
        self.session.add(row)

    async def flush(self) -> None:
        await self.session.flush()

    async def get(self, rate_id: str) -> TaxRate | None:
        return await self.session.get(TaxRate, rate_id)

    async def list(
        self, *, after: str | None, limit: int, country: str | None, active: bool | None
    ) -> Sequence[TaxRate]:
        query = select(TaxRate).order_by(TaxRate.id).limit(limit + 1)
        if after:
            query = query.where(TaxRate.id > after)
        if country:
            query = query.where(TaxRate.country == country)
        if active is not None:
            query = query.where(TaxRate.active == active)
        return (await self.session.scalars(query)).all()

    async def active_for_country(self, country: str) -> Sequence[TaxRate]:
        query = (
            select(TaxRate).where(TaxRate.country == country, TaxRate.active.is_(True)).order_by(TaxRate.id)
        )
        return (await self.session.scalars(query)).all()
