"""TaxService against the database: the decision for a stored customer row, and tax_party's reading of it."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from gateway.config import Settings
from gateway.customers.models import Customer
from gateway.customers.repository import CustomerRepository
from gateway.customers.service import CustomerService
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.kernel.errors import ValidationFailed
from gateway.taxes import (
    Issuer,
    TaxDecision,
    TaxExempt,
    TaxParty,
    TaxService,
    issuer_from_settings,
    tax_party,
)
from gateway.taxes.domain import REVERSE_CHARGE_MENTION, TAX_EXEMPT_MENTION
from gateway.taxes.service import TaxRateImmutable, TaxRateNotFound

IE = Issuer("IE", "IE6388047V")


def party_fields(**kw: object) -> SimpleNamespace:
    base: dict[str, object] = {"country": None, "address_region": None, "tax_exempt": "none", "tax_ids": []}
    return SimpleNamespace(**{**base, **kw})


def test_tax_party_reads_a_customer_row() -> None:
    row = party_fields(
        country="DE", tax_ids=[{"type": "eu_vat", "value": "DE136695976", "country": "DE", "verified": True}]
    )
    assert tax_party(row) == TaxParty("DE", None, TaxExempt.NONE, True)


def test_tax_party_rechecks_vat_ids_instead_of_trusting_the_flag() -> None:
    # A row written before validation existed: bad check digit, claims to be verified.
    row = party_fields(country="DE", tax_ids=[{"type": "eu_vat", "value": "DE136695977", "verified": True}])
    assert tax_party(row).has_valid_eu_vat_id is False
    legacy = party_fields(country="FR", tax_ids=[{"type": "eu_vat", "value": "FR40303265045"}])
    assert tax_party(legacy).has_valid_eu_vat_id is True
    other = party_fields(country="US", tax_ids=[{"type": "us_ein", "value": "12-3456789"}])
    assert tax_party(other).has_valid_eu_vat_id is False


def test_tax_party_takes_the_vat_country_when_the_customer_has_none() -> None:
    row = party_fields(tax_ids=[{"type": "eu_vat", "value": "EL094014201"}])
    assert tax_party(row) == TaxParty("GR", None, TaxExempt.NONE, True)


def test_tax_party_region_and_exemption() -> None:
    assert tax_party(party_fields(country="us", address_region="US-CA", tax_exempt="exempt")) == TaxParty(
        "US", "CA", TaxExempt.EXEMPT, False
    )
    # Unknown stored values degrade to the safe default (tax is charged), never to an exemption.
    assert tax_party(party_fields(country="US", address_region="???", tax_exempt="bogus")) == TaxParty("US")


def test_issuer_from_settings() -> None:
    assert issuer_from_settings(Settings()) == Issuer("IE", "IE6388047V")
    assert issuer_from_settings(Settings(issuer_country="us", issuer_vat_id="")) == Issuer("US", None)


async def test_decide_for_stored_customers(db: Database, clock: FrozenClock) -> None:
    async with db.unit_of_work() as session:
        taxes = TaxService(session, clock)
        ie = await taxes.create_rate(display_name="VAT", country="IE", percent="23")
        de = await taxes.create_rate(display_name="MwSt", country="de", percent="19.0000")
        ca = await taxes.create_rate(
            display_name="Sales tax", country="US", region="US-CA", percent="7.25", tax_type="sales_tax"
        )
        await taxes.create_rate(display_name="Old", country="US", region="CA", percent="6", active=False)
        customers = CustomerService(CustomerRepository(session), clock)
        irish = await customers.create(
            name="Irish B2B", country="IE", tax_ids=[{"type": "eu_vat", "value": "IE6388047V"}]
        )
        german_b2b = await customers.create(
            name="DE B2B", country="DE", tax_ids=[{"type": "eu_vat", "value": "DE136695976"}]
        )
        german_b2c = await customers.create(name="DE B2C", country="DE")
        californian = await customers.create(name="CA", country="US", address={"region": "CA"})
        texan = await customers.create(name="TX", country="US", address={"region": "TX"})
        exempt = await customers.create(name="Charity", country="IE", tax_exempt="exempt")
        japanese = await customers.create(name="JP", country="JP")

        assert de.percent == "19" and ca.region == "CA"
        decision = await taxes.decide_for(irish, IE)
        assert decision.rate is not None and decision.rate.id == ie.id and decision.percent == Decimal(23)
        assert await taxes.decide_for(german_b2b, IE) == TaxDecision(None, True, REVERSE_CHARGE_MENTION)
        b2c = await taxes.decide_for(german_b2c, IE)
        assert b2c.rate is not None and b2c.rate.id == de.id
        assert b2c.tax_line(10000).tax == 1900
        cal = await taxes.decide_for(californian, IE)
        assert cal.rate is not None and cal.rate.id == ca.id and cal.rate.label == "Sales tax 7.25% (US-CA)"
        assert cal.tax_line(3548).tax == 257  # 3548 × 0.0725 = 257.23
        assert await taxes.decide_for(texan, IE) == TaxDecision(None)
        assert await taxes.decide_for(exempt, IE) == TaxDecision(None, False, TAX_EXEMPT_MENTION)
        assert await taxes.decide_for(japanese, IE) == TaxDecision(None)
        # A TaxParty works as well as a row.
        direct = await taxes.decide_for(TaxParty("DE"), IE)
        assert direct.rate is not None and direct.rate.id == de.id


async def test_rate_lifecycle_and_refusals(db: Database, clock: FrozenClock) -> None:
    async with db.unit_of_work() as session:
        taxes = TaxService(session, clock)
        row = await taxes.create_rate(display_name="VAT", country="FR", percent="20")
        for bad in (
            {"country": "France", "percent": "20"},
            {"country": "FR", "percent": "100"},
            {"country": "FR", "percent": "19.12345"},
            {"country": "FR", "percent": "-1"},
            {"country": "FR", "percent": "20", "region": "Île"},
            {"country": "FR", "percent": "20", "tax_type": "tithe"},
        ):
            with pytest.raises(ValidationFailed):
                await taxes.create_rate(display_name="x", **bad)  # type: ignore[arg-type]
        with pytest.raises(TaxRateImmutable):
            await taxes.update_rate(row.id, {"percent": "21"})
        updated = await taxes.update_rate(row.id, {"display_name": "TVA", "active": False})
        assert (updated.display_name, updated.active, updated.percent) == ("TVA", False, "20")
        assert await taxes.rates_for("FR") == []
        with pytest.raises(TaxRateNotFound):
            await taxes.get_rate("txr_missing")


def test_customer_row_satisfies_the_protocol() -> None:
    row = Customer(id="cus_x", name="n", country="AT", address_region=None, tax_exempt="reverse", tax_ids=[])
    assert tax_party(row) == TaxParty("AT", None, TaxExempt.REVERSE, False)
