"""billing-rules.md rules 1–4."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gateway.kernel.periods import (
    Alignment,
    Interval,
    add_months,
    calendar_anchor,
    first_period,
    period_containing,
    period_end_after,
)


def d(y: int, m: int, day: int, h: int = 0) -> datetime:
    return datetime(y, m, day, h, tzinfo=UTC)


def ends(anchor: datetime, interval: Interval, n: int) -> list[datetime]:
    out, at = [], anchor
    for _ in range(n):
        at = period_end_after(anchor, interval, at)
        out.append(at)
    return out


def test_rule_1_month_end_anchor_clamps_then_recovers() -> None:
    assert ends(d(2026, 1, 31), Interval.MONTH, 4) == [
        d(2026, 2, 28),
        d(2026, 3, 31),
        d(2026, 4, 30),
        d(2026, 5, 31),
    ]
    assert ends(d(2028, 1, 31), Interval.MONTH, 2) == [d(2028, 2, 29), d(2028, 3, 31)]
    assert ends(d(2026, 1, 30), Interval.MONTH, 2) == [d(2026, 2, 28), d(2026, 3, 30)]


def test_rule_2_anniversary_and_calendar() -> None:
    assert first_period(d(2026, 8, 10), Interval.MONTH) == (d(2026, 8, 10), d(2026, 8, 10), d(2026, 9, 10))
    anchor, start, end = first_period(d(2026, 8, 10), Interval.MONTH, Alignment.CALENDAR)
    assert (anchor, start, end) == (d(2026, 9, 1), d(2026, 8, 10), d(2026, 9, 1))
    # 22 of 31 days: the short first period the rule prorates ($50 → $35.48)
    assert (end - start) / (d(2026, 9, 1) - d(2026, 8, 1)) == 22 / 31
    assert calendar_anchor(d(2026, 8, 10), Interval.QUARTER) == d(2026, 10, 1)
    assert calendar_anchor(d(2026, 8, 10), Interval.YEAR) == d(2027, 1, 1)
    assert calendar_anchor(d(2026, 9, 1), Interval.MONTH) == d(2026, 9, 1)


def test_rule_4_quarterly_and_yearly_anchor_like_monthly() -> None:
    assert ends(d(2026, 11, 30), Interval.QUARTER, 2) == [d(2027, 2, 28), d(2027, 5, 30)]
    assert ends(d(2028, 2, 29), Interval.YEAR, 2) == [d(2029, 2, 28), d(2030, 2, 28)]


def test_period_containing() -> None:
    assert period_containing(d(2026, 1, 31), Interval.MONTH, d(2026, 3, 5)) == (
        d(2026, 2, 28),
        d(2026, 3, 31),
    )
    assert period_containing(d(2026, 1, 31), Interval.MONTH, d(2026, 2, 28)) == (
        d(2026, 2, 28),
        d(2026, 3, 31),
    )


@given(
    anchor=st.datetimes(
        # hypothesis takes naive bounds and attaches `timezones` to the values it draws
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001
        max_value=datetime(2090, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    offset_days=st.integers(0, 3000),
    interval=st.sampled_from(list(Interval)),
)
def test_boundaries_follow_the_anchor_and_never_drift(
    anchor: datetime, offset_days: int, interval: Interval
) -> None:
    after = anchor + timedelta(days=offset_days)
    end = period_end_after(anchor, interval, after)
    assert end > after
    start, end2 = period_containing(anchor, interval, after)
    assert end2 == end and start <= after < end
    # every boundary keeps the anchor's day unless the month is too short for it
    assert end.day == min(anchor.day, (add_months(end.replace(day=1), 1) - timedelta(days=1)).day)
    assert (end.hour, end.minute, end.second) == (anchor.hour, anchor.minute, anchor.second)
