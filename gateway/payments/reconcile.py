"""Reconciliation: the way back after a crash or a provider that did not answer.

Payments left `processing` or `unknown` past `reconcile_after` (wall clock) are asked about: by the
provider's payment id when the answer once came, else by re-sending the very same charge under the same
idempotency key (the provider dedupes it: it returns the first charge, or makes the one that never
reached it). The answer is applied under the payment's row lock through the transition table, so two
reconcilers (or a reconciler and a late webhook) settle a payment once. Provider calls happen outside any
transaction. Refunds left `pending` are polled the same way (`reconcile_refunds`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from gateway.billing.wiring import BillingConfig
from gateway.db.session import Database
from gateway.kernel.clock import Clock
from gateway.payments.collection import charge_request_of
from gateway.payments.domain import UNSETTLED, PaymentStatus
from gateway.payments.models import Refund
from gateway.payments.port import (
    ChargeResult,
    ProviderRejected,
    ProviderUnavailable,
    RefundRequest,
    RefundResult,
)
from gateway.payments.providers.registry import ProviderRegistry
from gateway.payments.refunds import apply_refund_answer
from gateway.payments.service import PaymentService, PaymentSettings
from gateway.payments.webhooks import replay_unmatched

log = logging.getLogger("tiergate.payments.reconcile")


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    looked_at: int = 0
    settled: int = 0
    still_open: int = 0


async def reconcile_payments(
    db: Database,
    clock: Clock,
    registry: ProviderRegistry,
    billing_config: BillingConfig | None = None,
    settings: PaymentSettings | None = None,
    *,
    limit: int = 200,
) -> ReconcileResult:
    settings = settings or PaymentSettings()
    actor = "system:reconcile"
    async with db.unit_of_work(actor=actor) as session:
        repo = PaymentService(session, clock, registry, billing_config, settings).repo
        due = list(await repo.due_for_reconciliation([s.value for s in UNSETTLED], clock.now(), limit))
    settled = still = 0
    for payment_id in due:
        status = await settle_payment(db, clock, registry, billing_config, settings, payment_id, actor=actor)
        if status is None:
            continue
        if status in UNSETTLED:
            still += 1
        else:
            settled += 1
    return ReconcileResult(len(due), settled, still)


async def settle_payment(
    db: Database,
    clock: Clock,
    registry: ProviderRegistry,
    billing_config: BillingConfig | None,
    settings: PaymentSettings,
    payment_id: str,
    *,
    actor: str,
    open_states: frozenset[PaymentStatus] = UNSETTLED,
) -> PaymentStatus | None:
    """Ask the provider where one unsettled payment stands and apply the answer. Returns the payment's
    status afterwards; None when nothing was asked or applied (no such payment, settled already, or it
    cannot be re-sent). The reconciler calls it for
    payments left open too long; the portal for the payment a customer just came back from (3-D Secure),
    so the page can say at once whether it went through instead of waiting for the provider's webhook:
    that one also asks about `requires_action` (`open_states`), which the reconciler leaves to the
    customer."""
    async with db.unit_of_work(actor=actor) as session:
        core = PaymentService(session, clock, registry, billing_config, settings)
        payment = await core.repo.get_payment(payment_id, scope=None)
        if payment is None or PaymentStatus(payment.status) not in open_states:
            return None
        account = await core.get_account(payment.account_id)
        provider = core.provider(account)
        provider_payment_id = payment.provider_payment_id
        request = None
        if provider_payment_id is None:
            method = await core.repo.get_method(payment.method_id or "", scope=None)
            mapping = await core.repo.provider_customer(payment.tenant_id, account.id)
            if method is None or mapping is None:
                log.warning("payment %s cannot be re-sent: method or customer gone", payment.id)
                return None
            request = charge_request_of(
                payment, mapping.provider_customer_id, method.provider_method_id, settings.return_url
            )
    # The provider is asked outside any transaction.
    result: ChargeResult | None = None
    try:
        if provider_payment_id is not None:
            result = await provider.retrieve_payment(provider_payment_id)
        else:
            assert request is not None
            result = await provider.charge(request)
    except ProviderUnavailable:
        result = None
    except ProviderRejected as exc:
        log.warning("payment %s: the provider refused the re-sent charge: %s", payment_id, exc.code)
        result = None
    async with db.unit_of_work(actor=actor) as session:
        core = PaymentService(session, clock, registry, billing_config, settings)
        payment = await core.repo.get_payment(payment_id, scope=None, for_update=True)
        if payment is None or PaymentStatus(payment.status) not in open_states:
            return None  # a webhook or another reconciler settled it meanwhile
        if result is not None:
            await core.apply(payment, result, source="reconcile")
            await replay_unmatched(core, payment.account_id, result.provider_payment_id)
        status = PaymentStatus(payment.status)
        if status in UNSETTLED:
            payment.reconcile_after = clock.now() + timedelta(seconds=settings.reconcile_after_seconds)
        await core.repo.flush()
        return status


async def reconcile_refunds(
    db: Database,
    clock: Clock,
    registry: ProviderRegistry,
    billing_config: BillingConfig | None = None,
    settings: PaymentSettings | None = None,
    *,
    limit: int = 200,
) -> ReconcileResult:
    """Refunds left `pending` past `reconcile_after` (the provider had not settled them, or did not
    answer, and its webhook never came): ask the provider (by its refund id, else by re-sending the same
    refund under the same idempotency key) and apply its answer like the webhook would
    (`refunds.apply_refund_answer`). Still pending → asked again one interval later."""
    settings = settings or PaymentSettings()
    actor = "system:reconcile"
    async with db.unit_of_work(actor=actor) as session:
        repo = PaymentService(session, clock, registry, billing_config, settings).repo
        due = list(await repo.refunds_due_for_reconciliation(clock.now(), limit))
    settled = still = 0
    for refund_id in due:
        async with db.unit_of_work(actor=actor) as session:
            core = PaymentService(session, clock, registry, billing_config, settings)
            row = await session.get(Refund, refund_id)
            payment = await core.repo.get_payment(row.payment_id, scope=None) if row is not None else None
            if row is None or payment is None or row.status != "pending":
                continue
            provider = core.provider(await core.get_account(payment.account_id))
            provider_payment_id, provider_refund_id = (
                payment.provider_payment_id or "",
                row.provider_refund_id,
            )
            request = RefundRequest(
                idempotency_key=row.idempotency_key,
                provider_payment_id=provider_payment_id,
                amount=row.amount,
                currency=row.currency,
                reason=row.reason,
            )
        result: RefundResult | None = None
        try:
            if provider_refund_id is not None:
                result = await provider.retrieve_refund(provider_payment_id, provider_refund_id)
            else:
                result = await provider.refund(request)  # the provider dedupes the key
        except (ProviderUnavailable, ProviderRejected) as exc:
            log.warning("refund %s: no answer from the provider (%s)", refund_id, type(exc).__name__)
        async with db.unit_of_work(actor=actor) as session:
            core = PaymentService(session, clock, registry, billing_config, settings)
            row = await session.get(Refund, refund_id, with_for_update=True)
            if row is None or row.status != "pending":
                continue
            if result is not None:
                row.provider_refund_id = result.provider_refund_id
                await apply_refund_answer(core, row, result.status)
            if row.status == "pending":
                row.reconcile_after = clock.now() + timedelta(seconds=settings.reconcile_after_seconds)
                still += 1
            else:
                settled += 1
            await core.repo.flush()
    return ReconcileResult(len(due), settled, still)
