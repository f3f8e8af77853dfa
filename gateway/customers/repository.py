"""All customer SQL. Every tenant-owned query filters by `tenant_id`."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, column, func, or_, select, table, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.customers.models import Customer, Membership, User


def search_condition(q: str) -> ColumnElement[bool]:
    """The staff console's search box: `q` is a customer id (exact), or a piece of the name or e-mail,
    or an e-mail domain (`acme.example` finds `ops@acme.example`), all case-insensitive. LIKE's own
    wildcards in `q` are escaped, so `%` finds a literal percent sign."""
    needle = q.strip().lower()
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    return or_(
        Customer.id == q.strip(),
        func.lower(Customer.name).like(pattern, escape="\\"),
        func.lower(Customer.email).like(pattern, escape="\\"),
    )


class CustomerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: object) -> None:
        self.session.add(row)

    async def flush(self) -> None:
        await self.session.flush()

    async def get(self, customer_id: str) -> Customer | None:
        return await self.session.get(Customer, customer_id)

    async def get_many(self, customer_ids: Sequence[str]) -> Sequence[Customer]:
        if not customer_ids:
            return []
        return (await self.session.scalars(select(Customer).where(Customer.id.in_(customer_ids)))).all()

    async def list(
        self,
        *,
        after: str | None,
        limit: int,
        only: str | None,
        email: str | None,
        test_clock_id: str | None,
        q: str | None = None,
    ) -> Sequence[Customer]:
        query = select(Customer).order_by(Customer.id).limit(limit + 1)
        if after:
            query = query.where(Customer.id > after)
        if only is not None:
            query = query.where(Customer.id == only)
        if email:
            query = query.where(func.lower(Customer.email) == email.lower())
        if test_clock_id:
            query = query.where(Customer.test_clock_id == test_clock_id)
        if q:
            query = query.where(search_condition(q))
        return (await self.session.scalars(query)).all()

    async def user_by_email(self, email: str) -> User | None:
        return (await self.session.scalars(select(User).where(User.email == email.lower()))).first()

    async def membership(self, tenant_id: str, user_id: str) -> Membership | None:
        query = select(Membership).where(Membership.tenant_id == tenant_id, Membership.user_id == user_id)
        return (await self.session.scalars(query)).first()

    async def membership_by_id(self, tenant_id: str, membership_id: str) -> tuple[Membership, User] | None:
        query = (
            select(Membership, User)
            .join(User, User.id == Membership.user_id)
            .where(Membership.tenant_id == tenant_id, Membership.id == membership_id)
        )
        row = (await self.session.execute(query)).first()
        return (row[0], row[1]) if row else None

    async def members(
        self, tenant_id: str, *, after: str | None, limit: int, include_removed: bool
    ) -> Sequence[tuple[Membership, User]]:
        query = (
            select(Membership, User)
            .join(User, User.id == Membership.user_id)
            .where(Membership.tenant_id == tenant_id)
            .order_by(Membership.id)
            .limit(limit + 1)
        )
        if after:
            query = query.where(Membership.id > after)
        if not include_removed:
            query = query.where(Membership.status == "active")
        return [(m, u) for m, u in (await self.session.execute(query)).all()]

    async def lock_members(self, tenant_id: str) -> bool:
        """Serialise changes to the tenant's active members until this transaction ends (see
        `gateway/entitlements/seats.py` for why each database gets its statement). False: no such tenant."""
        if self.session.get_bind().dialect.name == "sqlite":
            # SQLite's write lock (its single-writer queue): a no-op UPDATE starts the write transaction.
            done = await self.session.execute(
                update(Customer).where(Customer.id == tenant_id).values(updated_at=Customer.updated_at)
            )
            return bool(getattr(done, "rowcount", 0))
        locked = await self.session.scalar(
            select(Customer.id).where(Customer.id == tenant_id).with_for_update()
        )
        return locked is not None

    async def count_active_members(self, tenant_id: str) -> int:
        query = select(func.count()).where(Membership.tenant_id == tenant_id, Membership.status == "active")
        return int(await self.session.scalar(query) or 0)

    async def test_clock_exists(self, clock_id: str) -> bool:
        # The test_clocks table belongs to subscriptions; a customer only needs to know the id is real,
        # so this reads the bare table instead of importing that domain's model (import direction).
        clocks = table("test_clocks", column("id"))
        return (await self.session.scalar(select(clocks.c.id).where(clocks.c.id == clock_id))) is not None
