"""Proration (billing-rules.md rules 9-13). Amounts in USD cents; April 2025 has 30 days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.billing.proration import (
    LineKind,
    ProrationBehavior,
    ProrationLine,
    ProrationMode,
    interval_change_lines,
    plan_change_lines,
    price_change_lines,
    prorate,
    seat_change_lines,
)
from gateway.catalog.domain import parse_price_terms
from gateway.kernel.clock import NaiveDatetime
from gateway.kernel.money import CurrencyMismatch, Money
from gateway.kernel.periods import Interval

APRIL = (datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 5, 1, tzinfo=UTC))
HALFWAY = datetime(2025, 4, 16, tzinfo=UTC)
AFTER_10_DAYS = datetime(2025, 4, 11, tzinfo=UTC)


def usd(cents: int) -> Money:
    return Money(cents, "USD")


def amounts(lines: list[ProrationLine]) -> list[int]:
    return [line.amount.amount for line in lines]


# -- worked numbers (rule 10) ------------------------------------------------------------------


def test_halfway_upgrade_itemized_credits_5_and_charges_10() -> None:
    lines = plan_change_lines(usd(1_000), usd(2_000), *APRIL, HALFWAY, mode=ProrationMode.ITEMIZED)

    assert [(line.kind, line.amount.amount) for line in lines] == [
        (LineKind.CREDIT, -500),
        (LineKind.CHARGE, 1_000),
    ]
    assert lines[0].description.startswith("Unused time on")
    assert lines[1].description.startswith("Remaining time on")
    assert all((line.period_start, line.period_end) == (HALFWAY, APRIL[1]) for line in lines)


def test_halfway_upgrade_net_is_plus_5() -> None:
    (line,) = plan_change_lines(usd(1_000), usd(2_000), *APRIL, HALFWAY)

    assert (line.kind, line.amount) == (LineKind.NET, usd(500))


def test_after_10_of_30_days_the_default_net_line_is_plus_6_67() -> None:
    # 1000 * 20/30 = 666.67 -> 667, rounded once. This is the rule's number and the reason NET is the default.
    (line,) = plan_change_lines(usd(1_000), usd(2_000), *APRIL, AFTER_10_DAYS)

    assert line.amount == usd(667)


def test_after_10_of_30_days_itemized_lines_each_round_once_and_net_one_cent_lower() -> None:
    # -666.67 -> -667 and 1333.33 -> 1333: each line rounded on its own (rule 20) sums to 666, not 667.
    lines = plan_change_lines(usd(1_000), usd(2_000), *APRIL, AFTER_10_DAYS, mode=ProrationMode.ITEMIZED)

    assert amounts(lines) == [-667, 1_333]


def test_prorate_uses_the_actual_period_length() -> None:
    # One day left is 1/28 of February but 1/31 of March.
    feb = (datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC))
    mar = (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC))

    assert prorate(usd(2_800), *feb, datetime(2025, 2, 28, tzinfo=UTC)) == usd(100)
    assert prorate(usd(3_100), *mar, datetime(2025, 3, 31, tzinfo=UTC)) == usd(100)


def test_prorate_counts_seconds() -> None:
    seconds_in_april = 30 * 24 * 3600

    assert prorate(usd(seconds_in_april), *APRIL, APRIL[1] - timedelta(seconds=1)) == usd(1)
    assert prorate(usd(seconds_in_april), *APRIL, APRIL[1] - timedelta(seconds=1, microseconds=1)) == usd(1)


def test_prorate_bounds() -> None:
    assert prorate(usd(1_000), *APRIL, APRIL[0]) == usd(1_000)
    assert prorate(usd(1_000), *APRIL, APRIL[1]) == usd(0)


def test_prorate_refuses_a_change_outside_the_period_and_naive_datetimes() -> None:
    with pytest.raises(ValueError):
        prorate(usd(1_000), *APRIL, datetime(2025, 5, 2, tzinfo=UTC))
    with pytest.raises(ValueError):
        prorate(usd(1_000), APRIL[1], APRIL[0], HALFWAY)
    with pytest.raises(NaiveDatetime):
        prorate(usd(1_000), *APRIL, datetime(2025, 4, 16))  # noqa: DTZ001 - the point of the test


def test_jpy_proration_is_whole_yen() -> None:
    assert prorate(Money(1_000, "JPY"), *APRIL, AFTER_10_DAYS) == Money(667, "JPY")


def test_change_at_period_end_creates_no_lines() -> None:
    assert plan_change_lines(usd(1_000), usd(2_000), *APRIL, APRIL[1], mode=ProrationMode.ITEMIZED) == []


def test_mixed_currencies_are_refused() -> None:
    with pytest.raises(CurrencyMismatch):
        plan_change_lines(usd(1_000), Money(2_000, "EUR"), *APRIL, HALFWAY, mode=ProrationMode.ITEMIZED)


# -- seats and price changes (rules 9, 12) ------------------------------------------------------

SEAT = parse_price_terms(model="per_seat", interval="month", currency_options={"USD": {"unit_amount": 1_000}})
FLAT_30 = parse_price_terms(model="flat", interval="month", currency_options={"USD": {"unit_amount": 3_000}})


def test_seat_increase_halfway_prorates_like_a_plan_change() -> None:
    itemized = seat_change_lines(SEAT, "USD", 5, 8, *APRIL, HALFWAY, mode=ProrationMode.ITEMIZED)

    assert amounts(itemized) == [-2_500, 4_000]
    assert "5 seats" in itemized[0].description and "8 seats" in itemized[1].description
    assert amounts(seat_change_lines(SEAT, "USD", 5, 8, *APRIL, HALFWAY)) == [1_500]


def test_seat_price_to_flat_price_still_credits_every_unused_seat() -> None:
    lines = price_change_lines(SEAT, 5, FLAT_30, 1, "USD", *APRIL, HALFWAY, mode=ProrationMode.ITEMIZED)

    assert amounts(lines) == [-2_500, 1_500]
    assert amounts(price_change_lines(SEAT, 5, FLAT_30, 1, "USD", *APRIL, HALFWAY)) == [-1_000]


# -- interval change (rule 13) ------------------------------------------------------------------


def test_monthly_to_yearly_credits_unused_month_and_charges_a_full_year_from_the_change() -> None:
    lines = interval_change_lines(usd(1_000), usd(10_000), *APRIL, HALFWAY, Interval.YEAR)

    credit, charge = lines
    assert (credit.kind, credit.amount, credit.period_end) == (LineKind.CREDIT, usd(-500), APRIL[1])
    assert (charge.kind, charge.amount) == (LineKind.FULL_PERIOD, usd(10_000))
    assert (charge.period_start, charge.period_end) == (HALFWAY, datetime(2026, 4, 16, tzinfo=UTC))


def test_proration_behaviour_names_match_the_api() -> None:
    assert [b.value for b in ProrationBehavior] == ["create_prorations", "always_invoice", "none"]


# -- properties ---------------------------------------------------------------------------------

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
period_starts = st.integers(0, 10 * 365 * 24 * 3600).map(lambda s: EPOCH + timedelta(seconds=s))
period_amounts = st.integers(0, 10**9)


@st.composite
def changes(draw: st.DrawFn) -> tuple[datetime, datetime, datetime]:
    start = draw(period_starts)
    length = draw(st.integers(1, 366 * 24 * 3600))
    elapsed = draw(st.integers(0, length))
    return start, start + timedelta(seconds=length), start + timedelta(seconds=elapsed)


@given(changes(), period_amounts)
def test_a_no_op_change_nets_to_exactly_zero(
    change: tuple[datetime, datetime, datetime], amount: int
) -> None:
    assert plan_change_lines(usd(amount), usd(amount), *change) == []
    itemized = plan_change_lines(usd(amount), usd(amount), *change, mode=ProrationMode.ITEMIZED)
    assert sum(amounts(itemized)) == 0


@given(changes(), period_amounts, period_amounts)
def test_itemized_lines_net_within_one_minor_unit_of_the_net_line(
    change: tuple[datetime, datetime, datetime], old: int, new: int
) -> None:
    net = sum(amounts(plan_change_lines(usd(old), usd(new), *change)))
    itemized = sum(amounts(plan_change_lines(usd(old), usd(new), *change, mode=ProrationMode.ITEMIZED)))

    assert abs(net - itemized) <= 1


@given(changes(), period_amounts)
def test_prorated_amount_is_between_zero_and_the_full_amount(
    change: tuple[datetime, datetime, datetime], amount: int
) -> None:
    start, end, at = change
    prorated = prorate(usd(amount), start, end, at)

    assert type(prorated.amount) is int
    assert 0 <= prorated.amount <= amount
    assert prorate(usd(amount), start, end, start) == usd(amount)


def test_price_change_across_intervals_is_refused_in_favour_of_interval_change_lines() -> None:
    yearly = parse_price_terms(
        model="flat", interval="year", currency_options={"USD": {"unit_amount": 30_000}}
    )

    with pytest.raises(ValueError):
        price_change_lines(FLAT_30, 1, yearly, 1, "USD", *APRIL, HALFWAY)
