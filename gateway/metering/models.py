"""Metering tables: meters, the dedup keys, the raw usage events and their 15-minute roll-ups.

Why four tables:
- `usage_events` is the raw truth. On PostgreSQL it is partitioned by month of the event's `time`
  (RANGE partitions `usage_events_yYYYYmMM`, plus `usage_events_default` for anything outside them), so
  old months can be detached and a month's query touches one partition. A unique index on a partitioned
  table must contain the partition key, so it cannot enforce "one event per (tenant, source, id)" when a
  client re-sends an event with a different `time`.
- `usage_event_keys` therefore holds the dedup key on its own, unpartitioned, as its primary key; the
  ingestion inserts there first (`ON CONFLICT DO NOTHING … RETURNING`) and only the keys that came back
  go on to `usage_events`. Keys are kept for `metering_dedup_retention_days` (35 by default) after they
  were received, then pruned (BRIN index on `received_at`, nearly free on insert).
- `usage_rollups` holds, per meter, customer, 15-minute bucket (UTC) and group, the count, sum, max and
  latest value of the events the meter matched. They are maintained in the ingesting transaction, so a
  query never sees an event without its roll-up. 15 minutes because every time zone offset in use today
  is a multiple of it: an hour/day/month window in any zone starts on a bucket boundary.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Index, Numeric, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base

# Values of `sum`, `max` and `latest` meters: exact decimals on PostgreSQL (SQLite keeps them as REAL).
VALUE = Numeric(38, 9)
# Event ids and sources as CloudEvents allows them, bounded.
KEY_LENGTH = 200


class Meter(Base):
    """What to count: events of `event_type` (whose `data` match `filters`), aggregated by `aggregation`
    over the value at `value_property` (a dot path into `data`), per customer and per `group_by` values.
    Platform-wide, like the catalog: meters are shared by every tenant. The definition is immutable once
    created (its roll-ups depend on it); `archived_at` retires a meter (no more matching, kept for
    invoices that refer to it)."""

    __tablename__ = "meters"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(KEY_LENGTH), index=True)
    # count | sum | max | unique_count | latest (gateway.metering.domain.Aggregation)
    aggregation: Mapped[str] = mapped_column(String(16))
    value_property: Mapped[str | None] = mapped_column(String(200))
    # {"dot.path": "value"} or {"dot.path": ["a", "b"]}: every entry must match (string comparison).
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Dot paths whose values split the usage into groups (e.g. ["region", "model"]).
    group_by: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    archived_at: Mapped[datetime | None]


class UsageEventKey(Base):
    """The dedup key of every event received in the retention window: its presence means "already
    counted". `time` is the stored event's time, which is how `usage_events` is addressed from a key
    (void, replacement)."""

    __tablename__ = "usage_event_keys"

    tenant_id: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(KEY_LENGTH))
    event_id: Mapped[str] = mapped_column(String(KEY_LENGTH))
    time: Mapped[datetime]
    received_at: Mapped[datetime]

    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "source", "event_id"),
        Index("ix_usage_event_keys_received_at", "received_at", postgresql_using="brin"),
    )


class UsageEvent(Base):
    """One accepted event, as sent (`data` verbatim). `tenant_id` is the customer the subject resolved
    to. No foreign key to customers: the subject is checked at ingestion, and a per-row FK check would
    cost an index probe per event on the hot path. `voided_at` marks a corrected event: it no longer
    counts anywhere (its roll-up buckets are recomputed when it is voided)."""

    __tablename__ = "usage_events"

    tenant_id: Mapped[str] = mapped_column(String(40))
    time: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(KEY_LENGTH))
    event_id: Mapped[str] = mapped_column(String(KEY_LENGTH))
    type: Mapped[str] = mapped_column(String(KEY_LENGTH))
    subject: Mapped[str] = mapped_column(String(KEY_LENGTH))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime]
    voided_at: Mapped[datetime | None]

    __table_args__ = (
        # (tenant, time) first: every query is one customer's time range; the rest makes it unique
        # (the partition key `time` must be part of it) and addresses one event for a void.
        PrimaryKeyConstraint("tenant_id", "time", "source", "event_id"),
        {"postgresql_partition_by": "RANGE (time)"},
    )


class UsageRollup(Base):
    """Pre-aggregated usage of one meter for one customer in one 15-minute bucket and group.
    `group_key` is the JSON array of the meter's `group_by` values in order ("[]" without groups).
    `unique_count` meters have no roll-up (distinct values do not add up across buckets)."""

    __tablename__ = "usage_rollups"

    meter_id: Mapped[str] = mapped_column(String(40))
    tenant_id: Mapped[str] = mapped_column(String(40))
    bucket_start: Mapped[datetime]
    group_key: Mapped[str] = mapped_column(String(1000))
    event_count: Mapped[int] = mapped_column(BigInteger)
    value_sum: Mapped[Decimal] = mapped_column(VALUE)
    value_max: Mapped[Decimal | None] = mapped_column(VALUE)
    latest_value: Mapped[Decimal | None] = mapped_column(VALUE)
    latest_time: Mapped[datetime | None]

    __table_args__ = (PrimaryKeyConstraint("meter_id", "tenant_id", "bucket_start", "group_key"),)
