"""Month roll-ups for the admin dashboard: each closed month's MRR-side report, kept with a fingerprint
of its inputs (gateway/metrics/rollups.py). A cache of what the ledger says: dropping it loses nothing.

Revision ID: rollups_2026_12e
Revises: otp_2026_12d
Create Date: 2026-12-04 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "rollups_2026_12e"
down_revision: str | None = "otp_2026_12d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "metrics_month_rollups",
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("clock_key", sa.String(40), nullable=False),
        sa.Column("subtract_discounts", sa.Boolean(), nullable=False),
        sa.Column("month_start", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("fingerprint", sa.String(200), nullable=False),
        sa.Column(
            "report",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("computed_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "currency",
            "clock_key",
            "subtract_discounts",
            "month_start",
            name=op.f("pk_metrics_month_rollups"),
        ),
    )


def downgrade() -> None:
    op.drop_table("metrics_month_rollups")
