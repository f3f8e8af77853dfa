"""outbox.actor: who caused each recorded change (the audit log names it)

Revision ID: lost_2026_12
Revises: secrets_2026_12
Create Date: 2026-12-02 09:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "lost_2026_12"
down_revision: str | None = "secrets_2026_12"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("actor", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("actor")
