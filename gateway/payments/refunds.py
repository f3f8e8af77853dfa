"""Refunds: full or partial, never above what was paid minus what was refunded, each with its credit note.

Like collection, in three steps: (1) lock the payment, check the amount, reserve it (`amount_refunded`)
and record the refund `pending` with its key `payment:{id}:refund:{n}`; commit. (2) Ask the provider,
outside any transaction. (3) Record the answer: succeeded or pending → the credit note (through
`InvoiceService.create_credit_note`, marked as money returned outside the invoice: `out_of_band`) and
`payment.refunded`; refused → the reservation is released and nothing is credited.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.billing.wiring import BillingConfig
from gateway.db.session import Database
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Conflict, ValidationFailed
from gateway.kernel.ids import new_id
from gateway.payments.domain import PaymentStatus, refund_key, refundable
from gateway.payments.models import Payment, Refund
from gateway.payments.port import (
    ProviderRejected,
    ProviderUnavailable,
    RefundRequest,
    RefundResult,
    RefundStatus,
)
from gateway.payments.providers.registry import ProviderRegistry
from gateway.payments.service import PaymentNotFound, PaymentService, PaymentSettings


class RefundExceedsPayment(Conflict):
    code = "refund_exceeds_payment"


class Refunds:
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

    async def refund(
        self, payment_id: str, *, amount: int | None, reason: str | None, scope: str | None
    ) -> Refund:
        async with self.db.unit_of_work(actor=self.actor) as session:
            core = self.core(session)
            payment = await core.repo.get_payment(payment_id, scope=scope, for_update=True)
            if payment is None:
                raise PaymentNotFound(f"no payment {payment_id!r}")
            if PaymentStatus(payment.status) is not PaymentStatus.SUCCEEDED:
                raise Conflict(
                    f"a {payment.status} payment cannot be refunded", code="payment_not_refundable"
                )
            left = refundable(payment.amount, payment.amount_refunded)
            wanted = left if amount is None else amount
            if wanted <= 0:
                raise ValidationFailed("a refund must be positive", field="amount")
            if wanted > left:
                raise RefundExceedsPayment(
                    f"at most {left} can still be refunded on this payment", refundable=left
                )
            n = len(await core.repo.refunds_of(payment.id)) + 1
            customer = await core.billing.customers.get(payment.tenant_id)
            at = await core.now_for(customer)
            refund = Refund(
                id=new_id("re"),
                tenant_id=payment.tenant_id,
                payment_id=payment.id,
                credit_note_id=None,
                amount=wanted,
                currency=payment.currency,
                status="pending",
                provider_refund_id=None,
                idempotency_key=refund_key(payment.id, n),
                reason=reason,
                created_at=at,
            )
            payment.amount_refunded += wanted  # reserved now: a concurrent refund sees it
            core.repo.add(refund)
            await core.repo.flush()
            account = await core.get_account(payment.account_id)
            provider = core.provider(account)
            request = RefundRequest(
                idempotency_key=refund.idempotency_key,
                provider_payment_id=payment.provider_payment_id or "",
                amount=wanted,
                currency=payment.currency,
                reason=reason,
            )
        result: RefundResult | None = None
        rejected: ProviderRejected | None = None
        try:
            result = await provider.refund(request)
        except ProviderUnavailable:
            result = None  # stays pending; the provider's webhook (refund.succeeded/failed) settles it
        except ProviderRejected as exc:
            rejected = exc
        async with self.db.unit_of_work(actor=self.actor) as session:
            core = self.core(session)
            payment = await core.repo.get_payment(payment_id, scope=None, for_update=True)
            row = await session.get(Refund, refund.id, with_for_update=True)
            assert payment is not None and row is not None
            if rejected is not None or (result is not None and result.status is RefundStatus.FAILED):
                if result is not None:
                    row.provider_refund_id = result.provider_refund_id
                await self.failed(core, payment, row)
            else:
                if result is not None:
                    row.provider_refund_id = result.provider_refund_id
                    row.status = result.status.value
                if row.status == "pending":  # no answer, or not settled yet: reconciliation polls it
                    row.reconcile_after = self.clock.now() + timedelta(
                        seconds=self.settings.reconcile_after_seconds
                    )
                await self.credit(core, payment_id, row)
        if rejected is not None:
            raise Conflict(str(rejected), code=rejected.code, refund=refund.id)
        return row

    @staticmethod
    async def failed(core: PaymentService, payment: Payment, row: Refund) -> None:
        await _failed(core, payment, row)

    @staticmethod
    async def credit(core: PaymentService, payment_id: str, row: Refund) -> None:
        """The refund's credit note and `payment.refunded` (once per refund)."""
        payment = await core.repo.get_payment(payment_id, scope=None)
        assert payment is not None
        customer = await core.billing.customers.get(payment.tenant_id)
        at = await core.now_for(customer)
        if row.credit_note_id is None and payment.invoice_id is not None:
            invoices = core.billing.invoices
            invoice = await invoices.get(payment.invoice_id, scope=None, for_update=True)
            note = await invoices.create_credit_note(
                invoice,
                customer,
                at=at,
                amount=row.amount,
                reason=_credit_reason(row.reason),
                memo=f"Refund {row.id} of payment {payment.id}",
                out_of_band=True,
            )
            row.credit_note_id = note.id
        payment.updated_at = at
        await core.repo.flush()
        await core.emit(
            "payment.refunded",
            payment,
            at,
            refund={
                "id": row.id,
                "amount": row.amount,
                "currency": row.currency,
                "status": row.status,
                "credit_note": row.credit_note_id,
            },
        )


async def apply_refund_answer(core: PaymentService, row: Refund, answer: RefundStatus) -> str:
    """A provider's later word on a pending refund (its webhook, or reconciliation asking): failed →
    the amount is released; succeeded → settled (its credit note, made when it went pending, stays).
    The caller holds the refund's row lock. Returns `applied` or `ignored` (already settled / still
    pending)."""
    if row.status in ("succeeded", "failed") or answer is RefundStatus.PENDING:
        return "ignored"
    if answer is RefundStatus.FAILED:
        payment = await core.repo.get_payment(row.payment_id, scope=None, for_update=True)
        assert payment is not None
        await _failed(core, payment, row)
        return "applied"
    row.status = "succeeded"
    await Refunds.credit(core, row.payment_id, row)
    return "applied"


async def _failed(core: PaymentService, payment: Payment, row: Refund) -> None:
    """A refund the provider refused or failed: the amount it reserved is released (refundable again) and
    `payment.refund_failed` makes it visible."""
    row.status = "failed"
    payment.amount_refunded -= row.amount
    customer = await core.billing.customers.get(payment.tenant_id)
    at = await core.now_for(customer)
    payment.updated_at = at
    await core.repo.flush()
    await core.emit(
        "payment.refund_failed",
        payment,
        at,
        refund={"id": row.id, "amount": row.amount, "currency": row.currency, "status": row.status},
    )


def _credit_reason(reason: str | None) -> str | None:
    return reason if reason in {"duplicate", "fraudulent", "order_change", "product_unsatisfactory"} else None
