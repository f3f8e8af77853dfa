"""Tax rules (billing rules 20 and 22): which rate applies, reverse charge, and per-line tax rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.eu import vat as stdnum_vat

from gateway.kernel.money import Money, round_minor
from gateway.taxes.domain import (
    EU_MEMBER_STATES,
    REVERSE_CHARGE_MENTION,
    REVERSE_CHARGE_MENTION_NON_EU,
    TAX_EXEMPT_MENTION,
    InvalidTaxRate,
    Issuer,
    LineTax,
    Rate,
    TaxDecision,
    TaxExempt,
    TaxParty,
    breakdown,
    decide,
    format_percent,
    line_tax,
    normalize_region,
    parse_percent,
)
from gateway.taxes.vat import compact_vat, eu_vat_country

IE = Issuer("IE", "IE6388047V")


def rate(
    id_: str, country: str, percent: str, *, region: str | None = None, inclusive: bool = False, active=True
) -> Rate:
    return Rate(id_, "VAT", country, region, Decimal(percent), inclusive, "vat", active)


IE_VAT = rate("txr_01", "IE", "23")
DE_VAT = rate("txr_02", "DE", "19")
US_CA = rate("txr_03", "US", "7.25", region="CA")
US_NY = rate("txr_04", "US", "8.875", region="NY")
US_ANY = rate("txr_05", "US", "5")
RATES = [IE_VAT, DE_VAT, US_CA, US_NY, US_ANY]


# -- the worked numbers --------------------------------------------------------------------------
def test_exclusive_19_percent_on_100_euros() -> None:
    assert line_tax(10000, Decimal("19"), inclusive=False) == LineTax(net=10000, tax=1900, total=11900)


def test_inclusive_19_percent_in_119_euros() -> None:
    assert line_tax(11900, Decimal("19"), inclusive=True) == LineTax(net=10000, tax=1900, total=11900)


def test_35_48_dollars_at_8_875_percent() -> None:
    # 3548 × 0.08875 = 314.885 cents → half-up → 315.
    assert Decimal(3548) * Decimal("8.875") / 100 == Decimal("314.885")
    assert line_tax(3548, Decimal("8.875"), inclusive=False) == LineTax(3548, 315, 3863)


def test_inclusive_rounds_once_per_line() -> None:
    # 1000 × 19 / 119 = 159.6638… → 160; net 840 (rounding the net first would give the same here, but
    # only one value is ever rounded).
    assert line_tax(1000, Decimal("19"), inclusive=True) == LineTax(840, 160, 1000)


def test_negative_lines_mirror_positive_ones() -> None:
    assert line_tax(-3548, Decimal("8.875"), inclusive=False) == LineTax(-3548, -315, -3863)
    assert line_tax(-11900, Decimal("19"), inclusive=True) == LineTax(-10000, -1900, -11900)


def test_zero_percent_and_zero_amount() -> None:
    assert line_tax(12345, Decimal("0"), inclusive=False) == LineTax(12345, 0, 12345)
    assert line_tax(0, Decimal("19"), inclusive=True) == LineTax(0, 0, 0)


def test_jpy_tax_is_whole_yen() -> None:
    price = Money.from_decimal("1234", "JPY")
    assert price.amount == 1234
    assert line_tax(price.amount, Decimal("10"), inclusive=False) == LineTax(1234, 123, 1357)
    assert line_tax(price.amount, Decimal("10"), inclusive=True) == LineTax(1122, 112, 1234)


def test_line_tax_refuses_floats() -> None:
    with pytest.raises(TypeError):
        line_tax(100, 19.0, inclusive=False)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        line_tax(1.5, Decimal(19), inclusive=False)  # type: ignore[arg-type]


# -- properties ----------------------------------------------------------------------------------
percents = st.decimals(min_value=0, max_value=Decimal("99.9999"), places=4, allow_nan=False)
amounts = st.integers(min_value=-(10**12), max_value=10**12)


@given(amounts, percents)
def test_inclusive_net_plus_tax_is_exactly_the_amount(amount: int, percent: Decimal) -> None:
    split = line_tax(amount, percent, inclusive=True)
    assert split.net + split.tax == split.total == amount
    assert abs(split.tax) <= abs(amount)


@given(st.integers(min_value=0, max_value=10**12), percents)
def test_exclusive_tax_is_never_negative_and_rounds_once(amount: int, percent: Decimal) -> None:
    split = line_tax(amount, percent, inclusive=False)
    assert split.tax >= 0
    assert split.net == amount and split.total == amount + split.tax
    exact = Decimal(amount) * percent / 100
    assert abs(Decimal(split.tax) - exact) <= Decimal("0.5")


@given(st.integers(min_value=0, max_value=10**9), percents)
def test_inclusive_tax_is_the_exact_share_rounded_once(amount: int, percent: Decimal) -> None:
    split = line_tax(amount, percent, inclusive=True)
    exact = Decimal(amount) - Decimal(amount) / (1 + percent / 100)
    assert abs(Decimal(split.tax) - exact) <= Decimal("0.5")
    assert split.tax == round_minor(exact)


@given(st.integers(min_value=0, max_value=10**9), percents, st.booleans())
def test_jpy_amounts_stay_whole_yen(yen: int, percent: Decimal, inclusive: bool) -> None:
    split = line_tax(Money(yen, "JPY").amount, percent, inclusive=inclusive)
    for part in (split.net, split.tax, split.total):
        assert isinstance(part, int)
        Money(part, "JPY")  # whole minor units, or Money refuses it


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=40), percents, st.booleans())
def test_sum_of_line_taxes_is_within_half_a_unit_per_line_of_the_tax_of_the_sum(
    lines: list[int], percent: Decimal, inclusive: bool
) -> None:
    per_line = sum(line_tax(a, percent, inclusive=inclusive).tax for a in lines)
    of_sum = line_tax(sum(lines), percent, inclusive=inclusive).tax
    assert abs(per_line - of_sum) <= Decimal(len(lines)) / 2


@given(st.integers(min_value=0, max_value=10**9), percents)
def test_higher_rate_never_taxes_less(amount: int, percent: Decimal) -> None:
    higher = min(percent + Decimal("0.5"), Decimal("99.9999"))
    assert line_tax(amount, higher, inclusive=False).tax >= line_tax(amount, percent, inclusive=False).tax


@given(st.integers(min_value=0, max_value=10**6), percents)
def test_inclusive_then_exclusive_round_trip_is_within_a_unit(amount: int, percent: Decimal) -> None:
    # Taxing the inclusive net exclusively gives back the gross to within one minor unit.
    inclusive = line_tax(amount, percent, inclusive=True)
    exclusive = line_tax(inclusive.net, percent, inclusive=False)
    assert abs(exclusive.total - amount) <= 1


# -- percent parsing -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [("19", "19"), ("8.875", "8.875"), ("0", "0"), ("20.0000", "20"), ("99.9999", "99.9999")],
)
def test_percent_parsing(raw: str, expected: str) -> None:
    assert format_percent(parse_percent(raw)) == expected


@pytest.mark.parametrize("raw", ["100", "-1", "12.34567", "abc", "NaN", "Infinity", "1e400", ""])
def test_bad_percents_are_refused(raw: str) -> None:
    with pytest.raises(InvalidTaxRate):
        parse_percent(raw)


def test_region_normalisation() -> None:
    assert normalize_region("US-CA", "US") == "CA"
    assert normalize_region("qc", "CA") == "QC"
    assert normalize_region("  ", "US") is None
    with pytest.raises(InvalidTaxRate):
        normalize_region("California", "US")


# -- decisions -----------------------------------------------------------------------------------
def test_domestic_consumer_pays_the_country_rate() -> None:
    assert decide(IE, TaxParty("IE"), RATES) == TaxDecision(IE_VAT, False, None)


def test_same_country_business_pays_normal_vat() -> None:
    assert decide(IE, TaxParty("IE", has_valid_eu_vat_id=True), RATES) == TaxDecision(IE_VAT)


def test_eu_b2b_in_another_member_state_is_reverse_charged() -> None:
    decision = decide(IE, TaxParty("DE", has_valid_eu_vat_id=True), RATES)
    assert decision == TaxDecision(None, True, REVERSE_CHARGE_MENTION)
    assert decision.percent == Decimal(0)
    assert decision.tax_line(10000) == LineTax(10000, 0, 10000)
    assert "Article 196" in REVERSE_CHARGE_MENTION and "2006/112/EC" in REVERSE_CHARGE_MENTION


def test_eu_consumer_in_another_member_state_pays_its_own_rate() -> None:
    decision = decide(IE, TaxParty("DE"), RATES)
    assert decision.rate == DE_VAT and not decision.reverse_charge
    assert decision.tax_line(10000) == LineTax(10000, 1900, 11900)


def test_greece_is_gr_as_a_country() -> None:
    gr = rate("txr_06", "GR", "24")
    assert decide(IE, TaxParty("GR"), [gr]).rate == gr
    assert decide(IE, TaxParty("GR", has_valid_eu_vat_id=True), [gr]).reverse_charge


def test_non_eu_issuer_never_applies_eu_reverse_charge() -> None:
    us_issuer = Issuer("US", None)
    assert decide(us_issuer, TaxParty("DE", has_valid_eu_vat_id=True), RATES).rate == DE_VAT


def test_customer_outside_the_eu_is_not_reverse_charged_by_vat_id() -> None:
    assert decide(IE, TaxParty("US", "CA", has_valid_eu_vat_id=True), RATES).rate == US_CA


def test_tax_exempt_customer_pays_nothing() -> None:
    decision = decide(IE, TaxParty("IE", tax_exempt=TaxExempt.EXEMPT), RATES)
    assert decision == TaxDecision(None, False, TAX_EXEMPT_MENTION)
    assert decision.tax_line(5000) == LineTax(5000, 0, 5000)


def test_reverse_flag_forces_reverse_charge() -> None:
    assert decide(IE, TaxParty("IE", tax_exempt=TaxExempt.REVERSE), RATES) == TaxDecision(
        None, True, REVERSE_CHARGE_MENTION
    )
    assert decide(Issuer("US"), TaxParty("US", tax_exempt=TaxExempt.REVERSE), RATES) == TaxDecision(
        None, True, REVERSE_CHARGE_MENTION_NON_EU
    )


def test_region_rate_beats_the_country_rate() -> None:
    assert decide(IE, TaxParty("US", "CA"), RATES).rate == US_CA
    assert decide(IE, TaxParty("US", "NY"), RATES).rate == US_NY
    assert decide(IE, TaxParty("US", "TX"), RATES).rate == US_ANY
    assert decide(IE, TaxParty("US"), RATES).rate == US_ANY


def test_an_inactive_region_rate_falls_back_to_the_country_rate() -> None:
    retired = rate("txr_07", "US", "9", region="TX", active=False)
    assert decide(IE, TaxParty("US", "TX"), [retired, US_ANY]).rate == US_ANY


def test_newest_of_equal_rates_wins() -> None:
    old, new = rate("txr_01AAA", "DE", "16"), rate("txr_01BBB", "DE", "19")
    assert decide(IE, TaxParty("DE"), [new, old]).rate == new


def test_no_rate_configured_means_no_tax() -> None:
    assert decide(IE, TaxParty("JP"), RATES) == TaxDecision(None, False, None)
    assert decide(IE, TaxParty(None), RATES) == TaxDecision(None, False, None)
    assert decide(IE, TaxParty("US", "CA"), [US_NY]).rate is None


def test_rate_label() -> None:
    assert DE_VAT.label == "VAT 19%"
    assert US_NY.label == "VAT 8.875% (US-NY)"


def test_breakdown_sums_rounded_lines_per_rate() -> None:
    lines = [
        (DE_VAT, line_tax(1001, DE_VAT.percent, inclusive=False)),
        (None, LineTax(500, 0, 500)),
        (DE_VAT, line_tax(1001, DE_VAT.percent, inclusive=False)),
        (US_NY, line_tax(3548, US_NY.percent, inclusive=False)),
    ]
    subtotals = breakdown(lines)
    assert [(s.rate.id, s.net, s.tax) for s in subtotals] == [("txr_02", 2002, 380), ("txr_04", 3548, 315)]


# -- VAT ids -------------------------------------------------------------------------------------
def test_member_states_are_the_eu_27() -> None:
    assert len(EU_MEMBER_STATES) == 27
    assert "GR" in EU_MEMBER_STATES and "EL" not in EU_MEMBER_STATES and "GB" not in EU_MEMBER_STATES
    # stdnum's list uses VAT prefixes ("gr" for EL numbers) and adds Northern Ireland's XI.
    assert {c.upper() for c in stdnum_vat.MEMBER_STATES} - {"XI"} == EU_MEMBER_STATES


@pytest.mark.parametrize(
    ("value", "country"),
    [
        ("IE6388047V", "IE"),
        ("DE 136 695 976", "DE"),
        ("el094014201", "GR"),
        ("GR094014201", "GR"),
        ("FR40303265045", "FR"),
        ("ATU13585627", "AT"),
        ("DE136695977", None),  # bad check digit
        ("XX123", None),
        ("GB980780684", None),  # not a member state any more
    ],
)
def test_eu_vat_country(value: str, country: str | None) -> None:
    assert eu_vat_country(value) == country


def test_vat_compact_form_uses_el_for_greece() -> None:
    assert compact_vat("gr 094 014 201") == "EL094014201"
    assert compact_vat("de136.695.976") == "DE136695976"


def test_the_default_issuer_vat_id_is_valid() -> None:
    from gateway.config import Settings

    settings = Settings()
    assert eu_vat_country(settings.issuer_vat_id) == settings.issuer_country == "IE"
