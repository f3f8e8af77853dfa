"""The payments core for one unit of work: provider accounts, provider customers, and applying a
provider's answer to a payment (the one place where a payment's status moves, through the domain's
transition table). The use cases sit beside it: `methods.py`, `collection.py`, `refunds.py`,
`webhooks.py`, `reconcile.py`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.billing.wiring import BillingConfig, BillingServices, billing_services
from gateway.customers.models import Customer
from gateway.db.outbox import record_change, record_event
from gateway.kernel.clock import Clock, isoformat_or_none
from gateway.kernel.errors import Conflict, NotFound, ValidationFailed
from gateway.kernel.events import DomainEvent
from gateway.kernel.ids import new_id
from gateway.kernel.pagination import Page
from gateway.payments.domain import PaymentStatus, can_transition, is_hard_decline, status_of, transition
from gateway.payments.models import Payment, PaymentMethod, PaymentProviderAccount, ProviderCustomer
from gateway.payments.port import ChargeResult, PaymentProvider, ProviderKind
from gateway.payments.providers.registry import (
    REQUIRED_CREDENTIALS,
    ProviderRegistry,
    seal_credentials,
)
from gateway.payments.repository import PaymentsRepository
from gateway.security.secretbox import SecretBox

log = logging.getLogger("tiergate.payments")


class PaymentNotFound(NotFound):
    code = "payment_not_found"


class PaymentMethodNotFound(NotFound):
    code = "payment_method_not_found"


class ProviderAccountNotFound(NotFound):
    code = "payment_provider_account_not_found"


class NoProviderAccount(Conflict):
    code = "no_payment_provider_account"


def payment_snapshot(payment: Payment) -> dict[str, Any]:
    """The payment as events carry it (tokens and ids only)."""
    return {
        "id": payment.id,
        "customer": payment.tenant_id,
        "invoice": payment.invoice_id,
        "attempt": payment.attempt,
        "amount": payment.amount,
        "amount_refunded": payment.amount_refunded,
        "currency": payment.currency,
        "status": payment.status,
        "payment_method": payment.method_id,
        "decline_code": payment.decline_code,
        "hard_decline": is_hard_decline(payment.decline_code),
        "action_url": payment.action_url,
        "off_session": payment.off_session,
        "created": isoformat_or_none(payment.created_at),
        "settled": isoformat_or_none(payment.settled_at),
    }


def method_snapshot(method: PaymentMethod) -> dict[str, Any]:
    return {
        "id": method.id,
        "customer": method.tenant_id,
        "type": method.type,
        "brand": method.brand,
        "last4": method.last4,
        "exp_month": method.exp_month,
        "exp_year": method.exp_year,
        "mandate_reference": method.mandate_reference,
        "bank": method.bank,
        "status": method.status,
        "priority": method.priority,
    }


@dataclass(frozen=True, slots=True)
class PaymentSettings:
    provider_timeout_seconds: float = 10.0
    # Payments left processing / unknown this long (wall clock) are asked about by reconciliation.
    reconcile_after_seconds: float = 300.0
    return_url: str = "http://127.0.0.1:8000/"
    # Where providers reach Tiergate: Mollie's per-payment webhook URL is derived from it.
    public_base_url: str = ""

    @classmethod
    def from_settings(cls, settings: Any) -> PaymentSettings:
        return cls(
            provider_timeout_seconds=float(getattr(settings, "payment_provider_timeout_seconds", 10.0)),
            reconcile_after_seconds=float(getattr(settings, "payment_reconcile_after_seconds", 300.0)),
            return_url=str(getattr(settings, "payment_return_url", "http://127.0.0.1:8000/")),
            public_base_url=str(
                getattr(settings, "public_base_url", "") or getattr(settings, "public_url", "") or ""
            ),
        )

    def registry(self, box: SecretBox) -> ProviderRegistry:
        return ProviderRegistry(
            box, timeout_seconds=self.provider_timeout_seconds, public_base_url=self.public_base_url
        )


class PaymentService:
    """Accounts, provider customers, and `apply` (a provider's answer → the payment, its invoice, events)."""

    def __init__(
        self,
        session: AsyncSession,
        clock: Clock,
        registry: ProviderRegistry,
        billing_config: BillingConfig | None = None,
        settings: PaymentSettings | None = None,
    ) -> None:
        self.session = session
        self.repo = PaymentsRepository(session)
        self.clock = clock
        self.registry = registry
        self.settings = settings or PaymentSettings()
        self.billing: BillingServices = billing_services(session, clock, billing_config or BillingConfig())

    # -- time ------------------------------------------------------------------------------------------
    async def now_for(self, customer: Customer) -> datetime:
        """The customer's time: its test clock's when it has one (events and invoices follow it)."""
        return await self.billing.subscriptions.now_for(customer.test_clock_id)

    # -- accounts --------------------------------------------------------------------------------------
    async def create_account(
        self,
        *,
        kind: str,
        name: str,
        credentials: dict[str, str],
        is_default: bool,
        account_id: str | None = None,
    ) -> PaymentProviderAccount:
        try:
            ProviderKind(kind)
        except ValueError:
            raise ValidationFailed(f"unknown provider kind {kind!r}", field="kind") from None
        missing = sorted(REQUIRED_CREDENTIALS.get(kind, frozenset()) - set(credentials))
        if missing:
            raise ValidationFailed(
                f"{kind} credentials need {', '.join(missing)}", field="credentials", missing=missing
            )
        now = self.clock.now()
        account_id = account_id or new_id("ppa")
        first = await self.repo.default_account() is None
        if is_default:
            await self.repo.clear_default()
        account = PaymentProviderAccount(
            id=account_id,
            kind=kind,
            name=name,
            credentials=seal_credentials(self.registry.box, account_id, credentials),
            is_default=is_default or first,
            created_at=now,
            updated_at=now,
        )
        self.repo.add(account)
        await self.repo.flush()
        await record_change(
            self.session,
            "payment_provider_account.created",
            "payment_provider_account",
            account.id,
            now,
            tenant_id=None,
            kind=kind,
            name=name,
        )
        return account

    async def get_account(self, account_id: str) -> PaymentProviderAccount:
        account = await self.repo.get_account(account_id)
        if account is None:
            raise ProviderAccountNotFound(f"no payment provider account {account_id!r}")
        return account

    async def list_accounts(self, *, after: str | None, limit: int) -> Page[PaymentProviderAccount]:
        return Page.from_overfetch(await self.repo.list_accounts(after=after, limit=limit), limit)

    async def account_for(self, customer: Customer) -> PaymentProviderAccount:
        if customer.payment_provider_account_id:
            return await self.get_account(customer.payment_provider_account_id)
        account = await self.repo.default_account()
        if account is None:
            raise NoProviderAccount("no payment provider account is configured")
        return account

    def provider(self, account: PaymentProviderAccount) -> PaymentProvider:
        return self.registry.provider(account)

    async def provider_customer_id(self, customer: Customer, account: PaymentProviderAccount) -> str:
        """The provider's customer for this customer, created at the provider once (idempotent key)."""
        mapping = await self.repo.provider_customer(customer.id, account.id)
        if mapping is not None:
            return mapping.provider_customer_id
        provider_id = await self.provider(account).create_customer(
            customer_id=customer.id,
            name=customer.name,
            email=customer.email,
            idempotency_key=f"customer:{customer.id}:account:{account.id}",
        )
        self.repo.add(
            ProviderCustomer(
                id=new_id("ppc"),
                tenant_id=customer.id,
                account_id=account.id,
                provider_customer_id=provider_id,
                created_at=self.clock.now(),
            )
        )
        await self.repo.flush()
        return provider_id

    # -- events ------------------------------------------------------------------------------------------
    async def emit(self, type_: str, payment: Payment, at: datetime, **data: Any) -> None:
        await record_event(
            self.session,
            DomainEvent(
                type_,
                "payment",
                payment.id,
                at,
                data={"payment": payment_snapshot(payment), **data},
                tenant_id=payment.tenant_id,
            ),
        )

    async def emit_method(self, type_: str, method: PaymentMethod, at: datetime, **data: Any) -> None:
        await record_event(
            self.session,
            DomainEvent(
                type_,
                "payment_method",
                method.id,
                at,
                data={"payment_method": method_snapshot(method), **data},
                tenant_id=method.tenant_id,
            ),
        )

    # -- applying an answer ------------------------------------------------------------------------------
    async def apply(self, payment: Payment, result: ChargeResult, *, source: str) -> bool:
        """Apply a provider's answer to a (row-locked) payment. Older answers than the one stored
        (`version`) and answers the transition table refuses are ignored; an answer that says what the
        payment already says changes nothing and emits nothing. Returns whether the status changed."""
        if payment.provider_payment_id and result.provider_payment_id != payment.provider_payment_id:
            log.warning("payment %s: answer for another provider payment ignored", payment.id)
            return False
        if payment.provider_version and result.version and result.version <= payment.provider_version:
            return False  # an older (or the same) state than the one stored: providers reorder webhooks
        customer = await self.billing.customers.get(payment.tenant_id)
        at = await self.now_for(customer)
        payment.provider_payment_id = result.provider_payment_id
        payment.provider_version = max(payment.provider_version, result.version)
        payment.updated_at = at
        target = status_of(result.status)
        current = PaymentStatus(payment.status)
        if target == current:
            if result.action_url:
                payment.action_url = result.action_url
            await self.repo.flush()
            return False
        if not can_transition(current, target):
            log.info(
                "payment %s: %s answer ignored on a %s payment (%s)", payment.id, target, current, source
            )
            await self.repo.flush()
            return False
        transition(payment, target, at)
        payment.reconcile_after = None
        if target is PaymentStatus.PROCESSING:
            payment.reconcile_after = self._reconcile_at()
        if target is PaymentStatus.FAILED:
            payment.decline_code = result.decline_code.value if result.decline_code else "generic_decline"
            payment.decline_message = result.decline_message
        if target is PaymentStatus.REQUIRES_ACTION:
            payment.action_url = result.action_url
        await self.repo.flush()
        await self._effects(payment, current, target, at)
        return True

    def _reconcile_at(self) -> datetime:
        from datetime import timedelta

        return self.clock.now() + timedelta(seconds=self.settings.reconcile_after_seconds)

    async def _effects(
        self, payment: Payment, before: PaymentStatus, after: PaymentStatus, at: datetime
    ) -> None:
        if after is PaymentStatus.SUCCEEDED:
            await self._invoice_paid(payment, at)
            await self.emit("payment.succeeded", payment, at)
            await self._first_invoice(payment, at, paid=True)
        elif after is PaymentStatus.FAILED and before is PaymentStatus.SUCCEEDED:
            await self.charged_back(payment, at)
        elif after is PaymentStatus.FAILED:
            await self.emit(
                "payment.failed",
                payment,
                at,
                decline_code=payment.decline_code,
                hard_decline=is_hard_decline(payment.decline_code),
            )
            await self._first_invoice(payment, at, paid=False)
        elif after is PaymentStatus.REQUIRES_ACTION:
            await self.emit("payment.action_required", payment, at, action_url=payment.action_url)
        elif after is PaymentStatus.CANCELED:
            await self.emit("payment.canceled", payment, at)

    async def _first_invoice(self, payment: Payment, at: datetime, *, paid: bool) -> None:
        """Stripe's `incomplete`: the first invoice (creation or trial end) of a charge_automatically
        subscription failed -> the subscription is incomplete (no access); paid later -> active again.
        Expiry after 23 hours unpaid is the subscription's own time-driven step."""
        if payment.invoice_id is None:
            return
        invoice = await self.billing.invoices.get(payment.invoice_id, scope=None)
        if (
            invoice.subscription_id is None
            or invoice.billing_reason != "subscription_create"
            or invoice.collection_method != "charge_automatically"
        ):
            return
        if not paid and invoice.status not in ("open", "uncollectible"):
            return
        subscriptions = self.billing.subscriptions
        sub = await subscriptions.get(invoice.subscription_id, for_update=True)
        if paid:
            await subscriptions.complete(sub, at, invoice=invoice.id, payment=payment.id)
        else:
            await subscriptions.mark_incomplete(
                sub, at, invoice=invoice.id, payment=payment.id, decline_code=payment.decline_code
            )

    async def charged_back(self, payment: Payment, at: datetime) -> None:
        """A succeeded payment taken back (already `failed`, code `charged_back`): `payment.charged_back`,
        and its invoice reopened for what the payment still held (paid minus refunded), so dunning can
        collect it again (`invoice.reopened`, audited)."""
        await self.emit("payment.charged_back", payment, at)
        if payment.invoice_id is None:
            return
        invoices = self.billing.invoices
        invoice = await invoices.get(payment.invoice_id, scope=None, for_update=True)
        taken = min(payment.amount - payment.amount_refunded, invoice.amount_paid)
        if invoice.status != "paid" or taken <= 0:
            log.warning(
                "payment %s charged back on invoice %s (%s): nothing to reopen",
                payment.id,
                invoice.id,
                invoice.status,
            )
            return
        await invoices.reopen(invoice, taken, at, reason="charged_back", payment=payment.id)

    async def _invoice_paid(self, payment: Payment, at: datetime) -> None:
        if payment.invoice_id is None:
            return
        invoices = self.billing.invoices
        invoice = await invoices.get(payment.invoice_id, scope=None, for_update=True)
        if invoice.status in ("open", "uncollectible") and invoice.amount_remaining > 0:
            await invoices.pay(invoice, at)
        else:
            # Paid meanwhile (out of band, or a credit note): the money is the customer's; a refund gives
            # it back. Dunning/e-mail will surface it; here it is logged.
            log.warning(
                "payment %s succeeded on invoice %s already %s", payment.id, invoice.id, invoice.status
            )


async def ensure_embedded_account(
    core: PaymentService,
    *,
    base_url: str,
    webhook_base: str,
    open_account: Callable[[str], Mapping[str, str]],
) -> PaymentProviderAccount | None:
    """The embedded default (no configuration): while no provider account exists at all, one sandbox
    account on the app's own `/sandbox` mount, default, so a newcomer's invoices are collected at once.
    `open_account(webhook_url)` opens the account at the sandbox (in process: the server is not listening
    yet at start-up) and returns its `api_key` and `webhook_secret`. Returns the account it created."""
    if await core.repo.default_account() is not None:
        return None
    account_id = new_id("ppa")
    opened = open_account(f"{webhook_base}/v1/payment_providers/{account_id}/webhooks")
    return await core.create_account(
        kind="sandbox",
        name="Sandbox (embedded)",
        credentials={
            "base_url": base_url,
            "api_key": opened["api_key"],
            "webhook_secret": opened["webhook_secret"],
        },
        is_default=True,
        account_id=account_id,
    )
