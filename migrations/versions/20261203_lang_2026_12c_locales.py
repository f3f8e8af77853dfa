"""Languages (issue 11): a customer's `preferred_locale`, and `name_translations` of plans (tiers) and
products, shown on invoices and in e-mails in the customer's language.

Revision ID: lang_2026_12c
Revises: dunning_2026_12c
Create Date: 2026-12-03 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "lang_2026_12c"
down_revision: str | None = "dunning_2026_12c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("preferred_locale", sa.String(length=16), nullable=True))
    with op.batch_alter_table("plans") as batch:
        batch.add_column(sa.Column("name_translations", _json(), nullable=True))
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("name_translations", _json(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.drop_column("name_translations")
    with op.batch_alter_table("plans") as batch:
        batch.drop_column("name_translations")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("preferred_locale")
