"""Monthly partitions of `usage_events` (PostgreSQL only) and the dedup-key retention sweep.

Partitions are created ahead of time (service start and the maintenance pass): `usage_events_yYYYYmMM`
for [first of month, first of next month) in UTC. Events outside every monthly partition (far back,
or a test clock years ahead) land in `usage_events_default`; a month whose range already has rows in the
default partition cannot be carved out of it, so that month stays in the default (a warning says so)
rather than failing the start.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import Clock
from gateway.kernel.periods import add_months
from gateway.metering.repository import EventStore

log = logging.getLogger(__name__)


# The partitions of usage_events (the default one and one per month): tables that exist in PostgreSQL but
# not in the models; alembic (migrations/env.py) and the schema tests leave them out.
PARTITION_TABLE = re.compile(r"^usage_events_(default|y\d{4}m\d{2})$")


def is_partition_table(name: str) -> bool:
    return PARTITION_TABLE.match(name) is not None


def month_start(at: datetime) -> datetime:
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    return f"usage_events_y{month.year:04d}m{month.month:02d}"


async def ensure_partitions(
    session: AsyncSession, now: datetime, *, months_back: int = 1, months_ahead: int = 2
) -> list[str]:
    """Create the monthly partitions around `now` that are missing; returns the names created."""
    if session.bind is None or session.bind.dialect.name != "postgresql":
        return []
    existing = {
        name
        for (name,) in await session.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'usage_events'"
            )
        )
    }
    created = []
    first = month_start(add_months(month_start(now), -months_back))
    for offset in range(months_back + months_ahead + 1):
        month = month_start(add_months(first, offset))
        name = partition_name(month)
        if name in existing:
            continue
        upper = month_start(month + timedelta(days=32))
        try:
            async with session.begin_nested():
                await session.execute(
                    text(
                        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF usage_events "
                        f"FOR VALUES FROM ('{month.isoformat()}') TO ('{upper.isoformat()}')"
                    )
                )
        except DBAPIError as exc:  # rows of that month already in the default partition, or a race
            log.warning("usage_events partition %s not created: %s", name, str(exc).splitlines()[0])
            continue
        created.append(name)
    return created


async def maintain(
    session: AsyncSession, now: datetime, *, retention_days: int, months_ahead: int
) -> tuple[list[str], int]:
    """One maintenance pass: partitions ahead, and dedup keys past their retention forgotten."""
    created = await ensure_partitions(session, now, months_ahead=months_ahead)
    pruned = await EventStore(session).prune_keys(now - timedelta(days=retention_days))
    return created, pruned


async def run_maintenance(
    db: Database, clock: Clock, settings: Settings, *, interval_seconds: float = 3600.0
) -> None:
    """The in-process maintenance loop (embedded mode and `serve` with the scheduler on)."""
    while True:
        try:
            async with db.unit_of_work(actor="system:metering") as session:
                await maintain(
                    session,
                    clock.now(),
                    retention_days=settings.metering_dedup_retention_days,
                    months_ahead=settings.metering_partition_months_ahead,
                )
        except Exception:  # keep the loop alive; the next pass retries
            log.exception("metering maintenance failed")
        await asyncio.sleep(interval_seconds)
