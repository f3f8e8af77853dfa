"""Metrics segments and plan flows: `mrr_changes` and `metrics_subscriptions` note the plan and billing
interval of the subscription (from its price).

Existing rows are filled from the subscription's price today: right for every subscription that never
changed plan; for one that did, its older rows take its present plan (the history before this revision did
not record it).

Revision ID: segments_2026_12d
Revises: refundpoll_2026_12c
Create Date: 2026-12-03 10:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "segments_2026_12d"
down_revision: str | None = "refundpoll_2026_12c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("mrr_changes", "metrics_subscriptions")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("plan_id", sa.String(40), nullable=True))
            batch.add_column(sa.Column("interval", sa.String(10), nullable=True))
        for column in ("plan_id", "interval"):
            op.execute(
                f'UPDATE {table} SET "{column}" = (SELECT prices."{column}" FROM subscriptions '
                f"JOIN prices ON prices.id = subscriptions.price_id "
                f"WHERE subscriptions.id = {table}.subscription_id)"
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("interval")
            batch.drop_column("plan_id")
