"""Rating (billing-rules.md rules 5-9). Amounts are in the currency's minor units (USD cents).

The volume/graduated table of rule 6 is not printed in the rules, only its results. This table is the
simplest one consistent with all three published numbers:

    tier  units          per unit            flat
    1     1 - 5,000      $0.10  (10 cents)   -
    2     5,001 - 50,000 $0.01  (1 cent)     -
    3     50,001 +       $0.0006 (0.06 c)    $10 (1000 cents)

    volume 65,000     = 65,000 * 0.06 + 1000       =  4,900 cents  ($49.00)
    volume 15,000     = 15,000 * 1                 = 15,000 cents  ($150)
    graduated 15,000  = 5,000 * 10 + 10,000 * 1    = 60,000 cents  ($600)
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.billing.rating import rate
from gateway.catalog.domain import (
    CurrencyAmounts,
    PackageRounding,
    PriceTerms,
    PricingModel,
    Tier,
    UsageType,
    parse_price_terms,
)
from gateway.kernel.money import Money, round_minor
from gateway.kernel.periods import Interval

RULE_5_TIERS = [
    {"up_to": 100, "unit_amount": 100},
    {"up_to": 200, "unit_amount": 50},
    {"up_to": None, "unit_amount": 10},
]
RULE_6_TIERS = [
    {"up_to": 5_000, "unit_amount": "10"},
    {"up_to": 50_000, "unit_amount": "1"},
    {"up_to": None, "unit_amount": "0.06", "flat_amount": 1_000},
]


def tiered(model: str, tiers: list[Any], currency: str = "USD") -> PriceTerms:
    return parse_price_terms(model=model, interval="month", currency_options={currency: {"tiers": tiers}})


def simple(model: str, unit_amount: object, currency: str = "USD", **extra: Any) -> PriceTerms:
    if model == "usage":
        extra.setdefault("metered_feature", "api_calls")
    return parse_price_terms(
        model=model, interval="month", currency_options={currency: {"unit_amount": unit_amount}}, **extra
    )


# -- worked numbers ----------------------------------------------------------------------------


def test_graduated_rule_5_prices_each_unit_at_its_own_tier() -> None:
    rated = rate(tiered("graduated", RULE_5_TIERS), "USD", 250)

    assert rated.money == Money(15_500, "USD")
    assert [(t.index, t.first_unit, t.last_unit, t.units) for t in rated.tiers] == [
        (0, 1, 100, 100),
        (1, 101, 200, 100),
        (2, 201, 250, 50),
    ]
    assert [t.subtotal for t in rated.tiers] == [10_000, 5_000, 500]


def test_graduated_tier_bound_is_inclusive() -> None:
    terms = tiered("graduated", RULE_5_TIERS)

    assert rate(terms, "USD", 100).money.amount == 10_000
    assert rate(terms, "USD", 101).money.amount == 10_050


def test_volume_rule_6_all_units_at_the_tier_reached_plus_its_flat_fee() -> None:
    rated = rate(tiered("volume", RULE_6_TIERS), "USD", 65_000)

    assert rated.money == Money(4_900, "USD")
    assert rated.subtotal == Decimal("4900.00")
    (tier,) = rated.tiers
    assert (tier.index, tier.units, tier.unit_amount, tier.flat_amount) == (2, 65_000, Decimal("0.06"), 1_000)


def test_rule_6_same_tiers_15000_units_graduated_600_volume_150() -> None:
    assert rate(tiered("graduated", RULE_6_TIERS), "USD", 15_000).money == Money(60_000, "USD")
    assert rate(tiered("volume", RULE_6_TIERS), "USD", 15_000).money == Money(15_000, "USD")


def test_graduated_adds_a_tier_flat_fee_once_the_tier_is_reached() -> None:
    terms = tiered(
        "graduated",
        [
            {"up_to": 10, "unit_amount": 100, "flat_amount": 500},
            {"up_to": None, "unit_amount": 50, "flat_amount": 200},
        ],
    )

    assert rate(terms, "USD", 10).money.amount == 500 + 1_000
    assert rate(terms, "USD", 11).money.amount == 500 + 1_000 + 200 + 50


def test_tiered_prices_bill_nothing_without_units() -> None:
    flat_fee_tiers = [
        {"up_to": 10, "unit_amount": 100, "flat_amount": 500},
        {"up_to": None, "unit_amount": 50},
    ]

    for model in ("graduated", "volume"):
        rated = rate(tiered(model, flat_fee_tiers), "USD", 0)
        assert rated.money == Money(0, "USD")
        assert rated.tiers == ()


def test_package_rule_8_rounds_up_by_default_and_down_when_asked() -> None:
    up = simple("package", 500, package_size=1_000)
    down = simple("package", 500, package_size=1_000, package_rounding="down")

    assert rate(up, "USD", 2_001).money == Money(1_500, "USD")
    assert rate(up, "USD", 2_001).packages == 3
    assert rate(down, "USD", 2_001).money == Money(1_000, "USD")
    assert rate(simple("package", 100, package_size=1_000), "USD", 4_500).money == Money(500, "USD")


def test_flat_ignores_quantity() -> None:
    terms = simple("flat", 5_000)

    assert rate(terms, "USD", 1).money == rate(terms, "USD", 7).money == Money(5_000, "USD")


def test_per_seat_multiplies_unit_by_quantity() -> None:
    assert rate(simple("per_seat", 1_000), "USD", 5).money == Money(5_000, "USD")


def test_usage_sub_cent_unit_is_rounded_once_for_the_line_not_per_unit() -> None:
    # $0.0006 per call: rounding each call would bill 1 cent per call (or nothing at all).
    rated = rate(simple("usage", "0.06"), "USD", 1_234)

    assert rated.subtotal == Decimal("74.04")
    assert rated.money == Money(74, "USD")


def test_line_rounds_half_up() -> None:
    assert rate(simple("usage", "0.5"), "USD", 3).money.amount == 2


def test_jpy_never_produces_fractions_of_a_yen() -> None:
    rated = rate(simple("usage", "0.5", currency="JPY"), "JPY", 3)

    assert rated.money == Money(2, "JPY")
    assert rated.money.format() == "2 JPY"


def test_kwd_amounts_are_in_fils() -> None:
    rated = rate(simple("usage", "1.5", currency="KWD"), "KWD", 3)

    assert rated.money == Money(5, "KWD")
    assert rated.money.format() == "0.005 KWD"


def test_currency_code_is_normalised() -> None:
    assert rate(simple("per_seat", 1_000), "usd", 2).money == Money(2_000, "USD")


def test_negative_quantity_is_refused() -> None:
    with pytest.raises(ValueError):
        rate(simple("per_seat", 1_000), "USD", -1)


def test_bounded_last_tier_built_by_hand_is_refused_rather_than_billing_free_units() -> None:
    terms = PriceTerms(
        model=PricingModel.GRADUATED,
        interval=Interval.MONTH,
        currency_options={"USD": CurrencyAmounts(tiers=(Tier(up_to=10, unit_amount=Decimal(1)),))},
    )

    assert rate(terms, "USD", 10).money.amount == 10
    with pytest.raises(ValueError):
        rate(terms, "USD", 11)


# -- properties --------------------------------------------------------------------------------

unit_amounts = st.decimals(min_value=0, max_value=100_000, places=4, allow_nan=False, allow_infinity=False)


@st.composite
def tier_tables(draw: st.DrawFn) -> tuple[Tier, ...]:
    bounds = sorted(draw(st.sets(st.integers(1, 100_000), max_size=4)))
    uppers: list[int | None] = [*bounds, None]
    return tuple(
        Tier(up_to=u, unit_amount=draw(unit_amounts), flat_amount=draw(st.integers(0, 100_000)))
        for u in uppers
    )


def terms_for(model: PricingModel, tiers: tuple[Tier, ...], currency: str = "USD") -> PriceTerms:
    return PriceTerms(
        model=model, interval=Interval.MONTH, currency_options={currency: CurrencyAmounts(tiers=tiers)}
    )


quantities = st.integers(0, 200_000)


@given(tier_tables(), quantities, quantities)
def test_graduated_never_decreases_as_quantity_grows(tiers: tuple[Tier, ...], a: int, b: int) -> None:
    low, high = sorted((a, b))
    terms = terms_for(PricingModel.GRADUATED, tiers)

    assert rate(terms, "USD", low).subtotal <= rate(terms, "USD", high).subtotal
    assert rate(terms, "USD", low).money <= rate(terms, "USD", high).money


@given(tier_tables(), quantities)
def test_graduated_equals_the_sum_of_rating_each_tier_slice(tiers: tuple[Tier, ...], quantity: int) -> None:
    expected = Decimal(0)
    lower = 0
    for tier in tiers:
        upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
        units = max(0, upper - lower)
        if units:
            slice_price = PriceTerms(
                model=PricingModel.PER_SEAT,
                interval=Interval.MONTH,
                currency_options={"USD": CurrencyAmounts(unit_amount=tier.unit_amount)},
            )
            expected += rate(slice_price, "USD", units).subtotal + tier.flat_amount
        lower = tier.up_to or lower

    rated = rate(terms_for(PricingModel.GRADUATED, tiers), "USD", quantity)

    assert rated.subtotal == expected
    assert sum(t.units for t in rated.tiers) == quantity


@given(tier_tables(), quantities)
def test_volume_bills_every_unit_in_one_tier(tiers: tuple[Tier, ...], quantity: int) -> None:
    rated = rate(terms_for(PricingModel.VOLUME, tiers), "USD", quantity)

    if quantity == 0:
        assert rated.tiers == ()
    else:
        (tier,) = rated.tiers
        assert tier.units == quantity
        assert rated.subtotal == tier.unit_amount * quantity + tier.flat_amount


@given(
    st.sampled_from(list(PricingModel)),
    tier_tables(),
    unit_amounts,
    st.integers(1, 5_000),
    st.sampled_from(["USD", "JPY", "KWD", "EUR", "BHD", "CLF"]),
    quantities,
)
def test_amounts_are_whole_minor_units_rounded_once(
    model: PricingModel,
    tiers: tuple[Tier, ...],
    unit: Decimal,
    package_size: int,
    currency: str,
    quantity: int,
) -> None:
    tiered_model = model in (PricingModel.GRADUATED, PricingModel.VOLUME)
    amounts = CurrencyAmounts(tiers=tiers) if tiered_model else CurrencyAmounts(unit_amount=unit)
    terms = PriceTerms(
        model=model,
        interval=Interval.MONTH,
        currency_options={currency: amounts},
        usage_type=UsageType.METERED if model is PricingModel.USAGE else UsageType.LICENSED,
        package_size=package_size if model is PricingModel.PACKAGE else None,
        package_rounding=PackageRounding.UP,
    )

    rated = rate(terms, currency, quantity)

    assert type(rated.money.amount) is int
    assert rated.money.currency == currency
    assert rated.money.amount == round_minor(rated.subtotal)
    assert abs(rated.money.amount - rated.subtotal) <= Decimal("0.5")
