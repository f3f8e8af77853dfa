"""Request and response types of the billing API: invoices, invoice items, credit notes, customer
credit, usage, discounts, previews. Amounts are integer minor units of `currency`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from gateway.billing.domain import InvoiceTotals, PricedLine
from gateway.billing.models import CreditGrant as CreditGrantRow
from gateway.billing.models import CreditNote as CreditNoteRow
from gateway.billing.models import Discount as DiscountRow
from gateway.billing.models import Invoice as InvoiceRow
from gateway.billing.models import InvoiceItem as InvoiceItemRow
from gateway.billing.models import InvoiceLine as InvoiceLineRow
from gateway.billing.models import PeriodUsage
from gateway.kernel.money import whole_minor_units
from gateway.web.schemas import Metadata
from gateway.web.timestamps import AwareTimestamp

Ref = Annotated[str, Meta(min_length=1, max_length=200)]
Currency = Annotated[str, Meta(min_length=3, max_length=3, pattern=r"^[A-Za-z]{3}$")]
Amount = Annotated[int, Meta(ge=-100_000_000_000, le=100_000_000_000)]
PositiveAmount = Annotated[int, Meta(ge=1, le=100_000_000_000)]
Description = Annotated[str, Meta(min_length=1, max_length=500)]
Code = Annotated[str, Meta(min_length=1, max_length=100)]
ProrationBehaviorIn = Literal["create_prorations", "always_invoice", "none"]

# A line's amounts, named for what they contain (documented once, used by invoice and preview lines).
LineAmount = Annotated[
    int,
    Meta(description="Before discounts, as priced; contains the tax when tax_behavior is inclusive"),
]
LineDiscount = Annotated[int, Meta(description="Taken off by coupons (positive)")]
LineTax = Annotated[
    int, Meta(description="Tax of the line: inside `amount` if inclusive, added on top if exclusive")
]
LineTotal = Annotated[
    int, Meta(description="What the customer pays for the line: after discounts, tax included")
]
LineExcludingTax = Annotated[
    int, Meta(description="After discounts, without tax: the line's tax base (total − tax_amount)")
]
LineTaxBehavior = Annotated[
    Literal["inclusive", "exclusive"],
    Meta(description="Whether `amount` contains the tax: the price's tax_behavior, else the tax rate's"),
]
UnitAmount = Annotated[
    int | None, Meta(description="Per-unit amount in integer minor units; null when it holds a fraction")
]
UnitAmountDecimal = Annotated[
    str | None, Meta(description='The exact per-unit amount in minor units as a decimal string ("0.06")')
]


# -- requests ---------------------------------------------------------------------------------------
class InvoiceCreate(Struct, forbid_unknown_fields=True):
    """A one-off invoice of the customer's pending items (one-time charges, prorations)."""

    customer: Ref
    currency: Currency | None = None
    description: Annotated[str, Meta(max_length=500)] | None = None
    # Finalise at once (number, credit applied) instead of leaving a draft to add items to.
    auto_advance: bool = False
    metadata: Metadata | None = None
    # How this invoice is paid (default charge_automatically); send_invoice: due `days_until_due` days
    # after finalisation (default: the setting), with bank-transfer instructions and an RF reference.
    collection_method: Literal["charge_automatically", "send_invoice"] | None = None
    days_until_due: Annotated[int, Meta(ge=0, le=365)] | None = None


class InvoiceItemCreate(Struct, forbid_unknown_fields=True):
    """A one-time charge (or credit, with a negative amount): `amount`, or a `price` × `quantity`."""

    customer: Ref
    description: Description | None = None
    amount: Amount | None = None
    currency: Currency | None = None
    price: Ref | None = None
    quantity: Annotated[int, Meta(ge=1, le=1_000_000)] = 1
    subscription: Ref | None = None
    # A draft invoice to put the item on now; otherwise it waits for the customer's next invoice.
    invoice: Ref | None = None
    discountable: bool = True
    metadata: Metadata | None = None


class CreditNoteLineIn(Struct, forbid_unknown_fields=True):
    invoice_line: Ref
    amount: PositiveAmount


