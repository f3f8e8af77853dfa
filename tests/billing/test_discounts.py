"""Coupons (billing-rules.md rules 18-19). Amounts in USD cents."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.billing.discounts import Coupon, CouponDuration, applies_to_period, apply_discount
from gateway.kernel.money import CurrencyMismatch, Money
from gateway.kernel.periods import Interval, add_months

SIGNUP = datetime(2025, 1, 1, tzinfo=UTC)


def usd(cents: int) -> Money:
    return Money(cents, "USD")


def percent(value: str, duration: CouponDuration, months: int | None = None) -> Coupon:
    return Coupon(id="c", duration=duration, percent_off=Decimal(value), duration_in_months=months)


def amount_off(cents: int, duration: CouponDuration = CouponDuration.FOREVER) -> Coupon:
    return Coupon(id="c", duration=duration, amount_off=usd(cents))


def invoice_totals(
    coupon: Coupon, plan: Money, periods: int, interval: Interval = Interval.MONTH
) -> list[int]:
    totals = []
    for k in range(periods):
        period_start = add_months(SIGNUP, k * interval.months)
        if applies_to_period(coupon, SIGNUP, period_start, interval=interval):
            (line,) = apply_discount(coupon, [plan])
            totals.append(line.net.amount)
        else:
            totals.append(plan.amount)
    return totals


# -- duration (rule 18) --------------------------------------------------------------------------


def test_20_percent_for_3_months_on_50_dollars() -> None:
    coupon = percent("20", CouponDuration.REPEATING, months=3)

    assert invoice_totals(coupon, usd(5_000), 5) == [4_000, 4_000, 4_000, 5_000, 5_000]


def test_once_discounts_only_the_first_invoice() -> None:
    assert invoice_totals(percent("20", CouponDuration.ONCE), usd(5_000), 3) == [4_000, 5_000, 5_000]


def test_forever_discounts_every_invoice() -> None:
    assert invoice_totals(percent("20", CouponDuration.FOREVER), usd(5_000), 3) == [4_000] * 3


def test_once_redeemed_mid_quarter_applies_to_the_next_quarter_only() -> None:
    coupon = percent("10", CouponDuration.ONCE)
    redeemed = datetime(2025, 2, 15, tzinfo=UTC)

    assert not applies_to_period(
        coupon, redeemed, datetime(2025, 1, 1, tzinfo=UTC), interval=Interval.QUARTER
    )
    assert applies_to_period(coupon, redeemed, datetime(2025, 4, 1, tzinfo=UTC), interval=Interval.QUARTER)
    assert not applies_to_period(
        coupon, redeemed, datetime(2025, 7, 1, tzinfo=UTC), interval=Interval.QUARTER
    )


def test_coupons_are_not_retroactive() -> None:
    redeemed = datetime(2025, 3, 10, tzinfo=UTC)

    assert not applies_to_period(
        percent("20", CouponDuration.FOREVER), redeemed, datetime(2025, 3, 1, tzinfo=UTC)
    )


def test_repeating_months_count_from_redemption_with_month_end_clamping() -> None:
    coupon = percent("20", CouponDuration.REPEATING, months=1)
    redeemed = datetime(2025, 1, 31, tzinfo=UTC)

    assert applies_to_period(coupon, redeemed, datetime(2025, 2, 27, tzinfo=UTC))
    assert not applies_to_period(coupon, redeemed, datetime(2025, 2, 28, tzinfo=UTC))


# -- amounts (rule 19) ---------------------------------------------------------------------------


def test_fractional_percent_rounds_each_line_once_half_up() -> None:
    (line,) = apply_discount(percent("12.5", CouponDuration.FOREVER), [usd(999)])

    assert line.discount == usd(125)  # 124.875
    assert line.net == usd(874)


def test_percent_discounts_credit_lines_too() -> None:
    lines = apply_discount(percent("20", CouponDuration.FOREVER), [usd(2_000), usd(-500)])

    assert [line.net.amount for line in lines] == [1_600, -400]


def test_amount_off_is_allocated_proportionally_without_losing_a_cent() -> None:
    lines = apply_discount(amount_off(1_000), [usd(1_000), usd(1_000), usd(1_000)])

    assert [line.discount.amount for line in lines] == [334, 333, 333]


def test_amount_off_never_pushes_a_line_or_the_invoice_below_zero() -> None:
    (small,) = apply_discount(amount_off(1_000), [usd(400)])
    assert small.net == usd(0)

    with_credit = apply_discount(amount_off(1_000), [usd(1_000), usd(-800)])
    assert [line.discount.amount for line in with_credit] == [200, 0]
    assert sum(line.net.amount for line in with_credit) == 0


def test_amount_off_on_a_credit_only_invoice_takes_nothing() -> None:
    (line,) = apply_discount(amount_off(1_000), [usd(-500)])

    assert line.discount == usd(0)


def test_jpy_percent_off_is_whole_yen() -> None:
    (line,) = apply_discount(percent("15", CouponDuration.ONCE), [Money(999, "JPY")])

    assert line.discount == Money(150, "JPY")  # 149.85


def test_coupon_currency_must_match_the_lines() -> None:
    with pytest.raises(CurrencyMismatch):
        apply_discount(amount_off(1_000), [Money(5_000, "EUR")])
    with pytest.raises(CurrencyMismatch):
        apply_discount(percent("10", CouponDuration.ONCE), [usd(1), Money(1, "EUR")])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"duration": CouponDuration.ONCE},
        {"duration": CouponDuration.ONCE, "percent_off": Decimal(10), "amount_off": Money(1, "USD")},
        {"duration": CouponDuration.ONCE, "percent_off": Decimal(0)},
        {"duration": CouponDuration.ONCE, "percent_off": Decimal("100.01")},
        {"duration": CouponDuration.ONCE, "amount_off": Money(0, "USD")},
        {"duration": CouponDuration.REPEATING, "percent_off": Decimal(10)},
        {"duration": CouponDuration.FOREVER, "percent_off": Decimal(10), "duration_in_months": 3},
    ],
)
def test_invalid_coupons_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Coupon(id="c", **kwargs)  # type: ignore[arg-type]


# -- properties ----------------------------------------------------------------------------------

line_lists = st.lists(st.integers(-(10**7), 10**7), min_size=1, max_size=8)


@given(st.integers(1, 10**8), line_lists)
def test_amount_off_allocation_sums_exactly_and_keeps_lines_and_total_non_negative(
    off: int, cents: list[int]
) -> None:
    lines = [usd(c) for c in cents]
    result = apply_discount(amount_off(off), lines)

    positive_total = sum(c for c in cents if c > 0)
    assert sum(r.discount.amount for r in result) == max(0, min(off, sum(cents), positive_total))
    for r in result:
        assert r.discount.amount >= 0
        assert r.discount.amount <= max(r.amount.amount, 0)
    if sum(cents) >= 0:
        assert sum(r.net.amount for r in result) >= 0


@given(st.decimals(min_value="0.01", max_value=100, places=2), line_lists)
def test_percent_off_never_exceeds_a_line_and_stays_whole_minor_units(pct: Decimal, cents: list[int]) -> None:
    for r in apply_discount(percent(str(pct), CouponDuration.FOREVER), [usd(c) for c in cents]):
        assert type(r.discount.amount) is int
        assert abs(r.discount.amount) <= abs(r.amount.amount)
        assert r.net.amount * r.amount.amount >= 0  # a discount never flips a line's sign
