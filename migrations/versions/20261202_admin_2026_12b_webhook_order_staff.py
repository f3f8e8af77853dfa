"""Webhook deliveries carry their event's outbox `seq` (per-endpoint ordering, replay); staff members,
their one-time login links and sessions (issue 14).

Existing deliveries take the `seq` of their outbox event (0 where the event is gone).

Revision ID: admin_2026_12b
Revises: mail_2026_12b
Create Date: 2026-12-02 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import advanced_alchemy.types.datetime
import sqlalchemy as sa
from alembic import op

revision: str = "admin_2026_12b"
down_revision: str | None = "mail_2026_12b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = advanced_alchemy.types.datetime.DateTimeUTC(timezone=True)


def upgrade() -> None:
    op.create_table(
        "staff_members",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("locale", sa.String(length=10), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_members")),
        sa.UniqueConstraint("email", name=op.f("uq_staff_members_email")),
    )
    for table in ("staff_login_links", "staff_sessions"):
        columns = [
            sa.Column("id", sa.String(length=40), nullable=False),
            sa.Column("staff_id", sa.String(length=40), nullable=False),
            sa.Column("token_hash", sa.String(length=64), nullable=False),
            sa.Column("created_at", UTC, nullable=False),
            sa.Column("expires_at", UTC, nullable=False),
            sa.Column("used_at" if table == "staff_login_links" else "revoked_at", UTC, nullable=True),
        ]
        op.create_table(
            table,
            *columns,
            sa.ForeignKeyConstraint(
                ["staff_id"], ["staff_members.id"], name=op.f(f"fk_{table}_staff_id_staff_members")
            ),
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
            sa.UniqueConstraint("token_hash", name=op.f(f"uq_{table}_token_hash")),
        )
        op.create_index(op.f(f"ix_{table}_staff_id"), table, ["staff_id"], unique=False)
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(
            sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )
    op.execute(
        "UPDATE webhook_deliveries SET seq = COALESCE("
        "(SELECT outbox.seq FROM outbox WHERE outbox.event_id = webhook_deliveries.event_id), 0)"
    )
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.alter_column(
            "seq", existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        )
    op.create_index(
        "ix_webhook_deliveries_endpoint_seq",
        "webhook_deliveries",
        ["endpoint_id", "status", "seq"],
        unique=False,
    )


def downgrade() -> None:
    for table in ("staff_sessions", "staff_login_links"):
        op.drop_index(op.f(f"ix_{table}_staff_id"), table_name=table)
        op.drop_table(table)
    op.drop_table("staff_members")
    op.drop_index("ix_webhook_deliveries_endpoint_seq", table_name="webhook_deliveries")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("seq")
