"""collection method on subscriptions and invoices; bank-transfer terms and overdue (issue 10)

`collection_method` (charge_automatically | send_invoice) and `days_until_due` on subscriptions and
invoices; on invoices also the ISO 11649 payment reference, the frozen bank-transfer instructions and
`overdue_at` (when `invoice.overdue` was raised, once). Existing rows are charge_automatically, as the
code treated them.

Revision ID: payinv_2026_12
Revises: paycore_2026_12 (chained after merging h-pay-core; stream_2026_12 alone)
Create Date: 2026-12-02 12:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import advanced_alchemy.types.datetime
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "payinv_2026_12"
down_revision: str | None = "paycore_2026_12"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UTC = advanced_alchemy.types.datetime.DateTimeUTC(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(
            sa.Column(
                "collection_method",
                sa.String(length=20),
                server_default="charge_automatically",
                nullable=False,
            )
        )
        batch.add_column(sa.Column("days_until_due", sa.Integer(), nullable=True))
    with op.batch_alter_table("invoices") as batch:
        batch.add_column(
            sa.Column(
                "collection_method",
                sa.String(length=20),
                server_default="charge_automatically",
                nullable=False,
            )
        )
        batch.add_column(sa.Column("days_until_due", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("payment_reference", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("payment_instructions", JSON, nullable=True))
        batch.add_column(sa.Column("overdue_at", UTC, nullable=True))
        batch.create_index(
            "ix_invoices_collection_due", ["collection_method", "status", "due_date"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("invoices") as batch:
        batch.drop_index("ix_invoices_collection_due")
        batch.drop_column("overdue_at")
        batch.drop_column("payment_instructions")
        batch.drop_column("payment_reference")
        batch.drop_column("days_until_due")
        batch.drop_column("collection_method")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("days_until_due")
        batch.drop_column("collection_method")
