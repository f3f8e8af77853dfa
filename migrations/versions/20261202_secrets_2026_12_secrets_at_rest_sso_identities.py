"""secrets at rest (wider webhook secret column), sso identities and verified domain claims

Sealing the stored secrets happens at start-up (`gateway.app.seal_stored_secrets`), where the key is
configured; the upgrade only changes the schema. The downgrade opens sealed values again (the previous
revision's code reads them in clear), so it needs the same TIERGATE_SECRET_KEY (or the embedded key file).

Revision ID: secrets_2026_12
Revises: bceaab456e5b
Create Date: 2026-12-02 08:54:10.620356
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'secrets_2026_12'
down_revision: str | None = 'bceaab456e5b'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('sso_identities',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('connection_id', sa.String(length=40), nullable=False),
    sa.Column('issuer', sa.String(length=500), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.Column('last_sign_in_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['sso_connections.id'], name=op.f('fk_sso_identities_connection_id_sso_connections'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sso_identities_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sso_identities')),
    sa.UniqueConstraint('connection_id', 'issuer', 'subject', name=op.f('uq_sso_identities_connection_id_issuer_subject'))
    )
    op.create_index(op.f('ix_sso_identities_connection_id'), 'sso_identities', ['connection_id'], unique=False)
    op.create_index(op.f('ix_sso_identities_tenant_id'), 'sso_identities', ['tenant_id'], unique=False)
    op.create_index(op.f('ix_sso_identities_user_id'), 'sso_identities', ['user_id'], unique=False)
    with op.batch_alter_table('sso_domains') as batch:
        batch.add_column(sa.Column('verified_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True))
    with op.batch_alter_table('webhook_endpoints') as batch:
        batch.alter_column('secret', existing_type=sa.VARCHAR(length=100), type_=sa.String(length=300), existing_nullable=False)


def downgrade() -> None:
    _open_sealed_secrets()
    with op.batch_alter_table('webhook_endpoints') as batch:
        batch.alter_column('secret', existing_type=sa.String(length=300), type_=sa.VARCHAR(length=100), existing_nullable=False)
    with op.batch_alter_table('sso_domains') as batch:
        batch.drop_column('verified_at')
    op.drop_index(op.f('ix_sso_identities_user_id'), table_name='sso_identities')
    op.drop_index(op.f('ix_sso_identities_tenant_id'), table_name='sso_identities')
    op.drop_index(op.f('ix_sso_identities_connection_id'), table_name='sso_identities')
    op.drop_table('sso_identities')


# The contexts are part of the stored format (gateway/security/secretbox.py): "<table>.<column>:<row id>".
_JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
_webhooks = sa.table('webhook_endpoints', sa.column('id', sa.String), sa.column('secret', sa.String))
_connections = sa.table('sso_connections', sa.column('id', sa.String), sa.column('client_secret', sa.Text))
_keys = sa.table('signing_keys', sa.column('kid', sa.String), sa.column('private_jwk', _JSON))


def _open_sealed_secrets() -> None:
    from gateway.security.secretbox import is_sealed

    bind = op.get_bind()
    webhooks = [r for r in bind.execute(sa.select(_webhooks.c.id, _webhooks.c.secret)) if is_sealed(r[1])]
    connections = [
        r for r in bind.execute(sa.select(_connections.c.id, _connections.c.client_secret)) if is_sealed(r[1])
    ]
    keys = [r for r in bind.execute(sa.select(_keys.c.kid, _keys.c.private_jwk)) if 'sealed' in (r[1] or {})]
    if not (webhooks or connections or keys):
        return
    from gateway.config import load_settings
    from gateway.security.secretbox import box_for

    box = box_for(load_settings(), embedded=bind.dialect.name == 'sqlite')
    for endpoint_id, sealed in webhooks:
        clear = box.open(sealed, context=f'webhook_endpoints.secret:{endpoint_id}')
        bind.execute(_webhooks.update().where(_webhooks.c.id == endpoint_id).values(secret=clear))
    for connection_id, sealed in connections:
        clear = box.open(sealed, context=f'sso_connections.client_secret:{connection_id}')
        bind.execute(
            _connections.update().where(_connections.c.id == connection_id).values(client_secret=clear)
        )
    for kid, stored in keys:
        jwk = json.loads(box.open(stored['sealed'], context=f'signing_keys.private_jwk:{kid}'))
        bind.execute(_keys.update().where(_keys.c.kid == kid).values(private_jwk=jwk))
