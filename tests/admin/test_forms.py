"""The console's form readers: whatever is typed, an amount is either exact minor units or a refusal
naming the field (never an exception that becomes a 500)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.admin.forms import end_of_day, minor_units, whole
from gateway.kernel.errors import ValidationFailed


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("5", "USD", 500),
        ("5.00", "usd", 500),
        ("79,5", "EUR", 7950),
        ("500", "JPY", 500),
        ("1.234", "KWD", 1234),
    ],
)
def test_amounts_in_major_units_become_exact_minor_units(text: str, currency: str, minor: int) -> None:
    assert minor_units(text, currency, "amount") == minor


@pytest.mark.parametrize(
    ("text", "currency", "field"),
    [
        ("5.001", "USD", "amount"),
        ("0", "USD", "amount"),
        ("-3", "USD", "amount"),
        ("1.5", "JPY", "amount"),
        ("five", "USD", "amount"),
        ("NaN", "USD", "amount"),
        ("sNaN", "USD", "amount"),
        ("Infinity", "USD", "amount"),
        ("5", "XXY", "currency"),
    ],
)
def test_a_bad_amount_or_currency_is_refused_naming_the_field(text: str, currency: str, field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        minor_units(text, currency, "amount")
    assert refused.value.extra["field"] == field


@given(st.text(max_size=30), st.sampled_from(["USD", "EUR", "JPY", "KWD", "ZZZ", ""]))
def test_any_text_is_exact_minor_units_or_a_refusal(text: str, currency: str) -> None:
    try:
        minor = minor_units(text, currency, "amount")
    except ValidationFailed:
        return
    digits = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}[currency]
    assert minor > 0
    assert Decimal(minor) == Decimal(text.replace(",", ".")).scaleb(digits)


def test_counts_and_days() -> None:
    assert (whole("", "max"), whole("3", "max")) == (None, 3)
    for bad in ("0", "-1", "1.5", "x"):
        with pytest.raises(ValidationFailed):
            whole(bad, "max")
    day = end_of_day("2026-12-31", "expires")
    assert day is not None and day.isoformat() == "2026-12-31T23:59:59+00:00"
    with pytest.raises(ValidationFailed):
        end_of_day("31-12-2026", "expires")
