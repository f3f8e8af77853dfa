"""Inbound provider webhooks: verified, deduplicated, stored, answered at once; applied by the outbox.

Receiving (`receive`): the account's adapter verifies the signature with the provider's own scheme
(`parse_webhook`) and completes the event (`complete_event`: Mollie sends only an id), outside any
transaction; then one transaction stores it in `provider_events`, unique on (account, provider event id):
a duplicate is acknowledged and changes nothing; with it goes the domain event
`payment_provider.event_received`, so the `payments` outbox consumer (`apply_received`) applies it
after commit, at least once. Applying compares versions: a payment answer older than (or as old as) the
stored `provider_version` is ignored, since providers do not guarantee order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.billing.wiring import BillingConfig
from gateway.db.outbox import OutboxEvent, record_event
from gateway.db.session import Database
from gateway.kernel.clock import Clock, ensure_utc, format_timestamp
from gateway.kernel.errors import DomainError
from gateway.kernel.events import DomainEvent
from gateway.kernel.ids import new_id
from gateway.payments.domain import MethodStatus
from gateway.payments.methods import MethodService
from gateway.payments.models import ProviderEventRecord, Refund
from gateway.payments.port import (
    ChargeResult,
    ChargeStatus,
    DeclineCode,
    InvalidWebhookSignature,
    MethodDetails,
    MethodType,
    ProviderEvent,
    ProviderEventType,
    ProviderRejected,
    ProviderUnavailable,
    RefundResult,
    RefundStatus,
)
from gateway.payments.providers.registry import ProviderRegistry
from gateway.payments.refunds import apply_refund_answer
from gateway.payments.service import PaymentService, PaymentSettings

log = logging.getLogger("tiergate.payments.webhooks")

RECEIVED = "payment_provider.event_received"


class WebhookSignatureInvalid(DomainError):
    code = "invalid_webhook_signature"
    status = 400
    title = "Webhook signature does not verify"


class ProviderUnreachable(DomainError):
    """Completing a webhook needs the provider (Mollie sends only an id) and it did not answer: 503, so
    the provider delivers the webhook again later."""

    code = "provider_unavailable"
    status = 503
    title = "Payment provider unavailable"


# -- (de)serialising a normalised event into the stored payload --------------------------------------------
def event_payload(event: ProviderEvent) -> dict[str, Any]:
    data = asdict(event)
    data["occurred_at"] = format_timestamp(event.occurred_at)
    plain: dict[str, Any] = _plain(data)
    return plain


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return format_timestamp(value)
    return value


def event_of(payload: Mapping[str, Any]) -> ProviderEvent:
    payment = payload.get("payment")
    refund = payload.get("refund")
    method = payload.get("method")
    return ProviderEvent(
        provider_event_id=payload["provider_event_id"],
        type=ProviderEventType(payload["type"]),
        occurred_at=ensure_utc(datetime.fromisoformat(payload["occurred_at"].replace("Z", "+00:00"))),
        provider_customer_id=payload.get("provider_customer_id"),
        payment=ChargeResult(
            status=ChargeStatus(payment["status"]),
            provider_payment_id=payment["provider_payment_id"],
            amount=payment["amount"],
            currency=payment["currency"],
            decline_code=DeclineCode(payment["decline_code"]) if payment.get("decline_code") else None,
            decline_message=payment.get("decline_message"),
            action_url=payment.get("action_url"),
            provider_method_id=payment.get("provider_method_id"),
            version=int(payment.get("version") or 0),
        )
        if payment
        else None,
        refund=RefundResult(
            provider_refund_id=refund["provider_refund_id"],
            status=RefundStatus(refund["status"]),
            amount=refund["amount"],
            currency=refund["currency"],
        )
        if refund
        else None,
        method=MethodDetails(
            provider_method_id=method["provider_method_id"],
            type=MethodType(method["type"]),
            brand=method.get("brand"),
            last4=method.get("last4"),
            exp_month=method.get("exp_month"),
            exp_year=method.get("exp_year"),
            mandate_reference=method.get("mandate_reference"),
            bank=method.get("bank"),
            fingerprint=method.get("fingerprint"),
        )
        if method
        else None,
        setup_session_id=payload.get("setup_session_id"),
    )


# -- receiving ---------------------------------------------------------------------------------------------
async def receive(
    db: Database,
    clock: Clock,
    registry: ProviderRegistry,
    account_id: str,
    body: bytes,
    headers: Mapping[str, str],
) -> tuple[ProviderEventRecord | None, bool]:
    """Verify, dedupe, store. Returns (the stored record, whether it is new); (None, False) for an event
    Tiergate does not use (the adapter says `event_not_supported`, or a Mollie payment still open): it is
    acknowledged, or the provider would redeliver it for days, and nothing is stored."""
    async with db.unit_of_work() as session:
        core = PaymentService(session, clock, registry)
        account = await core.get_account(account_id)
        provider = core.provider(account)
    try:
        event = await provider.complete_event(provider.parse_webhook(body, headers))
    except InvalidWebhookSignature as exc:
        raise WebhookSignatureInvalid(str(exc) or "the signature does not verify") from None
    except ProviderRejected as exc:
        log.info("webhook of account %s ignored: %s (%s)", account_id, exc, exc.code)
        return None, False
    except ProviderUnavailable as exc:
        raise ProviderUnreachable(f"the provider did not answer while completing the event: {exc}") from None
    try:
        async with db.unit_of_work(actor=f"provider:{account_id}") as session:
            core = PaymentService(session, clock, registry)
            existing = await core.repo.provider_event(account_id, event.provider_event_id)
            if existing is not None:
                return existing, False
            record = ProviderEventRecord(
                id=new_id("pevt"),
                account_id=account_id,
                provider_event_id=event.provider_event_id,
                type=event.type.value,
                object_id=_object_id(event),
                payload=event_payload(event),
                received_at=clock.now(),
                processed_at=None,
                outcome=None,
            )
            session.add(record)
            await session.flush()
            await record_event(
                session,
                DomainEvent(
                    RECEIVED,
                    "provider_event",
                    record.id,
                    clock.now(),
                    data={"provider_event": record.id, "account": account_id, "type": record.type},
                ),
            )
            return record, True
    except IntegrityError:
        # The same event delivered twice at once: the other delivery stored it.
        async with db.unit_of_work() as session:
            stored = await PaymentService(session, clock, registry).repo.provider_event(
                account_id, event.provider_event_id
            )
            assert stored is not None
            return stored, False


def _object_id(event: ProviderEvent) -> str | None:
    if event.payment is not None:
        return event.payment.provider_payment_id
    if event.refund is not None:
        return event.refund.provider_refund_id
    if event.method is not None:
        return event.method.provider_method_id
    return None


# -- applying (the `payments` outbox consumer) ------------------------------------------------------------
def wants(event_type: str) -> bool:
    return event_type == RECEIVED


def consumer_handler(
    clock: Clock,
    registry: ProviderRegistry,
    billing_config: BillingConfig | None = None,
    settings: PaymentSettings | None = None,
) -> Callable[[AsyncSession, OutboxEvent], Awaitable[None]]:
    async def handle(session: AsyncSession, event: OutboxEvent) -> None:
        core = PaymentService(session, clock, registry, billing_config, settings)
        await apply_received(core, str(event.data["provider_event"]))

    return handle


async def apply_received(core: PaymentService, record_id: str) -> str:
    record = await core.repo.get_provider_event(record_id)
    if record is None or (record.processed_at is not None and record.outcome != "unmatched"):
        return "done"
    event = event_of(record.payload)
    outcome = await _apply(core, record.account_id, event)
    record.processed_at = core.clock.now()
    record.outcome = outcome
    await core.repo.flush()
    return outcome


async def _apply(core: PaymentService, account_id: str, event: ProviderEvent) -> str:
    kind = event.type
    if event.payment is not None and kind in {
        ProviderEventType.PAYMENT_SUCCEEDED,
        ProviderEventType.PAYMENT_FAILED,
        ProviderEventType.PAYMENT_REQUIRES_ACTION,
        ProviderEventType.PAYMENT_CANCELED,
    }:
        payment = await core.repo.payment_by_provider_id(
            account_id, event.payment.provider_payment_id, for_update=True
        )
        if payment is None:
            return "unmatched"  # not known yet (the charge's answer never came): reconciliation finds it
        return "applied" if await core.apply(payment, event.payment, source="webhook") else "ignored"
    if kind is ProviderEventType.PAYMENT_CHARGED_BACK and event.payment is not None:
        payment = await core.repo.payment_by_provider_id(
            account_id, event.payment.provider_payment_id, for_update=True
        )
        if payment is None:
            return "unmatched"
        if payment.provider_version and event.payment.version <= payment.provider_version:
            return "ignored"
        if payment.status != "succeeded":
            return "ignored"
        from gateway.payments.domain import PaymentStatus, transition

        customer = await core.billing.customers.get(payment.tenant_id)
        at = await core.now_for(customer)
        transition(payment, PaymentStatus.FAILED, at)
        payment.decline_code = "charged_back"
        payment.provider_version = max(payment.provider_version, event.payment.version)
        payment.updated_at = at
        await core.repo.flush()
        await core.charged_back(payment, at)
        return "applied"
    if kind in {ProviderEventType.REFUND_SUCCEEDED, ProviderEventType.REFUND_FAILED} and event.refund:
        return await _refund_event(core, event)
    if kind.value.startswith("payment_method.") and event.method is not None:
        return await _method_event(core, account_id, event)
    return "ignored"


async def _refund_event(core: PaymentService, event: ProviderEvent) -> str:
    assert event.refund is not None
    refund = await core.repo.refund_by_provider_id(event.refund.provider_refund_id)
    if refund is None:
        return "unmatched"
    row = await core.session.get(Refund, refund.id, with_for_update=True)
    assert row is not None
    failed = event.type is ProviderEventType.REFUND_FAILED
    return await apply_refund_answer(core, row, RefundStatus.FAILED if failed else RefundStatus.SUCCEEDED)


async def _method_event(core: PaymentService, account_id: str, event: ProviderEvent) -> str:
    assert event.method is not None
    methods = MethodService(core)
    method = await core.repo.method_by_provider_id(account_id, event.method.provider_method_id)
    if event.type is ProviderEventType.METHOD_ATTACHED:
        if method is not None:
            return "ignored"
        tenant_id = (
            await core.repo.tenant_of(account_id, event.provider_customer_id)
            if event.provider_customer_id
            else None
        )
        if tenant_id is None:
            return "unmatched"
        customer = await core.billing.customers.get(tenant_id)
        account = await core.get_account(account_id)
        await methods.attach(customer, account, event.method)
        if event.setup_session_id:
            setup = await core.repo.setup_session_by_provider_id(account_id, event.setup_session_id)
            if setup is not None and setup.status == "open":
                setup.status = "complete"
                setup.completed_at = await core.now_for(customer)
        await core.repo.flush()
        return "applied"
    if method is None:
        return "unmatched"
    customer = await core.billing.customers.get(method.tenant_id)
    at = await core.now_for(customer)
    if event.type is ProviderEventType.METHOD_UPDATED:
        await methods.update_details(method, event.method, at)
    elif event.type is ProviderEventType.METHOD_EXPIRING:
        await core.emit_method("payment_method.expiring", method, at)
    elif event.type is ProviderEventType.METHOD_DETACHED:
        if method.status == MethodStatus.DETACHED:
            return "ignored"
        await methods.mark_detached(customer, method)
    else:
        return "ignored"
    return "applied"


async def replay_unmatched(core: PaymentService, account_id: str, provider_payment_id: str) -> int:
    """Events about this provider payment that arrived before Tiergate knew its id (the webhook beat the
    charge's answer, or the answer never came): apply them now, oldest first. Versions keep it safe."""
    done = 0
    for record in await core.repo.unmatched_events(account_id, provider_payment_id):
        if await apply_received(core, record.id) != "unmatched":
            done += 1
    return done
