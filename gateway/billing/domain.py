"""Invoice rules without I/O: statuses and their transition table, and how an invoice's lines are priced
(discounts, then tax, then totals).

Invariants:
- An invoice's status changes only through `transition()`; `paid` and `void` are terminal.
- A draft has no number; the number is assigned once, at finalisation, from a gapless sequence.
- Every line is rounded once (its discount and its tax each rounded once); totals are sums of rounded
  lines, never rounded again (billing-rules rule 20).
- Percent coupons apply before tax; an amount-off coupon never takes a line or the invoice below zero
  (rule 19).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from gateway.kernel.errors import InvalidTransition
from gateway.kernel.money import Money, tax_amount

from .discounts import Coupon, apply_discount


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"  # finalised: numbered, immutable, awaiting payment
    PAID = "paid"
    VOID = "void"  # cancelled after finalisation; keeps its number (no gaps)
    UNCOLLECTIBLE = "uncollectible"  # written off, may still be paid or voided later


INVOICE_TRANSITIONS: dict[InvoiceStatus, frozenset[InvoiceStatus]] = {
    InvoiceStatus.DRAFT: frozenset({InvoiceStatus.OPEN}),
    InvoiceStatus.OPEN: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE}),
    InvoiceStatus.UNCOLLECTIBLE: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID}),
    # A paid invoice reopens when the money is taken back (a SEPA chargeback, a lost dispute): it is due
    # again, and dunning collects it (InvoiceService.reopen).
    InvoiceStatus.PAID: frozenset({InvoiceStatus.OPEN}),
    InvoiceStatus.VOID: frozenset(),
}

INVOICE_STAMPS: dict[InvoiceStatus, str | None] = {
    InvoiceStatus.DRAFT: None,
    InvoiceStatus.OPEN: "finalized_at",
    InvoiceStatus.PAID: "paid_at",
    InvoiceStatus.VOID: "voided_at",
    InvoiceStatus.UNCOLLECTIBLE: "marked_uncollectible_at",
}


class HasStatus(Protocol):
    status: str


def transition(invoice: HasStatus, to: InvoiceStatus, at: datetime) -> InvoiceStatus:
    current = InvoiceStatus(invoice.status)
    if to not in INVOICE_TRANSITIONS[current]:
        raise InvalidTransition(
            f"a {current.value} invoice cannot become {to.value}",
            current_status=current.value,
            requested_status=to.value,
        )
    stamp = INVOICE_STAMPS[to]
    if stamp is not None:
        setattr(invoice, stamp, at)
    invoice.status = to.value
    return current


class BillingReason(StrEnum):
    SUBSCRIPTION_CREATE = "subscription_create"  # the first paid period (signup or trial end)
    SUBSCRIPTION_CYCLE = "subscription_cycle"  # a renewal
    SUBSCRIPTION_UPDATE = "subscription_update"  # a mid-period change invoiced now (always_invoice)
    SUBSCRIPTION_END = "subscription_end"  # usage of the last period, billed in arrears
    USAGE_ADJUSTMENT = "usage_adjustment"  # late usage of an ended subscription's invoiced periods
    MANUAL = "manual"  # an invoice made through the API from pending items


class LineKind(StrEnum):
    SUBSCRIPTION = "subscription"  # a period of the base price, in advance
    ADDON = "addon"  # a period of an add-on price, in advance
    USAGE = "usage"  # a metered price over a finished period, in arrears
    PRORATION = "proration"  # a mid-period change (credit or charge)
    ONE_TIME = "one_time"  # a charge added through the API


class CreditNoteReason(StrEnum):
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    ORDER_CHANGE = "order_change"
    PRODUCT_UNSATISFACTORY = "product_unsatisfactory"


@dataclass(frozen=True, slots=True)
class DraftLine:
    """A line before pricing. `amount` is what the line charges before discounts (negative for credits);
    with a tax-inclusive rate it already contains the tax."""

    kind: LineKind
    description: str
    amount: Money
    quantity: int | None = None
    unit_amount: Decimal | None = None
    price_id: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    proration: bool = False
    discountable: bool = True
    item_id: str | None = None  # the pending invoice item this line bills, if any


@dataclass(frozen=True, slots=True)
class TaxTreatment:
    """The tax an invoice applies to its taxable lines (one rate per invoice: one customer, one place)."""

    percent: Decimal = Decimal(0)
    inclusive: bool = False
    rate_id: str | None = None
    label: str | None = None
    reverse_charge: bool = False
    mentions: tuple[str, ...] = ()

    @classmethod
    def none(cls, *mentions: str) -> TaxTreatment:
        return cls(mentions=tuple(mentions))


@dataclass(frozen=True, slots=True)
class PricedLine:
    line: DraftLine
    discount: int  # minor units taken off by coupons (positive)
    tax: int  # minor units of tax (inside `net` when the line is tax-inclusive)
    net: int  # amount − discount; still contains the tax when the line is tax-inclusive
    inclusive: bool = False  # the line's amount contains its tax (price or rate tax behavior)

    @property
    def total(self) -> int:
        """What the customer pays for the line, tax included."""
        return self.net if self.inclusive else self.net + self.tax

    @property
    def amount_excluding_tax(self) -> int:
        """After discounts, without tax: the line's tax base."""
        return self.net - self.tax if self.inclusive else self.net