class CreditNoteCreate(Struct, forbid_unknown_fields=True):
    """Credit `amount` (tax included) or specific `lines` (net amounts) of a finalised invoice."""

    invoice: Ref
    amount: PositiveAmount | None = None
    lines: Annotated[list[CreditNoteLineIn], Meta(max_length=100)] = msgspec.field(default_factory=list)
    reason: Literal["duplicate", "fraudulent", "order_change", "product_unsatisfactory"] | None = None
    memo: Annotated[str, Meta(max_length=500)] | None = None
    # The money went back outside Tiergate (a bank refund): recorded, not added to the balance.
    out_of_band: bool = False


class CreditGrantCreate(Struct, forbid_unknown_fields=True):
    amount: PositiveAmount
    currency: Currency
    description: Annotated[str, Meta(max_length=500)] | None = None
    priority: Annotated[int, Meta(ge=0, le=100)] = 0
    expires_at: AwareTimestamp | None = None


class UsageReport(Struct, forbid_unknown_fields=True):
    """A metered price's quantity for the subscription's current period: add to it, or set it."""

    quantity: Annotated[int, Meta(ge=0, le=1_000_000_000_000)]
    price: Ref | None = None
    action: Literal["increment", "set"] = "increment"


class DiscountCreate(Struct, forbid_unknown_fields=True):
    coupon: Code | None = None
    promotion_code: Code | None = None


class ChangePreviewRequest(Struct, forbid_unknown_fields=True):
    """What a plan, seat or add-on change would bill, without making it: the same body as the change."""

    price: Ref | None = None
    quantity: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None
    timing: Literal["now", "period_end"] | None = None
    proration_behavior: ProrationBehaviorIn | None = None
    add_addon: Ref | None = None
    addon_quantity: Annotated[int, Meta(ge=1, le=1_000_000)] = 1
    remove_addon: Ref | None = None


# -- responses --------------------------------------------------------------------------------------
class InvoiceLine(Struct):
    id: str
    object: Literal["line_item"]
    kind: str
    description: str
    price: str | None
    quantity: int | None
    unit_amount: UnitAmount
    unit_amount_decimal: UnitAmountDecimal
    amount: LineAmount
    discount_amount: LineDiscount
    tax_amount: LineTax
    total: LineTotal
    amount_excluding_tax: LineExcludingTax
    tax_behavior: LineTaxBehavior
    period_start: datetime | None
    period_end: datetime | None
    proration: bool
    invoice_item: str | None

    @classmethod
    def of(cls, row: InvoiceLineRow) -> InvoiceLine:
        inclusive = row.tax_behavior == "inclusive"
        return cls(
            row.id,
            "line_item",
            row.kind,
            row.description,
            row.price_id,
            row.quantity,
            whole_minor_units(row.unit_amount),
            row.unit_amount,
            row.amount,
            row.discount_amount,
            row.tax_amount,
            row.net_amount if inclusive else row.net_amount + row.tax_amount,
            row.net_amount - row.tax_amount if inclusive else row.net_amount,
            "inclusive" if inclusive else "exclusive",
            row.period_start,
            row.period_end,
            row.proration,
            row.invoice_item_id,
        )


class Tax(Struct):
    rate: str | None
    label: str | None
    percent: str | None
    inclusive: bool
    reverse_charge: bool


class PaymentInstructions(Struct):
    """How to pay a send_invoice invoice by bank transfer; `reference` is its ISO 11649 creditor
    reference, for the payer to quote."""

    type: Literal["bank_transfer"]
    account_name: str
    iban: str | None
    bic: str | None
    reference: str

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> PaymentInstructions | None:
        if not data:
            return None
        return cls(
            "bank_transfer",
            str(data.get("account_name") or ""),
            data.get("iban"),
            data.get("bic"),
            str(data["reference"]),
        )


