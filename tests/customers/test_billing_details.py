"""Customer billing details: address, tax exemption, validated tax ids (through the API)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import gateway.portal
from gateway.customers.taxids import MEMBER_STATE_PREFIXES, TAX_ID_TYPES, InvalidTaxId, normalize_tax_id
from gateway.taxes.domain import VAT_PREFIX_TO_COUNTRY
from tests.conftest import Api


async def test_create_with_address_tax_exempt_and_vat_id(api: Api) -> None:
    created = await api.post(
        "/v1/customers",
        {
            "name": "Beispiel GmbH",
            "email": "billing@beispiel.example",
            "country": "de",
            "address": {
                "line1": "Hauptstraße 1",
                "city": "Berlin",
                "postal_code": "10115",
                "region": "DE-BE",
            },
            "tax_ids": [{"type": "eu_vat", "value": "de 136.695.976"}],
        },
    )
    assert created["country"] == "DE"
    assert created["address"] == {
        "line1": "Hauptstraße 1",
        "line2": None,
        "city": "Berlin",
        "postal_code": "10115",
        "region": "BE",
    }
    assert created["tax_exempt"] == "none"
    assert created["tax_ids"] == [
        {"type": "eu_vat", "value": "DE136695976", "country": "DE", "verified": True}
    ]
    assert await api.get(f"/v1/customers/{created['id']}") == created


async def test_greek_vat_id_is_stored_with_the_el_prefix(api: Api) -> None:
    created = await api.post(
        "/v1/customers",
        {"name": "Ellas", "country": "GR", "tax_ids": [{"type": "eu_vat", "value": "GR094014201"}]},
    )
    assert created["tax_ids"] == [
        {"type": "eu_vat", "value": "EL094014201", "country": "GR", "verified": True}
    ]


async def test_a_customer_without_billing_details_keeps_the_old_shape(api: Api) -> None:
    created = await api.post("/v1/customers", {"name": "Plain"})
    assert created["address"] is None and created["tax_exempt"] == "none" and created["tax_ids"] == []


@pytest.mark.parametrize(
    ("kind", "given", "stored", "country"),
    [
        ("us_ein", " 12-3456789 ", "12-3456789", "US"),
        ("gb_vat", "GB 980 7806 84", "980 7806 84", "GB"),
        ("ch_vat", "CHE116281710MWST", "CHE-116.281.710 MWST", "CH"),
        ("no_vat", "NO995525828MVA", "NO 995 525 828 MVA", "NO"),
        ("au_abn", "51824753556", "51 824 753 556", "AU"),
        ("nz_gst", "49091850", "49-091-850", "NZ"),
        ("ca_bn", "123456782", "123456782", "CA"),
        ("in_gst", "27AAPFU0939F1ZV", "27AAPFU0939F1ZV", "IN"),
        ("br_cnpj", "16727230000197", "16.727.230/0001-97", "BR"),
    ],
)
async def test_national_tax_ids_are_checked_and_stored_in_their_written_form(
    api: Api, kind: str, given: str, stored: str, country: str
) -> None:
    created = await api.post("/v1/customers", {"name": "Abroad", "tax_ids": [{"type": kind, "value": given}]})
    assert created["tax_ids"] == [{"type": kind, "value": stored, "country": country, "verified": True}]


@pytest.mark.parametrize(
    ("kind", "value", "code", "field"),
    [
        ("us_ein", "00-0000000", "invalid_tax_id", "tax_ids[0].value"),
        ("gb_vat", "GB980780685", "invalid_tax_id", "tax_ids[0].value"),
        ("au_abn", "51824753557", "invalid_tax_id", "tax_ids[0].value"),
        ("xx_tax", "12345", "unsupported_tax_id_type", "tax_ids[0].type"),
    ],
)
async def test_a_bad_national_tax_id_or_an_unknown_type_is_refused_and_nothing_is_created(
    api: Api, kind: str, value: str, code: str, field: str
) -> None:
    problem = await api.post(
        "/v1/customers", {"name": "Bad", "tax_ids": [{"type": kind, "value": value}]}, expect=422
    )
    assert (problem["code"], problem["field"]) == (code, field)
    assert (await api.get("/v1/customers"))["data"] == []


def test_the_portal_offers_exactly_the_supported_tax_id_types() -> None:
    template = (Path(gateway.portal.__file__).parent / "templates/portal/portal_details.html").read_text()
    offered = re.findall(r'^  \("([a-z_]+)", _\(', template, flags=re.MULTILINE)
    assert offered == list(TAX_ID_TYPES)


@pytest.mark.parametrize(
    "value",
    ["DE136695977", "IE1234567X", "XX123456", "not a number", "GB980780684"],
)
async def test_an_invalid_eu_vat_id_is_refused_and_nothing_is_created(api: Api, value: str) -> None:
    problem = await api.post(
        "/v1/customers", {"name": "Bad", "tax_ids": [{"type": "eu_vat", "value": value}]}, expect=422
    )
    assert problem["code"] == "invalid_tax_id"
    assert problem["field"] == "tax_ids[0].value"
    assert (await api.get("/v1/customers"))["data"] == []


async def test_update_replaces_address_and_validates_tax_ids(api: Api) -> None:
    customer = await api.post(
        "/v1/customers",
        {"name": "Acme", "country": "US", "address": {"line1": "1 Main St", "region": "CA"}},
    )
    path = f"/v1/customers/{customer['id']}"
    updated = await api.patch(
        path, {"address": {"line1": "2 Broadway", "city": "New York", "region": "US-NY"}}
    )
    assert updated["address"] == {
        "line1": "2 Broadway",
        "line2": None,
        "city": "New York",
        "postal_code": None,
        "region": "NY",
    }
    updated = await api.patch(path, {"tax_exempt": "exempt"})
    assert updated["tax_exempt"] == "exempt" and updated["address"]["region"] == "NY"

    problem = await api.patch(path, {"tax_ids": [{"type": "eu_vat", "value": "FR00000000000"}]}, expect=422)
    assert problem["code"] == "invalid_tax_id"
    assert (await api.get(path))["tax_ids"] == []

    updated = await api.patch(path, {"tax_ids": [{"type": "eu_vat", "value": "FR40303265045"}]})
    assert updated["tax_ids"] == [
        {"type": "eu_vat", "value": "FR40303265045", "country": "FR", "verified": True}
    ]

    cleared = await api.patch(path, {"address": None})
    assert cleared["address"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"name": "X", "tax_exempt": "sometimes"},
        {"name": "X", "address": {"line1": "a", "planet": "Mars"}},
        {"name": "X", "address": {"region": "California"}},
        {"name": "X", "tax_ids": [{"type": "eu_vat", "value": "   "}]},
        {
            "name": "X",
            "tax_ids": [
                {"type": "eu_vat", "value": "DE136695976"},
                {"type": "eu_vat", "value": "DE 136695976"},
            ],
        },
    ],
)
async def test_bad_billing_details_are_4xx_and_change_nothing(api: Api, body: dict[str, Any]) -> None:
    response = await api.client.post("/v1/customers", json=body, headers=api._headers(None))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (await api.get("/v1/customers"))["data"] == []


def test_northern_ireland_vat_is_kept_but_not_verified() -> None:
    # XI numbers pass stdnum's check digits (the UK's algorithm) but XI is not an EU member state.
    assert normalize_tax_id("eu_vat", "XI980780684") == {
        "type": "eu_vat",
        "value": "XI980780684",
        "country": None,
        "verified": False,
    }


def test_invalid_tax_id_is_a_422_with_a_stable_code() -> None:
    with pytest.raises(InvalidTaxId) as info:
        normalize_tax_id("eu_vat", "DE000")
    assert info.value.status == 422 and info.value.error_code == "invalid_tax_id"


def test_customers_and_taxes_agree_on_the_member_states() -> None:
    assert MEMBER_STATE_PREFIXES == VAT_PREFIX_TO_COUNTRY
