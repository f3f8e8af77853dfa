"""Billing-period calendar math (billing-rules.md rules 1–4). Pure functions over aware UTC datetimes.

Periods are half-open `[start, end)`. Every period end is computed from the *anchor*, never from the
previous end: that is what makes a Jan 31 anchor renew Feb 28, then Mar 31 (rule 1) instead of drifting
to the 28th forever.
"""

from __future__ import annotations

import calendar
from datetime import datetime
from enum import StrEnum

from gateway.kernel.clock import ensure_utc


class Interval(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"

    @property
    def months(self) -> int:
        return {"month": 1, "quarter": 3, "year": 12}[self.value]


class Alignment(StrEnum):
    ANNIVERSARY = "anniversary"  # periods run from the start date (rule 2 default)
    CALENDAR = "calendar"  # periods run from the 1st of the month / quarter / year


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` + `months` calendar months, clamping the day to the target month's last day."""
    moment = ensure_utc(moment)
    index = moment.year * 12 + (moment.month - 1) + months
    year, month0 = divmod(index, 12)
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return moment.replace(year=year, month=month0 + 1, day=min(moment.day, last_day))


def _boundary_index(anchor: datetime, step: int, after: datetime) -> int:
    """Smallest k ≥ 1 with anchor + k·step months > after (assumes after ≥ anchor)."""
    months_between = (after.year - anchor.year) * 12 + (after.month - anchor.month)
    k = max(1, months_between // step)
    # The estimate can be one step early or late because of day/time-of-day; walk to the exact one.
    while k > 1 and add_months(anchor, (k - 1) * step) > after:
        k -= 1
    while add_months(anchor, k * step) <= after:
        k += 1
    return k


def period_end_after(anchor: datetime, interval: Interval, after: datetime) -> datetime:
    """The first anchor-aligned boundary strictly after `after`.

    Boundaries are `anchor + k × interval` for k = 0, 1, 2, … (each computed from the anchor, rule 1).
    """
    anchor, after = ensure_utc(anchor), ensure_utc(after)
    if after < anchor:
        return anchor
    return add_months(anchor, _boundary_index(anchor, interval.months, after) * interval.months)


def period_containing(anchor: datetime, interval: Interval, at: datetime) -> tuple[datetime, datetime]:
    """The anchor-aligned period `[start, end)` that contains `at` (at ≥ anchor)."""
    anchor, at = ensure_utc(anchor), ensure_utc(at)
    if at < anchor:
        raise ValueError("at is before the anchor")
    k = _boundary_index(anchor, interval.months, at)
    return add_months(anchor, (k - 1) * interval.months), add_months(anchor, k * interval.months)


def calendar_anchor(start: datetime, interval: Interval) -> datetime:
    """For calendar alignment: the first calendar boundary (1st of month/quarter/Jan 1) after `start`.

    The first period `[start, anchor)` is then a short, prorated one (rule 2: Aug 10 → Sep 1).
    A start exactly on a boundary is its own anchor.
    """
    start = ensure_utc(start)
    floor_month = start.month - (start.month - 1) % interval.months
    floor = start.replace(month=floor_month, day=1, hour=0, minute=0, second=0, microsecond=0)
    if floor == start:
        return start
    return add_months(floor, interval.months)


def first_period(
    start: datetime, interval: Interval, alignment: Alignment = Alignment.ANNIVERSARY
) -> tuple[datetime, datetime, datetime]:
    """(anchor, period_start, period_end) of a subscription whose paid service starts at `start`."""
    start = ensure_utc(start)
    if alignment is Alignment.CALENDAR:
        anchor = calendar_anchor(start, interval)
        if anchor != start:
            return anchor, start, anchor
    else:
        anchor = start
    return anchor, start, add_months(anchor, interval.months)
