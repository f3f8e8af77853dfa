"""From a stored invoice to the document `render.py` prints. A finalised invoice prints the issuer and
customer frozen on it at finalisation; a draft prints them as they are now."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from stdnum.iban import format as iban_format

from gateway.billing.models import CreditNote, Invoice, InvoiceLine
from gateway.billing.reference import formatted
from gateway.billing.render import (
    DocumentLine,
    InvoiceDocument,
    PartyDetails,
    TaxSummary,
    customer_details,
)
from gateway.billing.service import Issuer
from gateway.billing.service import customer_details as customer_snapshot
from gateway.customers.models import Customer

_ADDRESS_FIELDS = ("address_line1", "address_line2", "address_city", "address_postal_code", "address_region")


def _issuer_party(data: dict[str, Any]) -> PartyDetails:
    address = tuple(line.strip() for line in str(data.get("address") or "").splitlines() if line.strip())
    vat = data.get("vat_id")
    return PartyDetails(
        name=str(data.get("name") or ""),
        address=address,
        email=data.get("email"),
        tax_ids=(f"VAT {vat}",) if vat else (),
    )


def _customer_party(data: dict[str, Any]) -> PartyDetails:
    view = SimpleNamespace(
        name=data.get("name") or "",
        email=data.get("email"),
        country=data.get("country"),
        tax_ids=data.get("tax_ids") or [],
        **{field: data.get(field) for field in _ADDRESS_FIELDS},
    )
    return customer_details(view)


def document_of(
    invoice: Invoice, lines: Sequence[InvoiceLine], customer: Customer, issuer: Issuer
) -> InvoiceDocument:
    finalised = invoice.finalized_at is not None
    issuer_data = invoice.issuer if finalised and invoice.issuer else issuer.as_dict()
    customer_data = (
        invoice.customer_details if finalised and invoice.customer_details else customer_snapshot(customer)
    )
    percent = invoice.tax_percent
    doc_lines = [
        DocumentLine(
            description=line.description,
            amount=line.amount,
            quantity=line.quantity if line.quantity is not None else 1,
            unit_amount=line.unit_amount,
            period_start=line.period_start.date() if line.period_start else None,
            period_end=line.period_end.date() if line.period_end else None,
            discount=line.discount_amount,
            tax_label=invoice.tax_label,
            tax_percent=percent,
            tax_amount=line.tax_amount,
        )
        for line in lines
    ]
    breakdown: tuple[TaxSummary, ...] = ()
    if percent is not None:
        breakdown = (
            TaxSummary(
                label=invoice.tax_label or "Tax",
                percent=percent,
                # The tax base: each line after discounts, without its tax (inside it when inclusive).
                taxable_amount=sum(
                    line.net_amount - (line.tax_amount if line.tax_behavior == "inclusive" else 0)
                    for line in lines
                ),
                tax_amount=invoice.tax_total,
                inclusive=invoice.tax_inclusive,
            ),
        )
    return InvoiceDocument(
        issuer=_issuer_party(issuer_data),
        customer=_customer_party(customer_data),
        number=invoice.number,
        status=invoice.status,
        currency=invoice.currency,
        lines=doc_lines,
        subtotal=invoice.subtotal,
        total=invoice.total,
        amount_due=invoice.amount_remaining if finalised else invoice.amount_due,
        discount_total=invoice.discount_total,
        tax_total=invoice.tax_total,
        credit_applied=invoice.credit_applied,
        amount_paid=invoice.amount_paid,
        issued_at=invoice.finalized_at.date() if invoice.finalized_at else None,
        due_at=invoice.due_date.date() if invoice.due_date else None,
        period_start=invoice.period_start.date() if invoice.period_start else None,
        period_end=invoice.period_end.date() if invoice.period_end else None,
        tax_breakdown=breakdown,
        legal_mentions=tuple(invoice.legal_mentions or ()),
        notes=invoice.description,
        invoice_id=invoice.id,
        payment_rows=payment_rows(invoice),
        # Printed in the customer's language as it is now (a finalised invoice keeps its amounts and
        # parties, but a reader who switched to Dutch gets the Dutch words).
        locale=customer.preferred_locale,
    )


def payment_rows(invoice: Invoice) -> tuple[tuple[str, str], ...]:
    """A send_invoice invoice's transfer instructions as printed: the reference in groups of four."""
    data = invoice.payment_instructions
    if not data or not data.get("reference"):
        return ()
    rows = [
        ("Account name", data.get("account_name")),
        ("IBAN", iban_format(data["iban"]) if data.get("iban") else None),
        ("BIC", data.get("bic")),
        ("Reference", formatted(data["reference"])),
    ]
    return tuple((label, str(value)) for label, value in rows if value)


def credit_note_document(
    note: CreditNote, invoice: Invoice, lines: Sequence[InvoiceLine], customer: Customer, issuer: Issuer
) -> InvoiceDocument:
    """A credit note as a document: the credited invoice's parties and tax, the credited lines (or one
    line for a credit by amount), its own number and date, in the customer's language."""
    base = document_of(invoice, lines, customer, issuer)
    by_id = {line.id: line for line in lines}
    credited = [
        DocumentLine(
            description=by_id[d["invoice_line"]].description if d.get("invoice_line") in by_id else "",
            amount=int(d["amount"]),
            quantity=1,
            unit_amount=None,
            tax_label=invoice.tax_label,
            tax_percent=invoice.tax_percent,
            tax_amount=int(d.get("tax_amount") or 0),
        )
        for d in note.lines or []
    ]
    if not credited:
        credited = [
            DocumentLine(
                description=f"{invoice.number or invoice.id}",
                amount=note.subtotal,
                quantity=1,
                unit_amount=None,
                tax_label=invoice.tax_label,
                tax_percent=invoice.tax_percent,
                tax_amount=note.tax_amount,
            )
        ]
    breakdown = tuple(
        TaxSummary(
            label=summary.label,
            percent=summary.percent,
            taxable_amount=note.subtotal - (note.tax_amount if summary.inclusive else 0),
            tax_amount=note.tax_amount,
            inclusive=summary.inclusive,
        )
        for summary in base.tax_breakdown
    )
    return replace(
        base,
        kind="credit_note",
        credited_invoice=invoice.number,
        number=note.number,
        status=note.status,
        lines=credited,
        subtotal=note.subtotal,
        total=note.total,
        amount_due=0,
        discount_total=0,
        tax_total=note.tax_amount,
        credit_applied=0,
        amount_paid=0,
        issued_at=note.created_at.date(),
        due_at=None,
        tax_breakdown=breakdown,
        notes=note.memo,
        payment_rows=(),
    )
