"""Invoice documents: one frozen `InvoiceDocument`, rendered as a printable HTML page and as a PDF.

Rendering computes nothing: every amount arrives already rated, taxed and rounded (integer minor units of
`currency`), so the page shows exactly what the invoice stores. Both renderers read the same formatted
view (`invoice_view`), so HTML and PDF cannot disagree.

Language: a document carries the customer's `preferred_locale`. Unset (None) prints the original English
layout ("1,190.00 EUR", ISO dates) byte for byte; a set locale ("en", "nl", "nl_BE") prints the
`gateway/billing/locales` catalog's words with Babel's money and dates ("€ 35,09", "3 december 2026"
in Dutch, "$35.09", "December 3, 2026" in English).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from babel import numbers as babel_numbers
from fpdf import FPDF
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from gateway import i18n
from gateway.config import Settings
from gateway.customers.taxids import tax_id_label
from gateway.kernel.money import exponent
from gateway.taxes.domain import TaxSubtotal, format_percent

TEMPLATES = Path(__file__).resolve().parent / "templates"
_PACKAGE = "billing"  # the catalogs in gateway/billing/locales
DRAFT = "DRAFT"


@dataclass(frozen=True, slots=True, kw_only=True)
class PartyDetails:
    """Issuer or customer as printed: `address` is one string per line, `tax_ids` display strings."""

    name: str
    address: tuple[str, ...] = ()
    email: str | None = None
    tax_ids: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON form, for freezing the parties on an invoice at finalisation."""
        return {
            "name": self.name,
            "address": list(self.address),
            "email": self.email,
            "tax_ids": list(self.tax_ids),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PartyDetails:
        return cls(
            name=str(data.get("name") or ""),
            address=tuple(str(line) for line in data.get("address") or ()),
            email=data.get("email") or None,
            tax_ids=tuple(str(t) for t in data.get("tax_ids") or ()),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentLine:
    """One invoice line. `amount` is the rated line in minor units before `discount` (a positive amount
    taken off); `unit_amount` is a decimal string in minor units, as the catalog stores it ("0.06")."""

    description: str
    amount: int
    quantity: int | Decimal | str = 1
    unit_amount: str | None = None
    period_start: date | None = None
    period_end: date | None = None
    discount: int = 0
    tax_label: str | None = None
    tax_percent: str | None = None
    tax_amount: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TaxSummary:
    """One rate's line in the tax breakdown: the taxed net and the tax, both sums of rounded lines."""

    label: str
    percent: str
    taxable_amount: int
    tax_amount: int
    inclusive: bool = False

    @classmethod
    def of(cls, subtotal: TaxSubtotal) -> TaxSummary:
        rate = subtotal.rate
        return cls(
            label=rate.label,
            percent=format_percent(rate.percent),
            taxable_amount=subtotal.net,
            tax_amount=subtotal.tax,
            inclusive=rate.inclusive,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceDocument:
    issuer: PartyDetails
    customer: PartyDetails
    number: str | None  # None until finalised: shown as "DRAFT"
    status: str
    currency: str
    lines: Sequence[DocumentLine]
    subtotal: int
    total: int
    amount_due: int
    discount_total: int = 0
    tax_total: int = 0
    credit_applied: int = 0
    amount_paid: int = 0
    issued_at: date | None = None
    due_at: date | None = None
    period_start: date | None = None
    period_end: date | None = None
    tax_breakdown: Sequence[TaxSummary] = ()
    legal_mentions: Sequence[str] = ()
    notes: str | None = None
    footer: str | None = None
    invoice_id: str | None = None
    # send_invoice: how to pay by transfer, as (label, value) rows (account, IBAN, BIC, reference).
    payment_rows: Sequence[tuple[str, str]] = ()
    # The reader's locale (the customer's preferred_locale); None = the original English layout.
    locale: str | None = None
    # "invoice", or "credit_note": the same layout titled as a credit note, naming the invoice it credits
    # and its total as what is credited (`rendering.credit_note_document`).
    kind: str = "invoice"
    credited_invoice: str | None = None

    @property
    def display_number(self) -> str:
        return self.number or DRAFT


# -- building the parties -------------------------------------------------------------------------
class BilledCustomer(Protocol):
    """The customer fields an invoice prints (a `gateway.customers` row has them)."""

    @property
    def name(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def country(self) -> str | None: ...
    @property
    def address_line1(self) -> str | None: ...
    @property
    def address_line2(self) -> str | None: ...
    @property
    def address_city(self) -> str | None: ...
    @property
    def address_postal_code(self) -> str | None: ...
    @property
    def address_region(self) -> str | None: ...
    @property
    def tax_ids(self) -> Sequence[Any]: ...


def format_tax_id(entry: Mapping[str, Any]) -> str:
    """ "VAT DE136695976" for an EU VAT id, "EIN 12-3456789", "CH VAT CHE-116.281.710 MWST"."""
    label = tax_id_label(str(entry.get("type", "")).strip())
    return f"{label} {entry.get('value', '')}".strip()


def issuer_details(settings: Settings) -> PartyDetails:
    lines = tuple(line.strip() for line in settings.issuer_address.splitlines() if line.strip())
    return PartyDetails(
        name=settings.issuer_name,
        address=lines,
        email=settings.issuer_email or None,
        tax_ids=(f"VAT {settings.issuer_vat_id}",) if settings.issuer_vat_id else (),
    )


def customer_details(customer: BilledCustomer) -> PartyDetails:
    city = " ".join(p for p in (customer.address_postal_code, customer.address_city) if p)
    country = customer.country or ""
    region = f"{customer.address_region}, {country}" if customer.address_region and country else country
    lines = tuple(p for p in (customer.address_line1, customer.address_line2, city, region) if p)
    tax_ids = tuple(format_tax_id(t) for t in customer.tax_ids or () if isinstance(t, Mapping))
    return PartyDetails(name=customer.name, address=lines, email=customer.email, tax_ids=tax_ids)


def tax_summaries(subtotals: Iterable[TaxSubtotal]) -> tuple[TaxSummary, ...]:
    return tuple(TaxSummary.of(s) for s in subtotals)


# -- formatting -----------------------------------------------------------------------------------
def format_money(amount: int, currency: str) -> str:
    """Minor units as major units with grouping and the code: 119000 EUR → "1,190.00 EUR", 1200 JPY →
    "1,200 JPY". ASCII only, so it prints with any PDF font."""
    places = exponent(currency)
    major = Decimal(amount).scaleb(-places)
    return f"{major:,.{places}f} {currency.upper()}"


def format_unit_amount(unit_amount: str | None, currency: str) -> str:
    """A per-unit amount in minor units (possibly fractional) in major units, with at least the
    currency's decimals: "0.06" USD cents → "0.0006 USD", "5000" → "50.00 USD"."""
    if unit_amount is None:
        return ""
    try:
        minor = Decimal(str(unit_amount))
    except InvalidOperation:
        return str(unit_amount)
    places = exponent(currency)
    major = minor.scaleb(-places).normalize()
    digits = max(places, -int(major.as_tuple().exponent)) if major != 0 else places
    return f"{major:,.{digits}f} {currency.upper()}"


def format_date(value: date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(UTC).date() if value.tzinfo else value.date()
    return value.isoformat()


def format_period(start: date | None, end: date | None) -> str:
    if start is None and end is None:
        return ""
    return f"{format_date(start)} – {format_date(end)}"


def _quantity(value: int | Decimal | str) -> str:
    if isinstance(value, Decimal):
        return format_percent(value)
    return str(value)


@dataclass(frozen=True, slots=True)
class LineView:
    description: str
    period: str
    quantity: str
    unit_amount: str
    amount: str
    discount: str
    tax: str
    tax_amount: str


@dataclass(frozen=True, slots=True)
class InvoiceView:
    """Everything the page shows, already formatted."""

    title: str
    number: str
    status: str
    is_draft: bool
    issuer: PartyDetails
    customer: PartyDetails
    dates: list[tuple[str, str]]
    lines: list[LineView]
    show_discounts: bool
    totals: list[tuple[str, str]]
    amount_due: tuple[str, str]
    tax_rows: list[tuple[str, str, str]]
    legal_mentions: list[str]
    notes: str | None
    footer: str | None
    currency: str = field(default="")
    payment_rows: list[tuple[str, str]] = field(default_factory=list)
    # Column headings and section titles in the reader's language, keyed by their English text.
    labels: Mapping[str, str] = field(default_factory=dict)
    total_label: str = "Total"
    lang: str = i18n.DEFAULT_LOCALE


Day = date  # `_Words.date` (a method) shadows the type inside the class body


class _Words:
    """Formatting and words for one document: the legacy English layout when `locale` is None, else
    the billing catalog and Babel in that locale."""

    def __init__(self, locale: str | None, currency: str) -> None:
        self.locale = locale
        self.currency = currency
        self.localised = locale is not None

    def __call__(self, message: str, **params: Any) -> str:
        if not self.localised:
            return message % params if params else message
        text = i18n.translations(_PACKAGE, self.locale).ugettext(message)
        return text % params if params else text

    def money(self, amount: int) -> str:
        if not self.localised:
            return format_money(amount, self.currency)
        return i18n.format_money(amount, self.currency, self.locale)

    def unit_amount(self, unit_amount: str | None) -> str:
        if not self.localised or unit_amount is None:
            return format_unit_amount(unit_amount, self.currency)
        try:
            major = Decimal(str(unit_amount)).scaleb(-exponent(self.currency))
        except InvalidOperation:
            return str(unit_amount)
        # Fractional cents stay visible ("€ 0,0006"): no rounding to the currency's decimals.
        return babel_numbers.format_currency(
            major,
            self.currency,
            locale=i18n.normalize_locale(self.locale or "en"),
            decimal_quantization=False,
        )

    def day(self, value: date | None) -> str:
        if not self.localised or value is None:
            return format_date(value)
        return i18n.format_date(value, self.locale)

    def period(self, start: Day | None, end: Day | None) -> str:
        if start is None and end is None:
            return ""
        return f"{self.day(start)} – {self.day(end)}"

    def tax_label(self, label: str | None) -> str | None:
        """ "VAT 21%" → "BTW 21%": the tax's name is translated, its rate printed as stored."""
        if not self.localised or not label:
            return label
        for name in (_("VAT"), _("Sales tax"), _("GST"), _("Tax")):
            if label == name or label.startswith(f"{name} "):
                return self(name) + label[len(name) :]
        return label

    def mention(self, text: str) -> str:
        """Legal mentions are stored in English on the invoice; the known ones are printed translated."""
        if not self.localised:
            return text
        return self(text) if text in _KNOWN_MENTIONS else text


def _(message: str) -> str:
    """Marks a string for the catalog (extraction) without translating it here."""
    return message


# The mentions gateway.taxes writes (kept in step with gateway.taxes.domain; the catalog test checks both
# catalogs have them).
_KNOWN_MENTIONS = frozenset(
    {
        _(
            "Reverse charge: VAT to be accounted for by the recipient (Article 196, Council Directive "
            "2006/112/EC)"
        ),
        _("Reverse charge: tax to be accounted for by the recipient"),
        _("Tax exempt"),
    }
)
_LABELS = (
    _("From"),
    _("Bill to"),
    _("Description"),
    _("Qty"),
    _("Unit price"),
    _("Discount"),
    _("Tax"),
    _("Tax amount"),
    _("Amount"),
    _("Pay by bank transfer"),
    _("Status"),
    _("Page"),
    _("Account name"),
    _("Reference"),
)


def invoice_view(doc: InvoiceDocument) -> InvoiceView:
    cur = doc.currency.upper()
    t = _Words(doc.locale, cur)
    money = t.money

    credit_note = doc.kind == "credit_note"
    dates = [
        (label, text)
        for label, text in (
            (t("Credit note date") if credit_note else t("Invoice date"), t.day(doc.issued_at)),
            (t("Credited invoice"), doc.credited_invoice or "" if credit_note else ""),
            (t("Due date"), t.day(doc.due_at)),
            (t("Service period"), t.period(doc.period_start, doc.period_end)),
        )
        if text
    ]
    lines = [
        LineView(
            description=line.description,
            period=t.period(line.period_start, line.period_end),
            quantity=_quantity(line.quantity),
            unit_amount=t.unit_amount(line.unit_amount),
            amount=money(line.amount),
            discount=f"-{money(line.discount)}" if line.discount else "",
            tax=t.tax_label(line.tax_label)
            or (f"{line.tax_percent}%" if line.tax_percent is not None else ""),
            tax_amount=money(line.tax_amount) if line.tax_label or line.tax_amount else "",
        )
        for line in doc.lines
    ]
    totals: list[tuple[str, str]] = [(t("Subtotal"), money(doc.subtotal))]
    if doc.discount_total:
        totals.append((t("Discount"), f"-{money(doc.discount_total)}"))
    if doc.tax_breakdown:
        for summary in doc.tax_breakdown:
            # Name the base as the net amount, and say where the tax is: "incl. 23.97" read as if 23.97
            # were the tax, or the gross, rather than the net the tax is computed on.
            label = t.tax_label(summary.label) or ""
            if summary.inclusive:
                text = t(
                    "%(tax)s of net %(net)s, included in the prices",
                    tax=label,
                    net=money(summary.taxable_amount),
                )
            else:
                text = t("%(tax)s of net %(net)s", tax=label, net=money(summary.taxable_amount))
            totals.append((text, money(summary.tax_amount)))
    else:
        totals.append((t("Tax"), money(doc.tax_total)))
    if doc.tax_breakdown and len(doc.tax_breakdown) > 1:
        totals.append((t("Total tax"), money(doc.tax_total)))
    total_label = t("Total")
    totals.append((total_label, money(doc.total)))
    if doc.credit_applied:
        totals.append((t("Credit applied"), f"-{money(doc.credit_applied)}"))
    if doc.amount_paid:
        totals.append((t("Amount paid"), f"-{money(doc.amount_paid)}"))
    tax_rows = [
        (t.tax_label(s.label) or "", money(s.taxable_amount), money(s.tax_amount)) for s in doc.tax_breakdown
    ]
    return InvoiceView(
        title=t("Credit note") if credit_note else t("Invoice") if doc.number else t("Draft invoice"),
        number=doc.display_number,
        status=doc.status,
        is_draft=doc.number is None,
        issuer=doc.issuer,
        customer=doc.customer,
        dates=dates,
        lines=lines,
        show_discounts=any(line.discount for line in doc.lines),
        totals=totals,
        amount_due=(t("Total credited"), money(doc.total))
        if credit_note
        else (t("Amount due"), money(doc.amount_due)),
        tax_rows=tax_rows,
        legal_mentions=[t.mention(m) for m in doc.legal_mentions],
        notes=doc.notes,
        footer=doc.footer,
        currency=cur,
        payment_rows=[(t(label), text) for label, text in doc.payment_rows],
        labels={label: t(label) for label in _LABELS},
        total_label=total_label,
        lang=i18n.language_of(doc.locale),
    )


# -- HTML -----------------------------------------------------------------------------------------
@cache
def _environment() -> Environment:
    # Autoescape everything: customer names, line descriptions and notes are user input.
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(doc: InvoiceDocument) -> str:
    return _environment().get_template("invoice.html").render(v=invoice_view(doc))


# -- PDF ------------------------------------------------------------------------------------------
# fpdf2's core fonts (Helvetica) cover windows-1252 only; anything else is folded or replaced, never a crash.
PDF_ENCODING = "windows-1252"
_REPLACEMENTS = {"\u2212": "-", "\u2010": "-", "\u2011": "-", "\u00a0": " ", "\u202f": " "}


def pdf_text(text: str) -> str:
    """`text` reduced to what the core fonts can print: accents kept where the encoding has them,
    otherwise decomposed ("ł" has no decomposition → "?"), control characters dropped."""
    out: list[str] = []
    for ch in text:
        ch = _REPLACEMENTS.get(ch, ch)
        if ch in "\n\t":
            out.append(" " if ch == "\t" else ch)
            continue
        if unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"}:
            continue
        try:
            ch.encode(PDF_ENCODING)
            out.append(ch)
            continue
        except UnicodeEncodeError:
            pass
        folded = "".join(
            c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c) and _encodable(c)
        )
        out.append(folded or "?")
    return "".join(out)


def _encodable(ch: str) -> bool:
    try:
        ch.encode(PDF_ENCODING)
    except UnicodeEncodeError:
        return False
    return True


class _InvoicePdf(FPDF):
    def __init__(self, footer_text: str, page_word: str = "Page") -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.core_fonts_encoding = PDF_ENCODING
        self.footer_text = footer_text
        self.page_word = page_word

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font("helvetica", size=8)
        self.set_text_color(110)
        page = f"{self.page_word} {self.page_no()}/{{nb}}"
        text = f"{self.footer_text}   {page}" if self.footer_text else page
        self.cell(0, 5, pdf_text(text), align="C")


def render_pdf(doc: InvoiceDocument) -> bytes:
    v = invoice_view(doc)
    label = v.labels.get
    pdf = _InvoicePdf(v.footer or "", label("Page", "Page"))
    pdf.set_title(pdf_text(f"{v.title} {v.number}"))
    pdf.set_author(pdf_text(v.issuer.name))
    pdf.set_creator("Tiergate")
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()
    width = pdf.epw

    # Heading: issuer name left, "Invoice <number>" right.
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(width / 2, 9, pdf_text(v.issuer.name))
    pdf.cell(width / 2, 9, pdf_text(f"{v.title} {v.number}"), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=9)
    status = f"{label('Status', 'Status')}: {v.status}"
    pdf.cell(0, 5, pdf_text(status), align="R", new_x="LMARGIN", new_y="NEXT")
    for name, text in v.dates:
        pdf.cell(0, 5, pdf_text(f"{name}: {text}"), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    # Parties side by side.
    top = pdf.get_y()
    col = width / 2 - 4
    _party(pdf, label("From", "From"), v.issuer, pdf.l_margin, top, col)
    left_bottom = pdf.get_y()
    _party(pdf, label("Bill to", "Bill to"), v.customer, pdf.l_margin + width / 2 + 4, top, col)
    pdf.set_xy(pdf.l_margin, max(left_bottom, pdf.get_y()) + 6)

    # Lines.
    pdf.set_font("helvetica", size=8.5)
    headings = [label(h, h) for h in ("Description", "Qty", "Unit price")]
    widths = [70, 12, 26]
    if v.show_discounts:
        headings.append(label("Discount", "Discount"))
        widths.append(22)
    headings += [label("Tax", "Tax"), label("Amount", "Amount")]
    widths += [26, 28]
    scale = width / sum(widths)
    col_widths = tuple(w * scale for w in widths)
    aligns = ("LEFT", "RIGHT", "RIGHT", *(("RIGHT",) if v.show_discounts else ()), "LEFT", "RIGHT")
    with pdf.table(
        col_widths=col_widths,
        text_align=aligns,
        line_height=4.6,
        padding=1.2,
        first_row_as_headings=True,
        borders_layout="HORIZONTAL_LINES",
    ) as table:
        row = table.row()
        for heading in headings:
            row.cell(pdf_text(heading))
        for line in v.lines:
            row = table.row()
            description = f"{line.description}\n{line.period}" if line.period else line.description
            row.cell(pdf_text(description))
            row.cell(pdf_text(line.quantity))
            row.cell(pdf_text(line.unit_amount))
            if v.show_discounts:
                row.cell(pdf_text(line.discount))
            tax = f"{line.tax}\n{line.tax_amount}" if line.tax and line.tax_amount else line.tax
            row.cell(pdf_text(tax))
            row.cell(pdf_text(line.amount))
    pdf.ln(4)

    # Totals, right-aligned.
    label_w, value_w = width * 0.45, width * 0.22
    for name, text in [*v.totals, v.amount_due]:
        bold = name in {v.total_label, v.amount_due[0]}
        pdf.set_font("helvetica", "B" if bold else "", 10 if bold else 9)
        pdf.set_x(pdf.l_margin + width - label_w - value_w)
        pdf.cell(label_w, 6, pdf_text(name), align="R")
        pdf.cell(value_w, 6, pdf_text(text), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    if v.payment_rows:
        pdf.set_font("helvetica", "B", 9)
        pdf.cell(0, 5, pdf_text(label("Pay by bank transfer", "")), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("helvetica", size=9)
        for row_label, text in v.payment_rows:
            pdf.cell(width * 0.25, 4.8, pdf_text(row_label))
            pdf.cell(width * 0.75, 4.8, pdf_text(text), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)

    pdf.set_font("helvetica", size=8.5)
    for mention in v.legal_mentions:
        pdf.multi_cell(0, 4.5, pdf_text(mention), new_x="LMARGIN", new_y="NEXT")
    if v.notes:
        pdf.ln(2)
        pdf.multi_cell(0, 4.5, pdf_text(v.notes), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _party(pdf: FPDF, heading: str, party: PartyDetails, x: float, y: float, w: float) -> None:
    pdf.set_xy(x, y)
    pdf.set_font("helvetica", "B", 8)
    pdf.set_text_color(110)
    pdf.cell(w, 5, pdf_text(heading.upper()), new_x="LEFT", new_y="NEXT")
    pdf.set_text_color(0)
    pdf.set_font("helvetica", "B", 10)
    pdf.multi_cell(w, 5, pdf_text(party.name), new_x="LEFT", new_y="NEXT")
    pdf.set_font("helvetica", size=9)
    email = (party.email,) if party.email else ()
    for text in (*party.address, *email, *party.tax_ids):
        pdf.multi_cell(w, 4.6, pdf_text(text), new_x="LEFT", new_y="NEXT")
