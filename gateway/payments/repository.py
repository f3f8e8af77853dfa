"""All payments SQL. Tenant-owned queries filter by `tenant_id` when a scope is given."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.payments.models import (
    Payment,
    PaymentMethod,
    PaymentProviderAccount,
    ProviderCustomer,
    ProviderEventRecord,
    Refund,
    SetupSessionRecord,
)


class PaymentsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: object) -> None:
        self.session.add(row)

    async def flush(self) -> None:
        await self.session.flush()

    # -- accounts ----------------------------------------------------------------------------------
    async def get_account(self, account_id: str) -> PaymentProviderAccount | None:
        return await self.session.get(PaymentProviderAccount, account_id)

    async def default_account(self) -> PaymentProviderAccount | None:
        query = (
            select(PaymentProviderAccount)
            .order_by(PaymentProviderAccount.is_default.desc(), PaymentProviderAccount.id)
            .limit(1)
        )
        return (await self.session.scalars(query)).first()

    async def list_accounts(self, *, after: str | None, limit: int) -> Sequence[PaymentProviderAccount]:
        query = select(PaymentProviderAccount).order_by(PaymentProviderAccount.id).limit(limit + 1)
        if after:
            query = query.where(PaymentProviderAccount.id > after)
        return (await self.session.scalars(query)).all()

    async def clear_default(self) -> None:
        for account in (
            await self.session.scalars(
                select(PaymentProviderAccount).where(PaymentProviderAccount.is_default.is_(True))
            )
        ).all():
            account.is_default = False

    # -- provider customers --------------------------------------------------------------------------
    async def provider_customer(self, tenant_id: str, account_id: str) -> ProviderCustomer | None:
        query = select(ProviderCustomer).where(
            ProviderCustomer.tenant_id == tenant_id, ProviderCustomer.account_id == account_id
        )
        return (await self.session.scalars(query)).first()

    async def tenant_of(self, account_id: str, provider_customer_id: str) -> str | None:
        query = select(ProviderCustomer.tenant_id).where(
            ProviderCustomer.account_id == account_id,
            ProviderCustomer.provider_customer_id == provider_customer_id,
        )
        return (await self.session.scalars(query)).first()

    # -- methods -------------------------------------------------------------------------------------
    async def get_method(
        self, method_id: str, *, scope: str | None, for_update: bool = False
    ) -> PaymentMethod | None:
        query = select(PaymentMethod).where(PaymentMethod.id == method_id)
        if scope is not None:
            query = query.where(PaymentMethod.tenant_id == scope)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def method_by_provider_id(self, account_id: str, provider_method_id: str) -> PaymentMethod | None:
        query = select(PaymentMethod).where(
            PaymentMethod.account_id == account_id, PaymentMethod.provider_method_id == provider_method_id
        )
        return (await self.session.scalars(query)).first()

    async def methods_of(self, tenant_id: str, *, active_only: bool = False) -> Sequence[PaymentMethod]:
        query = (
            select(PaymentMethod)
            .where(PaymentMethod.tenant_id == tenant_id)
            .order_by(PaymentMethod.priority, PaymentMethod.id)
        )
        if active_only:
            query = query.where(PaymentMethod.status == "active")
        return (await self.session.scalars(query)).all()

    # -- payments ------------------------------------------------------------------------------------
    async def get_payment(
        self, payment_id: str, *, scope: str | None, for_update: bool = False
    ) -> Payment | None:
        query = select(Payment).where(Payment.id == payment_id)
        if scope is not None:
            query = query.where(Payment.tenant_id == scope)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def payment_by_provider_id(
        self, account_id: str, provider_payment_id: str, *, for_update: bool = False
    ) -> Payment | None:
        query = select(Payment).where(
            Payment.account_id == account_id, Payment.provider_payment_id == provider_payment_id
        )
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def payments_of_invoice(self, invoice_id: str) -> Sequence[Payment]:
        query = select(Payment).where(Payment.invoice_id == invoice_id).order_by(Payment.attempt)
        return (await self.session.scalars(query)).all()

    async def last_attempt(self, invoice_id: str) -> int:
        query = select(func.max(Payment.attempt)).where(Payment.invoice_id == invoice_id)
        return int(await self.session.scalar(query) or 0)

    async def list_payments(
        self,
        *,
        after: str | None,
        limit: int,
        scope: str | None,
        customer_id: str | None = None,
        invoice_id: str | None = None,
        status: str | None = None,
        created_gte: datetime | None = None,
        created_lt: datetime | None = None,
    ) -> Sequence[Payment]:
        query = select(Payment).order_by(Payment.id).limit(limit + 1)
        if after:
            query = query.where(Payment.id > after)
        if scope is not None:
            query = query.where(Payment.tenant_id == scope)
        if customer_id:
            query = query.where(Payment.tenant_id == customer_id)
        if invoice_id:
            query = query.where(Payment.invoice_id == invoice_id)
        if status:
            query = query.where(Payment.status == status)
        if created_gte is not None:
            query = query.where(Payment.created_at >= created_gte)
        if created_lt is not None:
            query = query.where(Payment.created_at < created_lt)
        return (await self.session.scalars(query)).all()

    async def due_for_reconciliation(
        self, statuses: Sequence[str], at: datetime, limit: int
    ) -> Sequence[str]:
        query = (
            select(Payment.id)
            .where(Payment.status.in_(list(statuses)), Payment.reconcile_after <= at)
            .order_by(Payment.reconcile_after, Payment.id)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    # -- refunds -------------------------------------------------------------------------------------
    async def refunds_of(self, payment_id: str) -> Sequence[Refund]:
        query = select(Refund).where(Refund.payment_id == payment_id).order_by(Refund.id)
        return (await self.session.scalars(query)).all()

    async def refunds_due_for_reconciliation(self, at: datetime, limit: int) -> Sequence[str]:
        """Refunds still `pending` whose `reconcile_after` has passed (NULL: before the column existed)."""
        query = (
            select(Refund.id)
            .where(
                Refund.status == "pending",
                or_(Refund.reconcile_after.is_(None), Refund.reconcile_after <= at),
            )
            .order_by(Refund.id)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def refund_by_provider_id(self, provider_refund_id: str) -> Refund | None:
        query = select(Refund).where(Refund.provider_refund_id == provider_refund_id)
        return (await self.session.scalars(query)).first()

    # -- provider events and setup sessions ------------------------------------------------------------
    async def provider_event(self, account_id: str, provider_event_id: str) -> ProviderEventRecord | None:
        query = select(ProviderEventRecord).where(
            ProviderEventRecord.account_id == account_id,
            ProviderEventRecord.provider_event_id == provider_event_id,
        )
        return (await self.session.scalars(query)).first()

    async def unmatched_events(self, account_id: str, object_id: str) -> Sequence[ProviderEventRecord]:
        query = (
            select(ProviderEventRecord)
            .where(
                ProviderEventRecord.account_id == account_id,
                ProviderEventRecord.object_id == object_id,
                ProviderEventRecord.outcome == "unmatched",
            )
            .order_by(ProviderEventRecord.received_at, ProviderEventRecord.id)
        )
        return (await self.session.scalars(query)).all()

    async def get_provider_event(self, record_id: str) -> ProviderEventRecord | None:
        return await self.session.get(ProviderEventRecord, record_id)

    async def setup_session_by_provider_id(
        self, account_id: str, provider_session_id: str
    ) -> SetupSessionRecord | None:
        query = select(SetupSessionRecord).where(
            SetupSessionRecord.account_id == account_id,
            SetupSessionRecord.provider_session_id == provider_session_id,
        )
        return (await self.session.scalars(query)).first()

    async def accounts_of_clock(self, test_clock_id: str) -> Sequence[str]:
        """Accounts that hold a customer of this test clock (its provider customers)."""
        from gateway.customers.models import Customer

        query = (
            select(ProviderCustomer.account_id)
            .join(Customer, Customer.id == ProviderCustomer.tenant_id)
            .where(Customer.test_clock_id == test_clock_id)
            .distinct()
        )
        return (await self.session.scalars(query)).all()
