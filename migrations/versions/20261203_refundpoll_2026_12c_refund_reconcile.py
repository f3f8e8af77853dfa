"""Refunds left `pending` get a `reconcile_after` (wall clock): reconciliation polls the provider for them.

Existing pending refunds keep NULL, which reconciliation treats as due at once.

Revision ID: refundpoll_2026_12c
Revises: portal_2026_12c
Create Date: 2026-12-03 07:35:00
"""

from __future__ import annotations

from collections.abc import Sequence

import advanced_alchemy.types.datetime
import sqlalchemy as sa
from alembic import op

revision: str = "refundpoll_2026_12c"
down_revision: str | None = "portal_2026_12c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = advanced_alchemy.types.datetime.DateTimeUTC(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("refunds") as batch:
        batch.add_column(sa.Column("reconcile_after", UTC, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refunds") as batch:
        batch.drop_column("reconcile_after")
