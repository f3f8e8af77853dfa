"""Metered allowances and overage billing (issue 12): features and prices point at a meter; prepaid
usage credits and their draws; the reconciled usage of each period; threshold alerts sent (unique per
threshold per period); metered charges billed per subscription period (late events become adjustments).

Revision ID: meterbill_2026_12
Revises: meteringest_2026_12 (chained after the metering branch it merges; was stream_2026_12)
Create Date: 2026-12-02 11:59:11.133685
"""

from __future__ import annotations

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'meterbill_2026_12'
down_revision: str | None = 'meteringest_2026_12'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('usage_credits',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('feature_key', sa.String(length=100), nullable=False),
    sa.Column('units', sa.BigInteger(), nullable=False),
    sa.Column('remaining', sa.BigInteger(), nullable=False),
    sa.Column('effective_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.Column('expires_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_usage_credits_tenant_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_credits'))
    )
    op.create_index(op.f('ix_usage_credits_tenant_id'), 'usage_credits', ['tenant_id'], unique=False)
    op.create_table('usage_periods',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('subscription_id', sa.String(length=40), nullable=False),
    sa.Column('feature_key', sa.String(length=100), nullable=False),
    sa.Column('meter', sa.String(length=100), nullable=True),
    sa.Column('period_start', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.Column('period_end', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.Column('metered', sa.BigInteger(), nullable=False),
    sa.Column('consumed', sa.BigInteger(), nullable=False),
    sa.Column('used', sa.BigInteger(), nullable=False),
    sa.Column('allowance', sa.BigInteger(), nullable=True),
    sa.Column('overage', sa.BigInteger(), nullable=False),
    sa.Column('drift', sa.BigInteger(), nullable=False),
    sa.Column('reconciled_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_usage_periods_tenant_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_periods')),
    sa.UniqueConstraint('subscription_id', 'feature_key', 'period_start', name=op.f('uq_usage_periods_subscription_id_feature_key_period_start'))
    )
    op.create_index(op.f('ix_usage_periods_tenant_id'), 'usage_periods', ['tenant_id'], unique=False)
    op.create_table('usage_threshold_alerts',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('subscription_id', sa.String(length=40), nullable=False),
    sa.Column('feature_key', sa.String(length=100), nullable=False),
    sa.Column('period_start', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.Column('threshold', sa.Integer(), nullable=False),
    sa.Column('used', sa.BigInteger(), nullable=False),
    sa.Column('allowance', sa.BigInteger(), nullable=False),
    sa.Column('reached_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_usage_threshold_alerts_tenant_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_threshold_alerts')),
    sa.UniqueConstraint('subscription_id', 'feature_key', 'period_start', 'threshold', name=op.f('uq_usage_threshold_alerts_subscription_id_feature_key_period_start_threshold'))
    )
    op.create_index(op.f('ix_usage_threshold_alerts_tenant_id'), 'usage_threshold_alerts', ['tenant_id'], unique=False)
    op.create_table('usage_credit_draws',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('credit_id', sa.String(length=40), nullable=False),
    sa.Column('subscription_id', sa.String(length=40), nullable=False),
    sa.Column('period_start', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.Column('units', sa.BigInteger(), nullable=False),
    sa.Column('created_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['credit_id'], ['usage_credits.id'], name=op.f('fk_usage_credit_draws_credit_id_usage_credits')),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_usage_credit_draws_tenant_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_credit_draws')),
    sa.UniqueConstraint('credit_id', 'subscription_id', 'period_start', name=op.f('uq_usage_credit_draws_credit_id_subscription_id_period_start'))
    )
    op.create_index(op.f('ix_usage_credit_draws_credit_id'), 'usage_credit_draws', ['credit_id'], unique=False)
    op.create_index(op.f('ix_usage_credit_draws_tenant_id'), 'usage_credit_draws', ['tenant_id'], unique=False)
    op.create_table('metered_charges',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('subscription_id', sa.String(length=40), nullable=False),
    sa.Column('price_id', sa.String(length=40), nullable=False),
    sa.Column('meter', sa.String(length=100), nullable=False),
    sa.Column('group_key', sa.String(length=400), nullable=False),
    sa.Column('period_start', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.Column('period_end', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('used', sa.BigInteger(), nullable=False),
    sa.Column('included', sa.BigInteger(), nullable=False),
    sa.Column('credited', sa.BigInteger(), nullable=False),
    sa.Column('billed_quantity', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('invoice_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.Column('updated_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['price_id'], ['prices.id'], name=op.f('fk_metered_charges_price_id_prices')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_metered_charges_subscription_id_subscriptions')),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_metered_charges_tenant_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metered_charges')),
    sa.UniqueConstraint('subscription_id', 'price_id', 'group_key', 'period_start', name=op.f('uq_metered_charges_subscription_id_price_id_group_key_period_start'))
    )
    op.create_index(op.f('ix_metered_charges_subscription_id'), 'metered_charges', ['subscription_id'], unique=False)
    op.create_index(op.f('ix_metered_charges_tenant_id'), 'metered_charges', ['tenant_id'], unique=False)
    op.add_column('features', sa.Column('meter', sa.String(length=100), nullable=True))
    op.add_column('features', sa.Column('alert_thresholds', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))
    op.add_column('prices', sa.Column('meter', sa.String(length=100), nullable=True))
    op.add_column('prices', sa.Column('usage_group_by', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prices") as batch:
        batch.drop_column("usage_group_by")
        batch.drop_column("meter")
    with op.batch_alter_table("features") as batch:
        batch.drop_column("alert_thresholds")
        batch.drop_column("meter")
    op.drop_index(op.f('ix_metered_charges_tenant_id'), table_name='metered_charges')
    op.drop_index(op.f('ix_metered_charges_subscription_id'), table_name='metered_charges')
    op.drop_table('metered_charges')
    op.drop_index(op.f('ix_usage_credit_draws_tenant_id'), table_name='usage_credit_draws')
    op.drop_index(op.f('ix_usage_credit_draws_credit_id'), table_name='usage_credit_draws')
    op.drop_table('usage_credit_draws')
    op.drop_index(op.f('ix_usage_threshold_alerts_tenant_id'), table_name='usage_threshold_alerts')
    op.drop_table('usage_threshold_alerts')
    op.drop_index(op.f('ix_usage_periods_tenant_id'), table_name='usage_periods')
    op.drop_table('usage_periods')
    op.drop_index(op.f('ix_usage_credits_tenant_id'), table_name='usage_credits')
    op.drop_table('usage_credits')
