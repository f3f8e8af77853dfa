"""Month roll-ups (gateway/metrics/rollups.py): a closed month is computed once and read back while its
inputs are unchanged; a change that lands in an old month, a trial's end recorded late, make that month
and every later one computed again, and every month stays exactly what GET /v1/metrics answers.

The ledger is written directly, as the metrics recorder writes it (the recorder has its own tests), on
the wall clock in USD; the dashboard is looked at on 2026-06-15 over six months (January to June):
- c1: $9 from Jan 10, $29 from Mar 5;
- c2: $29 from Feb 3, canceled Apr 20;
- c3: $9 from May 2.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from gateway.admin import dashboard
from gateway.db.session import Database
from gateway.metrics.models import MetricsMonthRollup, MetricsSubscription, MrrChange
from gateway.metrics.report import window_report
from gateway.metrics.service import MetricsService, Scope, Segment

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)
USD = Scope("USD")


def change(n: int, customer: str, sub: str, at: datetime, gross: int) -> dict[str, Any]:
    return {
        "event_id": f"evt_{n}",
        "tenant_id": customer,
        "subscription_id": sub,
        "test_clock_id": None,
        "currency": "USD",
        "at": at,
        "gross": gross,
        "discount": 0,
        "status": "active" if gross else "canceled",
        "event_type": "customer.subscription.updated",
        "plan_id": "plan_basic" if gross == 900 else "plan_pro",
        "interval": "month",
    }


LEDGER = [
    change(1, "c1", "s1", datetime(2026, 1, 10, tzinfo=UTC), 900),
    change(2, "c2", "s2", datetime(2026, 2, 3, tzinfo=UTC), 2900),
    change(3, "c1", "s1", datetime(2026, 3, 5, tzinfo=UTC), 2900),
    change(4, "c2", "s2", datetime(2026, 4, 20, tzinfo=UTC), 0),
    change(5, "c3", "s3", datetime(2026, 5, 2, tzinfo=UTC), 900),
]


class Counted:
    """Counts the months computed from the ledger (`MetricsService.summary_of` calls)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.starts: list[str] = []
        original = MetricsService.summary_of

        async def counting(service: MetricsService, scope: Scope, start: datetime, *args: Any) -> Any:
            self.starts.append(start.strftime("%Y-%m"))
            return await original(service, scope, start, *args)

        monkeypatch.setattr(MetricsService, "summary_of", counting)


async def looked_at(db: Database, scope: Scope = USD) -> list[dashboard.Month]:
    async with db.unit_of_work() as session:
        return (await dashboard.board(session, scope, NOW, 6)).months


async def as_the_api_answers(db: Database, months: list[dashboard.Month]) -> None:
    async with db.unit_of_work() as session:
        for month in months:
            assert month.report == await window_report(session, USD, month.start, month.end), month.label


async def kept_rows(db: Database) -> int:
    async with db.unit_of_work() as session:
        return int(await session.scalar(select(func.count()).select_from(MetricsMonthRollup)) or 0)


async def test_a_closed_month_is_computed_once_and_read_back(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with db.unit_of_work() as session:
        await session.execute(insert(MrrChange), LEDGER)
    counted = Counted(monkeypatch)

    first = await looked_at(db)
    assert [m.label for m in first] == ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]
    assert counted.starts == [m.label for m in first]
    assert await kept_rows(db) == 5  # January to May; June is in progress
    assert [m.report["mrr"]["end"] for m in first] == [900, 3800, 5800, 2900, 3800, 3800]
    await as_the_api_answers(db, first)

    counted.starts.clear()
    again = await looked_at(db)
    assert counted.starts == ["2026-06"]  # only the month in progress is computed
    assert [m.report for m in again] == [m.report for m in first]


async def test_a_late_change_or_trial_recomputes_its_month_and_the_later_ones(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with db.unit_of_work() as session:
        await session.execute(insert(MrrChange), LEDGER)
    await looked_at(db)
    counted = Counted(monkeypatch)

    # A change in February committed after the roll-ups were kept (a late commit, or a backdated one).
    async with db.unit_of_work() as session:
        await session.execute(
            insert(MrrChange), [change(6, "c4", "s4", datetime(2026, 2, 10, tzinfo=UTC), 900)]
        )
    months = await looked_at(db)
    assert counted.starts == ["2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]  # January kept
    assert months[1].report["movements"]["new"]["amount"] == 2900 + 900
    assert [m.report["mrr"]["end"] for m in months] == [900, 4700, 6700, 3800, 4700, 4700]
    await as_the_api_answers(db, months)

    # A trial that ended in April, recorded late: April onward.
    counted.starts.clear()
    async with db.unit_of_work() as session:
        session.add(
            MetricsSubscription(
                subscription_id="s5",
                tenant_id="c5",
                version=1,
                status="canceled",
                currency="USD",
                trial_ended_at=datetime(2026, 4, 8, tzinfo=UTC),
                trial_converted=False,
                updated_at=NOW,
            )
        )
    months = await looked_at(db)
    assert counted.starts == ["2026-04", "2026-05", "2026-06"]
    assert months[3].report["trials"] == {"converted": 0, "ended": 1, "conversion": "0.0000"}
    await as_the_api_answers(db, months)


async def test_a_segment_is_never_kept(db: Database) -> None:
    async with db.unit_of_work() as session:
        await session.execute(insert(MrrChange), LEDGER)
    pro = Scope("USD", segment=Segment(plan="plan_pro"))
    months = await looked_at(db, pro)
    assert [m.report["mrr"]["end"] for m in months] == [0, 2900, 5800, 2900, 2900, 2900]
    assert await kept_rows(db) == 0
