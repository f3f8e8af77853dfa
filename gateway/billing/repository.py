"""All billing SQL. Tenant-owned queries filter by `tenant_id` when a scope is given."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, exists, func, insert, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.billing.models import (
    BalanceTransaction,
    CreditGrant,
    CreditNote,
    Discount,
    Invoice,
    InvoiceItem,
    InvoiceLine,
    NumberSequence,
    PeriodUsage,
)
from gateway.catalog.models import Price
from gateway.db.bulk import buffer_object, buffer_row, in_batch


class BillingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        # Filled by `prefetch` for a billing-run batch; keys present = answered from memory.
        self._usage: dict[tuple[str, datetime], list[PeriodUsage]] = {}
        self._pending: dict[str, list[InvoiceItem]] = {}
        self._discounts: dict[str, list[Discount]] = {}
        self._grants: dict[str, list[CreditGrant]] = {}

    def add(self, row: object) -> None:
        self.session.add(row)

    def add_invoice(self, invoice: Invoice) -> None:
        # In a billing-run batch the new invoice is written with the batch's bulk INSERT (gateway.db.bulk).
        if not buffer_object(self.session, invoice):
            self.session.add(invoice)

    async def insert_lines(self, rows: Sequence[dict[str, Any]]) -> None:
        """New invoice lines, as plain rows: they are never changed once written (a draft that changes
        gets new lines). Call after the invoice itself is flushed (or buffered)."""
        if not rows:
            return
        table = cast(Table, InvoiceLine.__table__)
        if in_batch(self.session):
            for row in rows:
                buffer_row(self.session, table, row)
        else:
            await self.session.execute(insert(table), list(rows))

    def add_all(self, rows: Sequence[object]) -> None:
        self.session.add_all(rows)

    async def flush(self) -> None:
        if not in_batch(self.session):  # a billing-run batch flushes once, at its end (gateway.db.bulk)
            await self.session.flush()

    # -- invoices --------------------------------------------------------------------------------
    async def get_invoice(
        self, invoice_id: str, *, scope: str | None, for_update: bool = False
    ) -> Invoice | None:
        query = select(Invoice).where(Invoice.id == invoice_id)
        if scope is not None:
            query = query.where(Invoice.tenant_id == scope)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def claim_overdue(
        self, at: datetime, *, test_clock_id: str | None, limit: int
    ) -> Sequence[Invoice]:
        """Open send_invoice invoices due before `at` and not yet marked overdue, locked for this
        transaction; rows another sweep holds are skipped (PostgreSQL). SQLite: its one writer lock,
        taken first, so a second sweep waits and then sees the first one's marks."""
        if self.session.get_bind().dialect.name == "sqlite":
            await self.session.execute(
                update(Invoice).where(Invoice.id.is_(None)).values(version=Invoice.version)
            )
        clock = (
            Invoice.test_clock_id.is_(None)
            if test_clock_id is None
            else Invoice.test_clock_id == test_clock_id
        )
        query = (
            select(Invoice)
            .where(
                Invoice.collection_method == "send_invoice",
                Invoice.status == "open",
                Invoice.due_date < at,
                Invoice.overdue_at.is_(None),
                clock,
            )
            .order_by(Invoice.due_date, Invoice.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(query)).all()

    async def invoice_by_period_key(self, key: str) -> Invoice | None:
        return (await self.session.scalars(select(Invoice).where(Invoice.period_key == key))).first()

    async def list_invoices(
        self,
        *,
        after: str | None,
        limit: int,
        scope: str | None,
        customer_id: str | None = None,
        subscription_id: str | None = None,
        status: str | None = None,
    ) -> Sequence[Invoice]:
        query = select(Invoice).order_by(Invoice.id).limit(limit + 1)
        if after:
            query = query.where(Invoice.id > after)
        if scope is not None:
            query = query.where(Invoice.tenant_id == scope)
        if customer_id:
            query = query.where(Invoice.tenant_id == customer_id)
        if subscription_id:
            query = query.where(Invoice.subscription_id == subscription_id)
        if status:
            query = query.where(Invoice.status == status)
        return (await self.session.scalars(query)).all()

    async def price_tax_behaviors(self, price_ids: Iterable[str]) -> dict[str, str]:
        """price id -> tax_behavior, for the prices that set one (the others follow the tax rate)."""
        query = select(Price.id, Price.tax_behavior).where(
            Price.id.in_(sorted(set(price_ids))), Price.tax_behavior.is_not(None)
        )
        rows = (await self.session.execute(query)).all()
        return {price_id: behavior for price_id, behavior in rows if behavior is not None}

    async def lines(self, invoice_id: str) -> Sequence[InvoiceLine]:
        query = select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).order_by(InvoiceLine.position)
        return (await self.session.scalars(query)).all()

    async def lines_of(self, invoice_ids: Sequence[str]) -> Sequence[InvoiceLine]:
        if not invoice_ids:
            return []
        query = (
            select(InvoiceLine)
            .where(InvoiceLine.invoice_id.in_(invoice_ids))
            .order_by(InvoiceLine.invoice_id, InvoiceLine.position)
        )
        return (await self.session.scalars(query)).all()

    async def has_finalized_invoice(self, tenant_id: str) -> bool:
        query = select(
            exists().where(
                Invoice.tenant_id == tenant_id, Invoice.finalized_at.is_not(None), Invoice.total > 0
            )
        )
        return bool(await self.session.scalar(query))

    # -- numbering -------------------------------------------------------------------------------
    async def next_number(self, name: str, count: int = 1) -> int:
        """Take the next `count` numbers of a gapless sequence; returns the last one taken. The UPDATE
        locks the row until commit, so concurrent finalisations queue behind each other and a rollback
        hands the numbers back. (A batch takes all its numbers at its very end, to hold the lock for as
        short a time as possible.)"""
        take = (
            update(NumberSequence)
            .where(NumberSequence.name == name)
            .values(last_value=NumberSequence.last_value + count)
            .returning(NumberSequence.last_value)
            .execution_options(synchronize_session=False)
        )
        value = (await self.session.execute(take)).scalar_one_or_none()
        if value is None:
            dialect = self.session.get_bind().dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            await self.session.execute(
                insert(NumberSequence).values(name=name, last_value=0).on_conflict_do_nothing()
            )
            value = (await self.session.execute(take)).scalar_one()
        return int(value)

    # -- pending items ---------------------------------------------------------------------------
    async def pending_items(
        self, tenant_id: str, currency: str, *, subscription_id: str | None = None
    ) -> Sequence[InvoiceItem]:
        """Items no invoice has taken yet: the subscription's own, plus the customer's loose ones."""
        if tenant_id in self._pending:
            return [
                i
                for i in self._pending[tenant_id]
                if i.currency == currency
                and i.invoice_id is None
                and (subscription_id is None or i.subscription_id in (subscription_id, None))
            ]
        query = select(InvoiceItem).where(
            InvoiceItem.tenant_id == tenant_id,
            InvoiceItem.currency == currency,
            InvoiceItem.invoice_id.is_(None),
            InvoiceItem.deleted_at.is_(None),
        )
        if subscription_id is not None:
            query = query.where(
                or_(InvoiceItem.subscription_id == subscription_id, InvoiceItem.subscription_id.is_(None))
            )
        return (await self.session.scalars(query.order_by(InvoiceItem.created_at, InvoiceItem.id))).all()

    async def get_item(self, item_id: str, *, scope: str | None) -> InvoiceItem | None:
        query = select(InvoiceItem).where(InvoiceItem.id == item_id)
        if scope is not None:
            query = query.where(InvoiceItem.tenant_id == scope)
        return (await self.session.scalars(query)).first()

    async def list_items(
        self,
        *,
        after: str | None,
        limit: int,
        scope: str | None,
        customer_id: str | None,
        pending: bool | None,
    ) -> Sequence[InvoiceItem]:
        query = (
            select(InvoiceItem)
            .where(InvoiceItem.deleted_at.is_(None))
            .order_by(InvoiceItem.id)
            .limit(limit + 1)
        )
        if after:
            query = query.where(InvoiceItem.id > after)
        if scope is not None:
            query = query.where(InvoiceItem.tenant_id == scope)
        if customer_id:
            query = query.where(InvoiceItem.tenant_id == customer_id)
        if pending is True:
            query = query.where(InvoiceItem.invoice_id.is_(None))
        elif pending is False:
            query = query.where(InvoiceItem.invoice_id.is_not(None))
        return (await self.session.scalars(query)).all()

    # -- usage -----------------------------------------------------------------------------------
    async def usage_for_period(self, subscription_id: str, period_start: datetime) -> Sequence[PeriodUsage]:
        if (subscription_id, period_start) in self._usage:
            return self._usage[(subscription_id, period_start)]
        query = select(PeriodUsage).where(
            PeriodUsage.subscription_id == subscription_id, PeriodUsage.period_start == period_start
        )
        return (await self.session.scalars(query.order_by(PeriodUsage.price_id))).all()

    # -- a batch's prefetch -----------------------------------------------------------------------
    async def prefetch(self, periods: Sequence[tuple[str, str, datetime]]) -> None:
        """Load, in one query each, what renewing these (tenant, subscription, period start) will read:
        usage of those periods, pending items, discounts and credit of those tenants. Later reads of
        the same keys are answered from memory, filtered as the queries would filter them."""
        tenants = sorted({tenant for tenant, _, _ in periods})
        self._usage = {(sub, start): [] for _, sub, start in periods}
        if periods:
            query = select(PeriodUsage).where(
                tuple_(PeriodUsage.subscription_id, PeriodUsage.period_start).in_(
                    [(sub, start) for _, sub, start in periods]
                )
            )
            for row in (await self.session.scalars(query.order_by(PeriodUsage.price_id))).all():
                self._usage[(row.subscription_id, row.period_start)].append(row)
        self._pending = {t: [] for t in tenants}
        self._discounts = {t: [] for t in tenants}
        self._grants = {t: [] for t in tenants}
        if not tenants:
            return
        for item in await self.session.scalars(
            select(InvoiceItem)
            .where(
                InvoiceItem.tenant_id.in_(tenants),
                InvoiceItem.invoice_id.is_(None),
                InvoiceItem.deleted_at.is_(None),
            )
            .order_by(InvoiceItem.created_at, InvoiceItem.id)
        ):
            self._pending[item.tenant_id].append(item)
        for discount in await self.session.scalars(
            select(Discount)
            .where(Discount.tenant_id.in_(tenants), Discount.ended_at.is_(None))
            .order_by(Discount.created_at, Discount.id)
        ):
            self._discounts[discount.tenant_id].append(discount)
        for grant in await self.session.scalars(
            select(CreditGrant)
            .where(CreditGrant.tenant_id.in_(tenants), CreditGrant.voided_at.is_(None))
            .order_by(CreditGrant.id)
            .with_for_update()
        ):
            self._grants[grant.tenant_id].append(grant)

    def forget_prefetch(self) -> None:
        self._usage, self._pending, self._discounts, self._grants = {}, {}, {}, {}

    async def usage(self, subscription_id: str, price_id: str, period_start: datetime) -> PeriodUsage | None:
        query = select(PeriodUsage).where(
            PeriodUsage.subscription_id == subscription_id,
            PeriodUsage.price_id == price_id,
            PeriodUsage.period_start == period_start,
        )
        return (await self.session.scalars(query.with_for_update())).first()

    # -- credit ----------------------------------------------------------------------------------
    async def grants(self, tenant_id: str, *, currency: str | None = None) -> Sequence[CreditGrant]:
        if tenant_id in self._grants:
            return [g for g in self._grants[tenant_id] if currency is None or g.currency == currency]
        query = select(CreditGrant).where(CreditGrant.tenant_id == tenant_id, CreditGrant.voided_at.is_(None))
        if currency:
            query = query.where(CreditGrant.currency == currency)
        # Locked: two invoices finalised at once must not both consume the same credit.
        return (await self.session.scalars(query.order_by(CreditGrant.id).with_for_update())).all()

    async def balance_transactions(
        self, tenant_id: str, *, invoice_id: str | None = None
    ) -> Sequence[BalanceTransaction]:
        query = select(BalanceTransaction).where(BalanceTransaction.tenant_id == tenant_id)
        if invoice_id:
            query = query.where(BalanceTransaction.invoice_id == invoice_id)
        return (await self.session.scalars(query.order_by(BalanceTransaction.id))).all()

    async def get_grant(self, grant_id: str) -> CreditGrant | None:
        return await self.session.get(CreditGrant, grant_id)

    # -- discounts -------------------------------------------------------------------------------
    async def discounts(self, tenant_id: str, subscription_id: str | None) -> Sequence[Discount]:
        """Active discounts of a subscription plus the customer-wide ones, oldest first."""
        if tenant_id in self._discounts:
            return [
                d
                for d in self._discounts[tenant_id]
                if d.ended_at is None and d.subscription_id in (None, subscription_id)
            ]
        owner: ColumnElement[bool] = Discount.subscription_id.is_(None)
        if subscription_id is not None:
            owner = or_(owner, Discount.subscription_id == subscription_id)
        query = select(Discount).where(Discount.tenant_id == tenant_id, Discount.ended_at.is_(None), owner)
        return (await self.session.scalars(query.order_by(Discount.created_at, Discount.id))).all()

    async def get_discount(self, discount_id: str, *, scope: str | None) -> Discount | None:
        query = select(Discount).where(Discount.id == discount_id)
        if scope is not None:
            query = query.where(Discount.tenant_id == scope)
        return (await self.session.scalars(query)).first()

    # -- credit notes ----------------------------------------------------------------------------
    async def credit_notes_of(self, invoice_id: str) -> Sequence[CreditNote]:
        query = select(CreditNote).where(CreditNote.invoice_id == invoice_id)
        return (await self.session.scalars(query.order_by(CreditNote.created_at, CreditNote.id))).all()

    async def credited_total(self, invoice_id: str) -> int:
        query = select(func.coalesce(func.sum(CreditNote.total), 0)).where(
            CreditNote.invoice_id == invoice_id, CreditNote.status == "issued"
        )
        return int(await self.session.scalar(query) or 0)

    async def get_credit_note(self, credit_note_id: str, *, scope: str | None) -> CreditNote | None:
        query = select(CreditNote).where(CreditNote.id == credit_note_id)
        if scope is not None:
            query = query.where(CreditNote.tenant_id == scope)
        return (await self.session.scalars(query)).first()

    async def list_credit_notes(
        self, *, after: str | None, limit: int, scope: str | None, invoice_id: str | None
    ) -> Sequence[CreditNote]:
        query = select(CreditNote).order_by(CreditNote.id).limit(limit + 1)
        if after:
            query = query.where(CreditNote.id > after)
        if scope is not None:
            query = query.where(CreditNote.tenant_id == scope)
        if invoice_id:
            query = query.where(CreditNote.invoice_id == invoice_id)
        return (await self.session.scalars(query)).all()
