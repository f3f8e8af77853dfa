"""Collecting an invoice: claim → charge outside any transaction → apply.

1. In a transaction: lock the invoice, check it can be charged, pick the method, create the payment
   `processing` with attempt n and its key `invoice:{id}:attempt:{n}`; commit. (Unique (invoice, attempt)
   and the invoice's row lock: two workers never make two attempts of the same number.)
2. No transaction open: `provider.charge(...)` with that key.
3. In a new transaction: apply the answer (`PaymentService.apply`). No answer (`ProviderUnavailable`) →
   `unknown`. A crash between 2 and 3 leaves `processing`: reconciliation re-sends the same key.
Nothing is charged when the request is bad (a method of another customer, a detached one, a currency the
provider does not support): those are refused in step 1, before any payment row exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.billing.wiring import BillingConfig
from gateway.db.session import Database
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Conflict, ValidationFailed
from gateway.kernel.ids import new_id
from gateway.payments.domain import PaymentStatus, invoice_attempt_key, transition
from gateway.payments.methods import MethodService
from gateway.payments.models import Payment
from gateway.payments.port import ChargeRequest, ChargeResult, ProviderRejected, ProviderUnavailable
from gateway.payments.providers.registry import ProviderRegistry
from gateway.payments.service import PaymentService, PaymentSettings
from gateway.payments.webhooks import replay_unmatched

IN_FLIGHT = {PaymentStatus.PROCESSING, PaymentStatus.UNKNOWN, PaymentStatus.REQUIRES_ACTION}


class CurrencyNotSupported(Conflict):
    code = "currency_not_supported"


class NoPaymentMethod(Conflict):
    code = "no_payment_method"


@dataclass(frozen=True, slots=True)
class Claim:
    payment_id: str
    account_id: str
    request: ChargeRequest


class Collector:
    """Charges invoices. Owns its transactions (never call it inside a request's unit of work)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        registry: ProviderRegistry,
        billing_config: BillingConfig | None = None,
        settings: PaymentSettings | None = None,
        *,
        actor: str | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.registry = registry
        self.billing_config = billing_config or BillingConfig()
        self.settings = settings or PaymentSettings()
        self.actor = actor

    def core(self, session: AsyncSession) -> PaymentService:
        return PaymentService(session, self.clock, self.registry, self.billing_config, self.settings)

    async def collect(
        self,
        invoice_id: str,
        *,
        scope: str | None = None,
        method_id: str | None = None,
        off_session: bool = True,
        return_url: str | None = None,
        require_method: bool = True,
    ) -> Payment | None:
        """One attempt at the invoice's remaining amount. Returns the payment as applied (or None when
        there is nothing to charge and `require_method` is false: no method, nothing due)."""
        claim = await self._claim(
            invoice_id,
            scope=scope,
            method_id=method_id,
            off_session=off_session,
            return_url=return_url,
            require_method=require_method,
        )
        if claim is None:
            return None
        return await self.charge_and_apply(claim)

    async def charge_and_apply(self, claim: Claim) -> Payment:
        async with self.db.unit_of_work(actor=self.actor) as session:
            account = await self.core(session).get_account(claim.account_id)
            provider = self.registry.provider(account)
        rejected: ProviderRejected | None = None
        result: ChargeResult | None = None
        try:
            result = await provider.charge(claim.request)
        except ProviderUnavailable:
            result = None
        except ProviderRejected as exc:
            rejected = exc
        async with self.db.unit_of_work(actor=self.actor) as session:
            core = self.core(session)
            payment = await core.repo.get_payment(claim.payment_id, scope=None, for_update=True)
            assert payment is not None
            if rejected is not None:
                await self._rejected(core, payment, rejected)
            elif result is None:
                await self._unknown(core, payment)
            else:
                await core.apply(payment, result, source="charge")
                await replay_unmatched(core, payment.account_id, result.provider_payment_id)
        if rejected is not None:
            raise Conflict(str(rejected), code=rejected.code, payment=payment.id)
        return payment

    async def _rejected(self, core: PaymentService, payment: Payment, exc: ProviderRejected) -> None:
        """The provider refused the request itself: nothing was charged; the attempt is recorded failed."""
        customer = await core.billing.customers.get(payment.tenant_id)
        at = await core.now_for(customer)
        if PaymentStatus(payment.status) is PaymentStatus.PROCESSING:
            transition(payment, PaymentStatus.FAILED, at)
            payment.decline_code = exc.code
            payment.decline_message = str(exc)[:500]
            payment.reconcile_after = None
            payment.updated_at = at
            await core.repo.flush()
            await core.emit("payment.failed", payment, at, decline_code=exc.code, hard_decline=False)

    async def _unknown(self, core: PaymentService, payment: Payment) -> None:
        if PaymentStatus(payment.status) is PaymentStatus.PROCESSING:
            customer = await core.billing.customers.get(payment.tenant_id)
            transition(payment, PaymentStatus.UNKNOWN, await core.now_for(customer))
            payment.reconcile_after = self.clock.now() + timedelta(
                seconds=self.settings.reconcile_after_seconds
            )
            await core.repo.flush()

    async def _claim(
        self,
        invoice_id: str,
        *,
        scope: str | None,
        method_id: str | None,
        off_session: bool,
        return_url: str | None,
        require_method: bool,
    ) -> Claim | None:
        async with self.db.unit_of_work(actor=self.actor) as session:
            core = self.core(session)
            invoices = core.billing.invoices
            invoice = await invoices.get(invoice_id, scope=scope, for_update=True)
            if invoice.status not in ("open", "uncollectible"):
                raise Conflict(f"a {invoice.status} invoice cannot be charged", code="invoice_not_payable")
            if invoice.amount_remaining <= 0:
                raise Conflict("nothing is due on this invoice", code="invoice_not_payable")
            previous = await core.repo.payments_of_invoice(invoice.id)
            busy = [p for p in previous if PaymentStatus(p.status) in IN_FLIGHT]
            if busy:
                raise Conflict(
                    f"payment {busy[-1].id} of this invoice is still {busy[-1].status}",
                    code="payment_in_progress",
                    payment=busy[-1].id,
                )
            customer = await core.billing.customers.get(invoice.tenant_id)
            methods = MethodService(core)
            method = (
                await methods.usable(customer, method_id)
                if method_id is not None
                else await methods.default(customer)
            )
            if method is None:
                if not require_method:
                    return None
                raise NoPaymentMethod("the customer has no usable payment method", field="payment_method")
            account = await core.get_account(method.account_id)
            provider = core.provider(account)
            if not provider.supports_currency(invoice.currency):
                raise CurrencyNotSupported(
                    f"{account.kind} does not charge {invoice.currency}", currency=invoice.currency
                )
            mapping = await core.repo.provider_customer(customer.id, account.id)
            if mapping is None:
                raise ValidationFailed("the method's provider customer is unknown", field="payment_method")
            at = await core.now_for(customer)
            attempt = await core.repo.last_attempt(invoice.id) + 1
            payment = Payment(
                id=new_id("pay"),
                tenant_id=customer.id,
                invoice_id=invoice.id,
                attempt=attempt,
                idempotency_key=invoice_attempt_key(invoice.id, attempt),
                account_id=account.id,
                method_id=method.id,
                amount=invoice.amount_remaining,
                currency=invoice.currency,
                status=PaymentStatus.PROCESSING.value,
                provider_version=0,
                amount_refunded=0,
                off_session=off_session,
                test_clock_id=customer.test_clock_id,
                created_at=at,
                updated_at=at,
                settled_at=None,
                reconcile_after=self.clock.now() + timedelta(seconds=self.settings.reconcile_after_seconds),
            )
            core.repo.add(payment)
            await core.repo.flush()
            request = ChargeRequest(
                idempotency_key=payment.idempotency_key,
                provider_customer_id=mapping.provider_customer_id,
                provider_method_id=method.provider_method_id,
                amount=payment.amount,
                currency=payment.currency,
                description=f"Invoice {invoice.id}",
                metadata={"invoice": invoice.id, "payment": payment.id, "customer": customer.id},
                off_session=off_session,
                return_url=return_url or self.settings.return_url,
                at=at,
                clock_ref=customer.test_clock_id,
            )
            return Claim(payment.id, account.id, request)


def charge_request_of(
    payment: Payment, provider_customer_id: str, provider_method_id: str, return_url: str
) -> ChargeRequest:
    """The very request a payment was first sent with (reconciliation re-sends it under the same key)."""
    return ChargeRequest(
        idempotency_key=payment.idempotency_key,
        provider_customer_id=provider_customer_id,
        provider_method_id=provider_method_id,
        amount=payment.amount,
        currency=payment.currency,
        description=f"Invoice {payment.invoice_id}",
        metadata={"invoice": payment.invoice_id or "", "payment": payment.id, "customer": payment.tenant_id},
        off_session=payment.off_session,
        return_url=return_url,
        at=payment.created_at,
        clock_ref=payment.test_clock_id,
    )


def _first_attempts_query(*, test_clock_id: str | bool | None = False) -> Any:
    """Open invoices to be charged automatically that have no payment yet, of customers with an active
    payment method (`test_clock_id=None`: wall-clock invoices only; False: all)."""
    from sqlalchemy import exists, select

    from gateway.billing.models import Invoice
    from gateway.payments.models import PaymentMethod

    query = select(Invoice.id).where(
        Invoice.status == "open",
        Invoice.amount_remaining > 0,
        Invoice.auto_advance.is_(True),
        ~exists().where(Payment.invoice_id == Invoice.id),
        exists().where(PaymentMethod.tenant_id == Invoice.tenant_id, PaymentMethod.status == "active"),
    )
    method_column = Invoice.__table__.c.get("collection_method")
    if method_column is not None:  # invoices that say how they are collected (send_invoice waits)
        query = query.where(method_column == "charge_automatically")
    if test_clock_id is None:
        query = query.where(Invoice.test_clock_id.is_(None))
    return query.order_by(Invoice.id)


async def collect_due(collector: Collector, *, limit: int = 100) -> int:
    """First attempts: open invoices to be charged automatically that have no payment yet, of customers
    with an active payment method. Runs after commits (the relay's tick: after every write in embedded
    mode, every interval in the worker), so finalising an invoice charges it within moments, never
    inside the finalising transaction. A claim that meets a second collector fails on the invoice's row
    lock and the unique (invoice, attempt): one attempt each."""
    async with collector.db.unit_of_work(read_only=True) as session:  # each claim writes on its own
        due = list((await session.scalars(_first_attempts_query().limit(limit))).all())
    done = 0
    for invoice_id in due:
        try:
            if await collector.collect(invoice_id, require_method=False) is not None:
                done += 1
        except Conflict:
            continue  # paid, voided or claimed meanwhile; or refused (the payment row says why)
    return done


async def collect_first_attempts(collector: Collector, *, concurrency: int = 4, limit: int = 1000) -> int:
    """The billing run's per-batch collection: the first attempt of every wall-clock invoice due to be
    charged automatically (what the batch just finalised), `concurrency` provider calls at a time, each
    claimed, charged outside any transaction and applied like any collection. Safe beside the periodic
    `collection` job and a second worker: the claim makes one attempt per invoice. Returns the attempts
    made."""
    async with collector.db.unit_of_work() as session:
        due = list((await session.scalars(_first_attempts_query(test_clock_id=None).limit(limit))).all())
    queue = list(reversed(due))
    done = 0

    async def worker() -> None:
        nonlocal done
        while queue:
            invoice_id = queue.pop()
            try:
                if await collector.collect(invoice_id, require_method=False) is not None:
                    done += 1
            except Conflict:
                continue  # claimed by another collector, paid meanwhile, or refused (recorded)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return done


def billing_run_collection(
    collector: Collector, *, concurrency: int = 4, limit: int = 1000
) -> Callable[[], Awaitable[int]]:
    """`billing_run(after_batch=...)`: collect what each batch finalised before the next batch."""

    async def after_batch() -> int:
        return await collect_first_attempts(collector, concurrency=concurrency, limit=limit)

    return after_batch
