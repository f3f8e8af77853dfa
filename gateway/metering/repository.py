"""All SQL of metering: meters, the event store (dedup keys, events, roll-ups), the lookups ingestion needs.

The event store has one contract and two implementations of its hot statements:
- PostgreSQL: one statement per table per batch, rows passed as arrays (`INSERT … SELECT FROM unnest(…)`),
  so the SQL text is constant (prepared once per connection) and a batch of 1,000 costs three round trips.
  `ON CONFLICT DO NOTHING … RETURNING` tells which dedup keys were new: concurrent batches carrying the
  same event wait on each other's key and exactly one of them gets it back.
- SQLite (embedded): the same statements as multi-row VALUES (one writer at a time, lower throughput).
Rows are sorted by key before each statement, so two batches lock overlapping rows in the same order and
cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import msgspec
from sqlalchemy import Table, and_, delete, func, select, text, tuple_, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.customers.models import Customer
from gateway.db.base import Base
from gateway.metering import domain as d
from gateway.metering.models import Meter, UsageEvent, UsageEventKey, UsageRollup
from gateway.subscriptions.models import TestClock

EventKey = tuple[str, str, str]  # (tenant_id, source, event_id)
RollupKey = tuple[str, str, datetime, str]  # (meter_id, tenant_id, bucket_start, group_key)


@dataclass(slots=True)
class NewEvent:
    tenant_id: str
    source: str
    event_id: str
    type: str
    subject: str
    time: datetime
    data: dict[str, Any]

    @property
    def key(self) -> EventKey:
        return (self.tenant_id, self.source, self.event_id)


@dataclass(frozen=True, slots=True)
class Subject:
    tenant_id: str
    test_clock_id: str | None


class MeterRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, meter: Meter) -> None:
        self.session.add(meter)

    async def flush(self) -> None:
        await self.session.flush()

    async def by_ref(self, ref: str) -> Meter | None:
        query = select(Meter).where((Meter.id == ref) | (Meter.key == ref))
        return (await self.session.execute(query)).scalar()

    async def key_taken(self, key: str) -> bool:
        return (await self.session.execute(select(Meter.id).where(Meter.key == key))).first() is not None

    async def page(self, *, after: str | None, limit: int, include_archived: bool) -> Sequence[Meter]:
        query = select(Meter).order_by(Meter.id).limit(limit + 1)
        if after:
            query = query.where(Meter.id > after)
        if not include_archived:
            query = query.where(Meter.archived_at.is_(None))
        return (await self.session.execute(query)).scalars().all()

    async def active_by_type(self) -> dict[str, list[Meter]]:
        rows = (await self.session.execute(select(Meter).where(Meter.archived_at.is_(None)))).scalars()
        by_type: dict[str, list[Meter]] = {}
        for meter in rows:
            by_type.setdefault(meter.event_type, []).append(meter)
        return by_type

    async def of_type(self, event_type: str) -> Sequence[Meter]:
        """Every meter of an event type, archived too (their roll-ups are still read)."""
        return (
            (await self.session.execute(select(Meter).where(Meter.event_type == event_type))).scalars().all()
        )


class EventStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.postgres = session.bind.dialect.name == "postgresql" if session.bind else False

    # -- lookups ingestion needs ------------------------------------------------------------------------
    async def subjects(self, names: Iterable[str]) -> dict[str, Subject]:
        """Customers by id, then (for the names that are no id) by `metadata.external_key`."""
        wanted = sorted(set(names))
        found: dict[str, Subject] = {}
        if not wanted:
            return found
        query = select(Customer.id, Customer.test_clock_id).where(Customer.id.in_(wanted))
        for customer_id, clock_id in await self.session.execute(query):
            found[customer_id] = Subject(customer_id, clock_id)
        rest = [n for n in wanted if n not in found]
        if rest:
            external = Customer.metadata_["external_key"].as_string()
            by_key = select(external, Customer.id, Customer.test_clock_id).where(external.in_(rest))
            for name, customer_id, clock_id in await self.session.execute(by_key):
                found[name] = Subject(customer_id, clock_id)
        return found

    async def clock_times(self, clock_ids: Iterable[str]) -> dict[str, datetime]:
        ids = sorted(set(clock_ids))
        if not ids:
            return {}
        query = select(TestClock.id, TestClock.frozen_time).where(TestClock.id.in_(ids))
        return {clock_id: at for clock_id, at in await self.session.execute(query)}

    # -- the hot path -----------------------------------------------------------------------------------
    async def claim_keys(self, events: Sequence[NewEvent], received_at: datetime) -> set[EventKey]:
        """Insert the dedup keys; return those that were not there yet (the events to count)."""
        if not events:
            return set()
        ordered = sorted(events, key=lambda e: e.key)
        if self.postgres:
            statement = text(
                "INSERT INTO usage_event_keys (tenant_id, source, event_id, time, received_at) "
                "SELECT t, s, i, ti, CAST(:received AS timestamptz) FROM unnest("
                "CAST(:tenants AS varchar[]), CAST(:sources AS varchar[]), CAST(:ids AS varchar[]), "
                "CAST(:times AS timestamptz[])) AS u(t, s, i, ti) "
                "ON CONFLICT DO NOTHING RETURNING tenant_id, source, event_id"
            )
            params = {
                "received": received_at,
                "tenants": [e.tenant_id for e in ordered],
                "sources": [e.source for e in ordered],
                "ids": [e.event_id for e in ordered],
                "times": [e.time for e in ordered],
            }
            result = await self.session.execute(statement, params)
            return {(t, s, i) for t, s, i in result}
        claimed: set[EventKey] = set()
        table = _table(UsageEventKey)
        for chunk in _chunks(ordered, 500):
            rows = [
                {
                    "tenant_id": e.tenant_id,
                    "source": e.source,
                    "event_id": e.event_id,
                    "time": e.time,
                    "received_at": received_at,
                }
                for e in chunk
            ]
            claim = (
                sqlite_insert(table)
                .values(rows)
                .on_conflict_do_nothing()
                .returning(table.c.tenant_id, table.c.source, table.c.event_id)
            )
            claimed.update((t, s, i) for t, s, i in await self.session.execute(claim))
        return claimed

    async def insert_events(self, events: Sequence[NewEvent], received_at: datetime) -> None:
        """Store the events whose keys were just claimed (the key makes each unique)."""
        if not events:
            return
        ordered = sorted(events, key=lambda e: (e.tenant_id, e.time, e.source, e.event_id))
        if self.postgres:
            statement = text(
                "INSERT INTO usage_events "
                "(tenant_id, time, source, event_id, type, subject, data, received_at) "
                "SELECT t, ti, s, i, ty, su, CAST(da AS jsonb), CAST(:received AS timestamptz) FROM unnest("
                "CAST(:tenants AS varchar[]), CAST(:times AS timestamptz[]), CAST(:sources AS varchar[]), "
                "CAST(:ids AS varchar[]), CAST(:types AS varchar[]), CAST(:subjects AS varchar[]), "
                "CAST(:datas AS text[])) AS u(t, ti, s, i, ty, su, da) "
                # Only a re-send of an event whose key was pruned (same time too) can meet its old row.
                "ON CONFLICT DO NOTHING"
            )
            params = {
                "received": received_at,
                "tenants": [e.tenant_id for e in ordered],
                "times": [e.time for e in ordered],
                "sources": [e.source for e in ordered],
                "ids": [e.event_id for e in ordered],
                "types": [e.type for e in ordered],
                "subjects": [e.subject for e in ordered],
                # msgspec encodes the JSON back much faster than json.dumps (jsonb re-parses it anyway).
                "datas": [_json(e.data) for e in ordered],
            }
            await self.session.execute(statement, params)
            return
        table = _table(UsageEvent)
        for chunk in _chunks(ordered, 500):
            rows = [
                {
                    "tenant_id": e.tenant_id,
                    "time": e.time,
                    "source": e.source,
                    "event_id": e.event_id,
                    "type": e.type,
                    "subject": e.subject,
                    "data": e.data,
                    "received_at": received_at,
                }
                for e in chunk
            ]
            await self.session.execute(sqlite_insert(table).values(rows).on_conflict_do_nothing())

    async def add_to_rollups(self, partials: dict[RollupKey, d.Partial]) -> None:
        """Fold partial results into the roll-ups (one upsert per batch)."""
        if not partials:
            return
        keys = sorted(partials)
        rows = [partials[k] for k in keys]
        if self.postgres:
            statement = text(
                "INSERT INTO usage_rollups (meter_id, tenant_id, bucket_start, group_key, event_count, "
                "value_sum, value_max, latest_value, latest_time) "
                "SELECT * FROM unnest(CAST(:meters AS varchar[]), CAST(:tenants AS varchar[]), "
                "CAST(:buckets AS timestamptz[]), CAST(:groups AS varchar[]), CAST(:counts AS bigint[]), "
                "CAST(:sums AS numeric[]), CAST(:maxes AS numeric[]), CAST(:latests AS numeric[]), "
                "CAST(:latest_times AS timestamptz[])) "
                "ON CONFLICT (meter_id, tenant_id, bucket_start, group_key) DO UPDATE SET "
                "event_count = usage_rollups.event_count + excluded.event_count, "
                "value_sum = usage_rollups.value_sum + excluded.value_sum, "
                "value_max = GREATEST(usage_rollups.value_max, excluded.value_max), "
                "latest_value = CASE WHEN usage_rollups.latest_time IS NULL "
                "OR excluded.latest_time >= usage_rollups.latest_time "
                "THEN excluded.latest_value ELSE usage_rollups.latest_value END, "
                "latest_time = GREATEST(usage_rollups.latest_time, excluded.latest_time)"
            )
            params = {
                "meters": [k[0] for k in keys],
                "tenants": [k[1] for k in keys],
                "buckets": [k[2] for k in keys],
                "groups": [k[3] for k in keys],
                "counts": [p.count for p in rows],
                "sums": [p.total for p in rows],
                "maxes": [p.maximum for p in rows],
                "latests": [p.latest for p in rows],
                "latest_times": [p.latest_at for p in rows],
            }
            await self.session.execute(statement, params)
            return
        table = _table(UsageRollup)
        for chunk in _chunks(list(zip(keys, rows, strict=True)), 500):
            values = [_rollup_row(k, p) for k, p in chunk]
            upsert = sqlite_insert(table).values(values)
            new, c = upsert.excluded, table.c
            upsert = upsert.on_conflict_do_update(
                index_elements=[c.meter_id, c.tenant_id, c.bucket_start, c.group_key],
                set_={
                    "event_count": c.event_count + new.event_count,
                    "value_sum": c.value_sum + new.value_sum,
                    # SQLite's two-argument max() is NULL when either is: coalesce each side first.
                    "value_max": func.max(
                        func.coalesce(c.value_max, new.value_max), func.coalesce(new.value_max, c.value_max)
                    ),
                    "latest_value": func.iif(
                        c.latest_time.is_(None) | (new.latest_time >= c.latest_time),
                        new.latest_value,
                        c.latest_value,
                    ),
                    "latest_time": func.max(
                        func.coalesce(c.latest_time, new.latest_time),
                        func.coalesce(new.latest_time, c.latest_time),
                    ),
                },
            )
            await self.session.execute(upsert)

    # -- corrections -----------------------------------------------------------------------------------
    async def key(self, tenant_id: str, source: str, event_id: str) -> UsageEventKey | None:
        return await self.session.get(UsageEventKey, (tenant_id, source, event_id))

    async def event(self, tenant_id: str, at: datetime, source: str, event_id: str) -> UsageEvent | None:
        query = select(UsageEvent).where(
            UsageEvent.tenant_id == tenant_id,
            UsageEvent.time == at,
            UsageEvent.source == source,
            UsageEvent.event_id == event_id,
        )
        return (await self.session.execute(query.with_for_update())).scalar()

    async def mark_voided(self, event: UsageEvent, at: datetime) -> None:
        await self.session.execute(
            update(UsageEvent)
            .where(
                UsageEvent.tenant_id == event.tenant_id,
                UsageEvent.time == event.time,
                UsageEvent.source == event.source,
                UsageEvent.event_id == event.event_id,
            )
            .values(voided_at=at)
        )
        event.voided_at = at

    async def replace_bucket(
        self, meter_id: str, tenant_id: str, bucket: datetime, partials: dict[str, d.Partial]
    ) -> None:
        """Set one bucket's roll-ups (per group key) to what was recomputed from the raw events."""
        await self.session.execute(
            delete(UsageRollup).where(
                and_(
                    UsageRollup.meter_id == meter_id,
                    UsageRollup.tenant_id == tenant_id,
                    UsageRollup.bucket_start == bucket,
                )
            )
        )
        if partials:
            rows = [_rollup_row((meter_id, tenant_id, bucket, g), p) for g, p in sorted(partials.items())]
            await self.session.execute(_table(UsageRollup).insert(), rows)

    # -- retention ------------------------------------------------------------------------------------
    async def prune_keys(self, received_before: datetime, *, limit: int = 50_000) -> int:
        """Forget dedup keys received before the cutoff (at most `limit` per call, oldest first)."""
        k = UsageEventKey
        oldest = (
            select(k.tenant_id, k.source, k.event_id)
            .where(k.received_at < received_before)
            .order_by(k.received_at)
            .limit(limit)
        )
        rows = (await self.session.execute(oldest)).all()
        for chunk in _chunks(rows, 1000):
            await self.session.execute(
                delete(k).where(tuple_(k.tenant_id, k.source, k.event_id).in_([tuple(r) for r in chunk]))
            )
        return len(rows)


_encode = msgspec.json.Encoder()


def _json(data: dict[str, Any]) -> str:
    return _encode.encode(data).decode()


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def _rollup_row(key: RollupKey, partial: d.Partial) -> dict[str, Any]:
    meter_id, tenant_id, bucket, group = key
    return {
        "meter_id": meter_id,
        "tenant_id": tenant_id,
        "bucket_start": bucket,
        "group_key": group,
        "event_count": partial.count,
        "value_sum": partial.total,
        "value_max": partial.maximum,
        "latest_value": partial.latest,
        "latest_time": partial.latest_at,
    }


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
