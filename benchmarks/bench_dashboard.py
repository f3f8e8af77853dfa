"""The admin dashboard's numbers over 10,000 customers and two years of MRR history, on PostgreSQL.

    .venv/bin/python benchmarks/bench_dashboard.py [--customers 10000] [--months 24] [--runs 5]
        [--database-url URL]

Target (issue 14): the dashboard (24 monthly windows + cohorts) in under 1 s on the 2-core machine.

Seeding goes around the API on purpose: `mrr_changes` (what the metrics recorder writes from subscription
events) gets each customer's signup in a random month of the two years at $9/$29/$99, then each month a
3 % chance of an upgrade, 2 % of a downgrade and 4 % of a cancellation (a third of those come back
later); `metrics_subscriptions` a trial for half of them (60 % convert). Then, in the same run:
- dashboard: `gateway.admin.dashboard.board` + `cohorts` (what GET /admin/dashboard computes): the closed
  months from their roll-ups (gateway/metrics/rollups.py), the month in progress from the history read
  once, payments and dunning read for all the months at once;
- first visit: the same with no roll-up kept (as after a change to an old month): every month from the
  one pass over the history, then kept;
- baseline: the same months as 24 calls of `window_report` (GET /v1/metrics each) + the cohorts query;
- one window: `window_report` for the last month (what GET /v1/metrics computes), the per-window cost.
THE DATABASE GIVEN IS EMPTIED (schema dropped and migrated): point it at a scratch database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import delete, insert, text

from benchmarks._scratch_db import ensure_database
from gateway.admin import dashboard
from gateway.db.migrate import upgrade_head
from gateway.db.session import Database
from gateway.kernel.periods import add_months
from gateway.metrics.models import MetricsMonthRollup, MetricsSubscription, MrrChange
from gateway.metrics.report import window_report
from gateway.metrics.service import MetricsService, Scope

TARGET_MS = 1000.0
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/tiergate_bench_dashboard"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
PRICES = (900, 2900, 9900)


def history(customers: int, months: int, rng: random.Random) -> tuple[list[dict], list[dict]]:
    """(mrr_changes rows, metrics_subscriptions rows) for `customers` over the last `months` months."""
    first = add_months(NOW.replace(day=1, hour=0, minute=0), -months + 1)
    changes: list[dict] = []
    subs: list[dict] = []
    seq = 0

    def change(customer: int, sub: str, at: datetime, gross: int, status: str) -> None:
        nonlocal seq
        seq += 1
        changes.append(
            {
                "event_id": f"evt_{seq}",
                "tenant_id": f"cus_{customer}",
                "subscription_id": sub,
                "test_clock_id": None,
                "currency": "USD",
                "at": at,
                "gross": gross,
                "discount": 0,
                "status": status,
                "event_type": "subscription.updated",
            }
        )

    for c in range(customers):
        sub = f"sub_{c}"
        start = add_months(first, rng.randrange(months)) + timedelta(hours=rng.randrange(24 * 27))
        price = rng.choice(PRICES)
        trial = rng.random() < 0.5
        converted = rng.random() < 0.6
        subs.append(
            {
                "subscription_id": sub,
                "tenant_id": f"cus_{c}",
                "version": 1,
                "status": "active",
                "currency": "USD",
                "gross": price,
                "discount": 0,
                "trial_ended_at": start if trial else None,
                "trial_converted": converted if trial else None,
                "test_clock_id": None,
                "updated_at": NOW,
            }
        )
        if trial and not converted:
            continue
        change(c, sub, start, price, "active")
        at, active = start, True
        while (at := add_months(at, 1)) < NOW:
            roll = rng.random()
            if active and roll < 0.03 and price != PRICES[-1]:
                price = PRICES[PRICES.index(price) + 1]
                change(c, sub, at, price, "active")
            elif active and roll < 0.05 and price != PRICES[0]:
                price = PRICES[PRICES.index(price) - 1]
                change(c, sub, at, price, "active")
            elif active and roll < 0.09:
                active = False
                change(c, sub, at, 0, "canceled")
                if rng.random() > 1 / 3:
                    break
            elif not active and roll < 0.2:
                active = True
                change(c, sub, at, price, "active")
    return changes, subs


async def seed(db: Database, customers: int, months: int) -> int:
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await upgrade_head(db)
    changes, subs = history(customers, months, random.Random(14))
    async with db.unit_of_work() as session:
        for i in range(0, len(changes), 5000):
            await session.execute(insert(MrrChange), changes[i : i + 5000])
        for i in range(0, len(subs), 5000):
            await session.execute(insert(MetricsSubscription), subs[i : i + 5000])
    async with db.engine.begin() as conn:
        await conn.execute(text("ANALYZE"))
    return len(changes)


async def timed(db: Database, runs: int, what: str, months: int) -> list[float]:
    scope = Scope("USD")
    timings = []
    for _ in range(runs):
        began = time.perf_counter()
        async with db.unit_of_work() as session:
            if what in ("dashboard", "first"):
                if what == "first":  # as the first visit after the history changed: nothing kept
                    await session.execute(delete(MetricsMonthRollup))
                shown = await dashboard.board(session, scope, NOW, months)
                await dashboard.cohorts(session, scope, NOW, months, shown.history)
            elif what == "recompute":
                for start, end in dashboard.month_windows(NOW, months):
                    await window_report(session, scope, start, end)
                this_month = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
                await MetricsService(session).cohorts(scope, add_months(this_month, 1 - months), months, NOW)
            else:
                await window_report(session, scope, add_months(NOW, -1), NOW)
        timings.append((time.perf_counter() - began) * 1000)
    return timings


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("TIERGATE_BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--recompute-runs", type=int, default=1)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores)")
    await ensure_database(args.database_url)
    db = Database(args.database_url)
    began = time.perf_counter()
    rows = await seed(db, args.customers, args.months)
    print(f"seeded {args.customers:,} customers, {rows:,} MRR changes ({time.perf_counter() - began:.0f} s)")
    await timed(db, 1, "window", args.months)  # warm the caches
    window = await timed(db, args.runs, "window", args.months)
    first = await timed(db, args.runs, "first", args.months)
    board = await timed(db, args.runs, "dashboard", args.months)
    recompute = await timed(db, args.recompute_runs, "recompute", args.months)
    await db.dispose()
    print(f"{'what':<44} {'runs':>5} {'min ms':>9} {'median ms':>10}")
    for label, t in (
        ("one window (GET /v1/metrics)", window),
        (f"dashboard, first visit ({args.months} months + cohorts)", first),
        ("dashboard, closed months kept", board),
        (f"baseline: {args.months} x GET /v1/metrics + cohorts", recompute),
    ):
        print(f"{label:<44} {len(t):>5} {min(t):>9.1f} {sorted(t)[len(t) // 2]:>10.1f}")
    median = sorted(board)[len(board) // 2]
    first_median = sorted(first)[len(first) // 2]
    print(f"baseline / dashboard (medians): {sorted(recompute)[len(recompute) // 2] / median:.1f}x")
    print(f"first visit / dashboard (medians): {first_median / median:.1f}x")
    met = max(median, first_median) <= TARGET_MS
    print(
        f"\ntarget: dashboard median <= {TARGET_MS:.0f} ms, first visit too -> {'met' if met else 'NOT met'} "
        f"({median:.1f} ms, {first_median:.1f} ms)"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores)")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
