"""Invoices in the customer's language: the billing catalog's words and Babel's money and dates, in the
HTML page and in the PDF (read back with pypdf). An unset locale keeps the original English layout."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from gateway.billing.render import DocumentLine, InvoiceDocument, invoice_view, render_html, render_pdf
from tests.billing.test_render import eur_invoice, pdf_words, reverse_charge_invoice


def small_invoice(locale: str | None, currency: str = "EUR") -> InvoiceDocument:
    return replace(
        reverse_charge_invoice(),
        locale=locale,
        currency=currency,
        status="open",
        issued_at=date(2026, 12, 3),
        lines=[DocumentLine(description="Zakelijk (maandelijks)", unit_amount="3509", amount=3509)],
        subtotal=3509,
        total=3509,
        amount_paid=0,
        amount_due=3509,
    )


def test_a_dutch_reverse_charge_invoice_pdf_is_in_dutch() -> None:
    text = pdf_words(render_pdf(small_invoice("nl")))
    for expected in [
        "Factuur TG-000043",
        "Factuurdatum: 3 december 2026",
        "VAN",
        "FACTUUR AAN",
        "Omschrijving Aantal Stukprijs Belasting Bedrag",
        "Zakelijk (maandelijks) 1 € 35,09 € 35,09",
        "Subtotaal € 35,09",
        "Te betalen € 35,09",
        "BTW verlegd: btw te voldoen door de afnemer (artikel 196, Richtlijn 2006/112/EG van de Raad)",
        "Pagina 1/1",
    ]:
        assert expected in text, f"{expected!r} not in PDF text: {text}"
    assert "Invoice" not in text and "Amount due" not in text


def test_the_dutch_html_page_speaks_dutch_with_babel_money() -> None:
    page = render_html(small_invoice("nl"))
    assert '<html lang="nl">' in page
    assert '<h1>Factuur <span class="number">TG-000043</span></h1>' in page
    assert "<dt>Factuurdatum</dt><dd>3 december 2026</dd>" in page
    assert '<td>Te betalen</td><td class="num">€\xa035,09</td>' in page


def test_an_english_customer_gets_babel_dollars_and_a_written_date() -> None:
    view = invoice_view(small_invoice("en", currency="USD"))
    assert view.title == "Invoice"
    assert view.dates == [("Invoice date", "December 3, 2026")]
    assert view.amount_due == ("Amount due", "$35.09")
    text = pdf_words(render_pdf(small_invoice("en", currency="USD")))
    assert "Amount due $35.09" in text


def test_vat_is_btw_in_dutch_and_the_rate_stays() -> None:
    view = invoice_view(replace(eur_invoice(), locale="nl_BE"))
    assert view.lines[0].tax == "BTW 19%"
    assert view.totals == [
        ("Subtotaal", "€\xa0130,00"),
        ("Korting", "-€\xa03,00"),
        ("BTW 19% over netto €\xa0127,00", "€\xa024,13"),
        ("Totaal", "€\xa0151,13"),
        ("Verrekend tegoed", "-€\xa020,00"),
    ]
    assert view.lines[0].period == "1 maart 2026 – 1 april 2026"


def test_no_locale_keeps_the_english_layout_byte_for_byte() -> None:
    doc = eur_invoice()
    assert doc.locale is None
    assert render_html(doc) == render_html(replace(doc, locale=None))
    view = invoice_view(doc)
    assert view.amount_due == ("Amount due", "131.13 EUR")
    assert view.dates[0] == ("Invoice date", "2026-03-01")
