"""Invoice use cases: drafts from lines, finalisation (number, credit, currency lock), payment, void,
write-off, pending items, customer credit and credit notes.

Every change writes its `invoice.*` / `credit_note.*` event to the outbox in the same transaction. Times
are the customer's (its test clock's when it has one), passed in by the caller as `at`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from gateway.billing.credits import CreditGrant as GrantView
from gateway.billing.credits import apply_credits
from gateway.billing.discounts import Coupon, CouponDuration
from gateway.billing.domain import (
    BillingReason,
    DraftLine,
    InvoiceStatus,
    InvoiceTotals,
    LineKind,
    TaxTreatment,
    line_tax,
    price_invoice,
    transition,
)
from gateway.billing.models import (
    BalanceTransaction,
    CreditGrant,
    CreditNote,
    Invoice,
    InvoiceItem,
    InvoiceLine,
)
from gateway.billing.reference import creditor_reference
from gateway.billing.repository import BillingRepository
from gateway.customers.models import Customer
from gateway.db.outbox import record_event
from gateway.kernel.clock import isoformat_or_none
from gateway.kernel.errors import Conflict, NotFound, ValidationFailed
from gateway.kernel.events import DomainEvent
from gateway.kernel.ids import new_id
from gateway.kernel.money import Money, normalize_currency
from gateway.kernel.pagination import Page
from gateway.subscriptions.domain import CollectionMethod

MAX_AMOUNT = 100_000_000_000  # 1e11 minor units: far above any real invoice line, below BigInteger limits


class InvoiceNotFound(NotFound):
    code = "invoice_not_found"


class InvoiceItemNotFound(NotFound):
    code = "invoice_item_not_found"


class CreditNoteNotFound(NotFound):
    code = "credit_note_not_found"


class CurrencyLocked(Conflict):
    code = "currency_mismatch"


@dataclass(frozen=True, slots=True)
class Issuer:
    """Who invoices: shown on every invoice and the prefix of its gapless number sequences."""

    name: str = "Tiergate"
    address: str = ""
    country: str | None = None
    vat_id: str | None = None
    email: str | None = None
    number_prefix: str = "TG"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "country": self.country,
            "vat_id": self.vat_id,
            "email": self.email,
        }


@dataclass(frozen=True, slots=True)
class BankAccount:
    """Where a send_invoice invoice is paid by transfer (the issuer's account)."""

    account_name: str
    iban: str | None = None
    bic: str | None = None


@dataclass(frozen=True, slots=True)
class CollectionSettings:
    """Defaults of `send_invoice` collection: the days until due and the account printed on it."""

    days_until_due: int = 30
    bank: BankAccount | None = None


# How the invoice service learns a customer's tax treatment (the taxes domain, wired by the composition
# root); without one, invoices carry no tax.
TaxResolver = Callable[[Customer], Awaitable[TaxTreatment]]


async def no_tax(_customer: Customer) -> TaxTreatment:
    return TaxTreatment()


def customer_details(customer: Customer) -> dict[str, Any]:
    """The customer block frozen onto an invoice at finalisation."""
    details: dict[str, Any] = {
        "id": customer.id,
        "name": customer.name,
        "email": customer.email,
        "country": customer.country,
        "tax_ids": list(customer.tax_ids or []),
    }
    for field in _OPTIONAL_CUSTOMER_FIELDS:
        if hasattr(customer, field):
            details[field] = getattr(customer, field)
    return details


# Billing details the customers domain may carry (address, tax exemption): frozen when present.
_OPTIONAL_CUSTOMER_FIELDS = (
    "address_line1",
    "address_line2",
    "address_city",
    "address_postal_code",
    "address_region",
    "tax_exempt",
)


class InvoiceService:
    def __init__(
        self,
        repository: BillingRepository,
        *,
        issuer: Issuer,
        taxes: TaxResolver = no_tax,
        collection: CollectionSettings | None = None,
    ) -> None:
        self.repo = repository
        self.issuer = issuer
        self.taxes = taxes
        self.collection = collection or CollectionSettings()
        # In a billing-run batch, finalisations wait here so the batch takes its numbers in one
        # statement at its end (holding the sequence's row lock for milliseconds, not the whole batch).
        self._deferred: list[tuple[Invoice, Customer, datetime]] | None = None

    async def _event(self, type_: str, invoice: Invoice, at: datetime, **data: Any) -> None:
        payload = {"invoice": invoice_snapshot(invoice), **data}
        await record_event(
            self.repo.session,
            DomainEvent(type_, "invoice", invoice.id, at, data=payload, tenant_id=invoice.tenant_id),
        )

    # -- reads -----------------------------------------------------------------------------------
    async def get(self, invoice_id: str, *, scope: str | None, for_update: bool = False) -> Invoice:
        invoice = await self.repo.get_invoice(invoice_id, scope=scope, for_update=for_update)
        if invoice is None:
            raise InvoiceNotFound(f"no invoice {invoice_id!r}")
        return invoice

    async def lines(self, invoice: Invoice) -> Sequence[InvoiceLine]:
        return await self.repo.lines(invoice.id)

    async def list_invoices(
        self,
        *,
        after: str | None,
        limit: int,
        scope: str | None,
        customer_id: str | None = None,
        subscription_id: str | None = None,
        status: str | None = None,
    ) -> Page[Invoice]:
        if status is not None and status not in {s.value for s in InvoiceStatus}:
            raise ValidationFailed(f"unknown status {status!r}", field="status")
        rows = await self.repo.list_invoices(
            after=after,
            limit=limit,
            scope=scope,
            customer_id=customer_id,
            subscription_id=subscription_id,
            status=status,
        )
        return Page.from_overfetch(rows, limit)

    # -- drafts ----------------------------------------------------------------------------------
    def check_currency(self, customer: Customer, currency: str) -> str:
        currency = normalize_currency(currency)
        if customer.currency and customer.currency != currency:
            # Rule 23: the first invoice fixed the customer's currency.
            raise CurrencyLocked(
                f"customer {customer.id} is billed in {customer.currency}, not {currency}",
                field="currency",
            )
        return currency

    async def price(
        self, customer: Customer, currency: str, lines: Sequence[DraftLine], coupons: Sequence[Coupon]
    ) -> InvoiceTotals:
        """What an invoice of these lines would come to: the same pricing drafts and previews use."""
        price_ids = {line.price_id for line in lines if line.price_id}
        behaviors = await self.repo.price_tax_behaviors(price_ids) if price_ids else {}
        inclusive = {price_id: behavior == "inclusive" for price_id, behavior in behaviors.items()}
        return price_invoice(currency, lines, coupons, await self.taxes(customer), inclusive)

    async def create_draft(
        self,
        customer: Customer,
        currency: str,
        lines: Sequence[DraftLine],
        *,
        at: datetime,
        reason: BillingReason,
        coupons: Sequence[Coupon] = (),
        subscription_id: str | None = None,
        period: tuple[datetime, datetime] | None = None,
        period_key: str | None = None,
        items: Sequence[InvoiceItem] = (),
        description: str | None = None,
        auto_advance: bool = True,
        metadata: dict[str, Any] | None = None,
        collection_method: CollectionMethod = CollectionMethod.CHARGE_AUTOMATICALLY,
        days_until_due: int | None = None,
    ) -> Invoice:
        """`days_until_due` (send_invoice only; validated by the caller through
        `subscriptions.domain.collection_terms`): None takes the setting's default at finalisation."""
        currency = self.check_currency(customer, currency)
        totals = await self.price(customer, currency, lines, coupons)
        invoice = Invoice(
            id=new_id("in"),
            tenant_id=customer.id,
            subscription_id=subscription_id,
            status=InvoiceStatus.DRAFT.value,
            billing_reason=reason.value,
            currency=currency,
            period_start=period[0] if period else None,
            period_end=period[1] if period else None,
            period_key=period_key,
            auto_advance=auto_advance,
            description=description,
            metadata_=metadata or {},
            test_clock_id=customer.test_clock_id,
            collection_method=collection_method.value,
            days_until_due=days_until_due,
            discounts=[coupon_snapshot(c) for c in coupons],
            created_at=at,
            updated_at=at,
            version=1,
        )
        self._apply_totals(invoice, totals)
        self.repo.add_invoice(invoice)
        await self.repo.flush()
        await self.repo.insert_lines(self._line_rows(invoice, totals))
        for item in items:
            item.invoice_id = invoice.id
        await self.repo.flush()
        await self._event("invoice.created", invoice, at)
        return invoice

    @staticmethod
    def _apply_totals(invoice: Invoice, totals: InvoiceTotals) -> None:
        invoice.subtotal = totals.subtotal
        invoice.discount_total = totals.discount_total
        invoice.tax_total = totals.tax_total
        invoice.total = totals.total
        invoice.amount_due = invoice.amount_remaining = max(totals.total, 0)
        invoice.tax_percent = str(totals.tax.percent) if totals.tax.rate_id else None
        invoice.tax_inclusive = totals.tax_inclusive
        invoice.tax_rate_id = totals.tax.rate_id
        invoice.tax_label = totals.tax.label
        invoice.reverse_charge = totals.tax.reverse_charge
        invoice.legal_mentions = list(totals.tax.mentions)

    @staticmethod
    def _line_rows(invoice: Invoice, totals: InvoiceTotals) -> list[dict[str, Any]]:
        """The invoice's lines as `invoice_lines` rows (column names as keys)."""
        return [
            {
                "id": new_id("il"),
                "tenant_id": invoice.tenant_id,
                "invoice_id": invoice.id,
                "position": position,
                "kind": p.line.kind.value,
                "description": p.line.description,
                "price_id": p.line.price_id,
                "quantity": p.line.quantity,
                "unit_amount": str(p.line.unit_amount) if p.line.unit_amount is not None else None,
                "amount": p.line.amount.amount,
                "discount_amount": p.discount,
                "tax_amount": p.tax,
                "net_amount": p.net,
                "tax_behavior": "inclusive" if p.inclusive else "exclusive",
                "period_start": p.line.period_start,
                "period_end": p.line.period_end,
                "proration": p.line.proration,
                "invoice_item_id": p.line.item_id,
            }
            for position, p in enumerate(totals.lines)
        ]

    # -- finalisation ----------------------------------------------------------------------------
    def begin_batch(self) -> None:
        self._deferred = []

    async def end_batch(self) -> None:
        """Finalise the invoices the batch deferred, in order, with numbers taken all at once."""
        deferred, self._deferred = self._deferred or [], None
        taken: dict[str, int] = {}
        for *_, at in deferred:
            taken[self._sequence(at)] = taken.get(self._sequence(at), 0) + 1
        next_of: dict[str, int] = {}
        for name in sorted(taken):  # a fixed order: two batches never wait on each other's rows
            next_of[name] = await self.repo.next_number(name, taken[name]) - taken[name] + 1
        for invoice, customer, at in deferred:
            name = self._sequence(at)
            await self._finalize(invoice, customer, at, next_of[name])
            next_of[name] += 1

    def _sequence(self, at: datetime) -> str:
        return f"invoice:{self.issuer.number_prefix}:{at.year}"

    async def finalize(self, invoice: Invoice, customer: Customer, at: datetime) -> Invoice:
        """Number the invoice, freeze who and to whom, consume customer credit, lock the currency.

        A negative total (more credit than charge) is paid at once and its surplus goes to the customer
        balance: credits are never refunded automatically (rule 12). Inside a billing-run batch this
        happens at the batch's end (`end_batch`), still in its transaction.
        """
        self.check_currency(customer, invoice.currency)
        if self._deferred is not None:
            if customer.currency is None:
                customer.currency = invoice.currency  # later invoices of the batch must see the lock
            self._deferred.append((invoice, customer, at))
            return invoice
        return await self._finalize(invoice, customer, at, await self.repo.next_number(self._sequence(at)))

    async def _finalize(self, invoice: Invoice, customer: Customer, at: datetime, number: int) -> Invoice:
        transition(invoice, InvoiceStatus.OPEN, at)
        invoice.number = f"{self.issuer.number_prefix}-{at.year}-{number:06d}"
        invoice.issuer = self.issuer.as_dict()
        invoice.customer_details = customer_details(customer)
        if customer.currency is None:
            customer.currency = invoice.currency
        self._collection_terms(invoice, at)
        invoice.updated_at = at
        invoice.version += 1

        if invoice.total < 0:
            await self.grant_credit(
                customer,
                Money(-invoice.total, invoice.currency),
                at=at,
                source="invoice",
                source_id=invoice.id,
                description=f"Credit from invoice {invoice.number}",
            )
            invoice.amount_due = invoice.amount_remaining = 0
        elif invoice.total > 0:
            await self._consume_credit(invoice, at)
        await self.repo.flush()
        await self._event("invoice.finalized", invoice, at)
        if invoice.amount_remaining == 0:
            await self._mark_paid(invoice, at)
        return invoice

    def _collection_terms(self, invoice: Invoice, at: datetime) -> None:
        """An automatically charged invoice is due at once; a sent one `days_until_due` days later,
        with the bank details and the structured reference the payer quotes, frozen from now on."""
        if CollectionMethod(invoice.collection_method) is not CollectionMethod.SEND_INVOICE:
            invoice.due_date = at
            return
        if invoice.days_until_due is None:
            invoice.days_until_due = self.collection.days_until_due
        invoice.due_date = at + timedelta(days=invoice.days_until_due)
        assert invoice.number is not None  # numbered just before
        invoice.payment_reference = creditor_reference(invoice.number)
        bank = self.collection.bank
        invoice.payment_instructions = {
            "type": "bank_transfer",
            "account_name": bank.account_name if bank else self.issuer.name,
            "iban": bank.iban if bank else None,
            "bic": bank.bic if bank else None,
            "reference": invoice.payment_reference,
        }

    async def mark_overdue(self, at: datetime, *, test_clock_id: str | None, limit: int = 500) -> int:
        """Raise `invoice.overdue` for every open send_invoice invoice whose due date passed before `at`
        (wall-clock invoices, or one test clock's), once each: `overdue_at` is set in the same
        transaction, and the rows are claimed (SKIP LOCKED) so two sweeps never take the same one.
        The event happens at the due date, the instant the invoice became overdue. Returns how many."""
        invoices = await self.repo.claim_overdue(at, test_clock_id=test_clock_id, limit=limit)
        for invoice in invoices:
            assert invoice.due_date is not None  # the query selects on it
            invoice.overdue_at = invoice.due_date
            invoice.version += 1
            await self.repo.flush()
            await self._event("invoice.overdue", invoice, invoice.due_date)
        return len(invoices)

    async def _consume_credit(self, invoice: Invoice, at: datetime) -> None:
        rows = {g.id: g for g in await self.repo.grants(invoice.tenant_id, currency=invoice.currency)}
        views = [
            GrantView(g.id, Money(g.remaining, g.currency), g.priority, g.expires_at)
            for g in rows.values()
            if g.remaining > 0
        ]
        applied = apply_credits(Money(invoice.total, invoice.currency), views, at)
        for grant_id, amount in applied.consumed:
            rows[grant_id].remaining -= amount.amount
            self.repo.add(
                BalanceTransaction(
                    id=new_id("cbtxn"),
                    tenant_id=invoice.tenant_id,
                    grant_id=grant_id,
                    invoice_id=invoice.id,
                    type="applied_to_invoice",
                    amount=-amount.amount,
                    currency=invoice.currency,
                    created_at=at,
                )
            )
        invoice.credit_applied = applied.credited.amount
        invoice.amount_due = invoice.amount_remaining = applied.charged.amount

    async def _mark_paid(self, invoice: Invoice, at: datetime) -> None:
        transition(invoice, InvoiceStatus.PAID, at)
        invoice.amount_paid += invoice.amount_remaining
        invoice.amount_remaining = 0
        invoice.updated_at = at
        invoice.version += 1
        await self.repo.flush()
        await self._event("invoice.paid", invoice, at)

    async def pay(self, invoice: Invoice, at: datetime) -> Invoice:
        """Record a payment of the whole remaining amount made outside Tiergate (bank transfer, cheque).
        Payment providers come with the payments issue and use the same transition."""
        if InvoiceStatus(invoice.status) is InvoiceStatus.DRAFT:
            raise Conflict("finalise the invoice before paying it", code="invoice_not_finalized")
        await self._mark_paid(invoice, at)
        return invoice

    async def reopen(
        self, invoice: Invoice, amount: int, at: datetime, *, reason: str, **data: Any
    ) -> Invoice:
        """A paid invoice whose money was taken back (`reason`, e.g. `charged_back`): `amount` of what was
        paid is due again, the invoice is `open` (it keeps its number and finalisation time) and
        `invoice.reopened` is raised (audited; dunning collects it)."""
        if amount <= 0 or amount > invoice.amount_paid:
            raise ValidationFailed(
                f"between 1 and {invoice.amount_paid} can be reopened", field="amount", amount=amount
            )
        finalized_at = invoice.finalized_at
        transition(invoice, InvoiceStatus.OPEN, at)
        invoice.finalized_at = finalized_at
        invoice.paid_at = None
        invoice.amount_paid -= amount
        invoice.amount_remaining += amount
        invoice.updated_at = at
        invoice.version += 1
        await self.repo.flush()
        await self._event("invoice.reopened", invoice, at, amount=amount, reason=reason, **data)
        return invoice

    async def void(self, invoice: Invoice, at: datetime) -> Invoice:
        """Void a finalised invoice (it keeps its number). Credit it consumed goes back to the customer."""
        transition(invoice, InvoiceStatus.VOID, at)
        for txn in await self.repo.balance_transactions(invoice.tenant_id, invoice_id=invoice.id):
            if txn.type != "applied_to_invoice":
                continue
            grant = await self.repo.get_grant(txn.grant_id)
            if grant is not None:
                grant.remaining -= txn.amount  # txn.amount is negative: this gives the credit back
                self.repo.add(
                    BalanceTransaction(
                        id=new_id("cbtxn"),
                        tenant_id=invoice.tenant_id,
                        grant_id=grant.id,
                        invoice_id=invoice.id,
                        type="invoice_voided",
                        amount=-txn.amount,
                        currency=invoice.currency,
                        created_at=at,
                    )
                )
        invoice.amount_remaining = 0
        invoice.updated_at = at
        invoice.version += 1
        await self.repo.flush()
        await self._event("invoice.voided", invoice, at)
        return invoice

    async def mark_uncollectible(self, invoice: Invoice, at: datetime) -> Invoice:
        transition(invoice, InvoiceStatus.UNCOLLECTIBLE, at)
        invoice.updated_at = at
        invoice.version += 1
        await self.repo.flush()
        await self._event("invoice.marked_uncollectible", invoice, at)
        return invoice

    async def delete_draft(self, invoice: Invoice, at: datetime) -> None:
        """Drafts are deleted, not voided: they never had a number. Their pending items come back."""
        if InvoiceStatus(invoice.status) is not InvoiceStatus.DRAFT:
            raise Conflict("only a draft can be deleted; void a finalised invoice", code="invoice_not_draft")
        for item in await self._items_of(invoice):
            item.invoice_id = None
        for line in await self.repo.lines(invoice.id):
            await self.repo.session.delete(line)
        await self.repo.flush()
        await self._event("invoice.deleted", invoice, at)
        await self.repo.session.delete(invoice)
        await self.repo.flush()

    async def attach_item(self, item: InvoiceItem, invoice_id: str, *, scope: str | None) -> Invoice:
        """Put a pending item on a draft invoice of the same customer and currency, and re-price it."""
        invoice = await self.get(invoice_id, scope=scope, for_update=True)
        if InvoiceStatus(invoice.status) is not InvoiceStatus.DRAFT:
            raise Conflict("items can only be added to a draft invoice", code="invoice_not_draft")
        if invoice.tenant_id != item.tenant_id or invoice.currency != item.currency:
            raise ValidationFailed("the invoice belongs to another customer or currency", field="invoice")
        rows = list(await self.repo.lines(invoice.id))
        lines = [_line_of(row, invoice.currency) for row in rows] + [item_line(item)]
        for row in rows:
            await self.repo.session.delete(row)
        await self.repo.flush()
        coupons = [
            Coupon(
                id=d["coupon"],
                duration=CouponDuration(d["duration"]),
                percent_off=Decimal(d["percent_off"]) if d.get("percent_off") else None,
                amount_off=Money(d["amount_off"], invoice.currency) if d.get("amount_off") else None,
                duration_in_months=d.get("duration_in_months"),
            )
            for d in invoice.discounts or []
        ]
        customer_row = await self.repo.session.get(Customer, invoice.tenant_id)
        assert customer_row is not None  # the invoice's foreign key guarantees it
        totals = await self.price(customer_row, invoice.currency, lines, coupons)
        self._apply_totals(invoice, totals)
        await self.repo.insert_lines(self._line_rows(invoice, totals))
        item.invoice_id = invoice.id
        invoice.version += 1
        await self.repo.flush()
        return invoice

    async def _items_of(self, invoice: Invoice) -> list[InvoiceItem]:
        ids = [line.invoice_item_id for line in await self.repo.lines(invoice.id) if line.invoice_item_id]
        items = [await self.repo.get_item(i, scope=invoice.tenant_id) for i in ids]
        return [i for i in items if i is not None]

    # -- pending items ---------------------------------------------------------------------------
    async def add_item(
        self,
        customer: Customer,
        *,
        currency: str,
        amount: int,
        description: str,
        at: datetime,
        kind: LineKind = LineKind.ONE_TIME,
        subscription_id: str | None = None,
        price_id: str | None = None,
        quantity: int | None = None,
        unit_amount: Decimal | None = None,
        period: tuple[datetime, datetime] | None = None,
        proration: bool = False,
        discountable: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> InvoiceItem:
        currency = self.check_currency(customer, currency)
        if not -MAX_AMOUNT <= amount <= MAX_AMOUNT:
            raise ValidationFailed(f"amount must be within ±{MAX_AMOUNT}", field="amount")
        item = InvoiceItem(
            id=new_id("ii"),
            tenant_id=customer.id,
            subscription_id=subscription_id,
            kind=kind.value,
            currency=currency,
            amount=amount,
            description=description,
            price_id=price_id,
            quantity=quantity,
            unit_amount=str(unit_amount) if unit_amount is not None else None,
            period_start=period[0] if period else None,
            period_end=period[1] if period else None,
            proration=proration,
            discountable=discountable,
            metadata_=metadata or {},
            created_at=at,
        )
        self.repo.add(item)
        await self.repo.flush()
        await record_event(
            self.repo.session,
            DomainEvent(
                "invoice_item.created",
                "invoice_item",
                item.id,
                at,
                data={"id": item.id, "amount": amount, "currency": currency, "kind": kind.value},
                tenant_id=customer.id,
            ),
        )
        return item

    async def get_item(self, item_id: str, *, scope: str | None) -> InvoiceItem:
        item = await self.repo.get_item(item_id, scope=scope)
        if item is None or item.deleted_at is not None:
            raise InvoiceItemNotFound(f"no invoice item {item_id!r}")
        return item

    async def delete_item(self, item: InvoiceItem, at: datetime) -> InvoiceItem:
        if item.invoice_id is not None:
            raise Conflict("the item is already on an invoice", code="invoice_item_invoiced")
        item.deleted_at = at
        await self.repo.flush()
        return item

    async def list_items(
        self,
        *,
        after: str | None,
        limit: int,
        scope: str | None,
        customer_id: str | None,
        pending: bool | None,
    ) -> Page[InvoiceItem]:
        rows = await self.repo.list_items(
            after=after, limit=limit, scope=scope, customer_id=customer_id, pending=pending
        )
        return Page.from_overfetch(rows, limit)

    async def pending_lines(
        self, customer: Customer, currency: str, *, subscription_id: str | None = None
    ) -> tuple[list[DraftLine], list[InvoiceItem]]:
        items = list(await self.repo.pending_items(customer.id, currency, subscription_id=subscription_id))
        return [item_line(item) for item in items], items

    # -- credit ----------------------------------------------------------------------------------
    async def grant_credit(
        self,
        customer: Customer,
        amount: Money,
        *,
        at: datetime,
        source: str = "manual",
        source_id: str | None = None,
        description: str | None = None,
        priority: int = 0,
        expires_at: datetime | None = None,
        credit_note_id: str | None = None,
    ) -> CreditGrant:
        if amount.amount <= 0:
            raise ValidationFailed("a credit grant must be positive", field="amount")
        if amount.amount > MAX_AMOUNT:
            raise ValidationFailed(f"amount must be at most {MAX_AMOUNT}", field="amount")
        self.check_currency(customer, amount.currency)
        grant = CreditGrant(
            id=new_id("cg"),
            tenant_id=customer.id,
            currency=amount.currency,
            amount=amount.amount,
            remaining=amount.amount,
            priority=priority,
            expires_at=expires_at,
            source=source,
            source_id=source_id,
            description=description,
            created_at=at,
        )
        self.repo.add(grant)
        await self.repo.flush()
        self.repo.add(
            BalanceTransaction(
                id=new_id("cbtxn"),
                tenant_id=customer.id,
                grant_id=grant.id,
                credit_note_id=credit_note_id,
                type=f"{source}_credit",
                amount=amount.amount,
                currency=amount.currency,
                created_at=at,
            )
        )
        await self.repo.flush()
        return grant

    async def balance(self, customer: Customer, at: datetime) -> tuple[dict[str, int], Sequence[CreditGrant]]:
        """Usable credit per currency at `at`, and every grant (expired and used ones too)."""
        grants = await self.repo.grants(customer.id)
        usable: dict[str, int] = {}
        for g in grants:
            if g.remaining > 0 and (g.expires_at is None or at < g.expires_at):
                usable[g.currency] = usable.get(g.currency, 0) + g.remaining
        return usable, grants

    # -- credit notes ----------------------------------------------------------------------------
    async def create_credit_note(
        self,
        invoice: Invoice,
        customer: Customer,
        *,
        at: datetime,
        amount: int | None = None,
        lines: Sequence[tuple[str, int]] = (),
        reason: str | None = None,
        memo: str | None = None,
        out_of_band: bool = False,
    ) -> CreditNote:
        """Credit all or part of a finalised invoice, by total (`amount`, tax included) or by line.

        On an open invoice the credit first reduces what is still due (the invoice is paid when that
        reaches zero); on a paid invoice, or beyond what is due, it goes to the customer balance, unless
        `out_of_band` records a refund made outside Tiergate.
        """
        status = InvoiceStatus(invoice.status)
        if status not in (InvoiceStatus.OPEN, InvoiceStatus.PAID):
            raise Conflict(
                f"a credit note needs an open or paid invoice, not a {status.value} one",
                code="invoice_not_creditable",
            )
        if (amount is None) == (not lines):
            raise ValidationFailed("give either an amount or lines", field="amount")
        already = await self.repo.credited_total(invoice.id)
        creditable = invoice.total - already
        subtotal, tax, total, detail = await self._credit_breakdown(invoice, amount, lines)
        if total <= 0:
            raise ValidationFailed("a credit note must credit a positive amount", field="amount")
        if total > creditable:
            raise Conflict(
                f"at most {creditable} can still be credited on this invoice",
                code="credit_exceeds_invoice",
                creditable=creditable,
            )
        to_invoice = min(total, invoice.amount_remaining) if status is InvoiceStatus.OPEN else 0
        rest = total - to_invoice
        note = CreditNote(
            id=new_id("cn"),
            tenant_id=invoice.tenant_id,
            invoice_id=invoice.id,
            number=f"{self.issuer.number_prefix}-CN-{at.year}-"
            + f"{await self.repo.next_number(f'credit_note:{self.issuer.number_prefix}:{at.year}'):06d}",
            status="issued",
            currency=invoice.currency,
            subtotal=subtotal,
            tax_amount=tax,
            total=total,
            credit_to_invoice=to_invoice,
            credit_to_balance=0 if out_of_band else rest,
            out_of_band=rest if out_of_band else 0,
            reason=reason,
            memo=memo,
            lines=detail,
            created_at=at,
        )
        self.repo.add(note)
        await self.repo.flush()
        if note.credit_to_balance:
            await self.grant_credit(
                customer,
                Money(note.credit_to_balance, invoice.currency),
                at=at,
                source="credit_note",
                source_id=note.id,
                description=f"Credit note {note.number}",
                credit_note_id=note.id,
            )
        if to_invoice:
            invoice.amount_remaining -= to_invoice
            invoice.updated_at = at
            invoice.version += 1
        await record_event(
            self.repo.session,
            DomainEvent(
                "credit_note.created",
                "credit_note",
                note.id,
                at,
                data=credit_note_snapshot(note),
                tenant_id=note.tenant_id,
            ),
        )
        if to_invoice and invoice.amount_remaining == 0:
            await self._mark_paid(invoice, at)
        return note

    async def _credit_breakdown(
        self, invoice: Invoice, amount: int | None, lines: Sequence[tuple[str, int]]
    ) -> tuple[int, int, int, list[dict[str, Any]]]:
        """(subtotal, tax, total, per-line detail) of a credit. Tax is credited at the invoice's rate, one
        rounding per credited line, inside or on top of the credited amount as the line was charged."""
        percent = Decimal(invoice.tax_percent or 0)
        if amount is not None:
            if amount <= 0 or amount > MAX_AMOUNT:
                raise ValidationFailed("amount must be positive", field="amount")
            # `amount` is what the customer gets back, tax included: the tax inside it is credited too.
            inside = line_tax(amount, percent, inclusive=True)
            if invoice.tax_inclusive:
                return amount, inside, amount, []
            return amount - inside, inside, amount, []
        by_id = {line.id: line for line in await self.repo.lines(invoice.id)}
        subtotal = tax = total = 0
        detail: list[dict[str, Any]] = []
        for line_id, credited in lines:
            line = by_id.get(line_id)
            if line is None:
                raise ValidationFailed(f"invoice has no line {line_id!r}", field="lines")
            if credited <= 0 or credited > line.net_amount:
                raise ValidationFailed(
                    f"line {line_id} can be credited between 1 and {line.net_amount}", field="lines"
                )
            inclusive = line.tax_behavior == "inclusive"
            line_tax_amount = line_tax(credited, percent, inclusive=inclusive)
            subtotal += credited
            tax += line_tax_amount
            total += credited if inclusive else credited + line_tax_amount
            detail.append({"invoice_line": line_id, "amount": credited, "tax_amount": line_tax_amount})
        return subtotal, tax, total, detail

    async def get_credit_note(self, credit_note_id: str, *, scope: str | None) -> CreditNote:
        note = await self.repo.get_credit_note(credit_note_id, scope=scope)
        if note is None:
            raise CreditNoteNotFound(f"no credit note {credit_note_id!r}")
        return note

    async def list_credit_notes(
        self, *, after: str | None, limit: int, scope: str | None, invoice_id: str | None
    ) -> Page[CreditNote]:
        rows = await self.repo.list_credit_notes(after=after, limit=limit, scope=scope, invoice_id=invoice_id)
        return Page.from_overfetch(rows, limit)


def item_line(item: InvoiceItem) -> DraftLine:
    return DraftLine(
        kind=LineKind(item.kind),
        description=item.description,
        amount=Money(item.amount, item.currency),
        quantity=item.quantity,
        unit_amount=Decimal(item.unit_amount) if item.unit_amount is not None else None,
        price_id=item.price_id,
        period_start=item.period_start,
        period_end=item.period_end,
        proration=item.proration,
        discountable=item.discountable,
        item_id=item.id,
    )


def _line_of(row: InvoiceLine, currency: str) -> DraftLine:
    return DraftLine(
        kind=LineKind(row.kind),
        description=row.description,
        amount=Money(row.amount, currency),
        quantity=row.quantity,
        unit_amount=Decimal(row.unit_amount) if row.unit_amount is not None else None,
        price_id=row.price_id,
        period_start=row.period_start,
        period_end=row.period_end,
        proration=row.proration,
        item_id=row.invoice_item_id,
    )


def coupon_snapshot(coupon: Coupon) -> dict[str, Any]:
    return {
        "coupon": coupon.id,
        "duration": coupon.duration.value,
        "duration_in_months": coupon.duration_in_months,
        "percent_off": str(coupon.percent_off) if coupon.percent_off is not None else None,
        "amount_off": coupon.amount_off.amount if coupon.amount_off is not None else None,
    }


def invoice_snapshot(invoice: Invoice) -> dict[str, Any]:
    """The invoice as events carry it."""
    return {
        "id": invoice.id,
        "customer": invoice.tenant_id,
        "subscription": invoice.subscription_id,
        "status": invoice.status,
        "number": invoice.number,
        "billing_reason": invoice.billing_reason,
        "currency": invoice.currency,
        "total": invoice.total,
        "amount_due": invoice.amount_due,
        "amount_remaining": invoice.amount_remaining,
        "period_start": isoformat_or_none(invoice.period_start),
        "period_end": isoformat_or_none(invoice.period_end),
        "collection_method": invoice.collection_method,
        "due_date": isoformat_or_none(invoice.due_date),
        "payment_reference": invoice.payment_reference,
        "version": invoice.version,
    }


def credit_note_snapshot(note: CreditNote) -> dict[str, Any]:
    return {
        "id": note.id,
        "invoice": note.invoice_id,
        "number": note.number,
        "total": note.total,
        "currency": note.currency,
        "credit_to_invoice": note.credit_to_invoice,
        "credit_to_balance": note.credit_to_balance,
        "out_of_band": note.out_of_band,
    }
