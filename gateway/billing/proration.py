"""Proration of mid-period changes (billing-rules.md rules 9-14).

Time is measured in whole seconds over the actual period length (rule 10), so a 28-day February and a
31-day March prorate differently, as they should. Every line is rounded once from its exact value.

Two ways to present a change are offered because the anchors disagree and both are reasonable:

* `ProrationMode.NET` (default): one line, `(new - old) * remaining / period`, rounded once. This is the
  only rounding that reproduces rule 10's "+$6.67" for $10 → $20 after 10 of 30 days
  (1000 * 20/30 = 666.67 → 667). It also makes a no-op change exactly zero.
* `ProrationMode.ITEMIZED`: Stripe's two lines, "Unused time on …" (credit) and "Remaining time on …"
  (charge), each rounded once. For the same change they are -667 and +1333, so the net is 666: itemized
  nets may differ from the NET line by one minor unit, which is the price of rounding per line (rule 20).

The functions are pure, so a proration preview (rule 14) is the same call the change itself makes.
Where the lines go (pending items, an immediate invoice, nowhere) is the caller's decision, expressed as a
`ProrationBehavior`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from enum import StrEnum

from gateway.catalog.domain import PriceTerms
from gateway.kernel.clock import ensure_utc
from gateway.kernel.money import CurrencyMismatch, Money, round_minor
from gateway.kernel.periods import Interval, add_months
from gateway.subscriptions.domain import ProrationBehavior

from .rating import rate

__all__ = ["LineKind", "ProrationBehavior", "ProrationLine", "ProrationMode", "prorate"]

_SECOND = timedelta(seconds=1)


class ProrationMode(StrEnum):
    NET = "net"
    ITEMIZED = "itemized"


class LineKind(StrEnum):
    CREDIT = "credit"  # unused time on the old price (negative)
    CHARGE = "charge"  # remaining time on the new price
    NET = "net"  # charge and credit combined, rounded once
    FULL_PERIOD = "full_period"  # a new period billed in full (interval change)


@dataclass(frozen=True, slots=True)
class ProrationLine:
    """One line a change creates. `period_start`/`period_end` is the service span the line covers."""

    kind: LineKind
    amount: Money
    description: str
    period_start: datetime
    period_end: datetime


def _seconds(start: datetime, end: datetime) -> int:
    # Floor division of timedeltas stays in integers: total_seconds() would bring floats into money math.
    return (end - start) // _SECOND


def _remaining(period_start: datetime, period_end: datetime, at: datetime) -> tuple[datetime, int, int]:
    """(at in UTC, seconds remaining after `at`, seconds in the period), validating the bounds."""
    start, end, at = ensure_utc(period_start), ensure_utc(period_end), ensure_utc(at)
    total = _seconds(start, end)
    if total <= 0:
        raise ValueError(f"empty or reversed period [{start.isoformat()}, {end.isoformat()})")
    if not start <= at <= end:
        # A change outside the current period means the caller holds a stale period: prorating it would
        # credit time the customer never had or already used.
        raise ValueError(f"{at.isoformat()} is outside the period [{start.isoformat()}, {end.isoformat()}]")
    return at, _seconds(at, end), total


def _scale(minor: int, numerator: int, denominator: int) -> int:
    """`minor * numerator / denominator`, rounded once half-up."""
    # WARNING: keep the precision well above the digits of minor * numerator. At the default 28 digits a
    # quotient like 0.4999…9 could be rounded to 0.5 before the half-up rule sees it, adding a cent.
    with localcontext() as ctx:
        ctx.prec = 80
        return round_minor(Decimal(minor * numerator) / Decimal(denominator))


def prorate(amount: Money, period_start: datetime, period_end: datetime, from_at: datetime) -> Money:
    """The share of a period's `amount` for `[from_at, period_end)`, to the second, rounded once."""
    _, remaining, total = _remaining(period_start, period_end, from_at)
    return Money(_scale(amount.amount, remaining, total), amount.currency)


def _on(at: datetime) -> str:
    return at.date().isoformat()


