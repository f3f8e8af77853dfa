"""change stream: outbox rows carry their transaction id; relay consumers keep a safe horizon

Revision ID: stream_2026_12
Revises: truth_2026_12
Create Date: 2026-12-02 09:00:00

PostgreSQL: `outbox.xid` defaults to the writing transaction's id (`pg_current_xact_id()`, xid8 as bigint);
rows written before this migration get 0 (older than any running transaction, so settled at once).
Each relay consumer gets a `horizon` (gateway.db.stream). The old relay forgot everything more than 2,000
seqs below its watermark; to hand over without re-delivering that history, existing consumers get a
receipt for every event at or below `last_seq - 2000` (the events the old reader had given up on or done),
and the first pass of the new relay prunes them again. SQLite (one writer, so `seq` order is commit order)
keys the stream by `seq`: an existing consumer's horizon is `last_seq + 1`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "stream_2026_12"
down_revision: str | None = "truth_2026_12"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_REORDER_WINDOW = 2000


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("xid", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True))
        batch.create_index("ix_outbox_xid_seq", ["xid", "seq"], unique=False)
    with op.batch_alter_table("outbox_consumers") as batch:
        batch.add_column(
            sa.Column(
                "horizon",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                server_default="0",
                nullable=False,
            )
        )
    if postgres:
        op.execute("UPDATE outbox SET xid = 0")
        op.execute("ALTER TABLE outbox ALTER COLUMN xid SET DEFAULT (pg_current_xact_id()::text)::bigint")
        op.execute(
            f"""
            INSERT INTO outbox_receipts (consumer, seq)
            SELECT c.name, o.seq FROM outbox_consumers c JOIN outbox o ON o.seq <= c.last_seq - {OLD_REORDER_WINDOW}
            ON CONFLICT DO NOTHING
            """
        )
    else:
        op.execute("UPDATE outbox_consumers SET horizon = last_seq + 1 WHERE last_seq > 0")


def downgrade() -> None:
    with op.batch_alter_table("outbox_consumers") as batch:
        batch.drop_column("horizon")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_xid_seq")
        batch.drop_column("xid")
