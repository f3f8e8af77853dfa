"""The meters' usage as billing and the allowance read it (the `MeterUsage` port over `queries.aggregate`).

Quantities are whole units: a `sum` meter's fractional total is rounded up per group (a customer is
never billed for less than it used, and the same figure is compared with its allowance). A meter that
does not exist (deleted from the catalog's point of view, or a typo that slipped past validation)
reads as no usage rather than failing a whole billing run; the catalog refuses unknown meters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.metering.queries import MeterNotFound, aggregate


class DatabaseMeterUsage:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def total(self, tenant_id: str, meter: str, start: datetime, end: datetime) -> int:
        groups = await self.grouped(tenant_id, meter, start, end, ())
        return sum(groups.values())

    async def grouped(
        self, tenant_id: str, meter: str, start: datetime, end: datetime, group_by: Sequence[str]
    ) -> dict[tuple[str, ...], int]:
        try:
            values = await aggregate(
                self.session, tenant_id=tenant_id, meter=meter, start=start, end=end, group_by=group_by
            )
        except MeterNotFound:
            return {}
        return {key: math.ceil(value) for key, value in values.items()}