class Invoice(Struct):
    id: str
    object: Literal["invoice"]
    customer: str
    subscription: str | None
    status: str
    number: str | None
    billing_reason: str
    currency: str
    period_start: datetime | None
    period_end: datetime | None
    lines: list[InvoiceLine]
    subtotal: int
    discount_total: int
    tax_total: int
    total: int
    credit_applied: int
    amount_due: int
    amount_paid: int
    amount_remaining: int
    tax: Tax
    legal_mentions: list[str]
    discounts: list[dict[str, Any]]
    issuer: dict[str, Any]
    customer_details: dict[str, Any]
    description: str | None
    auto_advance: bool
    test_clock: str | None
    metadata: dict[str, Any]
    created_at: datetime
    finalized_at: datetime | None
    due_date: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    marked_uncollectible_at: datetime | None
    version: int
    collection_method: Annotated[
        str, Meta(description="charge_automatically (due at finalisation) or send_invoice")
    ] = "charge_automatically"
    days_until_due: int | None = None
    payment_reference: Annotated[
        str | None, Meta(description="send_invoice: the ISO 11649 creditor reference (RF...) to quote")
    ] = None
    payment_instructions: PaymentInstructions | None = None
    overdue_at: Annotated[
        datetime | None, Meta(description="When the unpaid send_invoice invoice became overdue")
    ] = None

    @classmethod
    def of(cls, row: InvoiceRow, lines: Sequence[InvoiceLineRow]) -> Invoice:
        return cls(
            id=row.id,
            object="invoice",
            customer=row.tenant_id,
            subscription=row.subscription_id,
            status=row.status,
            number=row.number,
            billing_reason=row.billing_reason,
            currency=row.currency,
            period_start=row.period_start,
            period_end=row.period_end,
            lines=[InvoiceLine.of(line) for line in lines],
            subtotal=row.subtotal,
            discount_total=row.discount_total,
            tax_total=row.tax_total,
            total=row.total,
            credit_applied=row.credit_applied,
            amount_due=row.amount_due,
            amount_paid=row.amount_paid,
            amount_remaining=row.amount_remaining,
            tax=Tax(row.tax_rate_id, row.tax_label, row.tax_percent, row.tax_inclusive, row.reverse_charge),
            legal_mentions=list(row.legal_mentions or []),
            discounts=list(row.discounts or []),
            issuer=dict(row.issuer or {}),
            customer_details=dict(row.customer_details or {}),
            description=row.description,
            auto_advance=row.auto_advance,
            test_clock=row.test_clock_id,
            metadata=dict(row.metadata_ or {}),
            created_at=row.created_at,
            finalized_at=row.finalized_at,
            due_date=row.due_date,
            paid_at=row.paid_at,
            voided_at=row.voided_at,
            marked_uncollectible_at=row.marked_uncollectible_at,
            version=row.version,
            collection_method=row.collection_method or "charge_automatically",
            days_until_due=row.days_until_due,
            payment_reference=row.payment_reference,
            payment_instructions=PaymentInstructions.of(row.payment_instructions),
            overdue_at=row.overdue_at,
        )


class InvoiceList(Struct):
    data: list[Invoice]
    has_more: bool
    next_cursor: str | None
    object: Literal["list"] = "list"


class InvoiceItem(Struct):
    id: str
    object: Literal["invoice_item"]
    customer: str
    subscription: str | None
    invoice: str | None
    kind: str
    currency: str
    amount: int
    description: str
    price: str | None
    quantity: int | None
    unit_amount: UnitAmount
    unit_amount_decimal: UnitAmountDecimal
    period_start: datetime | None
    period_end: datetime | None
    proration: bool
    discountable: bool
    metadata: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, row: InvoiceItemRow) -> InvoiceItem:
        return cls(
            row.id,
            "invoice_item",
            row.tenant_id,
            row.subscription_id,
            row.invoice_id,
            row.kind,
            row.currency,
            row.amount,
            row.description,
            row.price_id,
            row.quantity,
            whole_minor_units(row.unit_amount),
            row.unit_amount,
            row.period_start,
            row.period_end,
            row.proration,
            row.discountable,
            dict(row.metadata_ or {}),
            row.created_at,
        )


class InvoiceItemList(Struct):
    data: list[InvoiceItem]
    has_more: bool
    next_cursor: str | None
    object: Literal["list"] = "list"


class CreditNote(Struct):
    id: str
    object: Literal["credit_note"]
    customer: str
    invoice: str
    number: str
    status: str
    currency: str
    subtotal: int
    tax_amount: int
    total: int
    credit_to_invoice: int
    credit_to_balance: int
    out_of_band: int
    reason: str | None
    memo: str | None
    lines: list[dict[str, Any]]
    created_at: datetime

    @classmethod
    def of(cls, row: CreditNoteRow) -> CreditNote:
        return cls(
            row.id,
            "credit_note",
            row.tenant_id,
            row.invoice_id,
            row.number,
            row.status,
            row.currency,
            row.subtotal,
            row.tax_amount,
            row.total,
            row.credit_to_invoice,
            row.credit_to_balance,
            row.out_of_band,
            row.reason,
            row.memo,
            list(row.lines or []),
            row.created_at,
        )