@dataclass(frozen=True, slots=True)
class InvoiceTotals:
    currency: str
    lines: tuple[PricedLine, ...]
    subtotal: int  # sum of line amounts before discounts
    discount_total: int
    tax_total: int
    total: int  # subtotal − discounts + the tax of exclusive lines
    tax: TaxTreatment = field(default_factory=TaxTreatment)

    @property
    def tax_inclusive(self) -> bool:
        """Every line's amount contains its tax (the rate's behavior when there are no lines)."""
        return all(p.inclusive for p in self.lines) if self.lines else self.tax.inclusive


def line_tax(net: int, percent: Decimal, *, inclusive: bool) -> int:
    """Tax of one line (inside `net` for inclusive rates), rounded once: `kernel.money.tax_amount`."""
    return tax_amount(net, percent, inclusive=inclusive)


def price_invoice(
    currency: str,
    lines: Sequence[DraftLine],
    coupons: Sequence[Coupon],
    tax: TaxTreatment,
    inclusive_prices: Mapping[str, bool] | None = None,
) -> InvoiceTotals:
    """Discounts (each coupon in turn over what the previous left), then tax per line, then sums.

    A line's amount contains its tax when its price says so (`inclusive_prices`: price id -> the price's
    tax_behavior is inclusive); a line whose price says nothing, or that has no price, follows the rate."""
    behaviors = inclusive_prices or {}

    def inclusive(line: DraftLine) -> bool:
        return behaviors.get(line.price_id, tax.inclusive) if line.price_id else tax.inclusive

    nets = [line.amount.amount for line in lines]
    discounts = [0] * len(lines)
    discountable = [i for i, line in enumerate(lines) if line.discountable]
    for coupon in coupons:
        if not discountable:
            break
        applied = apply_discount(coupon, [Money(nets[i], currency) for i in discountable])
        for i, result in zip(discountable, applied, strict=True):
            discounts[i] += result.discount.amount
            nets[i] = result.net.amount
    priced = tuple(
        PricedLine(
            line=line,
            discount=discounts[i],
            tax=line_tax(nets[i], tax.percent, inclusive=inclusive(line)),
            net=nets[i],
            inclusive=inclusive(line),
        )
        for i, line in enumerate(lines)
    )
    subtotal = sum(line.amount.amount for line in lines)
    discount_total = sum(discounts)
    tax_total = sum(p.tax for p in priced)
    total = subtotal - discount_total + sum(p.tax for p in priced if not p.inclusive)
    return InvoiceTotals(currency, priced, subtotal, discount_total, tax_total, total, tax)
