"""All subscription and test-clock SQL. Tenant-owned queries filter by `tenant_id`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, event, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from gateway.db.bulk import in_batch
from gateway.subscriptions.domain import LIVE_STATUSES
from gateway.subscriptions.models import Subscription, SubscriptionAddon, TestClock

# Ids of the subscriptions this transaction holds locked (session.info key; see `_refuse_unlocked_writes`).
_LOCKED = "locked_subscriptions"


class UnlockedSubscriptionWrite(RuntimeError):
    """A subscription changed that was read without its lock: a programming error, never a client's."""


class SubscriptionRepository:
    """Every read that leads to a write takes the subscription's lock (`get(for_update=True)`,
    `due(claim=True)`, `due(lock=True)`): the row lock on PostgreSQL, the database's one writer lock on
    SQLite, held to the end of the transaction. What is read is then current, and no one changes it
    before this transaction commits: a read-modify-write cannot lose a concurrent change. A flush that
    would write a subscription read without its lock is refused (`_refuse_unlocked_writes`)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._addons: dict[str, list[SubscriptionAddon]] = {}  # filled by prefetch_addons

    def add(self, row: object) -> None:
        self.session.add(row)
        if isinstance(row, Subscription):
            _mark_locked(self.session, [row])  # not visible to anyone else before this transaction commits

    async def hold_writer_lock(self) -> None:
        """SQLite has no row locks: take its single writer lock now (a write that changes nothing), so
        the reads that follow see the latest commit and nobody commits before this transaction does.
        A no-op on PostgreSQL, where the reads lock their rows themselves."""
        if self.session.get_bind().dialect.name == "sqlite":
            await self.session.execute(text("UPDATE subscriptions SET version = version WHERE 0 = 1"))

    async def flush(self) -> None:
        if not in_batch(self.session):  # a billing-run batch flushes once, at its end (gateway.db.bulk)
            await self.session.flush()

    async def get(
        self, subscription_id: str, *, scope: str | None, for_update: bool = False
    ) -> Subscription | None:
        query = select(Subscription).where(Subscription.id == subscription_id)
        if scope is not None:
            query = query.where(Subscription.tenant_id == scope)
        if for_update:
            # Serialises concurrent changes of one subscription; populate_existing replaces a copy this
            # session may have read before without the lock.
            await self.hold_writer_lock()
            query = query.with_for_update().execution_options(populate_existing=True)
        sub = (await self.session.scalars(query)).first()
        if for_update and sub is not None:
            _mark_locked(self.session, [sub])
        return sub

    async def list(
        self,
        *,
        after: str | None,
        limit: int,
        scope: str | None,
        customer_id: str | None,
        status: str | None,
        plan_id: str | None,
    ) -> Sequence[Subscription]:
        query = select(Subscription).order_by(Subscription.id).limit(limit + 1)
        if after:
            query = query.where(Subscription.id > after)
        if scope is not None:
            query = query.where(Subscription.tenant_id == scope)
        if customer_id:
            query = query.where(Subscription.tenant_id == customer_id)
        if status:
            query = query.where(Subscription.status == status)
        if plan_id:
            query = query.where(Subscription.plan_id == plan_id)
        return (await self.session.scalars(query)).all()

    async def live_for_tenant(self, tenant_id: str) -> Subscription | None:
        query = select(Subscription).where(
            Subscription.tenant_id == tenant_id, Subscription.status.in_([s.value for s in LIVE_STATUSES])
        )
        return (await self.session.scalars(query)).first()

    async def live_by_version(self, plan_id: str) -> dict[str, int]:
        """Live subscriptions on the plan per plan version id: as their base plan, or (an add-on plan) with
        the add-on attached. Two grouped queries."""
        live = [s.value for s in LIVE_STATUSES]
        base = (
            select(Subscription.plan_version_id, func.count())
            .where(Subscription.plan_id == plan_id, Subscription.status.in_(live))
            .group_by(Subscription.plan_version_id)
        )
        attached = (
            select(SubscriptionAddon.plan_version_id, func.count())
            .join(Subscription, Subscription.id == SubscriptionAddon.subscription_id)
            .where(
                SubscriptionAddon.plan_id == plan_id,
                SubscriptionAddon.removed_at.is_(None),
                Subscription.status.in_(live),
            )
            .group_by(SubscriptionAddon.plan_version_id)
        )
        counts: dict[str, int] = {}
        for query in (base, attached):
            for version_id, count in (await self.session.execute(query)).all():
                counts[version_id] = counts.get(version_id, 0) + count
        return counts

    @staticmethod
    def _on_versions(
        plan_id: str,
        version_ids: Sequence[str],
        addon: bool,
        currency: str | None,
        interval: str | None,
        customers: Sequence[str] | None,
    ) -> Sequence[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = [Subscription.status.in_([s.value for s in LIVE_STATUSES])]
        if addon:
            conditions += [
                SubscriptionAddon.plan_id == plan_id,
                SubscriptionAddon.plan_version_id.in_(version_ids),
                SubscriptionAddon.removed_at.is_(None),
            ]
        else:
            conditions += [Subscription.plan_id == plan_id, Subscription.plan_version_id.in_(version_ids)]
        if currency is not None:
            conditions.append(Subscription.currency == currency)
        if interval is not None:
            conditions.append(Subscription.interval == interval)
        if customers is not None:
            conditions.append(Subscription.tenant_id.in_(customers))
        return conditions

    async def count_on_versions(
        self,
        plan_id: str,
        version_ids: Sequence[str],
        *,
        addon: bool = False,
        currency: str | None,
        interval: str | None,
        customers: Sequence[str] | None,
    ) -> int:
        """How many live subscriptions are on these versions of the plan (as their base plan, or with the
        add-on plan attached) and pass the filters."""
        conditions = self._on_versions(plan_id, version_ids, addon, currency, interval, customers)
        query = select(func.count()).select_from(Subscription)
        if addon:
            query = query.join(SubscriptionAddon, SubscriptionAddon.subscription_id == Subscription.id)
        return int(await self.session.scalar(query.where(*conditions)) or 0)

    async def on_versions(
        self,
        plan_id: str,
        version_ids: Sequence[str],
        *,
        addon: bool = False,
        currency: str | None,
        interval: str | None,
        customers: Sequence[str] | None,
        limit: int,
    ) -> Sequence[tuple[str, str, str]]:
        """(subscription id, customer, plan version id) of the first `limit` of them by id; read without
        locks (the caller locks each one before it changes it, and checks it again)."""
        conditions = self._on_versions(plan_id, version_ids, addon, currency, interval, customers)
        version = SubscriptionAddon.plan_version_id if addon else Subscription.plan_version_id
        query = select(Subscription.id, Subscription.tenant_id, version)
        if addon:
            query = query.join(SubscriptionAddon, SubscriptionAddon.subscription_id == Subscription.id)
        query = query.where(*conditions).order_by(Subscription.id).limit(limit)
        rows = (await self.session.execute(query)).all()
        return [(sub_id, tenant_id, version_id) for sub_id, tenant_id, version_id in rows]

    async def had_trial(self, tenant_id: str, product_id: str) -> bool:
        query = select(Subscription.id).where(
            Subscription.tenant_id == tenant_id,
            Subscription.product_id == product_id,
            Subscription.trial_start.is_not(None),
        )
        return (await self.session.scalars(query.limit(1))).first() is not None

    async def due(
        self,
        at: datetime,
        *,
        test_clock_id: str | None,
        limit: int,
        claim: bool = False,
        lock: bool = False,
    ) -> Sequence[Subscription]:
        """Subscriptions with a step due at or before `at`, on the wall clock or on one test clock.

        `claim` locks the rows for this transaction and skips rows another transaction holds
        (PostgreSQL `FOR UPDATE SKIP LOCKED`), so concurrent billing-run workers share the due
        subscriptions instead of queueing on them. `lock` waits for rows another transaction holds
        instead (a test-clock advance must move every due subscription of its clock, and must see a
        concurrent change that committed first). On SQLite both take the writer lock first."""
        clock_filter = (
            Subscription.test_clock_id.is_(None)
            if test_clock_id is None
            else Subscription.test_clock_id == test_clock_id
        )
        query = (
            select(Subscription)
            .where(and_(Subscription.next_action_at <= at, clock_filter))
            # test_clock_id is the same for every row here, so ordering by it changes nothing but lets
            # PostgreSQL read ix_subscriptions_due in order: `IS NULL` does not make a column constant
            # for the planner, and without it each batch sorted every due row to find its first 200.
            .order_by(Subscription.test_clock_id, Subscription.next_action_at, Subscription.id)
            .limit(limit)
        )
        if not (claim or lock):
            return (await self.session.scalars(query)).all()
        await self.hold_writer_lock()
        query = query.with_for_update(skip_locked=claim).execution_options(populate_existing=True)
        rows = (await self.session.scalars(query)).all()
        _mark_locked(self.session, rows)
        return rows

    async def addons(
        self, subscription_id: str, *, include_removed: bool = False
    ) -> Sequence[SubscriptionAddon]:
        if not include_removed and subscription_id in self._addons:
            return [a for a in self._addons[subscription_id] if a.removed_at is None]
        query = select(SubscriptionAddon).where(SubscriptionAddon.subscription_id == subscription_id)
        if not include_removed:
            query = query.where(SubscriptionAddon.removed_at.is_(None))
        return (await self.session.scalars(query.order_by(SubscriptionAddon.id))).all()

    async def prefetch_addons(self, subscription_ids: Sequence[str]) -> None:
        """A batch's prefetch: the add-ons of these subscriptions in one query, served from memory."""
        self._addons = {sub_id: [] for sub_id in subscription_ids}
        if not subscription_ids:
            return
        query = select(SubscriptionAddon).where(
            SubscriptionAddon.subscription_id.in_(subscription_ids), SubscriptionAddon.removed_at.is_(None)
        )
        for addon in await self.session.scalars(query.order_by(SubscriptionAddon.id)):
            self._addons[addon.subscription_id].append(addon)

    async def addon(self, subscription_id: str, addon_id: str) -> SubscriptionAddon | None:
        query = select(SubscriptionAddon).where(
            SubscriptionAddon.subscription_id == subscription_id, SubscriptionAddon.id == addon_id
        )
        return (await self.session.scalars(query)).first()

    # test clocks --------------------------------------------------------------------------------
    async def get_clock(self, clock_id: str, *, for_update: bool = False) -> TestClock | None:
        query = select(TestClock).where(TestClock.id == clock_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def list_clocks(self, *, after: str | None, limit: int) -> Sequence[TestClock]:
        query = select(TestClock).order_by(TestClock.id).limit(limit + 1)
        if after:
            query = query.where(TestClock.id > after)
        return (await self.session.scalars(query)).all()

    async def delete_clock(self, clock: TestClock) -> None:
        await self.session.delete(clock)


def _mark_locked(session: AsyncSession, subs: Sequence[Subscription]) -> None:
    session.sync_session.info.setdefault(_LOCKED, set()).update(sub.id for sub in subs)


@event.listens_for(Session, "before_flush")
def _refuse_unlocked_writes(session: Session, _flush_context: object, _instances: object) -> None:
    """The guard behind the lock rule: a subscription read without its lock is a copy that may already be
    stale, and writing it back would silently undo a concurrent change (a plan change lost to a renewal
    that had read the row before it). Refuse the flush instead: the transaction rolls back."""
    locked: set[str] = session.info.get(_LOCKED, set())
    for obj in session.dirty:
        if isinstance(obj, Subscription) and obj.id not in locked and session.is_modified(obj):
            raise UnlockedSubscriptionWrite(
                f"subscription {obj.id} was changed without its lock (read it with for_update=True)"
            )


@event.listens_for(Session, "after_transaction_end")
def _forget_locks(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended: its locks are gone
        session.info.pop(_LOCKED, None)
