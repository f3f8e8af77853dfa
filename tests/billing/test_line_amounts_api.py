"""Invoice amounts that say what they contain (issue 17), tax_behavior on prices, and integer unit amounts
(issue 9): through the HTTP API, with exact amounts.

One country (IE, an exclusive 21 % rate) with two Pro prices of 29.00 EUR: one says its amount contains
the tax, the other follows the rate. Inclusive: 2900 × 21/121 = 503.3 → tax 503, net of tax 2397, total
2900. Exclusive: tax 2900 × 21 % = 609, total 3509.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.conftest import Api
from tests.scenarios.test_billing_stories import invoices_of, on_clock


def _body(lookup_key: str) -> dict[str, Any]:
    return {
        "plan": "pro",
        "model": "flat",
        "interval": "month",
        "currency_options": {"EUR": {"unit_amount": 2900}},
        "lookup_key": lookup_key,
    }


async def _price(api: Api, lookup_key: str, **extra: Any) -> dict[str, Any]:
    price: dict[str, Any] = await api.post("/v1/prices", {**_body(lookup_key), **extra})
    return price


async def _first_invoice(api: Api, price: str) -> dict[str, Any]:
    _, customer = await on_clock(
        api, datetime(2026, 3, 1, tzinfo=UTC), currency="EUR", country="IE", name="Dublin Ltd"
    )
    await api.post("/v1/subscriptions", {"customer": customer, "price": price, "trial_days": 0})
    (invoice,) = await invoices_of(api, customer)
    return invoice


def _amounts(line: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("amount", "discount_amount", "tax_amount", "total", "amount_excluding_tax", "tax_behavior")
    return tuple(line[k] for k in keys)


async def test_a_price_says_whether_it_contains_the_tax_and_lines_name_every_amount(
    api: Api, demo: Any
) -> None:
    await api.post("/v1/tax_rates", {"display_name": "VAT", "country": "IE", "percent": "21"})
    inclusive = await _price(api, "pro_eur_incl", tax_behavior="inclusive")
    following = await _price(api, "pro_eur_rate")
    assert (inclusive["tax_behavior"], following["tax_behavior"]) == ("inclusive", None)
    assert inclusive["currency_options"] == {"EUR": {"unit_amount": 2900, "unit_amount_decimal": "2900"}}

    gross = await _first_invoice(api, "pro_eur_incl")
    (line,) = gross["lines"]
    assert _amounts(line) == (2900, 0, 503, 2900, 2397, "inclusive")
    assert "net_amount" not in line
    assert (line["unit_amount"], line["unit_amount_decimal"]) == (2900, "2900")
    assert (gross["subtotal"], gross["tax_total"], gross["total"]) == (2900, 503, 2900)

    net = await _first_invoice(api, "pro_eur_rate")
    (line,) = net["lines"]
    assert _amounts(line) == (2900, 0, 609, 3509, 2900, "exclusive")
    assert (net["subtotal"], net["tax_total"], net["total"]) == (2900, 609, 3509)

    # The printed invoice names the tax base as the net and says the tax is inside the prices.
    html = (await api.client.get(f"/v1/invoices/{gross['id']}/html", headers=api._headers(None))).text
    assert "of net 23.97 EUR, included in the prices" in html
    assert "incl. 23.97" not in html
    html = (await api.client.get(f"/v1/invoices/{net['id']}/html", headers=api._headers(None))).text
    assert "of net 29.00 EUR" in html and "included in the prices" not in html

    bad = {**_body("pro_eur_bad"), "tax_behavior": "sometimes"}
    problem = await api.post("/v1/prices", bad, expect=422)
    assert problem["code"] == "validation_failed", problem


async def test_an_inclusive_rate_is_the_default_and_an_exclusive_price_overrides_it(
    api: Api, demo: Any
) -> None:
    await api.post(
        "/v1/tax_rates", {"display_name": "VAT", "country": "IE", "percent": "21", "inclusive": True}
    )
    await _price(api, "pro_eur_rate")
    await _price(api, "pro_eur_excl", tax_behavior="exclusive")
    (line,) = (await _first_invoice(api, "pro_eur_rate"))["lines"]
    assert _amounts(line) == (2900, 0, 503, 2900, 2397, "inclusive")
    (line,) = (await _first_invoice(api, "pro_eur_excl"))["lines"]
    assert _amounts(line) == (2900, 0, 609, 3509, 2900, "exclusive")


async def test_unit_amounts_are_integer_minor_units_with_a_decimal_string_for_fractions(
    api: Api, demo: Any
) -> None:
    body = {
        "plan": "pro",
        "model": "usage",
        "interval": "month",
        "usage_type": "metered",
        "metered_feature": "api_calls",
        "currency_options": {"USD": {"unit_amount_decimal": "0.5"}, "EUR": {"unit_amount": 1}},
    }
    price = await api.post("/v1/prices", body)
    assert price["currency_options"] == {
        "USD": {"unit_amount_decimal": "0.5"},  # no whole number of cents: no unit_amount
        "EUR": {"unit_amount": 1, "unit_amount_decimal": "1"},
    }
    basic = await api.get("/v1/prices/basic_monthly")
    assert basic["currency_options"]["USD"] == {"unit_amount": 900, "unit_amount_decimal": "900"}
    both = {**body, "currency_options": {"USD": {"unit_amount": 1, "unit_amount_decimal": "0.5"}}}
    problem = await api.post("/v1/prices", both, expect=422)
    assert problem["field"] == "currency_options.USD.unit_amount_decimal"
    as_string = {**body, "currency_options": {"USD": {"unit_amount": "0.5"}}}
    await api.post("/v1/prices", as_string, expect=422)


async def test_the_openapi_document_says_what_each_line_amount_contains(api: Api) -> None:
    document = (await api.client.get("/docs/openapi.json")).json()
    line = document["components"]["schemas"]["InvoiceLine"]["properties"]
    assert "net_amount" not in line
    for field in ("amount", "discount_amount", "tax_amount", "total", "amount_excluding_tax", "tax_behavior"):
        assert line[field]["description"], field
    assert "without tax" in line["amount_excluding_tax"]["description"]
    assert "tax included" in line["total"]["description"]
