"""Payments (issue 10): subscriptions.status holds `incomplete` / `incomplete_expired` (wider column).

Revision ID: pay_2026_12b
Revises: meterbill_2026_12
Create Date: 2026-12-02 18:36:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "pay_2026_12b"
down_revision: str | None = "meterbill_2026_12"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.alter_column("status", existing_type=sa.String(12), type_=sa.String(24), existing_nullable=False)


def downgrade() -> None:
    # The longer statuses do not fit the old column: an expired-incomplete subscription is `expired`.
    op.execute("UPDATE subscriptions SET status = 'expired' WHERE status = 'incomplete_expired'")
    with op.batch_alter_table("subscriptions") as batch:
        batch.alter_column("status", existing_type=sa.String(24), type_=sa.String(12), existing_nullable=False)
