"""Invoice rendering: the HTML page and a real PDF (its text extracted with pypdf) show the issuer, the
customer, the number, every line, the taxes and every total; user input is escaped, not executed."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from pypdf import PdfReader

from gateway.billing.render import (
    DocumentLine,
    InvoiceDocument,
    PartyDetails,
    TaxSummary,
    customer_details,
    format_money,
    format_tax_id,
    format_unit_amount,
    invoice_view,
    issuer_details,
    pdf_text,
    render_html,
    render_pdf,
    tax_summaries,
)
from gateway.config import Settings
from gateway.taxes.domain import REVERSE_CHARGE_MENTION, Rate, breakdown, line_tax

ISSUER = issuer_details(Settings())
VAT_DE = Rate("txr_de", "VAT", "DE", None, Decimal("19"), False, "vat")
JCT = Rate("txr_jp", "JCT", "JP", None, Decimal("10"), True, "jct")


def pdf_words(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    text = " ".join(page.extract_text() for page in reader.pages)
    return re.sub(r"\s+", " ", text)


def eur_invoice() -> InvoiceDocument:
    # €100.00 plan + 3 seats at €10.00 with €3.00 off, VAT 19 % exclusive, each line rounded once.
    plan = line_tax(10000, VAT_DE.percent, inclusive=False)
    seats = line_tax(3000 - 300, VAT_DE.percent, inclusive=False)
    assert (plan.tax, seats.tax) == (1900, 513)
    subtotals = breakdown([(VAT_DE, plan), (VAT_DE, seats)])
    return InvoiceDocument(
        issuer=ISSUER,
        customer=PartyDetails(
            name="Müller Consumer",
            address=("Hauptstraße 1", "10115 Berlin", "DE"),
            email="m@example.de",
        ),
        number="TG-000042",
        status="open",
        currency="EUR",
        issued_at=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        due_at=date(2026, 3, 31),
        period_start=date(2026, 3, 1),
        period_end=date(2026, 4, 1),
        lines=[
            DocumentLine(
                description="Pro plan (monthly)",
                quantity=1,
                unit_amount="10000",
                amount=10000,
                period_start=date(2026, 3, 1),
                period_end=date(2026, 4, 1),
                tax_label=VAT_DE.label,
                tax_percent="19",
                tax_amount=plan.tax,
            ),
            DocumentLine(
                description="Extra seats",
                quantity=3,
                unit_amount="1000",
                amount=3000,
                discount=300,
                tax_label=VAT_DE.label,
                tax_percent="19",
                tax_amount=seats.tax,
            ),
        ],
        subtotal=13000,
        discount_total=300,
        tax_total=2413,
        total=15113,
        credit_applied=2000,
        amount_paid=0,
        amount_due=13113,
        tax_breakdown=tax_summaries(subtotals),
        notes="Thank you for your business.",
        footer="Tiergate Demo Ltd · registered in Ireland",
    )


def reverse_charge_invoice() -> InvoiceDocument:
    return InvoiceDocument(
        issuer=ISSUER,
        customer=customer_details(
            SimpleNamespace(
                name="Beispiel GmbH",
                email="billing@beispiel.example",
                country="DE",
                address_line1="Friedrichstraße 10",
                address_line2=None,
                address_city="Berlin",
                address_postal_code="10117",
                address_region="BE",
                tax_ids=[{"type": "eu_vat", "value": "DE136695976", "country": "DE", "verified": True}],
            )
        ),
        number="TG-000043",
        status="paid",
        currency="EUR",
        issued_at=date(2026, 3, 1),
        lines=[DocumentLine(description="Enterprise plan (yearly)", unit_amount="1200000", amount=1200000)],
        subtotal=1200000,
        tax_total=0,
        total=1200000,
        amount_paid=1200000,
        amount_due=0,
        legal_mentions=[REVERSE_CHARGE_MENTION],
    )


def jpy_invoice() -> InvoiceDocument:
    inclusive = line_tax(11000, JCT.percent, inclusive=True)
    assert (inclusive.net, inclusive.tax) == (10000, 1000)
    return InvoiceDocument(
        issuer=ISSUER,
        customer=PartyDetails(name="Yamada KK", address=("1-1 Chiyoda", "Tokyo", "JP")),
        number="TG-000044",
        status="open",
        currency="JPY",
        lines=[
            DocumentLine(
                description="Basic plan (monthly)",
                unit_amount="11000",
                amount=11000,
                tax_label=JCT.label,
                tax_percent="10",
                tax_amount=inclusive.tax,
            ),
            DocumentLine(description="API calls", quantity=1500, unit_amount="0.5", amount=750),
        ],
        subtotal=11750,
        tax_total=1000,
        total=11750,
        amount_due=11750,
        tax_breakdown=tax_summaries(breakdown([(JCT, inclusive)])),
    )


# -- formatting ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (11900, "EUR", "119.00 EUR"),
        (119000000, "EUR", "1,190,000.00 EUR"),
        (-500, "USD", "-5.00 USD"),
        (1200, "JPY", "1,200 JPY"),
        (1234, "KWD", "1.234 KWD"),
        (0, "EUR", "0.00 EUR"),
    ],
)
def test_format_money(amount: int, currency: str, text: str) -> None:
    assert format_money(amount, currency) == text


def test_format_unit_amount_keeps_sub_cent_precision() -> None:
    assert format_unit_amount("0.06", "USD") == "0.0006 USD"
    assert format_unit_amount("5000", "USD") == "50.00 USD"
    assert format_unit_amount("0.5", "JPY") == "0.5 JPY"
    assert format_unit_amount("0", "EUR") == "0.00 EUR"
    assert format_unit_amount(None, "EUR") == ""


def test_pdf_text_folds_what_the_core_fonts_cannot_print() -> None:
    assert pdf_text("Grüße – €5") == "Grüße – €5"
    assert pdf_text("Łódź Software") == "?ódz Software"
    assert pdf_text("Rocket 🚀 Inc\x00") == "Rocket ? Inc"
    assert pdf_text("x\u2212y") == "x-y"


def test_view_lists_the_totals_in_order() -> None:
    view = invoice_view(eur_invoice())
    assert view.totals == [
        ("Subtotal", "130.00 EUR"),
        ("Discount", "-3.00 EUR"),
        ("VAT 19% of net 127.00 EUR", "24.13 EUR"),
        ("Total", "151.13 EUR"),
        ("Credit applied", "-20.00 EUR"),
    ]
    assert view.amount_due == ("Amount due", "131.13 EUR")
    assert view.dates == [
        ("Invoice date", "2026-03-01"),
        ("Due date", "2026-03-31"),
        ("Service period", "2026-03-01 – 2026-04-01"),
    ]


def test_tax_summary_from_a_subtotal() -> None:
    (summary,) = tax_summaries(breakdown([(VAT_DE, line_tax(10000, Decimal(19), inclusive=False))]))
    assert summary == TaxSummary(label="VAT 19%", percent="19", taxable_amount=10000, tax_amount=1900)


# -- PDF -----------------------------------------------------------------------------------------
def test_eur_invoice_pdf_shows_everything() -> None:
    data = render_pdf(eur_invoice())
    assert data.startswith(b"%PDF-")
    assert len(PdfReader(io.BytesIO(data)).pages) == 1
    text = pdf_words(data)
    for expected in [
        "Tiergate Demo Ltd",
        "VAT IE6388047V",
        "1 Demo Street",
        "Invoice TG-000042",
        "Müller Consumer",
        "Hauptstraße 1",
        "m@example.de",
        "Pro plan (monthly)",
        "2026-03-01 – 2026-04-01",
        "Extra seats",
        "100.00 EUR",
        "10.00 EUR",
        "30.00 EUR",
        "-3.00 EUR",
        "VAT 19%",
        "19.00 EUR",
        "5.13 EUR",
        "Subtotal 130.00 EUR",
        "Discount -3.00 EUR",
        "VAT 19% of net 127.00 EUR 24.13 EUR",
        "Total 151.13 EUR",
        "Credit applied -20.00 EUR",
        "Amount due 131.13 EUR",
        "Thank you for your business.",
        "registered in Ireland",
    ]:
        assert expected in text, f"{expected!r} not in PDF text: {text}"


def test_reverse_charge_pdf_carries_the_legal_mention_and_the_vat_ids() -> None:
    text = pdf_words(render_pdf(reverse_charge_invoice()))
    for expected in [
        "Invoice TG-000043",
        "Beispiel GmbH",
        "Friedrichstraße 10",
        "10117 Berlin",
        "BE, DE",
        "VAT DE136695976",
        "VAT IE6388047V",
        "Enterprise plan (yearly)",
        "12,000.00 EUR",
        "Tax 0.00 EUR",
        "Total 12,000.00 EUR",
        "Amount paid -12,000.00 EUR",
        "Amount due 0.00 EUR",
        REVERSE_CHARGE_MENTION,
    ]:
        assert expected in text, f"{expected!r} not in PDF text: {text}"


def test_jpy_invoice_pdf_has_whole_yen() -> None:
    text = pdf_words(render_pdf(jpy_invoice()))
    for expected in [
        "Invoice TG-000044",
        "Yamada KK",
        "Basic plan (monthly)",
        "API calls",
        "1500",
        "0.5 JPY",
        "11,000 JPY",
        "750 JPY",
        "JCT 10% of net 10,000 JPY, included in the prices 1,000 JPY",
        "Subtotal 11,750 JPY",
        "Total 11,750 JPY",
        "Amount due 11,750 JPY",
    ]:
        assert expected in text, f"{expected!r} not in PDF text: {text}"
    assert ".00 JPY" not in text


def test_draft_is_numbered_draft() -> None:
    draft = replace(eur_invoice(), number=None, status="draft")
    text = pdf_words(render_pdf(draft))
    assert "Draft invoice DRAFT" in text and "TG-000042" not in text
    assert 'Draft invoice <span class="number">DRAFT</span>' in render_html(draft)


def test_text_the_fonts_cannot_encode_is_folded_not_a_crash() -> None:
    doc = replace(
        eur_invoice(),
        customer=PartyDetails(name="Łódź Software 🚀", address=("ul. Piotrkowska 1",)),
        lines=[DocumentLine(description="Plan « Pro » — 東京", amount=100)],
    )
    text = pdf_words(render_pdf(doc))
    assert "?ódz Software ?" in text
    assert "Plan « Pro » — ??" in text


def test_a_long_invoice_flows_onto_more_pages() -> None:
    lines = [DocumentLine(description=f"Usage line {i:03d}", amount=100 * i) for i in range(1, 81)]
    total = sum(line.amount for line in lines)
    doc = replace(eur_invoice(), lines=lines, subtotal=total, total=total, amount_due=total)
    data = render_pdf(doc)
    assert len(PdfReader(io.BytesIO(data)).pages) >= 2
    text = pdf_words(data)
    for i in range(1, 81):
        assert f"Usage line {i:03d}" in text
    assert f"Total {format_money(total, 'EUR')}" in text
    assert "Page 2/" in text


# -- HTML ----------------------------------------------------------------------------------------
def test_html_shows_everything() -> None:
    html = render_html(eur_invoice())
    assert html.startswith("<!DOCTYPE html>")
    for expected in [
        "Tiergate Demo Ltd",
        "TG-000042",
        "Müller Consumer",
        "Pro plan (monthly)",
        "Extra seats",
        "-3.00 EUR",
        "24.13 EUR",
        "151.13 EUR",
        "-20.00 EUR",
        "131.13 EUR",
    ]:
        assert expected in html
    assert REVERSE_CHARGE_MENTION in render_html(reverse_charge_invoice())
    assert "11,750 JPY" in render_html(jpy_invoice())


def test_html_escapes_user_input() -> None:
    doc = replace(
        eur_invoice(),
        customer=PartyDetails(name="<script>alert('x')</script> & Co", email="a@b.example"),
        lines=[DocumentLine(description='<img src=x onerror="boom">', amount=100)],
        notes="<b>bold</b>",
    )
    html = render_html(doc)
    assert "<script>" not in html and "<img" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co" in html
    assert "&lt;img src=x onerror=&#34;boom&#34;&gt;" in html
    # The PDF prints the same name as text.
    assert "<script>alert('x')</script> & Co" in pdf_words(render_pdf(doc))


def test_party_details_round_trip_through_json() -> None:
    import json

    party = reverse_charge_invoice().customer
    assert party.as_dict() == {
        "name": "Beispiel GmbH",
        "address": ["Friedrichstraße 10", "10117 Berlin", "BE, DE"],
        "email": "billing@beispiel.example",
        "tax_ids": ["VAT DE136695976"],
    }
    assert PartyDetails.from_dict(json.loads(json.dumps(party.as_dict()))) == party
    assert issuer_details(Settings()) == PartyDetails(
        name="Tiergate Demo Ltd",
        address=("1 Demo Street", "Dublin D02 X285", "Ireland"),
        email="billing@tiergate.example",
        tax_ids=("VAT IE6388047V",),
    )
    assert PartyDetails.from_dict({}) == PartyDetails(name="")


@pytest.mark.parametrize(
    ("entry", "printed"),
    [
        ({"type": "eu_vat", "value": "DE136695976"}, "VAT DE136695976"),
        ({"type": "us_ein", "value": "12-3456789"}, "EIN 12-3456789"),
        ({"type": "ch_vat", "value": "CHE-116.281.710 MWST"}, "CH VAT CHE-116.281.710 MWST"),
        ({"type": "au_abn", "value": "51 824 753 556"}, "ABN 51 824 753 556"),
        ({"type": "legacy_id", "value": "X-1"}, "LEGACY_ID X-1"),  # stored before types were checked
    ],
)
def test_invoices_name_each_tax_id_type_as_its_country_writes_it(entry: dict[str, str], printed: str) -> None:
    assert format_tax_id(entry) == printed
