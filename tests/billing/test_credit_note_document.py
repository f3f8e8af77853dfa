"""Credit notes as documents (HTML and PDF), in the customer's language: the same layout as the invoice,
titled as a credit note, naming the invoice it credits and the total credited."""

from __future__ import annotations

from typing import Any

from tests.billing.test_render import pdf_words
from tests.conftest import Api


async def credited(api: Api, locale: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    customer = await api.post(
        "/v1/customers",
        {
            "name": "Bakkerij",
            "currency": "EUR",
            "country": "NL",
            **({"preferred_locale": locale} if locale else {}),
        },
    )
    await api.post(
        "/v1/invoice_items",
        {
            "customer": customer["id"],
            "amount": 3509,
            "currency": "EUR",
            "description": "Zakelijk (maandelijks)",
        },
    )
    invoice = await api.post("/v1/invoices", {"customer": customer["id"], "auto_advance": True})
    note = await api.post(
        "/v1/credit_notes", {"invoice": invoice["id"], "amount": 1000, "reason": "duplicate"}
    )
    return invoice, note


async def test_a_dutch_customers_credit_note_pdf_and_page_are_in_dutch(api: Api) -> None:
    invoice, note = await credited(api, "nl")
    response = await api.client.get(f"/v1/credit_notes/{note['id']}/pdf", headers=api._headers(None))
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    text = pdf_words(response.content)
    for expected in [
        f"Creditnota {note['number']}",
        "Datum creditnota: 1 januari 2026",
        f"Gecrediteerde factuur: {invoice['number']}",
        f"Totaal gecrediteerd € {note['total'] / 100:.2f}".replace(".", ","),
    ]:
        assert expected in text, f"{expected!r} not in {text}"
    assert "Factuur " + str(invoice["number"]) not in text  # titled as the credit note, not the invoice
    page = await api.client.get(f"/v1/credit_notes/{note['id']}/html", headers=api._headers(None))
    assert '<html lang="nl">' in page.text and "<h1>Creditnota" in page.text


async def test_an_english_credit_note_says_credit_note_and_a_tenant_sees_only_its_own(api: Api) -> None:
    _, note = await credited(api, "en")
    page = await api.client.get(f"/v1/credit_notes/{note['id']}/html", headers=api._headers(None))
    assert f'<h1>Credit note <span class="number">{note["number"]}</span></h1>' in page.text
    assert "Total credited" in page.text
    missing = await api.client.get("/v1/credit_notes/cn_nope/pdf", headers=api._headers(None))
    assert missing.status_code == 404
