"""What the allowance and billing read from the meters: a customer's usage of one meter over a span.

The ingestion side (gateway/metering/, meters and events) implements it; tests and embedded mode may
pass any object with these two methods."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol


class MeterUsage(Protocol):
    async def total(self, tenant_id: str, meter: str, start: datetime, end: datetime) -> int:
        """The meter's aggregated value for the customer over `[start, end)` (events by their own time;
        voided events excluded). 0 for a meter without events or an unknown meter."""
        ...

    async def grouped(
        self, tenant_id: str, meter: str, start: datetime, end: datetime, group_by: Sequence[str]
    ) -> dict[tuple[str, ...], int]:
        """The same, per combination of the `group_by` properties' values (a missing one is "")."""
        ...


class NoMeterUsage:
    """Usage when no meter store is wired: nothing was ever metered."""

    async def total(self, tenant_id: str, meter: str, start: datetime, end: datetime) -> int:
        return 0

    async def grouped(
        self, tenant_id: str, meter: str, start: datetime, end: datetime, group_by: Sequence[str]
    ) -> dict[tuple[str, ...], int]:
        return {}