class CreditNoteList(Struct):
    data: list[CreditNote]
    has_more: bool
    next_cursor: str | None
    object: Literal["list"] = "list"


class CreditGrant(Struct):
    id: str
    object: Literal["credit_grant"]
    customer: str
    currency: str
    amount: int
    remaining: int
    priority: int
    expires_at: datetime | None
    source: str
    source_id: str | None
    description: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: CreditGrantRow) -> CreditGrant:
        return cls(
            row.id,
            "credit_grant",
            row.tenant_id,
            row.currency,
            row.amount,
            row.remaining,
            row.priority,
            row.expires_at,
            row.source,
            row.source_id,
            row.description,
            row.created_at,
        )


class Balance(Struct):
    object: Literal["customer_balance"]
    customer: str
    # Usable credit per currency now (unexpired grants' remaining amounts).
    available: dict[str, int]
    grants: list[CreditGrant]


class Usage(Struct):
    object: Literal["period_usage"]
    subscription: str
    price: str
    period_start: datetime
    period_end: datetime
    quantity: int

    @classmethod
    def of(cls, row: PeriodUsage) -> Usage:
        return cls(
            "period_usage",
            row.subscription_id,
            row.price_id,
            row.period_start,
            row.period_end,
            int(row.quantity),
        )


class UsageList(Struct):
    data: list[Usage]
    object: Literal["list"] = "list"


class Discount(Struct):
    id: str
    object: Literal["discount"]
    customer: str
    subscription: str | None
    coupon: str
    promotion_code: str | None
    duration: str
    duration_in_months: int | None
    percent_off: str | None
    amount_off: int | None
    currency: str | None
    start: datetime
    ended_at: datetime | None

    @classmethod
    def of(cls, row: DiscountRow) -> Discount:
        return cls(
            row.id,
            "discount",
            row.tenant_id,
            row.subscription_id,
            row.coupon_id,
            row.promotion_code_id,
            row.duration,
            row.duration_in_months,
            row.percent_off,
            row.amount_off,
            row.currency,
            row.start,
            row.ended_at,
        )


class DiscountList(Struct):
    data: list[Discount]
    object: Literal["list"] = "list"


class PreviewLine(Struct):
    kind: str
    description: str
    amount: LineAmount
    discount_amount: LineDiscount
    tax_amount: LineTax
    total: LineTotal
    amount_excluding_tax: LineExcludingTax
    tax_behavior: LineTaxBehavior
    quantity: int | None
    price: str | None
    period_start: datetime | None
    period_end: datetime | None
    proration: bool

    @classmethod
    def of(cls, p: PricedLine) -> PreviewLine:
        return cls(
            p.line.kind.value,
            p.line.description,
            p.line.amount.amount,
            p.discount,
            p.tax,
            p.total,
            p.amount_excluding_tax,
            "inclusive" if p.inclusive else "exclusive",
            p.line.quantity,
            p.line.price_id,
            p.line.period_start,
            p.line.period_end,
            p.line.proration,
        )


class InvoicePreview(Struct):
    """An invoice that does not exist (yet): what the next renewal, or a change, would bill."""

    object: Literal["invoice_preview"]
    customer: str
    subscription: str
    currency: str
    period_start: datetime | None
    period_end: datetime | None
    lines: list[PreviewLine]
    subtotal: int
    discount_total: int
    tax_total: int
    total: int

    @classmethod
    def of(
        cls,
        customer: str,
        subscription: str,
        totals: InvoiceTotals,
        period: tuple[datetime, datetime] | None,
    ) -> InvoicePreview:
        return cls(
            "invoice_preview",
            customer,
            subscription,
            totals.currency,
            period[0] if period else None,
            period[1] if period else None,
            [PreviewLine.of(p) for p in totals.lines],
            totals.subtotal,
            totals.discount_total,
            totals.tax_total,
            totals.total,
        )


class ChangePreview(Struct):
    """Exactly what the change would create now: pending proration items, or an invoice."""

    object: Literal["change_preview"]
    subscription: str
    # "pending": items for the next invoice; "invoice": invoiced at once; "scheduled": nothing billed now
    # (the change waits for the period end); "none": nothing billed.
    outcome: Literal["pending", "invoice", "scheduled", "none"]
    pending_items: list[InvoiceItem]
    invoice: Invoice | None
    effective_at: datetime | None
