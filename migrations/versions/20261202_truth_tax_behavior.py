"""tax_behavior on prices and invoice lines (issue 17)

A price says whether its amounts contain the tax (`inclusive`) or not (`exclusive`), as Stripe's
price.tax_behavior; NULL follows the customer's tax rate. Each invoice line records the behavior it was
priced with, so `total` and `amount_excluding_tax` are exact even on an invoice that mixes both. Existing
lines take their invoice's (then single) behavior.

Revision ID: truth_2026_12
Revises: lost_2026_12
Create Date: 2026-12-02 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "truth_2026_12"
down_revision: str | None = "lost_2026_12"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("prices") as batch:
        batch.add_column(sa.Column("tax_behavior", sa.String(length=9), nullable=True))
    with op.batch_alter_table("invoice_lines") as batch:
        batch.add_column(
            sa.Column("tax_behavior", sa.String(length=9), server_default="exclusive", nullable=False)
        )
    op.execute(
        "UPDATE invoice_lines SET tax_behavior = 'inclusive' WHERE invoice_id IN "
        "(SELECT id FROM invoices WHERE tax_inclusive)"
    )


def downgrade() -> None:
    with op.batch_alter_table("invoice_lines") as batch:
        batch.drop_column("tax_behavior")
    with op.batch_alter_table("prices") as batch:
        batch.drop_column("tax_behavior")
