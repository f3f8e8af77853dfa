"""usage metering: meters, dedup keys, usage events (monthly partitions on PostgreSQL), 15-minute roll-ups

Revision ID: meteringest_2026_12
Revises: stream_2026_12
Create Date: 2026-12-02 12:10:00

PostgreSQL: `usage_events` is `PARTITION BY RANGE (time)` with a DEFAULT partition; monthly partitions
(`usage_events_yYYYYmMM`) are created ahead of time by `gateway.metering.partitions.ensure_partitions`
(service start and the maintenance job), never by hand. The dedup key lives in `usage_event_keys`
(unpartitioned primary key), because a unique index on a partitioned table must include `time`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import advanced_alchemy.types

revision: str = "meteringest_2026_12"
down_revision: str | None = "payinv_2026_12"  # chained after payments at merge
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = advanced_alchemy.types.DateTimeUTC(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
VALUE = sa.Numeric(38, 9)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "meters",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("aggregation", sa.String(length=16), nullable=False),
        sa.Column("value_property", sa.String(length=200), nullable=True),
        sa.Column("filters", JSON, nullable=False),
        sa.Column("group_by", JSON, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.Column("archived_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meters")),
        sa.UniqueConstraint("key", name=op.f("uq_meters_key")),
    )
    op.create_index(op.f("ix_meters_event_type"), "meters", ["event_type"], unique=False)
    op.create_table(
        "usage_event_keys",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("time", UTC_DATETIME, nullable=False),
        sa.Column("received_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "source", "event_id", name=op.f("pk_usage_event_keys")),
    )
    op.create_index(
        "ix_usage_event_keys_received_at",
        "usage_event_keys",
        ["received_at"],
        unique=False,
        postgresql_using="brin",
    )
    op.create_table(
        "usage_events",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("time", UTC_DATETIME, nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("received_at", UTC_DATETIME, nullable=False),
        sa.Column("voided_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "time", "source", "event_id", name=op.f("pk_usage_events")),
        postgresql_partition_by="RANGE (time)",
    )
    if postgres:
        op.execute("CREATE TABLE usage_events_default PARTITION OF usage_events DEFAULT")
    op.create_table(
        "usage_rollups",
        sa.Column("meter_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("bucket_start", UTC_DATETIME, nullable=False),
        sa.Column("group_key", sa.String(length=1000), nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("value_sum", VALUE, nullable=False),
        sa.Column("value_max", VALUE, nullable=True),
        sa.Column("latest_value", VALUE, nullable=True),
        sa.Column("latest_time", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint(
            "meter_id", "tenant_id", "bucket_start", "group_key", name=op.f("pk_usage_rollups")
        ),
    )


def downgrade() -> None:
    op.drop_table("usage_rollups")
    op.drop_table("usage_events")  # its partitions go with it
    op.drop_index("ix_usage_event_keys_received_at", table_name="usage_event_keys")
    op.drop_table("usage_event_keys")
    op.drop_index(op.f("ix_meters_event_type"), table_name="meters")
    op.drop_table("meters")
