"""Properties of invoice pricing (discounts, then tax, then sums): rules 19 and 20."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from gateway.billing.discounts import Coupon, CouponDuration
from gateway.billing.domain import DraftLine, LineKind, TaxTreatment, price_invoice
from gateway.kernel.money import Money

CURRENCIES = st.sampled_from(["USD", "EUR", "JPY", "KWD"])
PERCENTS = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100), places=2)
TAX = st.builds(
    TaxTreatment,
    percent=st.decimals(min_value=Decimal(0), max_value=Decimal(30), places=3),
    inclusive=st.booleans(),
    rate_id=st.just("txr_1"),
)


def lines_of(currency: str, amounts: list[int]) -> list[DraftLine]:
    return [DraftLine(LineKind.ONE_TIME, f"line {i}", Money(a, currency)) for i, a in enumerate(amounts)]


@given(
    currency=CURRENCIES,
    amounts=st.lists(st.integers(-50_000, 1_000_000), min_size=1, max_size=8),
    percent=st.none() | PERCENTS,
    amount_off=st.none() | st.integers(1, 2_000_000),
    tax=TAX,
)
def test_totals_are_sums_of_rounded_lines(
    currency: str, amounts: list[int], percent: Decimal | None, amount_off: int | None, tax: TaxTreatment
) -> None:
    coupons = []
    if percent is not None:
        coupons.append(Coupon("pct", CouponDuration.FOREVER, percent_off=percent))
    if amount_off is not None:
        coupons.append(Coupon("amt", CouponDuration.FOREVER, amount_off=Money(amount_off, currency)))
    totals = price_invoice(currency, lines_of(currency, amounts), coupons, tax)

    assert totals.subtotal == sum(amounts)
    assert totals.discount_total == sum(p.discount for p in totals.lines)
    assert totals.tax_total == sum(p.tax for p in totals.lines)
    for p in totals.lines:
        assert p.net == p.line.amount.amount - p.discount
        assert all(isinstance(v, int) for v in (p.net, p.tax, p.discount))
    expected = totals.subtotal - totals.discount_total + (0 if tax.inclusive else totals.tax_total)
    assert totals.total == expected


@given(
    currency=CURRENCIES,
    amounts=st.lists(st.integers(0, 1_000_000), min_size=1, max_size=8),
    amount_off=st.integers(1, 5_000_000),
)
def test_amount_off_never_takes_a_line_or_the_invoice_below_zero(
    currency: str, amounts: list[int], amount_off: int
) -> None:
    coupon = Coupon("amt", CouponDuration.ONCE, amount_off=Money(amount_off, currency))
    totals = price_invoice(currency, lines_of(currency, amounts), [coupon], TaxTreatment())
    assert all(p.net >= 0 for p in totals.lines)
    assert totals.total >= 0
    assert totals.discount_total == min(amount_off, sum(amounts))


@given(amounts=st.lists(st.integers(0, 10_000_000), min_size=1, max_size=8), percent=PERCENTS)
def test_percent_off_takes_each_line_rounded_once(amounts: list[int], percent: Decimal) -> None:
    coupon = Coupon("pct", CouponDuration.FOREVER, percent_off=percent)
    totals = price_invoice("USD", lines_of("USD", amounts), [coupon], TaxTreatment())
    for p in totals.lines:
        exact = Decimal(p.line.amount.amount) * percent / 100
        assert abs(Decimal(p.discount) - exact) <= Decimal("0.5")


@given(amounts=st.lists(st.integers(0, 10_000_000), min_size=1, max_size=8), tax=TAX)
def test_inclusive_tax_is_inside_the_total_and_exclusive_on_top(
    amounts: list[int], tax: TaxTreatment
) -> None:
    totals = price_invoice("EUR", lines_of("EUR", amounts), [], tax)
    if tax.inclusive:
        assert totals.total == sum(amounts)
        assert 0 <= totals.tax_total <= totals.total
    else:
        assert totals.total == sum(amounts) + totals.tax_total


def test_worked_numbers() -> None:
    vat = TaxTreatment(percent=Decimal(19), rate_id="txr_de")
    totals = price_invoice("EUR", lines_of("EUR", [10000]), [], vat)
    assert (totals.tax_total, totals.total) == (1900, 11900)
    inclusive = TaxTreatment(percent=Decimal(19), inclusive=True, rate_id="txr_de")
    totals = price_invoice("EUR", lines_of("EUR", [11900]), [], inclusive)
    assert (totals.tax_total, totals.total) == (1900, 11900)
    # JPY has no minor digits: ¥1,000 at 10 % is ¥100, and 20 % off ¥999 is ¥200 (199.8 rounded once).
    jpy = price_invoice(
        "JPY",
        lines_of("JPY", [999]),
        [Coupon("pct", CouponDuration.ONCE, percent_off=Decimal(20))],
        TaxTreatment(percent=Decimal(10), rate_id="txr_jp"),
    )
    assert (jpy.discount_total, jpy.tax_total, jpy.total) == (200, 80, 879)
    # Percent before tax (rule 19): $50 at 20 % off and 10 % tax = 40 + 4.
    both = price_invoice(
        "USD",
        lines_of("USD", [5000]),
        [Coupon("pct", CouponDuration.ONCE, percent_off=Decimal(20))],
        TaxTreatment(percent=Decimal(10), rate_id="txr_x"),
    )
    assert (both.discount_total, both.tax_total, both.total) == (1000, 400, 4400)
