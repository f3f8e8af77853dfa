"""Coupon math (billing-rules.md rules 18-19): when a coupon applies, and what it takes off each line.

Discounts are computed on pre-tax line amounts; tax is computed afterwards on the discounted lines
(percent coupons apply before tax, rule 19). Each line's discount is rounded once (rule 20).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from gateway.kernel.clock import ensure_utc
from gateway.kernel.money import CurrencyMismatch, Money
from gateway.kernel.periods import Interval, add_months

_HUNDRED = Decimal(100)


class CouponDuration(StrEnum):
    ONCE = "once"  # the first billing period that starts at or after redemption
    REPEATING = "repeating"  # periods starting within `duration_in_months` of redemption
    FOREVER = "forever"


@dataclass(frozen=True, slots=True)
class Coupon:
    """Exactly one of `percent_off` (0 < p ≤ 100, e.g. Decimal("12.5")) or `amount_off`."""

    id: str
    duration: CouponDuration
    percent_off: Decimal | None = None
    amount_off: Money | None = None
    duration_in_months: int | None = None

    def __post_init__(self) -> None:
        if (self.percent_off is None) == (self.amount_off is None):
            raise ValueError("a coupon takes exactly one of percent_off and amount_off")
        if self.percent_off is not None and not Decimal(0) < self.percent_off <= _HUNDRED:
            raise ValueError(f"percent_off must be in (0, 100], got {self.percent_off}")
        if self.amount_off is not None and self.amount_off.amount <= 0:
            raise ValueError("amount_off must be positive")
        if self.duration is CouponDuration.REPEATING:
            if self.duration_in_months is None or self.duration_in_months < 1:
                raise ValueError("a repeating coupon needs duration_in_months ≥ 1")
        elif self.duration_in_months is not None:
            raise ValueError(f"duration_in_months only applies to repeating coupons, not {self.duration}")


def applies_to_period(
    coupon: Coupon,
    redeemed_at: datetime,
    period_start: datetime,
    *,
    interval: Interval = Interval.MONTH,
) -> bool:
    """Whether an invoice for the period starting at `period_start` gets the coupon.

    `redeemed_at` is when the coupon was attached (the subscription start when it came with the signup).
    A period that started before redemption is never discounted: coupons are not retroactive.
    `repeating` covers the periods that start in `[redeemed_at, redeemed_at + N months)`, so "3 months" on
    a monthly plan is exactly three invoices. `once` covers the first period that starts within one
    billing `interval` of redemption; the interval matters only when a coupon is redeemed mid-period on a
    quarterly or yearly plan, whose next period may start more than a month later.
    """
    redeemed_at, period_start = ensure_utc(redeemed_at), ensure_utc(period_start)
    if period_start < redeemed_at:
        return False
    if coupon.duration is CouponDuration.FOREVER:
        return True
    if coupon.duration is CouponDuration.ONCE:
        return period_start < add_months(redeemed_at, interval.months)
    assert coupon.duration_in_months is not None  # enforced by Coupon.__post_init__
    return period_start < add_months(redeemed_at, coupon.duration_in_months)


@dataclass(frozen=True, slots=True)
class DiscountedLine:
    """A line amount and what the coupon takes off it (positive reduces the line)."""

    amount: Money
    discount: Money

    @property
    def net(self) -> Money:
        return self.amount - self.discount


def apply_discount(coupon: Coupon, lines: Sequence[Money]) -> list[DiscountedLine]:
    """Discount each pre-tax line, in order.

    Percent off: each line is scaled and rounded on its own, credits included, so that a credit for
    unused time is the discounted price that was paid. Amount off: spread over the positive lines in
    proportion to their amounts with `Money.allocate` (no minor unit lost), and capped at the subtotal so
    neither a line nor the invoice goes below zero; the part of the coupon left over is forfeited, as a
    fixed discount is a per-invoice benefit, not a balance.
    """
    if not lines:
        return []
    currency = lines[0].currency
    if any(line.currency != currency for line in lines):
        raise CurrencyMismatch("discounted lines must share one currency")

    if coupon.percent_off is not None:
        factor = coupon.percent_off / _HUNDRED
        return [DiscountedLine(line, line.scale(factor)) for line in lines]

    assert coupon.amount_off is not None  # enforced by Coupon.__post_init__
    if coupon.amount_off.currency != currency:
        raise CurrencyMismatch(f"a {coupon.amount_off.currency} coupon cannot discount {currency} lines")
    positive = [max(line.amount, 0) for line in lines]
    subtotal = sum(line.amount for line in lines)
    # Credits on the invoice lower the cap: otherwise a $10 charge, a -$8 credit and a $10 coupon would
    # produce a -$8 invoice, paying the customer out of a discount.
    off = min(coupon.amount_off.amount, subtotal, sum(positive))
    if off <= 0:
        return [DiscountedLine(line, Money.zero(currency)) for line in lines]
    shares = Money(off, currency).allocate(positive)
    return [DiscountedLine(line, share) for line, share in zip(lines, shares, strict=True)]
