"""E-mail (issue 11): messages per (event, recipient), suppressions, branding, customer preferences.

Revision ID: mail_2026_12b
Revises: pay_2026_12b
Create Date: 2026-12-02 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'mail_2026_12b'
down_revision: str | None = 'pay_2026_12b'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = advanced_alchemy.types.datetime.DateTimeUTC(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('email_messages',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=True),
    sa.Column('event_id', sa.String(length=40), nullable=False),
    sa.Column('event_type', sa.String(length=80), nullable=False),
    sa.Column('template', sa.String(length=60), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('locale', sa.String(length=20), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', UTC, nullable=True),
    sa.Column('handed_over_at', UTC, nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('sent_at', UTC, nullable=True),
    sa.Column('created_at', UTC, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_messages')),
    sa.UniqueConstraint('event_id', 'recipient', name=op.f('uq_email_messages_event_id_recipient')),
    )
    op.create_index(op.f('ix_email_messages_tenant_id'), 'email_messages', ['tenant_id'], unique=False)
    op.create_index('ix_email_messages_due', 'email_messages', ['status', 'next_attempt_at'], unique=False)
    op.create_table('email_suppressions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=True),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_suppressions')),
    sa.UniqueConstraint('tenant_id', 'address', name=op.f('uq_email_suppressions_tenant_id_address')),
    )
    op.create_index(op.f('ix_email_suppressions_tenant_id'), 'email_suppressions', ['tenant_id'], unique=False)
    op.create_index(op.f('ix_email_suppressions_address'), 'email_suppressions', ['address'], unique=False)
    op.create_table('email_branding',
    sa.Column('scope', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('logo_url', sa.String(length=2048), nullable=True),
    sa.Column('color', sa.String(length=7), nullable=True),
    sa.Column('reply_to', sa.String(length=320), nullable=True),
    sa.Column('updated_at', UTC, nullable=False),
    sa.PrimaryKeyConstraint('scope', name=op.f('pk_email_branding')),
    )
    op.create_index(op.f('ix_email_branding_tenant_id'), 'email_branding', ['tenant_id'], unique=False)
    op.create_table('email_preferences',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('opted_out', JSON, nullable=False),
    sa.Column('updated_at', UTC, nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_email_preferences')),
    )


def downgrade() -> None:
    op.drop_table('email_preferences')
    op.drop_index(op.f('ix_email_branding_tenant_id'), table_name='email_branding')
    op.drop_table('email_branding')
    op.drop_index(op.f('ix_email_suppressions_address'), table_name='email_suppressions')
    op.drop_index(op.f('ix_email_suppressions_tenant_id'), table_name='email_suppressions')
    op.drop_table('email_suppressions')
    op.drop_index('ix_email_messages_due', table_name='email_messages')
    op.drop_index(op.f('ix_email_messages_tenant_id'), table_name='email_messages')
    op.drop_table('email_messages')
