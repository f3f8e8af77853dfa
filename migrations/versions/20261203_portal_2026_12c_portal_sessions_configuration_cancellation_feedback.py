"""Customer portal (issue 13): portal sessions (one-time links and the browser sessions they open), portal
configurations per scope (platform default or one customer), and the cancellation feedback of a
subscription (`cancellation_feedback`, `cancellation_comment`).

Revision ID: portal_2026_12c
Revises: checkout_2026_12c (main already chains dunning_2026_12c on admin_2026_12b)
Create Date: 2026-12-03 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import advanced_alchemy.types.datetime
import sqlalchemy as sa
from alembic import op

revision: str = "portal_2026_12c"
down_revision: str | None = "checkout_2026_12c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = advanced_alchemy.types.datetime.DateTimeUTC(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("cancellation_feedback", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("cancellation_comment", sa.String(length=500), nullable=True))
    op.create_table(
        "portal_configurations",
        sa.Column("scope", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=True),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("plans", sa.JSON(), nullable=False),
        sa.Column("retention_coupon_id", sa.String(length=40), nullable=True),
        sa.Column("default_return_url", sa.String(length=2048), nullable=True),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["retention_coupon_id"],
            ["coupons.id"],
            name=op.f("fk_portal_configurations_retention_coupon_id_coupons"),
        ),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_portal_configurations")),
    )
    op.create_index(
        op.f("ix_portal_configurations_tenant_id"), "portal_configurations", ["tenant_id"], unique=False
    )
    op.create_table(
        "portal_sessions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("link_hash", sa.String(length=64), nullable=False),
        sa.Column("session_hash", sa.String(length=64), nullable=True),
        sa.Column("return_url", sa.String(length=2048), nullable=True),
        sa.Column("locale", sa.String(length=10), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("link_expires_at", UTC, nullable=False),
        sa.Column("opened_at", UTC, nullable=True),
        sa.Column("expires_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["customers.id"], name=op.f("fk_portal_sessions_tenant_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_sessions")),
        sa.UniqueConstraint("link_hash", name=op.f("uq_portal_sessions_link_hash")),
        sa.UniqueConstraint("session_hash", name=op.f("uq_portal_sessions_session_hash")),
    )
    op.create_index(op.f("ix_portal_sessions_tenant_id"), "portal_sessions", ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_portal_sessions_tenant_id"), table_name="portal_sessions")
    op.drop_table("portal_sessions")
    op.drop_index(op.f("ix_portal_configurations_tenant_id"), table_name="portal_configurations")
    op.drop_table("portal_configurations")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("cancellation_comment")
        batch.drop_column("cancellation_feedback")
