from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.kernel.money import CurrencyMismatch, Money, UnknownCurrency, exponent, sum_money

CURRENCIES = st.sampled_from(["USD", "EUR", "JPY", "KWD", "CLF", "GBP"])


def test_exponents() -> None:
    assert (exponent("JPY"), exponent("USD"), exponent("KWD"), exponent("CLF")) == (0, 2, 3, 4)


def test_unknown_currency_and_non_int_amounts_are_refused() -> None:
    with pytest.raises(UnknownCurrency):
        Money(1, "XXX")
    with pytest.raises(TypeError):
        Money(1.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, "USD")


def test_mixed_currencies_refuse_arithmetic_and_comparison() -> None:
    with pytest.raises(CurrencyMismatch):
        Money(1, "USD") + Money(1, "EUR")
    with pytest.raises(CurrencyMismatch):
        _ = Money(1, "USD") < Money(1, "EUR")


def test_rounding_is_half_up_once() -> None:
    assert Money.from_decimal("12.345", "USD").amount == 1235
    assert Money.from_decimal("12.344", "USD").amount == 1234
    assert Money.from_decimal("-0.005", "USD").amount == -1  # half away from zero
    assert Money.from_decimal("100.5", "JPY").amount == 101
    assert Money.from_decimal("1.2345", "KWD").amount == 1235
    assert Money(1000, "USD").scale(Decimal(2) / Decimal(3)).amount == 667


def test_format() -> None:
    assert Money(1235, "usd").format() == "12.35 USD"
    assert Money(1200, "JPY").format() == "1200 JPY"
    assert Money(1, "KWD").format() == "0.001 KWD"


@given(
    amount=st.integers(-(10**12), 10**12),
    ratios=st.lists(st.integers(0, 1000), min_size=1, max_size=12),
    currency=CURRENCIES,
)
def test_allocation_never_loses_a_minor_unit(amount: int, ratios: list[int], currency: str) -> None:
    if sum(ratios) == 0:
        ratios = [*ratios[:-1], 1]
    parts = Money(amount, currency).allocate(ratios)
    assert sum_money(parts, currency) == Money(amount, currency)
    total = sum(ratios)
    for part, ratio in zip(parts, ratios, strict=True):
        # each part is within one minor unit of its exact share
        assert abs(Decimal(part.amount) - Decimal(amount) * ratio / total) < 1


@given(a=st.integers(-(10**9), 10**9), b=st.integers(-(10**9), 10**9), currency=CURRENCIES)
def test_addition_is_exact_and_commutative(a: int, b: int, currency: str) -> None:
    assert (Money(a, currency) + Money(b, currency)).amount == a + b
    assert Money(a, currency) + Money(b, currency) == Money(b, currency) + Money(a, currency)
    assert Money(a, currency) - Money(b, currency) == -(Money(b, currency) - Money(a, currency))


@given(major=st.decimals(min_value=-(10**6), max_value=10**6, places=6, allow_nan=False), currency=CURRENCIES)
def test_from_decimal_always_yields_whole_minor_units_within_half_a_unit(
    major: Decimal, currency: str
) -> None:
    money = Money.from_decimal(major, currency)
    assert isinstance(money.amount, int)
    assert abs(money.to_decimal() - major) <= Decimal(1).scaleb(-exponent(currency)) / 2
