"""One customer's month of usage over many stored events, on PostgreSQL: the 15-minute roll-ups against
the raw events, in the same run.

    .venv/bin/python benchmarks/bench_usage_query.py [--events 10000000] [--customers 1000]
        [--queries 200] [--database-url URL]

Target (issue 12): one customer's month over 10 million stored events in <= 50 ms p99 (roll-ups).

Seeding goes around the API on purpose (ingestion has its own benchmark): `--events` events of one
`count` meter spread evenly over November 2026 and over `--customers` customers are written with
`INSERT … SELECT generate_series` into the monthly partition, and their roll-ups are built from them
with one `INSERT … SELECT … GROUP BY` (what the ingestion writes, batch by batch). Then, for random
customers, three ways of answering "this customer's November, by day in Europe/Amsterdam":
- rolled-up: `usage_over` (what GET /v1/usage and billing call), reading the roll-ups;
- raw, same function: `usage_over(raw=True)`, reading and classifying every event in Python;
- raw SQL floor: one `SELECT count(*)` over the customer's events of the month (no windows), the least
  any raw design could do.
THE DATABASE GIVEN IS EMPTIED (schema dropped and migrated): point it at a scratch database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from gateway.db.migrate import upgrade_head
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.metering.domain import Window
from gateway.metering.partitions import ensure_partitions
from gateway.metering.queries import usage_over
from gateway.metering.repository import MeterRepository
from gateway.metering.service import MeterService

TARGET_MS = 50.0
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/tg_h_meter_ingest"
MONTH = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
CHUNK = 1_000_000


async def seed(db: Database, events: int, customers: int) -> str:
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await upgrade_head(db)
    async with db.unit_of_work() as session:
        await ensure_partitions(session, MONTH[0], months_back=0, months_ahead=1)
        meter = await MeterService(MeterRepository(session), FrozenClock(MONTH[0])).create(
            key="api_calls",
            name=None,
            event_type="api_call",
            aggregation="count",
            value_property=None,
            filters={},
            group_by=[],
        )
    seconds = (MONTH[1] - MONTH[0]).total_seconds()
    began = time.perf_counter()
    for start in range(0, events, CHUNK):
        stop = min(start + CHUNK, events)
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO usage_events "
                    "(tenant_id, time, source, event_id, type, subject, data, received_at) "
                    "SELECT 'cus_' || (g % CAST(:c AS int)), "
                    "CAST(:start AS timestamptz) + make_interval(secs => g * CAST(:step AS float8)), "
                    "'bench', 'q' || g, 'api_call', 'cus_' || (g % CAST(:c AS int)), "
                    "jsonb_build_object('tokens', g % 97), CAST(:start AS timestamptz) "
                    "FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS g"
                ),
                {"c": customers, "start": MONTH[0], "step": seconds / events, "lo": start, "hi": stop - 1},
            )
        print(f"  seeded {stop:,} events ({time.perf_counter() - began:.0f} s)", flush=True)
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO usage_rollups (meter_id, tenant_id, bucket_start, group_key, event_count, "
                "value_sum) SELECT :meter, tenant_id, "
                "to_timestamp(floor(extract(epoch FROM time) / 900) * 900), "
                "'[]', count(*), 0 FROM usage_events GROUP BY 2, 3"
            ),
            {"meter": meter.id},
        )
    async with db.engine.connect() as conn:
        await conn.execute(text("COMMIT"))
        await conn.execute(text("VACUUM ANALYZE usage_events"))
        await conn.execute(text("VACUUM ANALYZE usage_rollups"))
    print(f"  roll-ups built, tables analysed ({time.perf_counter() - began:.0f} s)", flush=True)
    return str(meter.id)


async def measure(db: Database, customers: int, queries: int, how: str) -> tuple[list[float], int]:
    zone = ZoneInfo("Europe/Amsterdam")
    rng = random.Random(7)
    timings, checked = [], 0
    async with db.unit_of_work() as session:
        for _ in range(queries):
            tenant = f"cus_{rng.randrange(customers)}"
            began = time.perf_counter()
            if how == "sql":
                total = (
                    await session.execute(
                        text(
                            "SELECT count(*) FROM usage_events WHERE tenant_id = :t AND time >= :a "
                            "AND time < :b AND type = 'api_call' AND voided_at IS NULL"
                        ),
                        {"t": tenant, "a": MONTH[0], "b": MONTH[1]},
                    )
                ).scalar_one()
            else:
                usage = await usage_over(
                    session,
                    tenant_id=tenant,
                    meter="api_calls",
                    start=MONTH[0],
                    end=MONTH[1],
                    window=Window.DAY,
                    tz=zone,
                    raw=how == "raw",
                )
                total = int(usage.totals.get((), 0))
            timings.append((time.perf_counter() - began) * 1000)
            checked += int(total)
    return timings, checked


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("TIERGATE_BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--raw-queries", type=int, default=30)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores)")
    db = Database(args.database_url)
    await seed(db, args.events, args.customers)
    per_customer = args.events // args.customers
    results = []
    for label, how, n in (
        ("raw SQL count(*) (floor)", "sql", args.queries),
        ("raw events, usage_over", "raw", args.raw_queries),
        ("roll-ups, usage_over", "rollup", args.queries),
    ):
        await measure(db, args.customers, min(5, n), how)  # warm the caches
        timings, total = await measure(db, args.customers, n, how)
        results.append((label, n, timings, total))
    await db.dispose()
    floor_p99 = pct(results[0][2], 0.99)
    print(
        f"\n{args.events:,} stored events, {args.customers:,} customers "
        f"(~{per_customer:,} events each in the month); one customer's November by day, Europe/Amsterdam"
    )
    print(f"{'how':<28} {'queries':>8} {'p50 ms':>8} {'p99 ms':>8} {'mean events':>12} {'p99 vs floor':>13}")
    for label, n, timings, total in results:
        print(
            f"{label:<28} {n:>8} {pct(timings, 0.5):>8.2f} {pct(timings, 0.99):>8.2f} {total / n:>12,.0f} "
            f"{pct(timings, 0.99) / floor_p99:>12.2f}x"
        )
    rolled_p99 = pct(results[2][2], 0.99)
    met = rolled_p99 <= TARGET_MS
    print(
        f"\ntarget: roll-ups p99 <= {TARGET_MS:.0f} ms -> {'met' if met else 'NOT met'} ({rolled_p99:.2f} ms)"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores)")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