def plan_change_lines(
    old_amount: Money,
    new_amount: Money,
    period_start: datetime,
    period_end: datetime,
    change_at: datetime,
    *,
    mode: ProrationMode = ProrationMode.NET,
    old_label: str = "previous price",
    new_label: str = "new price",
) -> list[ProrationLine]:
    """Lines for replacing a period amount of `old_amount` by `new_amount` at `change_at`.

    `old_amount`/`new_amount` are what each price charges for a whole period (already rated at their own
    quantities). Lines that round to zero are left out: a zero line tells the customer nothing.
    """
    if old_amount.currency != new_amount.currency:
        raise CurrencyMismatch(f"{old_amount.currency} and {new_amount.currency} cannot be prorated together")
    at, remaining, total = _remaining(period_start, period_end, change_at)
    end = ensure_utc(period_end)
    currency = old_amount.currency

    if mode is ProrationMode.NET:
        net = _scale(new_amount.amount - old_amount.amount, remaining, total)
        lines = [
            ProrationLine(
                LineKind.NET,
                Money(net, currency),
                f"Remaining time on {new_label} less unused time on {old_label} after {_on(at)}",
                at,
                end,
            )
        ]
    else:
        lines = [
            ProrationLine(
                LineKind.CREDIT,
                Money(-_scale(old_amount.amount, remaining, total), currency),
                f"Unused time on {old_label} after {_on(at)}",
                at,
                end,
            ),
            ProrationLine(
                LineKind.CHARGE,
                Money(_scale(new_amount.amount, remaining, total), currency),
                f"Remaining time on {new_label} after {_on(at)}",
                at,
                end,
            ),
        ]
    return [line for line in lines if not line.amount.is_zero()]


def price_change_lines(
    old_terms: PriceTerms,
    old_quantity: int,
    new_terms: PriceTerms,
    new_quantity: int,
    currency: str,
    period_start: datetime,
    period_end: datetime,
    change_at: datetime,
    *,
    mode: ProrationMode = ProrationMode.NET,
    old_label: str = "previous price",
    new_label: str = "new price",
) -> list[ProrationLine]:
    """Lines for moving from one price (at its quantity) to another within the current period.

    Each side is rated at its own quantity. That is what keeps rule 12 true: moving from 5 seats to a flat
    price credits the 5 unused seats, not the single "quantity" a flat price ignores.
    """
    if old_terms.interval is not new_terms.interval:
        # Prorating a yearly amount over a monthly period would credit or charge 12 times too much.
        raise ValueError("a change of billing interval is prorated by interval_change_lines")
    return plan_change_lines(
        rate(old_terms, currency, old_quantity).money,
        rate(new_terms, currency, new_quantity).money,
        period_start,
        period_end,
        change_at,
        mode=mode,
        old_label=old_label,
        new_label=new_label,
    )


def seat_change_lines(
    terms: PriceTerms,
    currency: str,
    old_quantity: int,
    new_quantity: int,
    period_start: datetime,
    period_end: datetime,
    change_at: datetime,
    *,
    mode: ProrationMode = ProrationMode.NET,
    label: str = "seats",
) -> list[ProrationLine]:
    """Lines for a quantity change on the same price (rule 9); tiered seat prices are re-rated whole."""
    return price_change_lines(
        terms,
        old_quantity,
        terms,
        new_quantity,
        currency,
        period_start,
        period_end,
        change_at,
        mode=mode,
        old_label=f"{old_quantity} {label}",
        new_label=f"{new_quantity} {label}",
    )


def interval_change_lines(
    old_amount: Money,
    new_amount: Money,
    old_period_start: datetime,
    old_period_end: datetime,
    change_at: datetime,
    new_interval: Interval,
    *,
    old_label: str = "previous price",
    new_label: str = "new price",
) -> list[ProrationLine]:
    """Lines for a change of billing interval (rule 13): credit the old period's unused time and charge
    the whole new period, which starts at `change_at` (the new anchor).

    The charge is not prorated because the anchor moves to the change: the new period is complete. These
    lines are meant to be invoiced immediately (`ProrationBehavior.ALWAYS_INVOICE`); leaving a year's
    charge pending until the next invoice would give a year of service on credit.
    """
    if old_amount.currency != new_amount.currency:
        raise CurrencyMismatch(f"{old_amount.currency} and {new_amount.currency} cannot be combined")
    at, remaining, total = _remaining(old_period_start, old_period_end, change_at)
    new_end = add_months(at, new_interval.months)
    lines = [
        ProrationLine(
            LineKind.CREDIT,
            Money(-_scale(old_amount.amount, remaining, total), old_amount.currency),
            f"Unused time on {old_label} after {_on(at)}",
            at,
            ensure_utc(old_period_end),
        ),
        ProrationLine(
            LineKind.FULL_PERIOD,
            new_amount,
            f"{new_label} ({_on(at)} - {_on(new_end)})",
            at,
            new_end,
        ),
    ]
    return [line for line in lines if not line.amount.is_zero()]
