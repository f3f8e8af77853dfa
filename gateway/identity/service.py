"""API keys: create (secret shown once), authenticate, list, revoke."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import column, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.outbox import record_change
from gateway.identity.domain import Principal, hash_secret, new_secret, valid_scope
from gateway.identity.models import ApiKey
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Conflict, NotFound, Unauthenticated, ValidationFailed
from gateway.kernel.ids import new_id
from gateway.kernel.pagination import Page


class ApiKeyService:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    async def create(
        self, *, name: str, scopes: Sequence[str], tenant_id: str | None, secret: str | None = None
    ) -> tuple[ApiKey, str]:
        bad = [s for s in scopes if not valid_scope(s)]
        if bad or not scopes:
            raise ValidationFailed(f"invalid scopes: {bad or 'none given'}", field="scopes")
        if tenant_id is not None:
            # customers sits above identity; reading the bare table keeps the import direction.
            customers = table("customers", column("id"))
            if await self.session.scalar(select(customers.c.id).where(customers.c.id == tenant_id)) is None:
                raise ValidationFailed(f"no customer {tenant_id!r}", field="customer")
        secret = secret or new_secret()
        key = ApiKey(
            id=new_id("key"),
            name=name,
            prefix=secret[:12],
            secret_hash=hash_secret(secret),
            scopes=sorted(set(scopes)),
            tenant_id=tenant_id,
            created_at=self.clock.now(),
        )
        self.session.add(key)
        await self.session.flush()
        await record_change(
            self.session,
            "api_key.created",
            "api_key",
            key.id,
            key.created_at,
            tenant_id=tenant_id,
            name=name,
            scopes=key.scopes,
        )
        return key, secret

    async def authenticate(self, secret: str) -> Principal:
        row = (
            await self.session.scalars(select(ApiKey).where(ApiKey.secret_hash == hash_secret(secret)))
        ).first()
        if row is None or row.revoked_at is not None:
            raise Unauthenticated("invalid or revoked API key")
        return Principal(key_id=row.id, scopes=frozenset(row.scopes), tenant_id=row.tenant_id)

    async def ensure_bootstrap(self, secret: str) -> None:
        """Make the configured bootstrap secret a full-scope platform key (idempotent)."""
        exists = await self.session.scalar(select(ApiKey.id).where(ApiKey.secret_hash == hash_secret(secret)))
        if exists is None:
            await self.create(name="bootstrap", scopes=["*"], tenant_id=None, secret=secret)

    async def list(self, *, after: str | None, limit: int, scope: str | None) -> Page[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.id).limit(limit + 1)
        if after:
            query = query.where(ApiKey.id > after)
        if scope is not None:
            query = query.where(ApiKey.tenant_id == scope)
        return Page.from_overfetch((await self.session.scalars(query)).all(), limit)

    async def revoke(self, key_id: str, *, scope: str | None, bootstrap_secret: str | None = None) -> ApiKey:
        """Revoke a key. The configured bootstrap key is refused: start-up asserts that it exists, so
        revoking it would fight the configuration (drop it from the environment, restart, then revoke)."""
        row = await self.session.get(ApiKey, key_id)
        if row is None or (scope is not None and row.tenant_id != scope):
            raise NotFound(f"no API key {key_id!r}", code="api_key_not_found")
        if bootstrap_secret and row.secret_hash == hash_secret(bootstrap_secret):
            raise Conflict(
                "this is the bootstrap key configured by TIERGATE_BOOTSTRAP_API_KEY: remove it from the "
                "environment and restart, then revoke it",
                code="api_key_not_revocable",
            )
        if row.revoked_at is None:
            row.revoked_at = self.clock.now()
            await self.session.flush()
            await record_change(
                self.session, "api_key.revoked", "api_key", row.id, row.revoked_at, tenant_id=row.tenant_id
            )
        return row
