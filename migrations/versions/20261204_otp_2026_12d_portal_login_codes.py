"""Portal sign-in by an e-mailed one-time code: `portal_login_codes` (the codes' HMACs, their expiry,
wrong tries and use, and the one-time choice token of an address shared by several customers).

Revision ID: otp_2026_12d
Revises: segments_2026_12d
Create Date: 2026-12-04 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import advanced_alchemy.types.datetime
import sqlalchemy as sa
from alembic import op

revision: str = "otp_2026_12d"
down_revision: str | None = "segments_2026_12d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = advanced_alchemy.types.datetime.DateTimeUTC(timezone=True)


def upgrade() -> None:
    op.create_table(
        "portal_login_codes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("used_at", UTC, nullable=True),
        sa.Column("choice_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_login_codes")),
        sa.UniqueConstraint("choice_hash", name=op.f("uq_portal_login_codes_choice_hash")),
    )
    op.create_index(
        "ix_portal_login_codes_email_created_at", "portal_login_codes", ["email", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_portal_login_codes_email_created_at", table_name="portal_login_codes")
    op.drop_table("portal_login_codes")
