"""The wall clock's late-usage sweep rides on the billing run (every minute in production) but runs at most
once an hour per process and database: it recomputes every ended subscription's metered periods in the
adjustment window, which is worth an hourly pass, not one a minute. (What it bills is told end to end on
a test clock in tests/metering/test_late_usage_stories.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.billing import run
from gateway.billing.wiring import BillingConfig
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock


async def test_the_sweep_runs_once_an_hour(
    db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    swept: list[datetime] = []

    async def sweep(db: Any, clock: Any, config: Any, *, at: datetime, batch_size: int) -> int:
        swept.append(at)
        return 0

    monkeypatch.setattr(run, "sweep_late_usage", sweep)
    monkeypatch.setattr(run, "_LATE_USAGE_SWEPT", {})
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for minutes in (0, 1, 30, 59, 60, 61, 125):
        await run.billing_run(db, clock, BillingConfig(), at=start + timedelta(minutes=minutes))
    assert swept == [start, start + timedelta(minutes=60), start + timedelta(minutes=125)]
